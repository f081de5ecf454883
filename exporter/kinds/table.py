"""The table of every metric family the exporter serves: one row per family, with its name,
type, HELP, and for values from the API the field it comes from and the factor that turns the
API's unit into the base unit. The collector, the exposition, the status page and the
exporter's own telemetry read their names from here; nothing else spells a metric name.

A new value of a device is one row here (and a parser for its field); a new device kind is a
group of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Source(Enum):
    """Where a family's samples come from, which decides when they change."""

    READING = "reading"  # a field of the newest data point; hidden once the point is stale
    POLL = "poll"  # the outcome of polls (up, timestamps)
    ENERGY = "energy"  # counters summed from completed data buckets
    TARGET = "target"  # the device's config and inventory; changes only with the targets
    SELF = "self"  # the exporter's own health (telemetry registry)


# eq=False: families are singletons, compared and hashed by identity (cheap in the hot path).
@dataclass(frozen=True, slots=True, eq=False)
class Family:
    """One metric family: exposition name, type, HELP, and where its value comes from."""

    name: str
    help: str
    source: Source
    type: str = "gauge"
    field: str | None = None  # the API field (data point or inventory) it is read from
    scale: float = 1.0  # API value x scale = value in the base unit
    labels: tuple[str, ...] = ()  # labels beyond the device's ids (telemetry: all labels)
    part: str | None = None  # energy: the "positive" or "negative" part of the power field

    def convert(self, api_value: float) -> float:
        """The API's value in this family's base unit."""
        return api_value * self.scale


def _reading(name: str, field: str, help_text: str, scale: float = 1.0) -> Family:
    return Family(name, help_text, Source.READING, field=field, scale=scale)


JOULES_PER_KWH = 3.6e6

# --- inverter data points (the newest measured point; stale ones are not exported) ---------
SOLAR_PRODUCTION = _reading(
    "podero_inverter_solar_production_watts",
    "solar_production_w",
    "Solar production in watts (API field solar_production_w; never negative).",
)
GRID_EXPORT = _reading(
    "podero_inverter_grid_export_watts",
    "export_power_to_grid_w",
    "Power to the grid in watts (API field export_power_to_grid_w): "
    "positive = exporting to the grid, negative = importing from it.",
)
HOUSEHOLD_CONSUMPTION = _reading(
    "podero_inverter_household_consumption_watts",
    "household_consumption_w",
    "Household consumption in watts (API field household_consumption_w).",
)
BATTERY_CHARGE = _reading(
    "podero_inverter_battery_charge_ratio",
    "battery_charge_level_percent",
    "Battery state of charge, 0 to 1 (API field battery_charge_level_percent / 100).",
    scale=0.01,
)
BATTERY_POWER = _reading(
    "podero_inverter_battery_power_watts",
    "battery_charge_discharge_power_w",
    "Battery power in watts (API field battery_charge_discharge_power_w): "
    "positive = discharging, negative = charging.",
)
ESTIMATED_CONSUMPTION = _reading(
    "podero_inverter_estimated_consumption_watts",
    "estimated_consumption",
    "Estimated consumption in watts (API field estimated_consumption, a forecast).",
)
UNOPTIMIZED_CONSUMPTION = _reading(
    "podero_inverter_unoptimized_consumption_watts",
    "unoptimized_consumption",
    "Consumption without Podero's optimisation in watts (API field unoptimized_consumption).",
)
PRICE = _reading(
    "podero_inverter_price",
    "price",
    "Energy price of the exported data point, as delivered by the API field price "
    "(unit not documented; examples look like currency per MWh).",
)

