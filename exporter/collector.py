"""Per-inverter metric families, derived from a store snapshot.

`inverter_samples` is the single definition of what each inverter exports; the
prometheus_client collector below and the cached text renderer in `exposition` both use it.

Example output for one inverter:
    podero_inverter_solar_production_watts{inverter_id="6f1c...",name="rooftop"} 2310.0
    podero_inverter_battery_charge_ratio{inverter_id="6f1c...",name="rooftop"} 0.64
    podero_inverter_up{inverter_id="6f1c...",name="rooftop"} 1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.clock import Clock
from exporter.store import InverterState, InverterTarget, ReadingStore

Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, float]


@dataclass(frozen=True)
class Family:
    """One gauge family: its name, HELP text, and whether it is a measured value that goes
    away when the data is older than max_data_age_seconds."""

    name: str
    help: str
    field: str | None = None  # the API field it comes from, for value families
    divisor: float = 1.0
    is_value: bool = False


def _value(name: str, field: str, help_text: str, divisor: float = 1.0) -> Family:
    return Family(name, help_text, field=field, divisor=divisor, is_value=True)


FAMILIES: tuple[Family, ...] = (
    _value(
        "podero_inverter_solar_production_watts",
        "solar_production_w",
        "Solar production in watts (API field solar_production_w; never negative).",
    ),
    _value(
        "podero_inverter_grid_export_watts",
        "export_power_to_grid_w",
        "Power to the grid in watts (API field export_power_to_grid_w): "
        "positive = exporting to the grid, negative = importing from it.",
    ),
    _value(
        "podero_inverter_household_consumption_watts",
        "household_consumption_w",
        "Household consumption in watts (API field household_consumption_w).",
    ),
    _value(
        "podero_inverter_battery_charge_ratio",
        "battery_charge_level_percent",
        "Battery state of charge, 0 to 1 (API field battery_charge_level_percent / 100).",
        divisor=100.0,
    ),
    _value(
        "podero_inverter_battery_power_watts",
        "battery_charge_discharge_power_w",
        "Battery power in watts (API field battery_charge_discharge_power_w): "
        "positive = discharging, negative = charging.",
    ),
    _value(
        "podero_inverter_estimated_consumption_watts",
        "estimated_consumption",
        "Estimated consumption in watts (API field estimated_consumption, a forecast).",
    ),
    _value(
        "podero_inverter_unoptimized_consumption_watts",
        "unoptimized_consumption",
        "Consumption without Podero's optimisation in watts (API field unoptimized_consumption).",
    ),
    _value(
        "podero_inverter_price",
        "price",
        "Energy price of the exported data point, as delivered by the API field price "
        "(unit not documented; examples look like currency per MWh).",
    ),
    Family(
        "podero_inverter_data_timestamp_seconds",
        "Time of the exported data point (API field time), Unix seconds.",
    ),
    Family("podero_inverter_up", "1 if the last poll of this inverter succeeded, else 0."),
    Family(
        "podero_inverter_last_success_timestamp_seconds",
        "When the last successful poll of this inverter finished, Unix seconds.",
    ),
    Family(
        "podero_inverter_next_poll_timestamp_seconds",
        "When this inverter is next polled, Unix seconds.",
    ),
    Family(
        "podero_inverter_info",
        "Always 1; labels describe the inverter: ids, configured labels, and where known "
        "manufacturer, model, price_zone and lifecycle_state.",
    ),
    Family(
        "podero_inverter_battery_low_threshold_ratio",
        "Configured battery-low alert threshold, 0 to 1 (thresholds.battery_low_percent / 100).",
    ),
    Family(
        "podero_inverter_grid_export_high_threshold_watts",
        "Configured grid-export-high alert threshold in watts (thresholds.grid_export_high_watts).",
    ),
    Family(
        "podero_inverter_authenticated",
        "1 if the manufacturer connection is authenticated (API field is_authenticated), "
        "0 if it lapsed and the customer must reconnect.",
    ),
    Family(
        "podero_inverter_action_needed",
        "1 if the API says the customer must act on this inverter (API field action_needed).",
    ),
    Family(
        "podero_inverter_connection_status",
        "State set of the API field connection_status: 1 for the current status, 0 for the "
        "other known ones.",
    ),
    Family(
        "podero_inverter_monitoring_status",
        "State set of the API field monitoring_status: 1 for the current status, 0 for the "
        "other known ones.",
    ),
    Family(
        "podero_inverter_solar_power_rating_watts",
        "Rated solar power in watts (API field solar_power_rating_kw x 1000).",
    ),
    Family(
        "podero_inverter_battery_capacity_joules",
        "Battery capacity in joules (API field battery_capacity_kwh x 3.6e6).",
    ),
    Family(
        "podero_inverter_battery_connected",
        "1 if a battery is connected (API field is_battery_connected).",
    ),
)
# The statuses every inverter reports a series for (a state set); any other status the API
# sends is added as one more series.
CONNECTION_STATES = ("connected", "disconnected", "unknown")
MONITORING_STATES = ("ok", "warning", "error", "unknown")
FAMILY_BY_NAME = {family.name: family for family in FAMILIES}
# Families that depend only on the inverter's target (its config and inventory), not on polls:
# they change only when the set of targets is replaced.
TARGET_FAMILIES = frozenset(
    {
        "podero_inverter_info",
        "podero_inverter_battery_low_threshold_ratio",
        "podero_inverter_grid_export_high_threshold_watts",
        "podero_inverter_authenticated",
        "podero_inverter_action_needed",
        "podero_inverter_connection_status",
        "podero_inverter_monitoring_status",
        "podero_inverter_solar_power_rating_watts",
        "podero_inverter_battery_capacity_joules",
        "podero_inverter_battery_connected",
    }
)


def is_fresh(state: InverterState, now: float, max_age: float) -> bool:
    """Whether the state's reading may be exported as current."""
    reading = state.reading
    return reading is not None and reading.time <= now and now - reading.time <= max_age


