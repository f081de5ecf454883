"""Electric vehicles: `/users/{user}/electric-vehicles`, and `/data` for battery and plug.

podero_electric_vehicle_battery_level_ratio{device_id="..",name="..",user_id=".."} 0.74
"""

from __future__ import annotations

from exporter.kinds.family import price_help, reading, threshold
from exporter.kinds.kind import Column, Field, Kind, boolean, percent

BATTERY_LEVEL = reading(
    "podero_electric_vehicle_battery_level_ratio",
    "battery_level",
    "Battery level of the electric vehicle, 0 to 1 (API field battery_level / 100).",
    scale=0.01,
)
CHARGING = reading(
    "podero_electric_vehicle_charging",
    "is_charging",
    "1 if the electric vehicle is charging, else 0 (API field is_charging).",
)
PLUGGED_IN = reading(
    "podero_electric_vehicle_plugged_in",
    "is_plugged_in",
    "1 if the electric vehicle is plugged in, else 0 (API field is_plugged_in).",
)
AT_OPTIMIZED_LOCATION = reading(
    "podero_electric_vehicle_at_optimized_location",
    "is_at_optimized_location",
    "1 if the electric vehicle is where Podero optimises its charging (home), else 0 "
    "(API field is_at_optimized_location).",
)
ESTIMATED_CONSUMPTION = reading(
    "podero_electric_vehicle_estimated_consumption_watts",
    "estimated_consumption",
    "Estimated charging consumption of the electric vehicle in watts "
    "(API field estimated_consumption).",
    group="consumption",
)
UNOPTIMIZED_CONSUMPTION = reading(
    "podero_electric_vehicle_unoptimized_consumption_watts",
    "unoptimized_consumption",
    "Charging consumption without Podero's optimisation in watts "
    "(API field unoptimized_consumption).",
    group="consumption",
)
PRICE = reading(
    "podero_electric_vehicle_price", "price", price_help("the electric vehicle's "), group="price"
)
CHARGED_THRESHOLD = threshold(
    "podero_electric_vehicle_charged_threshold_ratio",
    "vehicle_charged_percent",
    "Configured battery level, 0 to 1, the vehicle should have by its charged-by time "
    "(thresholds.vehicle_charged_percent / 100).",
    scale=0.01,
)
CHARGED_BY = threshold(
    "podero_electric_vehicle_charged_by_seconds",
    "vehicle_charged_by",
    "Configured time of day by which the vehicle should be charged, in seconds after "
    "midnight in the config's timezone (thresholds.vehicle_charged_by; the rules add "
    "podero_exporter_timezone_offset_seconds to time() to compare).",
)

ELECTRIC_VEHICLE = Kind(
    name="electric_vehicle",
    path="electric-vehicles",
    listing="electric_vehicles",
    measured=(
        Field("battery_level", percent),
        Field("is_charging", boolean),
        Field("is_plugged_in", boolean),
        Field("is_at_optimized_location", boolean),
    ),
    other=(Field("estimated_consumption"), Field("unoptimized_consumption"), Field("price")),
    readings=(
        BATTERY_LEVEL,
        CHARGING,
        PLUGGED_IN,
        AT_OPTIMIZED_LOCATION,
        ESTIMATED_CONSUMPTION,
        UNOPTIMIZED_CONSUMPTION,
        PRICE,
    ),
    thresholds=(CHARGED_THRESHOLD, CHARGED_BY),
    columns=(
        Column("battery_ratio", "Battery", "percent", BATTERY_LEVEL),
        Column("plugged_in", "EV plug", "plug", PLUGGED_IN),  # with `charging`
        Column("charging", "Charging", "hidden", CHARGING),
        Column("price", "Price", "number", PRICE),
    ),
    savings=True,  # /savings: what the optimisation saved, and the consumption
)