# --- poll outcomes ------------------------------------------------------------------------
DATA_TIMESTAMP = Family(
    "podero_inverter_data_timestamp_seconds",
    "Time of the exported data point (API field time), Unix seconds.",
    Source.POLL,
    field="time",
)
UP = Family(
    "podero_inverter_up", "1 if the last poll of this inverter succeeded, else 0.", Source.POLL
)
LAST_SUCCESS = Family(
    "podero_inverter_last_success_timestamp_seconds",
    "When the last successful poll of this inverter finished, Unix seconds.",
    Source.POLL,
)
NEXT_POLL = Family(
    "podero_inverter_next_poll_timestamp_seconds",
    "When this inverter is next polled, Unix seconds.",
    Source.POLL,
)

# --- energy: counters summed from completed buckets (exporter/state/energy.py) ------------
_ENERGY_HELP = (
    " Each completed data bucket adds its mean power times its duration, once; null values "
    "add nothing; starts at 0 when the exporter starts (a restart is a counter reset, which "
    "increase() handles); a bucket revised after it was counted is not counted again. "
    "kWh per day: increase(...[1d]) / 3.6e6."
)


def _energy(name: str, field: str, part: str, what: str) -> Family:
    return Family(name, what + _ENERGY_HELP, Source.ENERGY, type="counter", field=field, part=part)


SOLAR_ENERGY = _energy(
    "podero_inverter_solar_energy_joules_total",
    "solar_production_w",
    "positive",
    "Solar energy produced in joules (from API field solar_production_w).",
)
GRID_EXPORT_ENERGY = _energy(
    "podero_inverter_grid_export_energy_joules_total",
    "export_power_to_grid_w",
    "positive",
    "Energy exported to the grid in joules (positive part of API field export_power_to_grid_w).",
)
GRID_IMPORT_ENERGY = _energy(
    "podero_inverter_grid_import_energy_joules_total",
    "export_power_to_grid_w",
    "negative",
    "Energy imported from the grid in joules (negative part of API field export_power_to_grid_w).",
)
HOUSEHOLD_ENERGY = _energy(
    "podero_inverter_household_energy_joules_total",
    "household_consumption_w",
    "positive",
    "Household energy consumed in joules (from API field household_consumption_w).",
)
BATTERY_CHARGE_ENERGY = _energy(
    "podero_inverter_battery_charge_energy_joules_total",
    "battery_charge_discharge_power_w",
    "negative",
    "Energy charged into the battery in joules (negative part of API field "
    "battery_charge_discharge_power_w: negative = charging).",
)
BATTERY_DISCHARGE_ENERGY = _energy(
    "podero_inverter_battery_discharge_energy_joules_total",
    "battery_charge_discharge_power_w",
    "positive",
    "Energy discharged from the battery in joules (positive part of API field "
    "battery_charge_discharge_power_w: positive = discharging).",
)

# --- config and inventory -----------------------------------------------------------------
INFO = Family(
    "podero_inverter_info",
    "Always 1; labels describe the inverter: ids, configured labels, and where known "
    "manufacturer, model, price_zone and lifecycle_state.",
    Source.TARGET,
)
BATTERY_LOW_THRESHOLD = Family(
    "podero_inverter_battery_low_threshold_ratio",
    "Configured battery-low alert threshold, 0 to 1 (thresholds.battery_low_percent / 100).",
    Source.TARGET,
    field="battery_low_percent",
    scale=0.01,
)
GRID_EXPORT_HIGH_THRESHOLD = Family(
    "podero_inverter_grid_export_high_threshold_watts",
    "Configured grid-export-high alert threshold in watts (thresholds.grid_export_high_watts).",
    Source.TARGET,
    field="grid_export_high_watts",
)
AUTHENTICATED = Family(
    "podero_inverter_authenticated",
    "1 if the manufacturer connection is authenticated (API field is_authenticated), "
    "0 if it lapsed and the customer must reconnect.",
    Source.TARGET,
    field="is_authenticated",
)
ACTION_NEEDED = Family(
    "podero_inverter_action_needed",
    "1 if the API says the customer must act on this inverter (API field action_needed).",
    Source.TARGET,
    field="action_needed",
)
CONNECTION_STATUS = Family(
    "podero_inverter_connection_status",
    "State set of the API field connection_status: 1 for the current status, 0 for the "
    "other known ones.",
    Source.TARGET,
    field="connection_status",
    labels=("status",),
)
MONITORING_STATUS = Family(
    "podero_inverter_monitoring_status",
    "State set of the API field monitoring_status: 1 for the current status, 0 for the "
    "other known ones.",
    Source.TARGET,
    field="monitoring_status",
    labels=("status",),
)
SOLAR_POWER_RATING = Family(
    "podero_inverter_solar_power_rating_watts",
    "Rated solar power in watts (API field solar_power_rating_kw x 1000).",
    Source.TARGET,
    field="solar_power_rating_kw",
    scale=1000.0,
)
BATTERY_CAPACITY = Family(
    "podero_inverter_battery_capacity_joules",
    "Battery capacity in joules (API field battery_capacity_kwh x 3.6e6).",
    Source.TARGET,
    field="battery_capacity_kwh",
    scale=JOULES_PER_KWH,
)
BATTERY_CONNECTED = Family(
    "podero_inverter_battery_connected",
    "1 if a battery is connected (API field is_battery_connected).",
    Source.TARGET,
    field="is_battery_connected",
)

