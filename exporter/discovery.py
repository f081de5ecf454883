"""Fleet discovery and device inventory: every inverter of the configured organizations,
found through the API's list endpoints (merging with the configured ones is `targets`' job).

A failed or partial refresh never shrinks the fleet: what could not be listed keeps its
last known inventory. Inverters really gone from a successful listing are dropped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any, Protocol

from exporter.client import PoderoClient
from exporter.config import DiscoveryConfig
from exporter.logs import kv
from exporter.targets import DiscoveredInverter, Inventory, InverterTarget
from exporter.text import DEFAULT_LIMIT, clean_text
from exporter.transport import ApiError, InvalidResponse

log = logging.getLogger(__name__)


class DiscoveryObserver(Protocol):
    """Receives the outcome of each discovery run."""

    def discovery_done(
        self, org_counts: dict[str, int], succeeded: Iterable[str], seconds: float
    ) -> None: ...


def _text(value: Any, limit: int = DEFAULT_LIMIT) -> str | None:
    """A string field of a listing, cleaned (`text.clean_text`); None if absent or empty."""
    if not isinstance(value, str):
        return None
    return clean_text(value, limit).strip() or None


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


def default_name(owner: str | None, inverter_id: str) -> str:
    """The name of a discovered inverter without a configured one, stable across restarts."""
    # Cut, not ellipsised: the name is a label value and must stay what it always was.
    return f"{clean_text(owner or 'inverter')[:120]}-{clean_text(inverter_id)[:6]}"


def inventory_from(item: dict[str, Any], owner: str | None = None) -> Inventory:
    """Inventory fields of one inverter listing (or detail), liberal in what it accepts."""
    model = item.get("device_model") if isinstance(item.get("device_model"), dict) else {}
    assert isinstance(model, dict)
    return Inventory(
        manufacturer=_text(model.get("manufacturer")),
        model=_text(model.get("model")),
        price_zone=_text(item.get("price_zone")),
        lifecycle_state=_text(item.get("lifecycle_state")),
        connection_status=_text(item.get("connection_status")),
        monitoring_status=_text(item.get("monitoring_status")),
        is_authenticated=_flag(item.get("is_authenticated")),
        action_needed=_flag(item.get("action_needed")),
        solar_power_rating_kw=_number(item.get("solar_power_rating_kw")),
        battery_capacity_kwh=_number(item.get("battery_capacity_kwh")),
        is_battery_connected=_flag(item.get("is_battery_connected")),
        owner=owner,
    )


def _listed(body: Any, endpoint: str) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise InvalidResponse(endpoint, f"expected a list, got {type(body).__name__}")
    return [item for item in body if isinstance(item, dict) and _text(item.get("id"))]


class FleetDiscovery:
    """Lists the organizations' users and their inverters, keeping what it cannot refresh."""

    def __init__(
        self, client: PoderoClient, config: DiscoveryConfig, observer: DiscoveryObserver
    ) -> None:
        self._client = client
        self._config = config
        self._observer = observer
        # org -> user -> that user's inverters, as last listed successfully
        self._known: dict[str, dict[str, list[DiscoveredInverter]]] = {}
        self.last_success: float | None = None

    def refresh(self, now: float) -> list[DiscoveredInverter]:
        """List every org again; returns the (filtered) inventory after this refresh."""
        started = time.perf_counter()
        succeeded = []
        deleted = "true" if self._config.include_deleted else "false"
        for org in self._config.org_ids:
            try:
                users = _listed(
                    self._client.get_json(
                        "users", f"/org/{org}/users", {"include_deleted": deleted}
                    ),
                    "users",
                )
            except ApiError as exc:
                log.warning(
                    "listing users failed, keeping the organization's last inventory",
                    extra=kv(org_id=org, endpoint=exc.endpoint, reason=exc.reason),
                )
                continue
            previous = self._known.get(org, {})
            listed: dict[str, list[DiscoveredInverter]] = {}
            complete = True
            for user in users:
                user_id = str(user["id"])
                try:
                    items = _listed(
                        self._client.get_json(
                            "inverters",
                            f"/org/{org}/users/{user_id}/inverters",
                            {"include_deleted": deleted},
                        ),
                        "inverters",
                    )
                except ApiError as exc:
                    complete = False
                    log.warning(
                        "listing a user's inverters failed, keeping their last inventory",
                        extra=kv(org_id=org, user_id=user_id, reason=exc.reason),
                    )
                    listed[user_id] = previous.get(user_id, [])
                    continue
                owner = owner_of(user)
                listed[user_id] = [
                    DiscoveredInverter(
                        org_id=org,
                        user_id=user_id,
                        inverter_id=str(item["id"]),
                        name=default_name(owner, str(item["id"])),
                        inventory=inventory_from(item, owner),
                        deleted=item.get("deleted_at") is not None,
                    )
                    for item in items
                ]
            self._known[org] = listed
            if complete:
                succeeded.append(org)
        inventory = self.inventory()
        counts = {org: sum(1 for d in inventory if d.org_id == org) for org in self._config.org_ids}
        self._observer.discovery_done(counts, succeeded, time.perf_counter() - started)
        if succeeded:
            self.last_success = now
        return inventory

    def inventory(self) -> list[DiscoveredInverter]:
        """The known inverters that pass the configured filters."""
        states = self._config.lifecycle_states
        excluded = set(self._config.exclude_inverter_ids)
        found = []
        for users in self._known.values():
            for inverters in users.values():
                for d in inverters:
                    if d.inverter_id in excluded:
                        continue
                    if d.deleted and not self._config.include_deleted:
                        continue
                    if states is not None and d.inventory.lifecycle_state not in states:
                        continue
                    found.append(d)
        return found


def static_only_inventory(
    client: PoderoClient, targets: Iterable[InverterTarget]
) -> dict[str, Inventory]:
    """Inventory of configured inverters that discovery does not list, one detail call each."""
    found = {}
    for target in targets:
        try:
            body = client.get_json(
                "inverter",
                f"/org/{target.org_id}/users/{target.user_id}/inverters/{target.inverter_id}",
            )
        except ApiError as exc:
            log.warning(
                "inventory detail failed",
                extra=kv(
                    inverter_id=target.inverter_id,
                    name=target.name,
                    user_id=target.user_id,
                    reason=exc.reason,
                ),
            )
            continue
        if isinstance(body, dict):
            found[target.inverter_id] = inventory_from(body)
    return found
