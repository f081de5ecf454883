"""Wiring: config -> targets -> poller -> client -> transport, poller -> store -> exposition,
and live reloads that touch only what changed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from exporter.auth import TokenProvider
from exporter.budget import RequestBudget
from exporter.client import PoderoClient
from exporter.clock import Clock, Stopped
from exporter.config import Config, ConfigError
from exporter.discovery import FleetDiscovery, static_only_inventory
from exporter.exposition import MetricsPage
from exporter.logs import kv
from exporter.memory import release_free_memory
from exporter.poller import CycleResult, Poller
from exporter.status import Header, StatusView
from exporter.store import ReadingStore
from exporter.targets import TargetSet
from exporter.telemetry import Telemetry
from exporter.transport import RetryPolicy, Transport, new_session

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
            "the request budget is too small for the fleet: raise it or shard the fleet",
            extra=kv(
                inverters=inverters,
                needed_requests_per_second=round(needed, 1),
                resolution=config.poll.resolution,
                max_requests_per_second=budget,
            ),
        )


class Exporter:
    """One running exporter: its targets, the poll loop, the store, and the metrics page."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.clock = clock
        self.config = config
        self.started_at = clock.time()
        self.telemetry = Telemetry()
        self.client = build_client(config, clock, self.telemetry)
        self.discovery = self._new_discovery()
        self.last_inventory: float | None = None
        self.targets = TargetSet(config)
        self.store = ReadingStore(self.targets.current())
        self.poller = Poller(
            self.client,
            self.store,
            clock,
            config.poll,
            targets=self.targets.current(),
            max_concurrency=config.podero.max_concurrency,
            observer=self.telemetry,
        )
        # The store learns of a new inverter before the poller can record a poll of it.
        self.targets.follow(self.store.set_targets)
        self.targets.follow(self.poller.set_targets)
        self.page = MetricsPage(
            self.store,
            clock,
            lambda: self.config.poll.max_data_age_seconds,
            self.telemetry.registry,
        )
        self.telemetry.config_loaded(True, clock.time())
        warn_if_over_budget(config, len(self.targets))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reload_lock = threading.Lock()
        self._inventory_lock = threading.Lock()

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
        discovery = self.discovery
        if discovery is None:
            return
        with self._inventory_lock:
            self.targets.set_discovered(discovery.refresh(self.clock.time()))
            self.last_inventory = self.clock.time()

    def refresh_static_inventory(self) -> None:
        """Inventory of configured inverters that discovery does not list (detail calls)."""
        found = static_only_inventory(self.client, self.targets.configured_only())
        with self._inventory_lock:
            self.targets.add_inventory(found)  # a failed detail call keeps what was known
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
        self._spawn("poll-loop", self._poll_loop)
        self._spawn("inventory", self._inventory_loop)
        self._spawn("render", self.page.run_refresher)

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
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
        self.poller.close()

    def reload(self, load: Callable[[], Config]) -> str | None:
        """Apply a new config; on any error keep the running one and return the reason.
        Only what changed is touched: every unchanged inverter keeps its schedule, backoff
        and last data."""
        with self._reload_lock:
            try:
                new = load()
            except ConfigError as exc:
                self.telemetry.config_loaded(False, self.clock.time())
                log.error("reload refused, keeping the running config", extra=kv(reason=str(exc)))
                return str(exc)
            old = self.config
            self.config = new
            if new.podero != old.podero:
                # Credentials or endpoints changed: a fresh client (and token).
                self.client = build_client(new, self.clock, self.telemetry)
                self.poller.set_client(self.client)
            if new.podero != old.podero or new.discovery != old.discovery:
                self.discovery = self._new_discovery()
            if new.poll != old.poll or new.podero.max_concurrency != old.podero.max_concurrency:
                self.poller.set_poll(new.poll, new.podero.max_concurrency)
            self.targets.set_config(new)
            if new.discovery != old.discovery or new.inverters != old.inverters:
                threading.Thread(
                    target=self._guarded, args=(self.refresh_inventory,), daemon=True
                ).start()
            self.telemetry.config_loaded(True, self.clock.time())
            log.info("config reloaded", extra=kv(inverters=len(self.targets)))
            return None
