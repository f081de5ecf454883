"""Fleet discovery and device inventory: every inverter of this shard's homes in the
configured organizations, found through the API's list endpoints, as jobs for the scheduler
(merging with the configured ones is `targets`' job).

A failed or partial refresh never shrinks the fleet: what could not be listed keeps its
last known inventory. Inverters really gone from a successful listing are dropped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from exporter.api.client import PoderoClient
from exporter.api.transport import ApiError, InvalidResponse
from exporter.base.clock import Clock
from exporter.base.logs import kv
from exporter.base.memory import release_free_memory
from exporter.base.text import DEFAULT_LIMIT, clean_text, shared
from exporter.config.model import INVERTER, DiscoveryConfig, ShardConfig
from exporter.kinds import registry
from exporter.kinds.kind import Kind
from exporter.state.targets import DeviceTarget, DiscoveredDevice, Inventory, TargetSet

log = logging.getLogger(__name__)


def kinds_to_list(user: dict[str, Any]) -> list[str]:
    """The kinds of device worth a listing call for this user: all but those whose
    `num_*` count in the users listing is 0 (an older response without counts: all)."""

    def none_of(kind: Kind) -> bool:
        count = user.get(kind.count_key)
        return type(count) is int and count == 0  # (a bool False is no count)

    return [kind.name for kind in registry.kinds() if not none_of(kind)]


class DiscoveryObserver(Protocol):
    """Receives the outcome of each organization's listing round."""

    def discovery_org_done(
        self, org_id: str, devices: dict[str, int], ok: bool, seconds: float
    ) -> None: ...


def _text(value: Any, limit: int = DEFAULT_LIMIT) -> str | None:
    """A string field of a listing, cleaned (`text.clean_text`); None if absent or empty."""
    if not isinstance(value, str):
        return None
    return clean_text(value, limit).strip() or None


def _common(value: Any, limit: int = DEFAULT_LIMIT) -> str | None:
    """A field thousands of devices repeat (manufacturer, model, zone, state, action code),
    as `_text`, kept once (`text.shared`)."""
    text = _text(value, limit)
    return shared(text) if text else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    """A rating or capacity of a listing: a finite number, not negative; else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return number if math.isfinite(number) and number >= 0 else None


def owner_of(user: dict[str, Any]) -> str | None:
    """A readable, stable handle for a customer: the external id, else the e-mail's local part."""
    external = _text(user.get("external_user_id"))
    if external:
        return external
    email = _text(user.get("email"))
    return (email.split("@", 1)[0].strip() or None) if email else None


def _kind_name(owner: str | None, kind: str) -> str:
    """The owner's handle with the device kind, e.g. `cust-00001-heat-pump`."""
    return f"{clean_text(owner or 'home')[:100]}-{kind.replace('_', '-')}"


def default_name(owner: str | None, inverter_id: str) -> str:
    """The name of a discovered inverter without a configured one, stable across restarts."""
    # Cut, not ellipsised: the name is a label value and must stay what it always was.
    return f"{clean_text(owner or 'inverter')[:120]}-{clean_text(inverter_id)[:6]}"


def inventory_from(item: dict[str, Any], owner: str | None = None) -> Inventory:
    """Inventory fields of one inverter listing (or detail), liberal in what it accepts."""
    model = item.get("device_model") if isinstance(item.get("device_model"), dict) else {}
    assert isinstance(model, dict)
    return Inventory(
        manufacturer=_common(model.get("manufacturer")),
        model=_common(model.get("model")),
        price_zone=_common(item.get("price_zone")),
        lifecycle_state=_common(item.get("lifecycle_state")),
        connection_status=_common(item.get("connection_status")),
        monitoring_status=_common(item.get("monitoring_status")),
        is_authenticated=_flag(item.get("is_authenticated")),
        action_needed=_flag(item.get("action_needed")),
        solar_power_rating_kw=_number(item.get("solar_power_rating_kw")),
        battery_capacity_kwh=_number(item.get("battery_capacity_kwh")),
        is_battery_connected=_flag(item.get("is_battery_connected")),
        owner=owner,
        is_smart_optimization_active=_flag(item.get("is_smart_optimization_active")),
        optimization_score=_number(item.get("optimization_score")),
        actions=_actions(item.get("actions")),
    )


