"""Wiring: config -> targets -> poller -> client -> transport, poller -> store -> exposition,
and live reloads that touch only what changed."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from exporter.api.auth import TokenProvider
from exporter.api.bodies import ByteBudget, budget_for
from exporter.api.budget import RequestBudget, replica_share
from exporter.api.client import PoderoClient
from exporter.api.connections import new_session
from exporter.api.discovery import FleetDiscovery, Submit, inventory_job, run_now
from exporter.api.savings import SavingsFetcher
from exporter.api.transport import RetryPolicy, Transport
from exporter.base.clock import Clock, Stopped
from exporter.base.logs import kv
from exporter.base.memory import release_free_memory
from exporter.config.model import Config, ConfigError
from exporter.poller import CycleResult, Poller
from exporter.render.exposition import MetricsPage
from exporter.render.status import Header, StatusView
from exporter.render.telemetry import Telemetry
from exporter.state.savings import OrganizationSavings
from exporter.state.store import ReadingStore
from exporter.state.targets import TargetSet

log = logging.getLogger(__name__)
SWITCH_INTERVAL = 0.001
# Configured inverters' inventory is refreshed this often when discovery is off.
DEFAULT_INVENTORY_INTERVAL = 3600.0
# How long `POST /-/reload` waits for its reload before answering that it still runs.
RELOAD_WAIT_SECONDS = 5.0
# Web requests that wait for a reload at once; more are answered "still running" at once, so
# that a flood of reload requests never parks the web workers /metrics needs.
RELOAD_WAITERS = 2


def body_budget(config: Config) -> int:
    """The bytes of response bodies held and parsed at once for this config."""
    return budget_for(config.podero.max_response_bytes, config.podero.max_concurrency)


def build_client(
    config: Config, clock: Clock, telemetry: Telemetry, bodies: ByteBudget | None = None
) -> PoderoClient:
    """An API client with its own session, request budget (this replica's share of the
    organization's) and token provider for this config, sharing the process's byte budget
    for bodies (a new one if none is given)."""
    podero = config.podero
    transport = Transport(
        new_session(podero.max_concurrency),
        timeout=podero.timeout_seconds,
        policy=RetryPolicy(podero.retry.attempts, podero.retry.max_wait_seconds),
        clock=clock,
        observer=telemetry,
        budget=RequestBudget(requests_per_second(config), clock),
        max_body_bytes=podero.max_response_bytes,
        call_timeout=podero.call_timeout_seconds,
        bodies=bodies or ByteBudget(body_budget(config)),
    )
    tokens = TokenProvider(podero.auth, podero.token_url, transport, clock)
    return PoderoClient(podero.base_url, transport, tokens)


def requests_per_second(config: Config) -> float:
    """This replica's share of `podero.max_requests_per_second`, the organization's budget."""
    shard = config.shard
    return replica_share(config.podero.max_requests_per_second, shard.index, shard.count)


def warn_if_over_budget(config: Config, inverters: int) -> None:
    """Say so at start when this replica's share of the budget cannot keep up with its fleet."""
    needed = config.required_requests_per_second(inverters)
    budget = requests_per_second(config)
    if needed > 0.8 * budget:
        log.warning(
            "the request budget is too small for the fleet: raise it or shard the fleet",
            extra=kv(
                inverters=inverters,
                needed_requests_per_second=round(needed, 1),
                resolution=config.poll.resolution,
                replica_requests_per_second=round(budget, 3),
                max_requests_per_second=config.podero.max_requests_per_second,
                shards=config.shard.count,
            ),
        )


class Exporter:
    """One running exporter: its targets, the poll loop, the store, and the metrics page."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.clock = clock
        self.config = config
        self.started_at = clock.time()
        self.telemetry = Telemetry()
        self.telemetry.follow_timezone(config.timezone, clock.time)
        self.bodies = ByteBudget(body_budget(config))  # one for the process, across reloads
        self.client = build_client(config, clock, self.telemetry, self.bodies)
        self.targets = TargetSet(config)
        self.discovery = self._new_discovery()
        self._inventory_at: float | None = None
        self._ready = False
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
        self.poller.units = config.units
        self.organizations = OrganizationSavings()
        self.savings = SavingsFetcher(self.client, self.store, self.organizations, clock, config)
        self.savings.apply_targets(self.targets.current(), [])
        # The store learns of a new inverter before the poller can record a poll of it.
        self.targets.follow(self.store)
        self.targets.follow(self.poller)
        self.targets.follow(self.savings)
        self.poller.after_poll = self._check_ready
        self.page = MetricsPage(
            self.store,
            clock,
            lambda: self.config.poll.max_data_age_seconds,
            self.telemetry.registry,
            served=lambda: self.config.metrics.selection.served(),
            organizations=self.organizations.snapshot,
        )
        self.telemetry.config_loaded(True, clock.time())
        warn_if_over_budget(config, len(self.targets))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reload_lock = threading.Lock()

    def _new_discovery(self) -> FleetDiscovery | None:
        if self.config.discovery is None:
            return None
        return FleetDiscovery(
            self.client,
            self.config.discovery,
            self.config.shard,
            self.targets,
            self.telemetry,
            self.clock,
        )

    @property
    def ready(self) -> bool:
        """Every inverter known after the first listing round has been polled once."""
        self._check_ready()
        return self._ready

    def _check_ready(self) -> None:
        if self._ready:
            return
        discovery = self.discovery
        if discovery is not None and not discovery.round_done.is_set():
            return
        if not self.poller.all_polled():
            return
        self._ready = True
        log.info(
            "first poll cycle done",
            extra=kv(
                devices=len(self.targets), seconds=round(self.clock.time() - self.started_at, 1)
            ),
        )
        release_free_memory()

    @property
    def last_inventory(self) -> float | None:
        """When inventory last arrived (a listing round or a detail call)."""
        found = [
            t
            for t in (self.discovery.last_success if self.discovery else None, self._inventory_at)
            if t is not None
        ]
        return max(found) if found else None

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

    def discover(self, submit: Submit = run_now) -> None:
        """List the configured organizations' homes (if discovery is on): each listing is a
        job for `submit` (by default run at once, in this thread)."""
        if self.discovery is not None:
            self.discovery.start_round(submit)

    def refresh_static_inventory(self, submit: Submit = run_now) -> None:
        """Inventory of configured inverters that discovery does not list (detail calls)."""
        for target in self.targets.configured_only():
            job = inventory_job(self.client, target, self.targets)
            submit(self._stamped(job))

    def _stamped(self, job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            job()
            self._inventory_at = self.clock.time()

        return run

    def refresh_inventory(self, submit: Submit = run_now) -> None:
        self.discover(submit)
        self.refresh_static_inventory(submit)

    def poll_once(self) -> CycleResult:
        """Listings, detail calls and every device's first poll on the scheduler's workers and
        budget, as the daemon starts, then the savings of every device and organization (for
        --once); how the polls went."""
        started = time.perf_counter()
        self.refresh_inventory(self.poller.submit)
        self.poller.run_first_cycle()
        self.fetch_savings()
        polled = [s for s in self.store.snapshot() if s.polled]
        ok = sum(1 for s in polled if s.up)
        return CycleResult(ok, len(polled) - ok, time.perf_counter() - started)

    def fetch_savings(self) -> None:
        """The savings of every device and organization now, on the scheduler's workers and
        budget, and wait for them (--once, tests)."""
        jobs = self.savings.all_jobs()
        if jobs:
            for job in jobs:
                self.poller.submit(job)
            self.poller.run_first_cycle()

    def start(self) -> None:
        """Polling at once for what is known; listings and detail calls as jobs beside the
        polls (every inventory interval again), and rendering in the background."""
        # A scrape mostly waits for its socket; each time it wakes it needs the GIL back
        # from busy threads (status pages, parsing). Handing it over every millisecond
        # instead of every 5 keeps scrapes fast when the process is busy.
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.poller.set_background(self.savings)
        self._spawn("scheduler", self.poller.run)
        self._spawn("inventory", self._inventory_loop)
        self._spawn("render", self.page.run_refresher)

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _inventory_loop(self, stop: threading.Event) -> None:
        while True:
            self._guarded(lambda: self.refresh_inventory(self.poller.submit))
            if stop.wait(self.inventory_interval):
                return

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

    def reloader(
        self, load: Callable[[], Config], wait_seconds: float = RELOAD_WAIT_SECONDS
    ) -> Reloader:
        """A started reloader that applies `load()`'s config; one that is late shows as a
        failed reload until it finishes."""
        return Reloader(
            lambda: self.reload(load),
            wait_seconds=wait_seconds,
            on_overdue=self._reload_failed,
        ).start()

    def _reload_failed(self) -> None:
        """Count a failed (or overdue) reload, and show it on the next scrape already."""
        self.telemetry.config_loaded(False, self.clock.time())
        self.page.update()

    def reload(self, load: Callable[[], Config]) -> str | None:
        """Apply a new config; on any error keep the running one and return the reason.
        Only what changed is touched: every unchanged inverter keeps its schedule, backoff
        and last data."""
        with self._reload_lock:
            try:
                new = load()
            except ConfigError as exc:
                self._reload_failed()
                log.error("reload refused, keeping the running config", extra=kv(reason=str(exc)))
                return str(exc)
            old = self.config
            self.config = new
            if new.podero != old.podero or new.shard != old.shard:
                # Credentials, endpoints or the budget's share changed: a fresh client.
                self.bodies.resize(body_budget(new))
                self.client = build_client(new, self.clock, self.telemetry, self.bodies)
                self.poller.set_client(self.client)
                self.savings.set_client(self.client)
            if new.podero != old.podero or new.discovery != old.discovery:
                self.discovery = self._new_discovery()
            if new.poll != old.poll or new.podero.max_concurrency != old.podero.max_concurrency:
                self.poller.set_poll(new.poll, new.podero.max_concurrency)
            self.poller.units = new.units
            self.savings.set_config(new)
            self.targets.set_config(new)
            self.telemetry.follow_timezone(new.timezone, self.clock.time)
            self.page.update()  # the answer to a reload shows on the next scrape already
            if new.discovery != old.discovery or new.inverters != old.inverters:
                self._guarded(lambda: self.refresh_inventory(self.poller.submit))
            self.telemetry.config_loaded(True, self.clock.time())
            log.info("config reloaded", extra=kv(inverters=len(self.targets)))
            return None


class Reloader:
    """One thread that runs reloads; `/-/reload` and SIGHUP only ask for one. Requests that
    arrive while a reload runs are all served by the one run after it, so a reload that hangs
    holds this thread alone, never a web worker or a thread per signal."""

    def __init__(
        self,
        reload: Callable[[], str | None],
        *,
        wait_seconds: float = RELOAD_WAIT_SECONDS,
        on_overdue: Callable[[], None] = lambda: None,
    ) -> None:
        self._reload = reload
        self.wait_seconds = wait_seconds
        self._on_overdue = on_overdue
        self._changed = threading.Condition()
        self._wake = threading.Event()
        self._asked = 0  # requests are numbered 1, 2, ...
        self._served = 0  # every request up to this number has had a run begin after it
        self._result: str | None = None
        self._waiting = 0  # callers of ask() waiting for their run
        self._stopped = False
        self.runs = 0  # reloads begun
        self._thread = threading.Thread(target=self._loop, name="reloader", daemon=True)

    def start(self) -> Reloader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def ask_soon(self) -> None:
        """Ask for a reload without waiting for it (the main thread does, for each SIGHUP)."""
        with self._changed:
            self._asked += 1
        self._wake.set()

    def ask(self, timeout: float | None = None) -> str | None:
        """Ask for a reload and wait for a run that began after the request (at most
        `timeout`, default `wait_seconds`): None if it succeeded, else the reason. Raises
        TimeoutError if none finished in time (at once if RELOAD_WAITERS callers wait
        already); the run goes on in the reloader."""
        with self._changed:
            self._asked += 1
            ticket = self._asked
            waiting = self._waiting < RELOAD_WAITERS
            self._waiting += waiting
        self._wake.set()
        if not waiting:
            raise TimeoutError("reload still running")
        wait = self.wait_seconds if timeout is None else timeout
        with self._changed:
            try:
                if not self._changed.wait_for(lambda: self._served >= ticket, wait):
                    raise TimeoutError("reload still running")
                return self._result
            finally:
                self._waiting -= 1

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            with self._changed:
                upto = self._asked
                due = upto > self._served
                if due:
                    self.runs += 1
            if not due:
                continue
            result = self._run_one()
            with self._changed:
                self._served = max(self._served, upto)
                self._result = result
                self._changed.notify_all()

    def _run_one(self) -> str | None:
        # A reload that hangs (a config file on a dead mount) is reported once it is late;
        # the running config stays until it finishes.
        overdue = threading.Timer(self.wait_seconds, self._overdue)
        overdue.daemon = True
        overdue.start()
        try:
            return self._reload()
        except Exception as exc:  # the reloader must outlive any reload
            log.exception("reload failed, keeping the running config")
            return f"{type(exc).__name__}: {exc}"
        finally:
            overdue.cancel()

    def _overdue(self) -> None:
        log.error(
            "reload still running, keeping the running config until it finishes",
            extra=kv(seconds=self.wait_seconds),
        )
        self._on_overdue()
