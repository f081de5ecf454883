"""Fetching what the optimisation saved: every heat pump's and vehicle's `/savings` (and the
organization's `/devices/savings`) for today (resolution 1DAY) and this month (1MONTH), once
per `savings.interval_seconds`, as background work of the poll scheduler: handed out only
when no poll is due and no listing waits, on the same workers and request budget, whose slots
it takes only when nobody else wants them (`RequestBudget.yielding`).

Each device and organization has its own phase in the interval (as polls do), so the calls
are spread evenly; a new one is fetched at once. A failed call keeps the period's last
figures until they expire (the period's end, or three intervals without success).
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from exporter.api.client import PoderoClient
from exporter.api.transport import ApiError
from exporter.base.clock import Clock
from exporter.base.logs import kv
from exporter.config.model import Config
from exporter.kinds import registry
from exporter.state.savings import (
    DAY,
    MONTH,
    STALE_INTERVALS,
    Answer,
    OrganizationSavings,
    merged,
)
from exporter.state.schedule import aligned_after, aligned_at_or_after, phase_offset
from exporter.state.store import ReadingStore
from exporter.state.targets import DeviceTarget

log = logging.getLogger(__name__)
Job = Callable[[], None]
# (what, id): ("device", device_id) or ("organization", org_id)
Key = tuple[str, str]
DEVICE, ORGANIZATION = "device", "organization"


def organizations_of(config: Config) -> set[str]:
    """The organizations whose savings this replica fetches: the discovered ones and those of
    configured devices, on shard index 0 only (one replica answers for the organization)."""
    if not config.savings.enabled or not config.savings.organizations or config.shard.index:
        return set()
    discovered = set(config.discovery.org_ids) if config.discovery else set()
    return discovered | {d.org_id for d in config.inverters}


@dataclass(frozen=True)
class _Settings:
    enabled: bool
    interval: float
    config: Config


class SavingsFetcher:
    """The savings of every device with a savings endpoint and of the organizations, on a
    slow cadence: `BackgroundWork` for the poller, and a follower of the targets."""

    def __init__(
        self,
        client: PoderoClient,
        store: ReadingStore,
        organizations: OrganizationSavings,
        clock: Clock,
        config: Config,
    ) -> None:
        self._client = client
        self._store = store
        self._organizations = organizations
        self._clock = clock
        self._lock = threading.Lock()
        self._settings = _Settings(config.savings.enabled, config.savings.interval_seconds, config)
        self._targets: dict[str, DeviceTarget] = {}
        self._due: dict[Key, float] = {}
        self._queue: list[tuple[float, Key]] = []
        self._in_flight: set[Key] = set()
        self._sync_organizations(organizations_of(config))

    # --- what is fetched ---------------------------------------------------------------------
    def apply_targets(self, changed: list[DeviceTarget], removed: list[str]) -> None:
        """New devices with a savings endpoint are due at once (while savings are on); gone
        ones are forgotten."""
        now = self._clock.time()
        with self._lock:
            for device_id in removed:
                self._forget((DEVICE, device_id))
            for target in changed:
                kind = registry.find(target.kind)
                if kind is None or not kind.savings:
                    self._forget((DEVICE, target.device_id))
                    continue
                self._targets[target.device_id] = target  # kept while off, for turning on
                if self._settings.enabled and (DEVICE, target.device_id) not in self._due:
                    self._schedule((DEVICE, target.device_id), now)

    def set_config(self, config: Config) -> None:
        """A reloaded config: the cadence, the units, the organizations, on or off."""
        now = self._clock.time()
        old = self._settings
        new = _Settings(config.savings.enabled, config.savings.interval_seconds, config)
        with self._lock:
            self._settings = new
            if new.interval != old.interval:
                for key, due in self._due.items():
                    self._due[key] = aligned_at_or_after(
                        min(due, now + new.interval), new.interval, _phase(key, new.interval)
                    )
                self._rebuild_queue()
            forgotten = list(self._targets.values()) if not new.enabled else []
            for target in forgotten:
                self._due.pop((DEVICE, target.device_id), None)
            if new.enabled and not old.enabled:  # switched on: every device at once
                for device_id in self._targets:
                    self._schedule((DEVICE, device_id), now)
        for target in forgotten:  # figures of a switched-off feature go at once
            self._store.record_savings(target.device_id, target.kind, None)
        self._sync_organizations(organizations_of(config))

    def set_client(self, client: PoderoClient) -> None:
        self._client = client

    def _sync_organizations(self, wanted: set[str]) -> None:
        now = self._clock.time()
        with self._lock:
            for key in [k for k in self._due if k[0] == ORGANIZATION and k[1] not in wanted]:
                self._forget(key)
            for org_id in sorted(wanted):
                if (ORGANIZATION, org_id) not in self._due:
                    self._schedule((ORGANIZATION, org_id), now)
        self._organizations.keep_only(wanted)

    def _forget(self, key: Key) -> None:
        """(Lock held.) Heap entries left behind are skipped when popped."""
        self._due.pop(key, None)
        if key[0] == DEVICE:
            self._targets.pop(key[1], None)

    def _schedule(self, key: Key, when: float) -> None:
        self._due[key] = when
        heapq.heappush(self._queue, (when, key))
        if len(self._queue) > 2 * len(self._due) + 1024:
            self._rebuild_queue()

    def _rebuild_queue(self) -> None:
        self._queue = [(when, key) for key, when in self._due.items()]
        heapq.heapify(self._queue)

    # --- BackgroundWork ----------------------------------------------------------------------
    def next_wakeup(self) -> float | None:
        with self._lock:
            # Entries superseded by a reschedule (or of forgotten keys) go first.
            while self._queue and self._due.get(self._queue[0][1]) != self._queue[0][0]:
                heapq.heappop(self._queue)
            return self._queue[0][0] if self._queue else None

    def next_job(self, now: float) -> Job | None:
        """The most overdue fetch, due again one interval later on its phase; None if none."""
        with self._lock:
            while self._queue and self._queue[0][0] <= now:
                when, key = heapq.heappop(self._queue)
                if self._due.get(key) != when:
                    continue  # superseded by a reschedule, or forgotten
                interval = self._settings.interval
                self._schedule(key, aligned_after(now, interval, _phase(key, interval)))
                if key in self._in_flight:
                    continue  # still running since its last turn (a call that hangs): skip one
                self._in_flight.add(key)
                return partial(self._run, key)
        return None

    def all_jobs(self) -> list[Job]:
        """A fetch of everything now, due or not (for --once); each is due again one interval
        later on its phase."""
        now = self._clock.time()
        jobs: list[Job] = []
        with self._lock:
            interval = self._settings.interval
            for key in [k for k in self._due if k not in self._in_flight]:
                self._schedule(key, aligned_after(now, interval, _phase(key, interval)))
                self._in_flight.add(key)
                jobs.append(partial(self._run, key))
        return jobs

    # --- the fetches ---------------------------------------------------------------------------
    def _run(self, key: Key) -> None:
        try:
            if key[0] == DEVICE:
                with self._lock:
                    target = self._targets.get(key[1])
                if target is not None:
                    self._fetch_device(target)
            else:
                self._fetch_organization(key[1])
        finally:
            with self._lock:
                self._in_flight.discard(key)

    def _fetch_device(self, target: DeviceTarget) -> None:
        now = self._clock.time()
        settings = self._settings
        answers = [
            self._answer(
                partial(
                    self._client.device_savings,
                    target.kind,
                    target.org_id,
                    target.user_id,
                    target.device_id,
                    now=now,
                    resolution=resolution,
                    units=settings.config.units,
                    stale_at=now + STALE_INTERVALS * settings.interval,
                ),
                target.log_fields(),
            )
            for resolution in (DAY, MONTH)
        ]
        if not self._settings.enabled:
            return  # switched off by a reload while the calls ran
        state = self._store.get(target.device_id)
        old = state.savings if state is not None else None
        savings = merged(old, answers[0], answers[1], now)
        self._store.record_savings(target.device_id, target.kind, savings)

    def _fetch_organization(self, org_id: str) -> None:
        now = self._clock.time()
        settings = self._settings
        answers = [
            self._answer(
                partial(
                    self._client.organization_savings,
                    org_id,
                    now=now,
                    resolution=resolution,
                    units=settings.config.units,
                    stale_at=now + STALE_INTERVALS * settings.interval,
                ),
                {"org_id": org_id},
            )
            for resolution in (DAY, MONTH)
        ]
        if org_id not in organizations_of(self._settings.config):
            return  # dropped by a reload while the calls ran
        savings = merged(self._organizations.get(org_id), answers[0], answers[1], now)
        self._organizations.put(org_id, savings)

    def _answer(self, call: Callable[[], Answer], fields: dict[str, str]) -> Answer | None:
        """The call's answer, or None (logged) if it failed. Its requests wait for budget
        slots nobody else wants."""
        try:
            with self._client.yielding():
                return call()
        except ApiError as exc:
            log.warning(
                "savings fetch failed",
                extra=kv(**fields, endpoint=exc.endpoint, status=exc.status, reason=exc.reason),
            )
            return None


def _phase(key: Key, interval: float) -> float:
    """A stable phase in the interval, unlike a device's poll phase (another key)."""
    return phase_offset(f"savings:{key[0]}:{key[1]}", interval)