MAX_ACTIONS = 20


def _actions(value: Any) -> tuple[str, ...] | None:
    """The codes of a device's `actions` (each `{code, resolution_link}`); None if absent."""
    if not isinstance(value, list):
        return None
    codes = (_common(a.get("code"), 64) for a in value[:MAX_ACTIONS] if isinstance(a, dict))
    return tuple(sorted({code for code in codes if code}))


def _canonical_uuid(value: Any) -> str | None:
    """The id in the form config and URLs use (lower case, hyphens), or None if no UUID:
    an id spelt another way (upper case, braces, no hyphens) is still the same device."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _listed(body: Any, endpoint: str) -> list[dict[str, Any]]:
    """The objects of a listing whose `id` is a UUID (ids go into URLs and labels), each
    with its id in canonical form."""
    if not isinstance(body, list):
        raise InvalidResponse(endpoint, f"expected a list, got {type(body).__name__}")
    items = []
    for item in body:
        if isinstance(item, dict) and (canonical := _canonical_uuid(item.get("id"))):
            items.append(item if item["id"] == canonical else {**item, "id": canonical})
    return items


Job = Callable[[], None]
Submit = Callable[[Job], None]


def run_now(job: Job) -> None:
    """A `submit` that runs each job at once, in the caller's thread (for --once and tests)."""
    job()


