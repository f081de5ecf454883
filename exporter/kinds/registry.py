"""The registry of device kinds, in the order they are listed, polled and served. Everything
that differs by kind asks here; a new kind is one module registered below (node_exporter's
registerCollector, blackbox_exporter's prober map)."""

from __future__ import annotations

from exporter.kinds.electric_vehicle import ELECTRIC_VEHICLE
from exporter.kinds.heat_pump import HEAT_PUMP
from exporter.kinds.inverter import INVERTER
from exporter.kinds.kind import Kind
from exporter.kinds.wallbox import WALLBOX

_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add a kind (a name already registered is refused)."""
    if kind.name in _KINDS:
        raise ValueError(f"kind {kind.name} is registered already")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (tests that register a kind of their own)."""
    _KINDS.pop(name, None)


def kinds() -> tuple[Kind, ...]:
    return tuple(_KINDS.values())


def names() -> tuple[str, ...]:
    return tuple(_KINDS)


def get(name: str) -> Kind:
    """The kind of this name (KeyError for an unknown one)."""
    return _KINDS[name]


def find(name: str) -> Kind | None:
    return _KINDS.get(name)


for _kind in (INVERTER, HEAT_PUMP, ELECTRIC_VEHICLE, WALLBOX):
    register(_kind)
