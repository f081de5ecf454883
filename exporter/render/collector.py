"""Per-inverter samples, derived from a store snapshot and the metrics table.

`inverter_samples` is the single definition of what each inverter exports; the cached text
renderer in `exposition` uses it (and the tests' reference prometheus_client collector too).

Example output for one inverter:
    podero_inverter_solar_production_watts{inverter_id="6f1c...",name="rooftop"} 2310.0
    podero_inverter_battery_charge_ratio{inverter_id="6f1c...",name="rooftop"} 0.64
    podero_inverter_up{inverter_id="6f1c...",name="rooftop"} 1.0
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from prometheus_client.utils import floatToGoString

from exporter.kinds import table as m
from exporter.kinds.table import Family, Source
from exporter.state.store import InverterState
from exporter.state.targets import Inventory, InverterTarget, authenticated

Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, float]
Samples = dict[Family, list[Sample]]


def escape(value: str) -> str:
    """Label values and HELP as the text formats escape them: backslash, newline, quote."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def float_text(value: float) -> str:
    """A sample value as Prometheus writes it (`+Inf`, `1.5e+06`)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


@lru_cache(maxsize=65536)
def label_text(labels: Labels) -> str:
    """The inside of a sample's braces: `key="value",...`, escaped."""
    return ",".join(f'{key}="{escape(value)}"' for key, value in labels)


_READING_FIELDS = tuple((f, f.field) for f in m.READING_FAMILIES if f.field is not None)


def fresh_at(data_time: float | None, now: float, max_age: float) -> bool:
    """Whether data of `data_time` may be shown as current at `now`."""
    return data_time is not None and data_time <= now and now - data_time <= max_age


def is_fresh(state: InverterState, now: float, max_age: float) -> bool:
    """Whether the state's reading may be exported as current."""
    return fresh_at(state.reading.time if state.reading else None, now, max_age)


def visible(samples: Samples, state: InverterState, now: float, max_age: float) -> Samples:
    """`samples` without the reading families once the state's data is stale."""
    if is_fresh(state, now, max_age):
        return samples
    return {f: s for f, s in samples.items() if f.source is not Source.READING}


def _ids(target: InverterTarget) -> Labels:
    return (("inverter_id", target.inverter_id), ("name", target.name))


def _adder(samples: Samples, ids: Labels) -> Callable[..., None]:
    def add(family: Family, value: float | None, labels: Labels = ids) -> None:
        if value is not None:
            samples.setdefault(family, []).append((labels, float(value)))

    return add


def polled_samples(state: InverterState) -> Samples:
    """The samples that polls change: values, timestamps, up, next poll."""
    if not state.target.is_inverter:
        return device_polled_samples(state)
    samples: Samples = {}
    add = _adder(samples, _ids(state.target))
    reading = state.reading
    if reading is not None:
        values = reading.values
        for family, field in _READING_FIELDS:
            if field in values:
                add(family, family.convert(values[field]))
        add(m.DATA_TIMESTAMP, reading.time)
    if state.polled:
        add(m.UP, 1.0 if state.up else 0.0)
    energy = state.energy
    if energy is not None:
        for family in m.ENERGY_FAMILIES:
            add(family, energy.joules(family.field or "", family.part or ""))
    add(m.LAST_SUCCESS, state.last_success)
    add(m.NEXT_POLL, state.next_poll)
    return samples


