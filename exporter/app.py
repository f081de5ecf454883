"""Wiring: config -> auth -> api -> poller -> store -> exposition, and live reloads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from exporter.api import PoderoClient, RetryPolicy, Transport, new_session
from exporter.auth import TokenProvider
from exporter.budget import RequestBudget
from exporter.clock import Clock, Stopped
from exporter.config import Config, ConfigError
from exporter.discovery import (
    DiscoveredInverter,
    FleetDiscovery,
    merge_targets,
    static_only_inventory,
)
from exporter.exposition import MetricsPage
from exporter.memory import release_free_memory
from exporter.poller import CycleResult, Poller
from exporter.status import Header, StatusView
from exporter.store import Inventory, InverterTarget, ReadingStore
from exporter.telemetry import Telemetry

log = logging.getLogger(__name__)
# Configured inverters' inventory is refreshed this often when discovery is off.
DEFAULT_INVENTORY_INTERVAL = 3600.0


def build_client(config: Config, clock: Clock, telemetry: Telemetry) -> PoderoClient:
    """An API client with its own session, budget and token provider for this config."""
    podero = config.podero
    transport = Transport(
        new_session(podero.max_concurrency),
        timeout=podero.timeout_seconds,
        policy=RetryPolicy(podero.retry.attempts, podero.retry.max_wait_seconds),
        clock=clock,
        observer=telemetry,
        budget=RequestBudget(podero.max_requests_per_second, clock),
    )
    tokens = TokenProvider(podero.auth, podero.token_url, transport, clock)
    return PoderoClient(podero.base_url, transport, tokens)


def warn_if_over_budget(config: Config, inverters: int) -> None:
    """Say so at start when the request budget cannot keep up with the fleet."""
    needed = config.required_requests_per_second(inverters)
    budget = config.podero.max_requests_per_second
    if needed > 0.8 * budget:
        log.warning(
            "%d inverters need about %.1f requests/s at resolution %s, close to or above "
            "podero.max_requests_per_second=%g: raise it or shard the fleet",
            inverters,
            needed,
            config.poll.resolution,
            budget,
        )


class Exporter:
    """One running exporter: inventory, the poll loop, its store, and the metrics page."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.clock = clock
        self.config = config
        self.started_at = clock.time()
        self.telemetry = Telemetry()
        self.client = build_client(config, clock, self.telemetry)
        self.discovery = self._new_discovery()
        self._discovered: list[DiscoveredInverter] = []
        self._static_inventory: dict[str, Inventory] = {}
        self.last_inventory: float | None = None
        self.store = ReadingStore(self.targets())
        self.poller = self._new_poller()
        self.page = MetricsPage(
            self.store,
            clock,
            lambda: self.config.poll.max_data_age_seconds,
            self.telemetry.registry,
        )
        self.telemetry.config_loaded(True, clock.time())
        warn_if_over_budget(config, len(self.store))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._reload_lock = threading.Lock()
        self._inventory_lock = threading.Lock()

    def _new_poller(self) -> Poller:
        return Poller(
            self.client,
            self.store,
            self.clock,
            self.config.poll,
            max_concurrency=self.config.podero.max_concurrency,
            observer=self.telemetry,
        )

    def _new_discovery(self) -> FleetDiscovery | None:
        if self.config.discovery is None:
            return None
        return FleetDiscovery(self.client, self.config.discovery, self.telemetry)

    @property
    def ready(self) -> bool:
        return self.poller.first_cycle_done.is_set()

    @property
    def inventory_interval(self) -> float:
        discovery = self.config.discovery
        return discovery.refresh_interval_seconds if discovery else DEFAULT_INVENTORY_INTERVAL

    def targets(self) -> list[InverterTarget]:
        """Configured and discovered inverters of this shard, with their inventory."""
        return merge_targets(self.config, self._discovered, self._static_inventory)

    def status_view(self) -> StatusView:
        """The status page and JSON API over this exporter's store."""

        def header() -> Header:
            return Header(
                started=self.started_at,
                token_expiry=self.client.token_expires_at,
                last_inventory=self.last_inventory,
                discovery=self.discovery is not None,
            )

        return StatusView(
            self.store, self.clock, lambda: self.config.poll.max_data_age_seconds, header
        )

    def discover(self) -> None:
        """List the configured organizations' inverters (if discovery is on)."""
        if self.discovery is None:
            return
        with self._inventory_lock:
            self._discovered = self.discovery.refresh(self.clock.time())
            self.poller.set_targets(self.targets())
            self.last_inventory = self.clock.time()

    def refresh_static_inventory(self) -> None:
        """Inventory of configured inverters that discovery does not list (detail calls)."""
        listed = {d.inverter_id for d in self._discovered}
        static_only = [t for t in merge_targets(self.config, []) if t.inverter_id not in listed]
        found = static_only_inventory(self.client, static_only)
        with self._inventory_lock:
            # A failed detail call keeps the inventory known before.
            self._static_inventory.update(found)
            self.poller.set_targets(self.targets())
            self.last_inventory = self.clock.time()

    def refresh_inventory(self) -> None:
        self.discover()
        self.refresh_static_inventory()

    def poll_once(self) -> CycleResult:
        """Inventory, then one poll of every inverter (for --once)."""
        self.refresh_inventory()
        return self.poller.poll_all()

    def start(self) -> None:
        """Discovery first, then polling; inventory refreshes and rendering alongside."""
        self._spawn("poll-loop", self._poll_loop, self._stop)
        self._spawn("inventory", self._inventory_loop, self._closed)
        self._spawn("render", self.page.run_refresher, self._closed)

    def _spawn(
        self, name: str, target: Callable[[threading.Event], None], stop: threading.Event
    ) -> None:
        thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_loop(self, stop: threading.Event) -> None:
        # The first cycle must include the discovered fleet; a failure still lets it start.
        self._guarded(self.discover)
        self.poller.run(stop, after_first_cycle=release_free_memory)

    def _inventory_loop(self, stop: threading.Event) -> None:
        self._guarded(self.refresh_static_inventory)
        while not stop.wait(self.inventory_interval):
            self._guarded(self.refresh_inventory)

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Stopped:
            pass
        except Exception:  # inventory trouble must never stop polling
            log.exception("inventory refresh failed")

    def stop(self) -> None:
        self._stop.set()
        self._closed.set()
        self.poller.close()

    def reload(self, load: Callable[[], Config]) -> str | None:
        """Apply a new config; on any error keep the running one and return the reason."""
        with self._reload_lock:
            try:
                new = load()
            except ConfigError as exc:
                self.telemetry.config_loaded(False, self.clock.time())
                log.error("reload refused, keeping the running config: %s", exc)
                return str(exc)
            old = self.config
            self.config = new
            if new.podero != old.podero:
                # Credentials or endpoints changed: a fresh client (and token).
                self.client = build_client(new, self.clock, self.telemetry)
            if new.podero != old.podero or new.discovery != old.discovery:
                self.discovery = self._new_discovery()
                if new.discovery is None:
                    self._discovered = []
            if new.podero != old.podero or new.poll != old.poll:
                # A fresh poll loop for the new client or cadence.
                self.store.set_targets(self.targets())
                old_poller, old_stop = self.poller, self._stop
                self.poller = self._new_poller()
                self.poller.first_cycle_done.set()
                if self._threads:
                    old_stop.set()
                    old_poller.close()
                    self._stop = threading.Event()
                    self._spawn("poll-loop", self.poller.run, self._stop)
            else:
                self.poller.set_targets(self.targets())
            if new.discovery != old.discovery or new.inverters != old.inverters:
                threading.Thread(
                    target=self._guarded, args=(self.refresh_inventory,), daemon=True
                ).start()
            self.telemetry.config_loaded(True, self.clock.time())
            log.info("config reloaded: %d inverters", len(self.store))
            return None
