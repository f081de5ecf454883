"""The devices to poll, and their single owner.

`TargetSet` holds the inputs (config, each listed home's devices, inventory of configured-only
ones, the shard), resolves the targets when one of them changes, and tells its followers (the
store and the poller) the difference. Nobody else decides what is polled.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Protocol

from exporter.base.logs import kv
from exporter.config.labels import DeviceLabels
from exporter.config.model import INVERTER, Config, DeviceConfig
from exporter.kinds import registry

# One listing: an organization's user (a home) and a kind of device.
Listing = tuple[str, str, str]
log = logging.getLogger(__name__)


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
    # The fields every device kind shares (heat pumps, EVs, wallboxes; inverters too).
    is_smart_optimization_active: bool | None = None
    optimization_score: float | None = None
    actions: tuple[str, ...] | None = None  # the codes of the actions the customer must take


def authenticated(inventory: Inventory) -> bool | None:
    """The API's is_authenticated where given; else not while a reauthenticate action is
    open; else whether the lifecycle state is authenticated (None: nothing to tell)."""
    if inventory.is_authenticated is not None:
        return inventory.is_authenticated
    if inventory.actions and "reauthenticate" in inventory.actions:
        return False
    if inventory.lifecycle_state is None:
        return None
    return inventory.lifecycle_state == "authenticated"


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """One device to poll and how it is labelled; thresholds already merged with defaults.
    An inverter unless `kind` says otherwise (the id is then the device's id)."""

    device_id: str
    org_id: str
    user_id: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    # The thresholds of its kind that have a value: (config key, value as published).
    thresholds: tuple[tuple[str, float], ...] = ()
    inventory: Inventory | None = None
    discovered: bool = False
    kind: str = INVERTER

    @property
    def polled(self) -> bool:
        """Whether the device has a data series to poll (a wallbox has none)."""
        kind = registry.find(self.kind)
        return kind is not None and kind.polled

    def threshold(self, key: str) -> float | None:
        return dict(self.thresholds).get(key)

    def log_fields(self) -> dict[str, str]:
        """The identifying log fields of the device."""
        return {
            "device_id": self.device_id,
            "name": self.name,
            "user_id": self.user_id,
            "kind": self.kind,
        }

    @classmethod
    def from_config(cls, inverter: DeviceConfig, config: Config) -> DeviceTarget:
        thresholds = inverter.thresholds.over(config.thresholds, inverter.kind)
        return cls(
            device_id=inverter.device_id,
            org_id=inverter.org_id,
            user_id=inverter.user_id,
            name=inverter.display_name,
            labels=tuple(sorted(inverter.labels.items())),
            thresholds=tuple(
                (family.field, value)
                for family in registry.get(inverter.kind).thresholds
                if family.field and (value := thresholds.value(family.field)) is not None
            ),
            kind=inverter.kind,
        )


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """A device (an inverter unless `kind` says otherwise) as the list endpoints show it."""

    org_id: str
    user_id: str
    device_id: str
    name: str
    inventory: Inventory
    deleted: bool = False
    kind: str = INVERTER


def _discovered_target(d: DiscoveredDevice, config: Config) -> DeviceTarget:
    # As if configured without thresholds of its own: the config's defaults apply.
    entry = DeviceConfig(
        org_id=d.org_id,
        user_id=d.user_id,
        inverter_id=d.device_id,
        name=d.name,
        kind=d.kind,
    )
    return replace(DeviceTarget.from_config(entry, config), inventory=d.inventory, discovered=True)


def with_rule_labels(target: DeviceTarget, rules: DeviceLabels) -> DeviceTarget:
    """The target with the labels `device_labels` rules give it (by user_id, owner or
    device_id); its own configured labels win over the rules'."""
    owner = target.inventory.owner if target.inventory is not None else None
    extra = rules.labels_for(target.user_id, owner, target.device_id)
    if not extra:
        return target
    return replace(target, labels=tuple(sorted({**dict(extra), **dict(target.labels)}.items())))


class TargetsFollower(Protocol):
    """Told of every change to the targets: new or changed ones, and removed ids."""

    def apply_targets(self, changed: list[DeviceTarget], removed: list[str]) -> None: ...


class TargetSet:
    """The one owner of what is polled. Holds the config, each listed home's inverters and the
    inventory of configured-only inverters; a change re-resolves only the inverters it touches
    and hands the difference to the followers, in the order they were added (the store before
    the poller). A home's listing arriving costs that home's inverters, not the fleet."""

    def __init__(self, config: Config) -> None:
        self._lock = threading.RLock()
        self._config = config
        self._configured: dict[str, DeviceTarget] = {}
        self._listed: dict[Listing, list[DiscoveredDevice]] = {}
        # The listings naming each discovered id, the first to name it first: it keeps the
        # device for as long as it lists it, so that another home's listing naming the same
        # id (by error or by malice) cannot take the device over.
        self._claims: dict[str, list[Listing]] = {}
        self._discovered: dict[str, DiscoveredDevice] = {}
        self._static_inventory: dict[str, Inventory] = {}
        self._targets: dict[str, DeviceTarget] = {}
        self._followers: list[TargetsFollower] = []
        self._reconfigure(config)
        self._publish(list(self._configured))

    def follow(self, follower: TargetsFollower) -> None:
        """Tell `follower` of every change from now on."""
        with self._lock:
            self._followers.append(follower)

    def current(self) -> list[DeviceTarget]:
        with self._lock:
            return list(self._targets.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._targets)

    def configured_only(self) -> list[DeviceTarget]:
        """Configured inverters of this shard that discovery does not list."""
        with self._lock:
            return [
                t
                for i, t in self._configured.items()
                if i not in self._discovered and self._config.shard.owns(t.user_id)
            ]

    def discovered_count(self, org_id: str) -> dict[str, int]:
        """How many devices of each kind the last listings of an organization's homes found
        (each once, however many listings name it)."""
        with self._lock:
            counts = dict.fromkeys(registry.names(), 0)
            for d in self._discovered.values():
                if d.org_id == org_id:
                    counts[d.kind] = counts.get(d.kind, 0) + 1
            return counts

    def listed_homes(self, org_id: str) -> set[str]:
        """The users of an organization whose devices are known from a listing."""
        with self._lock:
            return {user for org, user, _ in self._listed if org == org_id}

    def set_config(self, config: Config) -> None:
        """A new config: everything is re-resolved (only real differences reach followers);
        the listings of organizations no longer discovered are dropped."""
        with self._lock:
            orgs = set(config.discovery.org_ids) if config.discovery else set()
            for key in [k for k in self._listed if k[0] not in orgs]:
                self._replace_listing(key, [])
            self._reconfigure(config)
            # In a stable order (configured, then discovered), as new ones join the page. A
            # device a dropped listing took along is among the current targets.
            touched = dict.fromkeys([*self._configured, *self._discovered, *self._targets])
            self._publish(list(touched))

    def set_home(
        self,
        org_id: str,
        user_id: str,
        inverters: list[DiscoveredDevice],
        kind: str = INVERTER,
    ) -> None:
        """The devices of one kind a listing found for one home (empty: none, or gone).
        An id another listing named first stays that listing's device. A listing of an
        organization the config no longer discovers (one in flight during a reload) is
        ignored."""
        with self._lock:
            discovery = self._config.discovery
            if discovery is None or org_id not in discovery.org_ids:
                return
            self._publish(self._replace_listing((org_id, user_id, kind), inverters))

    def _replace_listing(self, key: Listing, inverters: list[DiscoveredDevice]) -> list[str]:
        """Put a listing's devices in place of its last ones; the ids touched. A device listed
        as it was keeps its object: an hourly round of an unchanged fleet leaves memory as it
        found it, with nothing copied."""
        last = {d.device_id: d for d in self._listed.pop(key, [])}
        before = set(last)
        now = {d.device_id for d in inverters}
        listed = [kept if (kept := last.get(d.device_id)) == d else d for d in inverters]
        if listed:
            self._listed[key] = listed
        for device_id in before - now:
            claims = self._claims.get(device_id, [])
            if key in claims:
                claims.remove(key)
            if not claims:
                self._claims.pop(device_id, None)
        for device_id in now - before:
            claims = self._claims.setdefault(device_id, [])
            if claims and key not in claims:
                log.warning(
                    "a device id is listed by two homes; the first keeps it",
                    extra=kv(device_id=device_id, user_id=key[1], kind=key[2],
                             owner_user_id=claims[0][1], owner_kind=claims[0][2]),
                )  # fmt: skip
            if key not in claims:
                claims.append(key)
        # Claims change only for ids that came or went; a kept device resolves as it did.
        touched = dict.fromkeys(
            [*(d.device_id for d in listed if d is not last.get(d.device_id)), *(before - now)]
        )
        for device_id in touched:
            self._discovered.pop(device_id, None)
            if owners := self._claims.get(device_id):
                self._discovered[device_id] = next(
                    d for d in self._listed[owners[0]] if d.device_id == device_id
                )
        return list(touched)

    def add_inventory(self, found: dict[str, Inventory]) -> None:
        """Inventory of configured-only inverters; ones not in `found` keep what was known."""
        with self._lock:
            self._static_inventory.update(found)
            self._publish(list(found))

    def _reconfigure(self, config: Config) -> None:
        self._config = config
        self._configured = {
            i.device_id: DeviceTarget.from_config(i, config) for i in config.inverters
        }

    def _resolve(self, device_id: str) -> DeviceTarget | None:
        configured = self._configured.get(device_id)
        discovered = self._discovered.get(device_id)
        if configured is not None:
            inventory = (
                discovered.inventory
                if discovered is not None
                else self._static_inventory.get(device_id)
            )
            target = replace(configured, inventory=inventory)
        elif discovered is not None:
            target = _discovered_target(discovered, self._config)
        else:
            return None
        if not self._config.shard.owns(target.user_id):
            return None
        return with_rule_labels(target, self._config.device_labels)

    def _publish(self, touched: list[str]) -> None:
        changed: list[DeviceTarget] = []
        removed: list[str] = []
        for device_id in touched:
            target = self._resolve(device_id)
            old = self._targets.get(device_id)
            if target is None:
                if old is not None:
                    del self._targets[device_id]
                    removed.append(device_id)
            elif target != old:
                self._targets[device_id] = target
                changed.append(target)
        if not changed and not removed:
            return
        for follower in self._followers:
            follower.apply_targets(changed, removed)