def _ids(target: InverterTarget) -> Labels:
    return (("inverter_id", target.inverter_id), ("name", target.name))


def _adder(samples: dict[str, list[Sample]], ids: Labels) -> Callable[..., None]:
    def add(name: str, value: float | None, labels: Labels = ids) -> None:
        if value is not None:
            samples.setdefault(name, []).append((labels, float(value)))

    return add


def polled_samples(state: InverterState) -> dict[str, list[Sample]]:
    """The samples that polls change: values, timestamps, up, next poll."""
    samples: dict[str, list[Sample]] = {}
    add = _adder(samples, _ids(state.target))
    reading = state.reading
    if reading is not None:
        for family in FAMILIES:
            if family.field is not None and family.field in reading.values:
                add(family.name, reading.values[family.field] / family.divisor)
        add("podero_inverter_data_timestamp_seconds", reading.time)
    if state.polled:
        add("podero_inverter_up", 1.0 if state.up else 0.0)
    add("podero_inverter_last_success_timestamp_seconds", state.last_success)
    add("podero_inverter_next_poll_timestamp_seconds", state.next_poll)
    return samples


def target_samples(target: InverterTarget) -> dict[str, list[Sample]]:
    """The samples that describe the inverter (TARGET_FAMILIES): config and inventory."""
    samples: dict[str, list[Sample]] = {}
    ids = _ids(target)
    add = _adder(samples, ids)
    inventory = target.inventory
    described: Labels = ()
    if inventory is not None:
        described = tuple(
            (key, value)
            for key, value in (
                ("manufacturer", inventory.manufacturer),
                ("model", inventory.model),
                ("price_zone", inventory.price_zone),
                ("lifecycle_state", inventory.lifecycle_state),
            )
            if value is not None
        )
    info = (
        *ids,
        ("org_id", target.org_id),
        ("user_id", target.user_id),
        *described,
        *target.labels,
    )
    add("podero_inverter_info", 1.0, info)
    add("podero_inverter_battery_low_threshold_ratio", target.battery_low_ratio)
    add("podero_inverter_grid_export_high_threshold_watts", target.grid_export_high_watts)
    if inventory is not None:
        add("podero_inverter_authenticated", _bool(inventory.is_authenticated))
        add("podero_inverter_action_needed", _bool(inventory.action_needed))
        for name, known, current in (
            ("podero_inverter_connection_status", CONNECTION_STATES, inventory.connection_status),
            ("podero_inverter_monitoring_status", MONITORING_STATES, inventory.monitoring_status),
        ):
            if current is None:
                continue
            for status in (*known, *((current,) if current not in known else ())):
                add(name, 1.0 if status == current else 0.0, (*ids, ("status", status)))
        add("podero_inverter_solar_power_rating_watts", inventory.solar_power_rating_watts)
        add("podero_inverter_battery_capacity_joules", inventory.battery_capacity_joules)
        add("podero_inverter_battery_connected", _bool(inventory.battery_connected))
    return samples


def inverter_samples(state: InverterState) -> dict[str, list[Sample]]:
    """Every sample this inverter exports, by family name, ignoring staleness."""
    return {**polled_samples(state), **target_samples(state.target)}


def _bool(value: bool | None) -> float | None:
    return None if value is None else (1.0 if value else 0.0)


def current_samples(state: InverterState, now: float, max_age: float) -> dict[str, list[Sample]]:
    """The samples to export at `now`: value families are dropped once the data is stale."""
    samples = inverter_samples(state)
    if is_fresh(state, now, max_age):
        return samples
    return {name: s for name, s in samples.items() if not FAMILY_BY_NAME[name].is_value}


class InverterCollector(Collector):
    """prometheus_client collector over a store snapshot (the reference rendering)."""

    def __init__(self, store: ReadingStore, clock: Clock, max_age: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._max_age = max_age

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._clock.time()
        max_age = self._max_age()
        by_family: dict[str, list[Sample]] = {family.name: [] for family in FAMILIES}
        for state in self._store.snapshot():
            for name, samples in current_samples(state, now, max_age).items():
                by_family[name].extend(samples)
        for family in FAMILIES:
            metric = GaugeMetricFamily(family.name, family.help, labels=None)
            for labels, value in by_family[family.name]:
                metric.add_sample(family.name, dict(labels), value)
            yield metric
