"""Heat pumps: `/users/{user}/heat-pumps`, and `/data` for temperatures and consumption.

podero_heat_pump_hot_water_temperature_celsius{device_id="..",name="..",user_id=".."} 52.1
"""

from __future__ import annotations

from exporter.kinds.family import price_help, reading, threshold
from exporter.kinds.kind import Column, Field, Kind, celsius

INLET_TEMPERATURE = reading(
    "podero_heat_pump_inlet_temperature_celsius",
    "inlet_temp_act",
    "Actual inlet temperature of the heat pump in degrees Celsius (API field inlet_temp_act; "
    "the API does not say of which circuit).",
)
HOT_WATER_TEMPERATURE = reading(
    "podero_heat_pump_hot_water_temperature_celsius",
    "hot_water_temp",
    "Hot water temperature in degrees Celsius (API field hot_water_temp).",
)
ESTIMATED_CONSUMPTION = reading(
    "podero_heat_pump_estimated_consumption_watts",
    "estimated_consumption",
    "Estimated consumption of the heat pump in watts (API field estimated_consumption).",
    group="consumption",
)
UNOPTIMIZED_CONSUMPTION = reading(
    "podero_heat_pump_unoptimized_consumption_watts",
    "unoptimized_consumption",
    "Consumption of the heat pump without Podero's optimisation in watts "
    "(API field unoptimized_consumption).",
    group="consumption",
)
PRICE = reading("podero_heat_pump_price", "price", price_help("the heat pump's "), group="price")
HOT_WATER_LOW_THRESHOLD = threshold(
    "podero_heat_pump_hot_water_low_threshold_celsius",
    "hot_water_low_celsius",
    "Configured hot-water-low alert threshold in degrees Celsius "
    "(thresholds.hot_water_low_celsius).",
)

HEAT_PUMP = Kind(
    name="heat_pump",
    path="heat-pumps",
    listing="heat_pumps",
    measured=(Field("inlet_temp_act", celsius), Field("hot_water_temp", celsius)),
    other=(Field("estimated_consumption"), Field("unoptimized_consumption"), Field("price")),
    readings=(
        INLET_TEMPERATURE,
        HOT_WATER_TEMPERATURE,
        ESTIMATED_CONSUMPTION,
        UNOPTIMIZED_CONSUMPTION,
        PRICE,
    ),
    thresholds=(HOT_WATER_LOW_THRESHOLD,),
    columns=(
        Column("hot_water_celsius", "Hot water", "celsius", HOT_WATER_TEMPERATURE),
        Column("inlet_celsius", "Inlet", "celsius", INLET_TEMPERATURE),
        Column("price", "Price", "number", PRICE),
    ),
    savings=True,  # /savings: what the optimisation saved, and the consumption
)
