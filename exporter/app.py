"""Wiring: config -> auth -> api -> poller -> store -> exposition, and live reloads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from exporter.api import PoderoClient, RetryPolicy, Transport, new_session
from exporter.auth import TokenProvider
from exporter.budget import RequestBudget
from exporter.clock import Clock
from exporter.config import Config, ConfigError
from exporter.exposition import MetricsPage
from exporter.poller import Poller
from exporter.store import ReadingStore, targets_from_config
from exporter.telemetry import Telemetry

log = logging.getLogger(__name__)


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
    """One running exporter: the poll loop, its store, and the metrics page over it."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.clock = clock
        self.config = config
        self.telemetry = Telemetry()
        self.store = ReadingStore(targets_from_config(config))
        self.client = build_client(config, clock, self.telemetry)
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
        self._thread: threading.Thread | None = None
        self._refresher: threading.Thread | None = None
        self._closed = threading.Event()
        self._reload_lock = threading.Lock()

    def _new_poller(self) -> Poller:
        return Poller(
            self.client,
            self.store,
            self.clock,
            self.config.poll,
            max_concurrency=self.config.podero.max_concurrency,
            observer=self.telemetry,
        )

    @property
    def ready(self) -> bool:
        return self.poller.first_cycle_done.is_set()

    def start(self) -> None:
        """Start polling, and rendering what changed, in the background."""
        self._thread = threading.Thread(
            target=self.poller.run, args=(self._stop,), name="poll-loop", daemon=True
        )
        self._thread.start()
        if self._refresher is None:
            self._refresher = threading.Thread(
                target=self.page.run_refresher, args=(self._closed,), name="render", daemon=True
            )
            self._refresher.start()

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
            if new.podero != old.podero or new.poll != old.poll:
                # Credentials, endpoints or cadence changed: a fresh client and poll loop.
                if new.podero != old.podero:
                    self.client = build_client(new, self.clock, self.telemetry)
                self.config = new
                self.store.set_targets(targets_from_config(new))
                old_poller, old_stop = self.poller, self._stop
                self.poller = self._new_poller()
                self.poller.first_cycle_done.set()
                if self._thread is not None:
                    old_stop.set()
                    old_poller.close()
                    self._stop = threading.Event()
                    self.start()
            else:
                self.config = new
                self.poller.set_targets(targets_from_config(new))
            self.telemetry.config_loaded(True, self.clock.time())
            log.info("config reloaded: %d inverters", len(self.store))
            return None