def target_samples(target: InverterTarget) -> Samples:
    """The samples that describe the inverter (Source.TARGET families): config and inventory."""
    if not target.is_inverter:
        return device_target_samples(target)
    samples: Samples = {}
    ids = _ids(target)
    add = _adder(samples, ids)
    inventory = target.inventory
    described = _described(inventory, ("manufacturer", "model", "price_zone", "lifecycle_state"))
    info = (
        *ids,
        ("org_id", target.org_id),
        ("user_id", target.user_id),
        *described,
        *target.labels,
    )
    add(m.INFO, 1.0, info)
    for family in m.THRESHOLDS_BY_KIND[target.kind]:
        add(family, _converted(family, getattr(target, family.field or "")))
    if inventory is not None:
        add(m.AUTHENTICATED, _bool(inventory.is_authenticated))
        add(m.ACTION_NEEDED, _bool(inventory.action_needed))
        for family, known, current in (
            (m.CONNECTION_STATUS, m.CONNECTION_STATES, inventory.connection_status),
            (m.MONITORING_STATUS, m.MONITORING_STATES, inventory.monitoring_status),
        ):
            if current is None:
                continue
            for status in (*known, *((current,) if current not in known else ())):
                add(family, 1.0 if status == current else 0.0, (*ids, ("status", status)))
        add(m.SOLAR_POWER_RATING, _converted(m.SOLAR_POWER_RATING, inventory.solar_power_rating_kw))
        add(m.BATTERY_CAPACITY, _converted(m.BATTERY_CAPACITY, inventory.battery_capacity_kwh))
        add(m.BATTERY_CONNECTED, _bool(inventory.is_battery_connected))
    return samples


def _device_ids(target: InverterTarget) -> Labels:
    return (("device_id", target.inverter_id), ("name", target.name), ("user_id", target.user_id))


def device_polled_samples(state: InverterState) -> Samples:
    """A heat pump's or an EV's samples that polls change: its kind's values, the data
    timestamp and up (a wallbox, never polled, has none).

    Example for a heat pump:
        podero_heat_pump_hot_water_temperature_celsius{device_id="..",name="..",user_id=".."} 52.1
        podero_device_up{device_id="..",name="..",user_id="..",kind="heat_pump"} 1.0
    """
    samples: Samples = {}
    target = state.target
    ids = _device_ids(target)
    add = _adder(samples, ids)
    with_kind = (*ids, ("kind", target.kind))
    reading = state.reading
    if reading is not None:
        for family in m.DEVICE_READINGS.get(target.kind, ()):
            value = reading.values.get(family.field or "")
            add(family, None if value is None else family.convert(value))
        add(m.DEVICE_DATA_TIMESTAMP, reading.time, with_kind)
    if state.polled:
        add(m.DEVICE_UP, 1.0 if state.up else 0.0, with_kind)
    return samples


def device_target_samples(target: InverterTarget) -> Samples:
    """What describes a heat pump, EV or wallbox: info, authentication, open actions,
    smart optimisation and its score."""
    samples: Samples = {}
    ids = _device_ids(target)
    with_kind = (*ids, ("kind", target.kind))
    add = _adder(samples, with_kind)
    inventory = target.inventory
    described = _described(inventory, ("manufacturer", "model", "lifecycle_state"))
    add(m.DEVICE_INFO, 1.0, (*with_kind, ("org_id", target.org_id), *described, *target.labels))
    for family in m.THRESHOLDS_BY_KIND.get(target.kind, ()):
        add(family, _converted(family, getattr(target, family.field or "")), ids)
    if inventory is None:
        return samples
    add(m.DEVICE_AUTHENTICATED, _bool(authenticated(inventory)))
    if inventory.actions is not None:
        for code in inventory.actions:
            add(m.DEVICE_ACTION_NEEDED, 1.0, (*with_kind, ("action", code)))
        if not inventory.actions:
            add(m.DEVICE_ACTION_NEEDED, 0.0)
    add(m.DEVICE_SMART_OPTIMIZATION, _bool(inventory.is_smart_optimization_active))
    add(m.DEVICE_OPTIMIZATION_SCORE, inventory.optimization_score)
    return samples


def inverter_samples(state: InverterState) -> Samples:
    """Every sample this inverter exports, by family, ignoring staleness."""
    return {**polled_samples(state), **target_samples(state.target)}


def _described(inventory: Inventory | None, keys: tuple[str, ...]) -> Labels:
    """The info labels an inventory knows, in the order of `keys`."""
    if inventory is None:
        return ()
    return tuple((key, value) for key in keys if (value := getattr(inventory, key)) is not None)


def _bool(value: bool | None) -> float | None:
    return None if value is None else (1.0 if value else 0.0)


def _converted(family: Family, value: float | None) -> float | None:
    return None if value is None else family.convert(value)


def current_samples(state: InverterState, now: float, max_age: float) -> Samples:
    """The samples to export at `now`: reading families are dropped once the data is stale."""
    return visible(inverter_samples(state), state, now, max_age)
