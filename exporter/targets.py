"""The devices to poll, and their single owner.

`resolve_targets` turns config + discovery + shard into the list of targets; `TargetSet`
holds the inputs, recomputes the list when one of them changes, and tells its followers (the
store and the poller) the new list. Nobody else decides what is polled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from exporter.config import Config, InverterConfig


@dataclass(frozen=True, slots=True)
class Inventory:
    """What the API's inverter listing says about a device (None where it says nothing).
    Numbers are kept in the API's units; the metrics table converts them."""

    manufacturer: str | None = None
    model: str | None = None
    price_zone: str | None = None
    lifecycle_state: str | None = None
    connection_status: str | None = None
    monitoring_status: str | None = None
    is_authenticated: bool | None = None
    action_needed: bool | None = None
    solar_power_rating_kw: float | None = None
    battery_capacity_kwh: float | None = None
    is_battery_connected: bool | None = None
    owner: str | None = None  # the customer's external id or e-mail local part


@dataclass(frozen=True, slots=True)
class InverterTarget:
    """One inverter to poll and how it is labelled; thresholds already merged with defaults."""

    inverter_id: str
    org_id: str
    user_id: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    battery_low_percent: float | None = None
    grid_export_high_watts: float | None = None
    inventory: Inventory | None = None
    discovered: bool = False

    @classmethod
    def from_config(cls, inverter: InverterConfig, config: Config) -> InverterTarget:
        thresholds = inverter.thresholds.over(config.thresholds)
        return cls(
            inverter_id=inverter.inverter_id,
            org_id=inverter.org_id,
            user_id=inverter.user_id,
            name=inverter.display_name,
            labels=tuple(sorted(inverter.labels.items())),
            battery_low_percent=thresholds.battery_low_percent,
            grid_export_high_watts=thresholds.grid_export_high_watts,
        )


@dataclass(frozen=True, slots=True)
class DiscoveredInverter:
    """An inverter as the list endpoints show it."""

    org_id: str
    user_id: str
    inverter_id: str
    name: str
    inventory: Inventory
    deleted: bool = False


def resolve_targets(
    config: Config,
    discovered: Iterable[DiscoveredInverter] = (),
    static_inventory: dict[str, Inventory] | None = None,
) -> list[InverterTarget]:
    """The inverters to poll: configured ones (which win for name, labels and thresholds)
    plus discovered ones, each with its inventory where known, in this replica's shard."""
    static_inventory = static_inventory or {}
    targets: dict[str, InverterTarget] = {}
    for inverter in config.inverters:
        target = InverterTarget.from_config(inverter, config)
        targets[target.inverter_id] = replace(
            target, inventory=static_inventory.get(target.inverter_id)
        )
    for d in discovered:
        if d.inverter_id in targets:
            targets[d.inverter_id] = replace(targets[d.inverter_id], inventory=d.inventory)
            continue
        # As if configured without thresholds of its own: the config's defaults apply.
        entry = InverterConfig(
            org_id=d.org_id, user_id=d.user_id, inverter_id=d.inverter_id, name=d.name
        )
        targets[d.inverter_id] = replace(
            InverterTarget.from_config(entry, config), inventory=d.inventory, discovered=True
        )
    return [t for t in targets.values() if config.shard.owns(t.user_id)]


Follower = Callable[[list[InverterTarget]], None]


class TargetSet:
    """The one owner of what is polled. Holds the config, the last discovery result and the
    inventory of configured-only inverters; every change recomputes the targets and hands
    them to the followers, in the order they were added (the store before the poller)."""

    def __init__(self, config: Config) -> None:
        self._lock = threading.RLock()
        self._config = config
        self._discovered: list[DiscoveredInverter] = []
        self._static_inventory: dict[str, Inventory] = {}
        self._followers: list[Follower] = []
        self._current = resolve_targets(config)

    def follow(self, follower: Follower) -> None:
        """Call `follower` with the new list after every change."""
        with self._lock:
            self._followers.append(follower)

    def current(self) -> list[InverterTarget]:
        with self._lock:
            return list(self._current)

    def __len__(self) -> int:
        with self._lock:
            return len(self._current)

    def configured_only(self) -> list[InverterTarget]:
        """Configured inverters of this shard that discovery does not list."""
        with self._lock:
            listed = {d.inverter_id for d in self._discovered}
            return [t for t in resolve_targets(self._config) if t.inverter_id not in listed]

    def set_config(self, config: Config) -> None:
        with self._lock:
            self._config = config
            if config.discovery is None:
                self._discovered = []
            self._publish()

    def set_discovered(self, discovered: list[DiscoveredInverter]) -> None:
        with self._lock:
            self._discovered = list(discovered)
            self._publish()

    def add_inventory(self, found: dict[str, Inventory]) -> None:
        """Inventory of configured-only inverters; ones not in `found` keep what was known."""
        with self._lock:
            self._static_inventory.update(found)
            self._publish()

    def _publish(self) -> None:
        targets = resolve_targets(self._config, self._discovered, self._static_inventory)
        if targets == self._current:
            return
        self._current = targets
        for follower in self._followers:
            follower(list(targets))