# Every per-inverter family, in the order they are served.
INVERTER_FAMILIES: tuple[Family, ...] = (
    SOLAR_PRODUCTION,
    GRID_EXPORT,
    HOUSEHOLD_CONSUMPTION,
    BATTERY_CHARGE,
    BATTERY_POWER,
    ESTIMATED_CONSUMPTION,
    UNOPTIMIZED_CONSUMPTION,
    PRICE,
    DATA_TIMESTAMP,
    UP,
    LAST_SUCCESS,
    NEXT_POLL,
    SOLAR_ENERGY,
    GRID_EXPORT_ENERGY,
    GRID_IMPORT_ENERGY,
    HOUSEHOLD_ENERGY,
    BATTERY_CHARGE_ENERGY,
    BATTERY_DISCHARGE_ENERGY,
    INFO,
    BATTERY_LOW_THRESHOLD,
    GRID_EXPORT_HIGH_THRESHOLD,
    AUTHENTICATED,
    ACTION_NEEDED,
    CONNECTION_STATUS,
    MONITORING_STATUS,
    SOLAR_POWER_RATING,
    BATTERY_CAPACITY,
    BATTERY_CONNECTED,
)
READING_FAMILIES = tuple(f for f in INVERTER_FAMILIES if f.source is Source.READING)
ENERGY_FAMILIES = tuple(f for f in INVERTER_FAMILIES if f.source is Source.ENERGY)
# The statuses every inverter reports a series for (a state set); any other status the API
# sends is added as one more series.
CONNECTION_STATES = ("connected", "disconnected", "unknown")
MONITORING_STATES = ("ok", "warning", "error", "unknown")

