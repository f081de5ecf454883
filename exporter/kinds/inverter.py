"""Solar inverters and their home batteries: `/users/{user}/inverters`, and `/data` for the
newest point. The one kind with energy counters and connection/monitoring state sets.

    podero_inverter_solar_production_watts{device_id="6f1c..",name="roof",user_id="18e8.."} 2310.0
"""

from __future__ import annotations

from exporter.kinds.family import (
    JOULES_PER_KWH,
    energy,
    inventory,
    price_help,
    reading,
    state_set,
    threshold,
)
from exporter.kinds.kind import Column, Field, Kind, percent

SOLAR_PRODUCTION = reading(
    "podero_inverter_solar_production_watts",
    "solar_production_w",
    "Solar production in watts (API field solar_production_w; never negative).",
)
GRID_EXPORT = reading(
    "podero_inverter_grid_export_watts",
    "export_power_to_grid_w",
    "Power to the grid in watts (API field export_power_to_grid_w): "
    "positive = exporting to the grid, negative = importing from it.",
)
HOUSEHOLD_CONSUMPTION = reading(
    "podero_inverter_household_consumption_watts",
    "household_consumption_w",
    "Household consumption in watts (API field household_consumption_w).",
)
BATTERY_CHARGE = reading(
    "podero_inverter_battery_charge_ratio",
    "battery_charge_level_percent",
    "Battery state of charge, 0 to 1 (API field battery_charge_level_percent / 100).",
    scale=0.01,
)
BATTERY_POWER = reading(
    "podero_inverter_battery_power_watts",
    "battery_charge_discharge_power_w",
    "Battery power in watts (API field battery_charge_discharge_power_w): "
    "positive = discharging, negative = charging.",
)
ESTIMATED_CONSUMPTION = reading(
    "podero_inverter_estimated_consumption_watts",
    "estimated_consumption",
    "Estimated consumption in watts (API field estimated_consumption, a forecast).",
    group="consumption",
    default=False,
)
UNOPTIMIZED_CONSUMPTION = reading(
    "podero_inverter_unoptimized_consumption_watts",
    "unoptimized_consumption",
    "Consumption without Podero's optimisation in watts (API field unoptimized_consumption).",
    group="consumption",
    default=False,
)
PRICE = reading("podero_inverter_price", "price", price_help("the inverter's "), group="price")

SOLAR_ENERGY = energy(
    "podero_inverter_solar_energy_joules_total",
    "solar_production_w",
    "positive",
    "Solar energy produced in joules (from API field solar_production_w).",
)
GRID_EXPORT_ENERGY = energy(
    "podero_inverter_grid_export_energy_joules_total",
    "export_power_to_grid_w",
    "positive",
    "Energy exported to the grid in joules (positive part of API field export_power_to_grid_w).",
)
GRID_IMPORT_ENERGY = energy(
    "podero_inverter_grid_import_energy_joules_total",
    "export_power_to_grid_w",
    "negative",
    "Energy imported from the grid in joules (negative part of API field export_power_to_grid_w).",
)
HOUSEHOLD_ENERGY = energy(
    "podero_inverter_household_energy_joules_total",
    "household_consumption_w",
    "positive",
    "Household energy consumed in joules (from API field household_consumption_w).",
)
BATTERY_CHARGE_ENERGY = energy(
    "podero_inverter_battery_charge_energy_joules_total",
    "battery_charge_discharge_power_w",
    "negative",
    "Energy charged into the battery in joules (negative part of API field "
    "battery_charge_discharge_power_w: negative = charging).",
)
BATTERY_DISCHARGE_ENERGY = energy(
    "podero_inverter_battery_discharge_energy_joules_total",
    "battery_charge_discharge_power_w",
    "positive",
    "Energy discharged from the battery in joules (positive part of API field "
    "battery_charge_discharge_power_w: positive = discharging).",
)

BATTERY_LOW_THRESHOLD = threshold(
    "podero_inverter_battery_low_threshold_ratio",
    "battery_low_percent",
    "Configured battery-low alert threshold, 0 to 1 (thresholds.battery_low_percent / 100).",
    scale=0.01,
)
GRID_EXPORT_HIGH_THRESHOLD = threshold(
    "podero_inverter_grid_export_high_threshold_watts",
    "grid_export_high_watts",
    "Configured grid-export-high alert threshold in watts (thresholds.grid_export_high_watts).",
)

# The statuses every inverter reports a series for (a state set); any other status the API
# sends is added as one more series.
CONNECTION_STATUS = state_set(
    "podero_inverter_connection_status",
    "connection_status",
    "State set of the API field connection_status: 1 for the current status, 0 for the "
    "other known ones.",
    ("connected", "disconnected", "unknown"),
)
MONITORING_STATUS = state_set(
    "podero_inverter_monitoring_status",
    "monitoring_status",
    "State set of the API field monitoring_status: 1 for the current status, 0 for the "
    "other known ones.",
    ("ok", "warning", "error", "unknown"),
)
SOLAR_POWER_RATING = inventory(
    "podero_inverter_solar_power_rating_watts",
    "solar_power_rating_kw",
    "Rated solar power in watts (API field solar_power_rating_kw x 1000).",
    scale=1000.0,
)
BATTERY_CAPACITY = inventory(
    "podero_inverter_battery_capacity_joules",
    "battery_capacity_kwh",
    "Battery capacity in joules (API field battery_capacity_kwh x 3.6e6).",
    scale=JOULES_PER_KWH,
)
BATTERY_CONNECTED = inventory(
    "podero_inverter_battery_connected",
    "is_battery_connected",
    "1 if a battery is connected (API field is_battery_connected).",
)

INVERTER = Kind(
    name="inverter",
    path="inverters",
    listing="inverters",
    measured=(
        Field("solar_production_w"),
        Field("export_power_to_grid_w"),
        Field("household_consumption_w"),
        Field("battery_charge_level_percent", percent),
        Field("battery_charge_discharge_power_w"),
    ),
    other=(Field("price"), Field("estimated_consumption"), Field("unoptimized_consumption")),
    readings=(
        SOLAR_PRODUCTION,
        GRID_EXPORT,
        HOUSEHOLD_CONSUMPTION,
        BATTERY_CHARGE,
        BATTERY_POWER,
        ESTIMATED_CONSUMPTION,
        UNOPTIMIZED_CONSUMPTION,
        PRICE,
    ),
    energy=(
        SOLAR_ENERGY,
        GRID_EXPORT_ENERGY,
        GRID_IMPORT_ENERGY,
        HOUSEHOLD_ENERGY,
        BATTERY_CHARGE_ENERGY,
        BATTERY_DISCHARGE_ENERGY,
    ),
    thresholds=(BATTERY_LOW_THRESHOLD, GRID_EXPORT_HIGH_THRESHOLD),
    inventory=(
        CONNECTION_STATUS,
        MONITORING_STATUS,
        SOLAR_POWER_RATING,
        BATTERY_CAPACITY,
        BATTERY_CONNECTED,
    ),
    columns=(
        Column("solar_w", "Solar", "watts", SOLAR_PRODUCTION),
        Column("grid_w", "Grid (+export)", "watts", GRID_EXPORT),
        Column("household_w", "Household", "watts", HOUSEHOLD_CONSUMPTION),
        Column("battery_ratio", "Battery", "percent", BATTERY_CHARGE),
        Column("battery_w", "Battery (+discharge)", "watts", BATTERY_POWER),
        Column("price", "Price", "number", PRICE),
    ),
    info=("manufacturer", "model", "price_zone", "lifecycle_state"),
)
