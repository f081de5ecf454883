"""Per-device samples, derived from a store snapshot, the kind registry and the metrics table.

`device_samples` is the single definition of what each device exports; the cached text
renderer in `exposition` uses it (and the tests' reference prometheus_client collector too).

Example output for one inverter:
    podero_inverter_solar_production_watts{device_id="6f1c..",name="roof",user_id="18e8.."} 2310.0
    podero_device_up{device_id="6f1c..",name="roof",user_id="18e8..",kind="inverter"} 1.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client.utils import floatToGoString

from exporter.kinds import common, registry, savings
from exporter.kinds.family import Family, Source
from exporter.state.savings import Savings
from exporter.state.store import DeviceState
from exporter.state.targets import DeviceTarget, Inventory, authenticated

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


def label_text(labels: Labels) -> str:
    """The inside of a sample's braces: `key="value",...`, escaped."""
    return ",".join(f'{key}="{escape(value)}"' for key, value in labels)


def fresh_at(data_time: float | None, now: float, max_age: float) -> bool:
    """Whether data of `data_time` may be shown as current at `now`."""
    return data_time is not None and data_time <= now and now - data_time <= max_age


def is_fresh(state: DeviceState, now: float, max_age: float) -> bool:
    """Whether the state's reading may be exported as current."""
    return fresh_at(state.reading.time if state.reading else None, now, max_age)


def visible(samples: Samples, state: DeviceState, now: float, max_age: float) -> Samples:
    """`samples` without the reading families once the state's data is stale, and without
    the savings of a period that has ended (or was not refreshed for too long)."""
    fresh = is_fresh(state, now, max_age)
    expired = state.savings.expired(now) if state.savings is not None else frozenset()
    if fresh and not expired:
        return samples
    return {
        f: s
        for f, s in samples.items()
        if not (f.source is Source.READING and not fresh) and f.period not in expired
    }


def savings_expired(state: DeviceState, now: float) -> bool:
    """Whether some savings figure of the state is no longer shown at `now`."""
    return state.savings is not None and bool(state.savings.expired(now))


def _ids(target: DeviceTarget) -> Labels:
    return (("device_id", target.device_id), ("name", target.name), ("user_id", target.user_id))


def _adder(samples: Samples, ids: Labels) -> Callable[..., None]:
    def add(family: Family, value: float | None, labels: Labels = ids) -> None:
        if value is not None:
            samples.setdefault(family, []).append((labels, float(value)))

    return add


def polled_samples(state: DeviceState) -> Samples:
    """The samples that polls change: the kind's values and counters, the data timestamp,
    up, the last success and the next poll (a kind without data, a wallbox, has none)."""
    samples: Samples = {}
    target = state.target
    kind = registry.find(target.kind)
    if kind is None or not kind.polled:
        return samples
    ids = _ids(target)
    add = _adder(samples, (*ids, ("kind", kind.name)))
    reading = state.reading
    if reading is not None:
        values = reading.values
        for family in kind.readings:
            value = values.get(family.field or "")
            add(family, None if value is None else family.convert(value), ids)
        add(common.DATA_TIMESTAMP, reading.time)
    if state.polled:
        add(common.UP, 1.0 if state.up else 0.0)
    energy = state.energy
    if energy is not None:
        for family in kind.energy:
            add(family, energy.joules(family.field or "", family.part or ""), ids)
    add(common.LAST_SUCCESS, state.last_success)
    add(common.NEXT_POLL, state.next_poll)
    with_kind = (*ids, ("kind", kind.name))
    if state.savings is not None:
        _add_savings(add, state.savings, with_kind, savings.DEVICE_FAMILIES)
        add(savings.SAVINGS_LAST_SUCCESS, state.savings.last_success)
    if state.price is not None:
        add(savings.PRICE_INFO, 1.0, (*with_kind, *_units(state.price.currency, state.price.unit)))
    return samples


def _units(currency: str | None, unit: str | None, name: str = "unit") -> Labels:
    return tuple((k, v) for k, v in (("currency", currency), (name, unit)) if v is not None)


def _add_savings(
    add: Callable[..., None], figures: Savings, ids: Labels, families: tuple[Family, ...]
) -> None:
    """The period families (by their `period` and `field`) and the info series of `families`
    for these figures."""
    for family in families:
        if family.period is not None:
            period = figures.period(family.period)
            if period is not None:
                add(family, period.value(family.field or ""), ids)
        elif family in (savings.SAVINGS_INFO, savings.ORG_SAVINGS_INFO):
            units = _units(figures.currency, figures.energy_unit, "energy_unit")
            add(family, 1.0, (*ids, *units))


def organization_samples(organizations: Mapping[str, Savings], now: float) -> Samples:
    """Each organization's savings and consumption of the periods not yet over, and what
    they are counted in."""
    samples: Samples = {}
    add = _adder(samples, ())
    for org_id, figures in organizations.items():
        expired = figures.expired(now)
        shown = tuple(f for f in savings.ORGANIZATION_FAMILIES if f.period not in expired)
        _add_savings(add, figures, (("org_id", org_id),), shown)
    return samples


def target_samples(target: DeviceTarget) -> Samples:
    """The samples that describe the device (Source.TARGET families): its info, thresholds,
    authentication, open actions, optimisation, and what its kind reads from the inventory."""
    samples: Samples = {}
    kind = registry.find(target.kind)
    if kind is None:
        return samples
    ids = _ids(target)
    with_kind = (*ids, ("kind", kind.name))
    add = _adder(samples, with_kind)
    inventory = target.inventory
    described = _described(inventory, kind.info)
    add(common.INFO, 1.0, (*with_kind, ("org_id", target.org_id), *described, *target.labels))
    for family in kind.thresholds:
        add(family, _converted(family, target.threshold(family.field or "")), ids)
    if inventory is None:
        return samples
    add(common.AUTHENTICATED, _bool(authenticated(inventory)))
    if inventory.actions is not None:
        for code in inventory.actions:
            add(common.ACTION_NEEDED, 1.0, (*with_kind, ("action", code)))
        if not inventory.actions:
            add(common.ACTION_NEEDED, 0.0)
    else:
        add(common.ACTION_NEEDED, _bool(inventory.action_needed))
    add(common.SMART_OPTIMIZATION, _bool(inventory.is_smart_optimization_active))
    add(common.OPTIMIZATION_SCORE, inventory.optimization_score)
    for family in kind.inventory:
        value = getattr(inventory, family.field or "", None)
        if family.states:  # a state set: every known state, and the current one if new
            if isinstance(value, str):
                for status in (*family.states, *((value,) if value not in family.states else ())):
                    add(family, 1.0 if status == value else 0.0, (*ids, ("status", status)))
        elif isinstance(value, bool):
            add(family, _bool(value), ids)
        else:
            add(family, _converted(family, value), ids)
    return samples


def device_samples(state: DeviceState) -> Samples:
    """Every sample this device exports, by family, ignoring staleness."""
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


def current_samples(state: DeviceState, now: float, max_age: float) -> Samples:
    """The samples to export at `now`: reading families are dropped once the data is stale."""
    return visible(device_samples(state), state, now, max_age)