class FleetDiscovery:
    """Lists the organizations' users, then each of this shard's homes' inverters, as jobs on
    the scheduler: each home's inverters join the targets as soon as its listing arrives. What
    cannot be listed keeps its last known inventory; homes gone from a successful users listing
    (or moved to another shard) are dropped."""

    def __init__(
        self,
        client: PoderoClient,
        config: DiscoveryConfig,
        shard: ShardConfig,
        targets: TargetSet,
        observer: DiscoveryObserver,
        clock: Clock,
    ) -> None:
        self._client = client
        self._clock = clock
        self._config = config
        self._shard = shard
        self._targets = targets
        self._observer = observer
        self._lock = threading.Lock()
        self._rounds: dict[str, _OrgRound] = {}
        self.last_success: float | None = None
        self.round_done = threading.Event()  # set when a first complete round has ended

    def start_round(self, submit: Submit) -> None:
        """List every organization again; the homes' listings follow as separate jobs."""
        with self._lock:
            orgs = [org for org in self._config.org_ids if org not in self._rounds]
            for org in orgs:
                self._rounds[org] = _OrgRound(started=time.perf_counter())
        for org in orgs:
            submit(partial(self._list_users, org, submit))

    def _deleted_param(self) -> dict[str, str]:
        return {"include_deleted": "true" if self._config.include_deleted else "false"}

    def _list_users(self, org: str, submit: Submit) -> None:
        try:
            users = _listed(
                self._client.get_json("users", f"/org/{org}/users", self._deleted_param()),
                "users",
            )
        except ApiError as exc:
            log.warning(
                "listing users failed, keeping the organization's last inventory",
                extra=kv(org_id=org, endpoint=exc.endpoint, reason=exc.reason),
            )
            self._finish(org, ok=False)
            return
        except Exception:  # a bug must not leave the round open forever
            log.exception("listing users crashed", extra=kv(org_id=org))
            self._finish(org, ok=False)
            raise
        mine = [u for u in users if self._shard.owns(str(u["id"]))]
        for user_id in self._targets.listed_homes(org) - {str(u["id"]) for u in mine}:
            for kind in registry.names():
                self._targets.set_home(org, user_id, [], kind)
        listings: list[tuple[dict[str, Any], str]] = []
        for user in mine:
            wanted = kinds_to_list(user)
            for kind in registry.names():
                if kind not in wanted:  # none now: the devices listed before are gone
                    self._targets.set_home(org, str(user["id"]), [], kind)
            listings.extend((user, kind) for kind in wanted)
        with self._lock:
            self._rounds[org].pending = len(listings)
        if not listings:
            self._finish(org, ok=True)
        for user, kind in listings:
            submit(partial(self._list_home, org, user, kind))

    def _list_home(self, org: str, user: dict[str, Any], kind: str = INVERTER) -> None:
        user_id = str(user["id"])
        endpoint = registry.get(kind).listing
        ok = True
        try:
            items = _listed(
                self._client.get_json(
                    endpoint,
                    f"/org/{org}/users/{user_id}/{registry.get(kind).path}",
                    self._deleted_param(),
                ),
                endpoint,
            )
        except ApiError as exc:
            ok = False
            log.warning(
                "listing a user's devices failed, keeping their last inventory",
                extra=kv(org_id=org, user_id=user_id, kind=kind, reason=exc.reason),
            )
        except Exception:  # a bug: counted as a failed listing, so the round still ends
            ok = False
            log.exception("listing a user's devices crashed", extra=kv(user_id=user_id, kind=kind))
        else:
            owner = owner_of(user)
            found = [
                DiscoveredDevice(
                    org_id=org,
                    user_id=user_id,
                    device_id=str(item["id"]),
                    name=default_name(
                        owner if kind == INVERTER else _kind_name(owner, kind), str(item["id"])
                    ),
                    inventory=inventory_from(item, owner),
                    deleted=item.get("deleted_at") is not None,
                    kind=kind,
                )
                for item in items
            ]
            self._targets.set_home(org, user_id, [d for d in found if self._wanted(d)], kind)
        with self._lock:
            state = self._rounds[org]
            state.failed = state.failed or not ok
            state.pending -= 1
            last = state.pending == 0
        if last:
            self._finish(org, ok=not state.failed)

    def _wanted(self, d: DiscoveredDevice) -> bool:
        config = self._config
        if d.device_id in config.exclude_inverter_ids:
            return False
        if d.deleted and not config.include_deleted:
            return False
        return (
            config.lifecycle_states is None
            or d.inventory.lifecycle_state in config.lifecycle_states
        )

    def _finish(self, org: str, *, ok: bool) -> None:
        with self._lock:
            state = self._rounds.pop(org)
            complete = not self._rounds
        self._observer.discovery_org_done(
            org, self._targets.discovered_count(org), ok, time.perf_counter() - state.started
        )
        if ok:
            self.last_success = self._clock.time()
        if complete:
            self.round_done.set()
            # The round's listing bodies (the users listing of 10,000 homes alone is MBs of
            # JSON) are garbage now: hand the freed memory back instead of keeping the peak.
            release_free_memory()


@dataclass
class _OrgRound:
    """One organization's listing round in progress."""

    started: float
    pending: int = 0
    failed: bool = False


def inventory_job(client: PoderoClient, target: DeviceTarget, targets: TargetSet) -> Job:
    """A job: the detail call for a configured inverter that discovery does not list."""

    def job() -> None:
        try:
            body = client.get_json(
                target.kind,
                f"/org/{target.org_id}/users/{target.user_id}/{registry.get(target.kind).path}/"
                f"{target.device_id}",
            )
        except ApiError as exc:  # the inventory known before stays
            log.warning(
                "inventory detail failed",
                extra=kv(
                    inverter_id=target.device_id,
                    name=target.name,
                    user_id=target.user_id,
                    reason=exc.reason,
                ),
            )
            return
        if isinstance(body, dict):
            targets.add_inventory({target.device_id: inventory_from(body)})

    return job