# --- the other devices of a home: heat pumps, electric vehicles, wallboxes -------------------
# Every series carries device_id, user_id and name (a home's devices join on user_id).
HEAT_PUMP_INLET_TEMPERATURE = _reading(
    "podero_heat_pump_inlet_temperature_celsius",
    "inlet_temp_act",
    "Actual inlet temperature of the heat pump in degrees Celsius (API field inlet_temp_act; "
    "the API does not say of which circuit).",
)
HEAT_PUMP_HOT_WATER_TEMPERATURE = _reading(
    "podero_heat_pump_hot_water_temperature_celsius",
    "hot_water_temp",
    "Hot water temperature in degrees Celsius (API field hot_water_temp).",
)
HEAT_PUMP_ESTIMATED_CONSUMPTION = _reading(
    "podero_heat_pump_estimated_consumption_watts",
    "estimated_consumption",
    "Estimated consumption of the heat pump in watts (API field estimated_consumption).",
)
HEAT_PUMP_UNOPTIMIZED_CONSUMPTION = _reading(
    "podero_heat_pump_unoptimized_consumption_watts",
    "unoptimized_consumption",
    "Consumption of the heat pump without Podero's optimisation in watts "
    "(API field unoptimized_consumption).",
)
HEAT_PUMP_PRICE = _reading(
    "podero_heat_pump_price",
    "price",
    "Energy price of the heat pump's exported data point, as delivered by the API field "
    "price (unit not documented; examples look like currency per MWh).",
)
EV_BATTERY_LEVEL = _reading(
    "podero_electric_vehicle_battery_level_ratio",
    "battery_level",
    "Battery level of the electric vehicle, 0 to 1 (API field battery_level / 100).",
    scale=0.01,
)
EV_CHARGING = _reading(
    "podero_electric_vehicle_charging",
    "is_charging",
    "1 if the electric vehicle is charging, else 0 (API field is_charging).",
)
EV_PLUGGED_IN = _reading(
    "podero_electric_vehicle_plugged_in",
    "is_plugged_in",
    "1 if the electric vehicle is plugged in, else 0 (API field is_plugged_in).",
)
EV_AT_OPTIMIZED_LOCATION = _reading(
    "podero_electric_vehicle_at_optimized_location",
    "is_at_optimized_location",
    "1 if the electric vehicle is where Podero optimises its charging (home), else 0 "
    "(API field is_at_optimized_location).",
)
EV_ESTIMATED_CONSUMPTION = _reading(
    "podero_electric_vehicle_estimated_consumption_watts",
    "estimated_consumption",
    "Estimated charging consumption of the electric vehicle in watts "
    "(API field estimated_consumption).",
)
EV_UNOPTIMIZED_CONSUMPTION = _reading(
    "podero_electric_vehicle_unoptimized_consumption_watts",
    "unoptimized_consumption",
    "Charging consumption without Podero's optimisation in watts "
    "(API field unoptimized_consumption).",
)
EV_PRICE = _reading(
    "podero_electric_vehicle_price",
    "price",
    "Energy price of the electric vehicle's exported data point, as delivered by the API "
    "field price (unit not documented; examples look like currency per MWh).",
)
DEVICE_DATA_TIMESTAMP = Family(
    "podero_device_data_timestamp_seconds",
    "Time of the exported data point of a heat pump or electric vehicle (API field time), "
    "Unix seconds.",
    Source.POLL,
    field="time",
    labels=("kind",),
)
DEVICE_UP = Family(
    "podero_device_up",
    "1 if the last poll of this heat pump or electric vehicle succeeded, else 0 "
    "(wallboxes have no data to poll).",
    Source.POLL,
    labels=("kind",),
)
DEVICE_INFO = Family(
    "podero_device_info",
    "Always 1; labels describe a heat pump, electric vehicle or wallbox: kind, ids, "
    "configured labels, and where known manufacturer and model (API field device_model) "
    "and lifecycle_state.",
    Source.TARGET,
    labels=("kind",),
)
DEVICE_AUTHENTICATED = Family(
    "podero_device_authenticated",
    "1 if the device's manufacturer connection is authenticated, 0 if not: the API field "
    "is_authenticated where given, else 0 while a reauthenticate action is open, else "
    "1 if lifecycle_state is authenticated.",
    Source.TARGET,
    field="is_authenticated",
    labels=("kind",),
)
DEVICE_ACTION_NEEDED = Family(
    "podero_device_action_needed",
    "1 for every action the customer must take on this device (API field actions; the "
    "label action is its code, e.g. reauthenticate); a series without action is 0 when "
    "there is none.",
    Source.TARGET,
    field="actions",
    labels=("kind", "action"),
)
DEVICE_SMART_OPTIMIZATION = Family(
    "podero_device_smart_optimization_active",
    "1 if Podero's smart optimisation is active for the device, else 0 "
    "(API field is_smart_optimization_active).",
    Source.TARGET,
    field="is_smart_optimization_active",
    labels=("kind",),
)
DEVICE_OPTIMIZATION_SCORE = Family(
    "podero_device_optimization_score",
    "The device's optimisation score as the API field optimization_score gives it.",
    Source.TARGET,
    field="optimization_score",
    labels=("kind",),
)
HOT_WATER_LOW_THRESHOLD = Family(
    "podero_heat_pump_hot_water_low_threshold_celsius",
    "Configured hot-water-low alert threshold in degrees Celsius "
    "(thresholds.hot_water_low_celsius).",
    Source.TARGET,
    field="hot_water_low_celsius",
)
EV_CHARGED_THRESHOLD = Family(
    "podero_electric_vehicle_charged_threshold_ratio",
    "Configured battery level, 0 to 1, the vehicle should have by its charged-by time "
    "(thresholds.vehicle_charged_percent / 100).",
    Source.TARGET,
    field="vehicle_charged_percent",
    scale=0.01,
)
EV_CHARGED_BY = Family(
    "podero_electric_vehicle_charged_by_seconds",
    "Configured time of day by which the vehicle should be charged, in seconds after "
    "midnight in the config's timezone (thresholds.vehicle_charged_by; the rules add "
    "podero_exporter_timezone_offset_seconds to time() to compare).",
    Source.TARGET,
    field="vehicle_charged_by_seconds",
)
HEAT_PUMP_READINGS = (
    HEAT_PUMP_INLET_TEMPERATURE,
    HEAT_PUMP_HOT_WATER_TEMPERATURE,
    HEAT_PUMP_ESTIMATED_CONSUMPTION,
    HEAT_PUMP_UNOPTIMIZED_CONSUMPTION,
    HEAT_PUMP_PRICE,
)
EV_READINGS = (
    EV_BATTERY_LEVEL,
    EV_CHARGING,
    EV_PLUGGED_IN,
    EV_AT_OPTIMIZED_LOCATION,
    EV_ESTIMATED_CONSUMPTION,
    EV_UNOPTIMIZED_CONSUMPTION,
    EV_PRICE,
)
# The reading families of each kind besides inverters.
DEVICE_READINGS: dict[str, tuple[Family, ...]] = {
    "heat_pump": HEAT_PUMP_READINGS,
    "electric_vehicle": EV_READINGS,
}
# Every family of the other kinds, in the order they are served (after the inverters'; a
# family's HELP and TYPE appear only once a device has a sample of it).
DEVICE_FAMILIES: tuple[Family, ...] = (
    *HEAT_PUMP_READINGS,
    *EV_READINGS,
    DEVICE_DATA_TIMESTAMP,
    DEVICE_UP,
    DEVICE_INFO,
    DEVICE_AUTHENTICATED,
    DEVICE_ACTION_NEEDED,
    DEVICE_SMART_OPTIMIZATION,
    DEVICE_OPTIMIZATION_SCORE,
    HOT_WATER_LOW_THRESHOLD,
    EV_CHARGED_THRESHOLD,
    EV_CHARGED_BY,
)
# The configured thresholds of each kind (the field is the target's).
THRESHOLDS_BY_KIND: dict[str, tuple[Family, ...]] = {
    "inverter": (BATTERY_LOW_THRESHOLD, GRID_EXPORT_HIGH_THRESHOLD),
    "heat_pump": (HOT_WATER_LOW_THRESHOLD,),
    "electric_vehicle": (EV_CHARGED_THRESHOLD, EV_CHARGED_BY),
}

# --- the exporter itself --------------------------------------------------------------------
API_REQUESTS = Family(
    "podero_api_requests_total",
    "HTTP exchanges with the Podero API by endpoint and status code "
    "(timeout and connection_error when no status arrived); retries count each try.",
    Source.SELF,
    type="counter",
    labels=("endpoint", "code"),
)
API_REQUEST_DURATION = Family(
    "podero_api_request_duration_seconds",
    "Duration of one HTTP exchange with the Podero API.",
    Source.SELF,
    type="histogram",
    labels=("endpoint",),
)
API_INVALID_RESPONSES = Family(
    "podero_api_invalid_responses_total",
    "Successful HTTP answers whose body was not usable (not JSON, wrong shape).",
    Source.SELF,
    type="counter",
    labels=("endpoint",),
)
TOKEN_REQUESTS = Family(
    "podero_oauth_token_requests_total",
    "Access token requests by result (success or failure).",
    Source.SELF,
    type="counter",
    labels=("result",),
)
TOKEN_EXPIRY = Family(
    "podero_oauth_token_expiry_timestamp_seconds",
    "When the current access token expires, Unix seconds (0 before the first token).",
    Source.SELF,
)
POLL_DURATION = Family(
    "podero_poll_duration_seconds",
    "Duration of one inverter poll, retries included.",
    Source.SELF,
    type="histogram",
)
POLLS = Family(
    "podero_polls_total",
    "Inverter polls by result (success or failure).",
    Source.SELF,
    type="counter",
    labels=("result",),
)
CONFIG_RELOAD_OK = Family(
    "podero_config_last_reload_successful",
    "Whether the last configuration (re)load succeeded.",
    Source.SELF,
)
CONFIG_RELOAD_TIME = Family(
    "podero_config_last_reload_success_timestamp_seconds",
    "When the configuration was last loaded successfully, Unix seconds.",
    Source.SELF,
)
DISCOVERY_INVERTERS = Family(
    "podero_discovery_inverters",
    "Inverters known from discovery per organization (after filters).",
    Source.SELF,
    labels=("org_id",),
)
DISCOVERY_SUCCESS = Family(
    "podero_discovery_last_success_timestamp_seconds",
    "When every list call of this organization last succeeded, Unix seconds.",
    Source.SELF,
    labels=("org_id",),
)
DISCOVERY_DURATION = Family(
    "podero_discovery_duration_seconds",
    "Duration of the last listing round of an organization (users and their homes).",
    Source.SELF,
)
BUILD_INFO = Family(
    "podero_exporter_build_info",
    "Always 1; the labels say which exporter build is running: version, the source "
    "revision it was built from, and the Python version.",
    Source.SELF,
    labels=("version", "revision", "python_version"),
)
TIMEZONE_OFFSET = Family(
    "podero_exporter_timezone_offset_seconds",
    "UTC offset of the config's timezone now, in seconds (it changes with daylight saving "
    "time): time() plus this is the local time that configured times of day are in.",
    Source.SELF,
)
RENDER_ERRORS = Family(
    "podero_render_errors_total",
    "Times a device was left out of a rendering (/metrics, the status page) because its "
    "data could not be rendered; the others are served as usual, and each device is "
    "logged once. Should stay 0.",
    Source.SELF,
    type="counter",
)
SELF_FAMILIES: tuple[Family, ...] = (
    API_REQUESTS,
    API_REQUEST_DURATION,
    API_INVALID_RESPONSES,
    TOKEN_REQUESTS,
    TOKEN_EXPIRY,
    POLL_DURATION,
    POLLS,
    CONFIG_RELOAD_OK,
    CONFIG_RELOAD_TIME,
    DISCOVERY_INVERTERS,
    DISCOVERY_SUCCESS,
    DISCOVERY_DURATION,
    BUILD_INFO,
    TIMEZONE_OFFSET,
    RENDER_ERRORS,
)


def by_name(name: str) -> Family:
    """The family of this exposition name (KeyError for a name the exporter does not serve):
    dashboards, rules and tests spell names through this, so a renamed family fails loudly."""
    for family in (*INVERTER_FAMILIES, *DEVICE_FAMILIES, *SELF_FAMILIES):
        if family.name == name:
            return family
    raise KeyError(name)
