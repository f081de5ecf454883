"""The scheduler of all API work: each inverter's poll when it is due, the listing and detail
jobs of discovery, and background work (the savings), on one bounded pool of
`max_concurrency` workers (and so on one request budget). Due polls go first; jobs fill the
workers that polls leave free, so polling never waits for a listing or an inventory round;
background work takes only what neither wants, never the last free worker. Poll results go
into the store."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Protocol

from exporter.api.client import PoderoClient
from exporter.api.transport import ApiError
from exporter.base.clock import Clock, Stopped
from exporter.base.logs import kv
from exporter.config.model import PollConfig
from exporter.config.savings import UnitsConfig
from exporter.kinds import registry
from exporter.state.energy import EnergyTotals, add_completed_buckets
from exporter.state.readings import DataPoint, latest_reading
from exporter.state.savings import PriceUnits
from exporter.state.schedule import PollSchedule, after_poll, aligned_at_or_after, phase_offset
from exporter.state.store import ReadingStore
from exporter.state.targets import DeviceTarget

log = logging.getLogger(__name__)
Job = Callable[[], None]


class BackgroundWork(Protocol):
    """Work of the lowest priority (the savings): a job when one is due, and when next."""

    def next_job(self, now: float) -> Job | None: ...

    def next_wakeup(self) -> float | None: ...


@dataclass(frozen=True)
class Background:
    """A job of `BackgroundWork`, as the workers see it."""

    run: Job


class PollObserver(Protocol):
    """Receives the duration and outcome of every inverter poll."""

    def poll_done(self, seconds: float, ok: bool) -> None: ...


@dataclass(frozen=True)
class CycleResult:
    """How a poll of many inverters went."""

    succeeded: int
    failed: int
    seconds: float


class Poller:
    """Polls inverters on their schedules and records the outcome of each poll."""

    def __init__(
        self,
        client: PoderoClient,
        store: ReadingStore,
        clock: Clock,
        poll: PollConfig,
        *,
        targets: Iterable[DeviceTarget],
        max_concurrency: int,
        observer: PollObserver,
    ) -> None:
        self._client = client
        self._store = store
        self._clock = clock
        self._poll = poll
        self._observer = observer
        self._concurrency = max_concurrency
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="poll")
        self._lock = threading.Lock()
        self._targets: dict[str, DeviceTarget] = {}
        self._schedules: dict[str, PollSchedule] = {}
        self._queue: list[tuple[float, str]] = []
        self._jobs: deque[Job] = deque()
        self._jobs_turn = False  # due polls and jobs alternate when both wait
        self._unpolled_due: deque[str] = deque()  # new inverters, in the order they came
        self._in_flight: set[str] = set()
        self._unpolled: set[str] = set()
        self._running = 0
        self._jobs_running = 0
        self._background: BackgroundWork | None = None
        self._background_running = 0
        self.units = UnitsConfig()  # the fallback for the units the data's metadata omits
        self._repeat_polls = True  # False in run_first_cycle: first polls and jobs only
        # Notified whenever a worker finishes (under the lock): what run_first_cycle waits on.
        self._progress = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._closed = False
        self.after_poll: Callable[[], None] = lambda: None  # called after every poll
        self.apply_targets(list(targets), [])

    def apply_targets(self, changed: list[DeviceTarget], removed: list[str]) -> None:
        """New inverters are due at once; changed ones keep their schedules; removed ones go."""
        now = self._clock.time()
        # A wallbox (inventory only) is never polled: as good as removed here.
        gone = [*removed, *(t.device_id for t in changed if not t.polled)]
        with self._lock:
            for device_id in gone:
                self._targets.pop(device_id, None)
                self._schedules.pop(device_id, None)
                self._unpolled.discard(device_id)
            for target in changed:
                if not target.polled:
                    continue
                device_id = target.device_id
                self._targets[device_id] = target
                if device_id not in self._schedules:
                    offset = phase_offset(device_id, self._poll.interval_seconds)
                    self._schedules[device_id] = PollSchedule(offset=offset, next_poll=now)
                    self._unpolled.add(device_id)
                    self._unpolled_due.append(device_id)
                    self._enqueue(now, device_id)
        self._wake.set()

    def submit(self, job: Job) -> None:
        """Run `job` (a listing or detail call) on a free worker, taking turns with due polls."""
        with self._lock:
            self._jobs.append(job)
        self._wake.set()

    def set_background(self, work: BackgroundWork | None) -> None:
        """Hand out `work`'s jobs when no poll is due, no job waits, and a worker stays free
        for the next due poll (with one worker only, that worker)."""
        with self._lock:
            self._background = work
        self._wake.set()

    def all_polled(self) -> bool:
        """Whether every inverter has been polled at least once."""
        with self._lock:
            return not self._unpolled

    def set_client(self, client: PoderoClient) -> None:
        """Use this client (new credentials or endpoints) from the next poll on."""
        self._client = client

    def set_poll(self, poll: PollConfig, max_concurrency: int) -> None:
        """Apply new poll settings and concurrency, keeping every inverter's learned schedule
        (publication lag, newest point, backoff); a new interval moves only the phase grid."""
        with self._lock:
            old, self._poll = self._poll, poll
            if poll.interval_seconds != old.interval_seconds:
                interval = poll.interval_seconds
                for device_id, schedule in self._schedules.items():
                    offset = phase_offset(device_id, interval)
                    self._schedules[device_id] = replace(
                        schedule,
                        offset=offset,
                        next_poll=aligned_at_or_after(schedule.next_poll, interval, offset),
                    )
                self._queue = [(s.next_poll, i) for i, s in self._schedules.items()]
                heapq.heapify(self._queue)
            if max_concurrency != self._concurrency:
                retired, self._concurrency = self._executor, max_concurrency
                self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="poll")
                retired.shutdown(wait=False)
        self._wake.set()

    def poll_one(self, target: DeviceTarget) -> bool:
        """Poll one inverter now and record the result; True if the API answered usefully."""
        started = time.perf_counter()
        now = self._clock.time()
        # The body's share of the byte budget is held until its points are used up: two
        # threads' points of capped bodies would otherwise overlap.
        with self._client.holding_bodies():
            ok, reading, newest, energy, error, price = self._poll_data(target, now)
        done = self._clock.time()
        with self._lock:
            schedule = self._schedules.get(target.device_id)
            if schedule is not None:
                schedule = after_poll(
                    schedule,
                    now=done,
                    ok=ok,
                    newest=newest,
                    interval=self._poll.interval_seconds,
                    resolution=self._poll.resolution_seconds,
                    skip_until_due=self._poll.skip_until_due,
                )
                self._schedules[target.device_id] = schedule
                self._enqueue(schedule.next_poll, target.device_id)
        next_poll = schedule.next_poll if schedule else None
        kind = target.kind
        if ok:
            self._store.record_success(
                target.device_id, reading, done, next_poll, energy, kind, price
            )
        else:
            self._store.record_failure(target.device_id, error, done, next_poll, energy, kind)
        with self._lock:
            self._unpolled.discard(target.device_id)
        self._observer.poll_done(time.perf_counter() - started, ok)
        self.after_poll()
        return ok

    def _poll_data(
        self, target: DeviceTarget, now: float
    ) -> tuple[bool, DataPoint | None, float | None, EnergyTotals | None, str, PriceUnits | None]:
        """Fetch and use one device's points: (ok, reading, newest, energy, error, what its
        prices are counted in)."""
        ok, newest, reading, error, price = False, None, None, "", None
        points: list[DataPoint] = []
        try:
            points, price = self._fetch(target, now)
        except ApiError as exc:
            error = exc.reason
            log.warning(
                "poll failed",
                extra=kv(
                    **target.log_fields(),
                    endpoint=exc.endpoint,
                    status=exc.status,
                    reason=exc.reason,
                ),
            )
        except Stopped:
            raise
        except Exception as exc:  # a bug must not stop the loop; it is logged with its trace
            error = f"internal error: {type(exc).__name__}"
            log.exception("poll crashed", extra=kv(**target.log_fields()))
        else:
            ok = True
            reading = latest_reading(points, now, target.kind)
            newest = reading.time if reading else None
        # Energy totals are an inverter's (its power flows); other kinds have none yet.
        energy = (
            self._energy_after(target, now, points) if registry.get(target.kind).energy else None
        )
        return ok, reading, newest, energy, error, price

    def _fetch(self, target: DeviceTarget, now: float) -> tuple[list[DataPoint], PriceUnits | None]:
        """The device's data points of the lookback window, from its kind's data endpoint,
        and what its prices are counted in."""
        start, resolution = now - self._poll.lookback_seconds, self._poll.resolution
        return self._client.device_series(
            target.kind,
            target.org_id,
            target.user_id,
            target.device_id,
            start=start,
            end=now,
            resolution=resolution,
            units=self.units,
        )

    def _energy_after(
        self, target: DeviceTarget, now: float, points: list[DataPoint]
    ) -> EnergyTotals:
        """The inverter's energy totals with the buckets of this poll; they start (at zero)
        with its first poll. (One inverter is never polled twice at once.)"""
        state = self._store.get(target.device_id)
        totals = state.energy if state is not None and state.energy is not None else None
        if totals is None:
            totals = EnergyTotals(since=now)
        return add_completed_buckets(
            totals,
            points,
            now=now,
            bucket_seconds=self._poll.resolution_seconds,
            horizon=self._poll.lookback_seconds,
        )

    def _enqueue(self, when: float, device_id: str) -> None:
        """Queue a poll (lock held). Entries superseded by a newer schedule are skipped when
        popped; if polls outside the loop (poll_all) pile them up, the queue is rebuilt."""
        heapq.heappush(self._queue, (when, device_id))
        if len(self._queue) > 2 * len(self._schedules) + 1024:
            self._queue = [(s.next_poll, i) for i, s in self._schedules.items()]
            heapq.heapify(self._queue)

    def poll_all(self) -> CycleResult:
        """Poll every inverter now, concurrently, and wait for all of them."""
        with self._lock:
            targets = list(self._targets.values())
        return self.poll_many(targets)

    def poll_many(self, targets: list[DeviceTarget]) -> CycleResult:
        """Poll these inverters now, concurrently, and wait for all of them."""
        started = time.perf_counter()
        succeeded = 0
        # A sliding window of queued polls instead of one future per inverter up front: the
        # same throughput, without 10,000 pending futures in memory.
        window = 4 * self._concurrency
        pending: set[Future[bool]] = set()
        for target in targets:
            if len(pending) >= window:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                succeeded += sum(1 for f in done if f.exception() is None and f.result())
            pending.add(self._executor.submit(self.poll_one, target))
        done, _ = wait(pending)
        succeeded += sum(1 for f in done if f.exception() is None and f.result())
        return CycleResult(succeeded, len(targets) - succeeded, time.perf_counter() - started)

    def run_first_cycle(self) -> None:
        """Run the scheduler, as the daemon does, until every inverter has been polled once and
        no job (listing, detail call) waits or runs: --once, with its inventory on the same
        workers and budget as the polls. No device is polled twice meanwhile."""
        self._repeat_polls = False
        stop = threading.Event()
        loop = threading.Thread(target=self.run, args=(stop,), name="scheduler", daemon=True)
        loop.start()
        try:
            with self._progress:
                while loop.is_alive() and (self._unpolled or self._jobs or self._jobs_running):
                    self._progress.wait(1.0)
        finally:
            stop.set()
            self._wake.set()
            loop.join()
            self._repeat_polls = True

    def next_wakeup(self) -> float | None:
        with self._lock:
            poll = self._queue[0][0] if self._queue else None
            background = self._background.next_wakeup() if self._background else None
        known = [t for t in (poll, background) if t is not None]
        return min(known) if known else None

    def run(self, stop: threading.Event) -> None:
        """Hand due polls, then jobs, to free workers until `stop` is set."""
        try:
            while not stop.is_set():
                self._wake.clear()
                self._dispatch(self._clock.time())
                upcoming = self.next_wakeup()
                delay = 1.0 if upcoming is None else upcoming - self._clock.time()
                self._wake.wait(min(max(delay, 0.01), 1.0))
        except Stopped:
            pass
        except RuntimeError:
            # close() shut the workers down while this loop was handing out work: stopping.
            if not self._closed:
                raise

    def _dispatch(self, now: float) -> None:
        while True:
            with self._lock:
                if self._running >= self._concurrency:
                    return
                item = self._next_item(now)
                if item is None:
                    return
                self._running += 1
                if isinstance(item, Background):
                    self._background_running += 1
                elif not isinstance(item, DeviceTarget):
                    self._jobs_running += 1
            self._executor.submit(self._work, item)

    def _next_item(self, now: float) -> DeviceTarget | Job | Background | None:
        """The most urgent work (lock held): an inverter's first poll before anything (it is
        what a listing was for); then due polls and jobs take turns, so that neither a poll
        storm (a new bucket everywhere at once) stalls discovery nor a listing round of
        10,000 homes delays fresh data by more than half."""
        while self._unpolled_due:
            device_id = self._unpolled_due.popleft()
            if device_id in self._unpolled and device_id not in self._in_flight:
                self._in_flight.add(device_id)
                return self._targets[device_id]
        self._jobs_turn = not self._jobs_turn
        if self._jobs_turn and self._jobs:
            return self._jobs.popleft()
        poll = self._next_due_poll(now) if self._repeat_polls else None
        if poll is not None:
            return poll
        if self._jobs:
            return self._jobs.popleft()
        return self._next_background(now)

    def _next_background(self, now: float) -> Background | None:
        """Background work (lock held), called only when no poll is due and no job waits;
        it leaves one worker for the next poll that comes due (none if there is one only)."""
        work = self._background
        if work is None or not self._repeat_polls:
            return None
        if self._background_running >= max(1, self._concurrency - 1):
            return None
        job = work.next_job(now)
        return Background(job) if job is not None else None

    def _next_due_poll(self, now: float) -> DeviceTarget | None:
        while self._queue and self._queue[0][0] <= now:
            when, device_id = heapq.heappop(self._queue)
            schedule = self._schedules.get(device_id)
            # Skip heap entries left behind by a reschedule or a removed inverter.
            if schedule is None or schedule.next_poll != when or device_id in self._in_flight:
                continue
            self._in_flight.add(device_id)
            return self._targets[device_id]
        return None

    def _work(self, item: DeviceTarget | Job | Background) -> None:
        try:
            if isinstance(item, DeviceTarget):
                self.poll_one(item)
            elif isinstance(item, Background):
                item.run()
            else:
                item()
        except Stopped:
            pass
        except Exception:  # a bug in a job must not cost the worker
            log.exception("scheduled job failed")
        finally:
            with self._lock:
                self._running -= 1
                if isinstance(item, DeviceTarget):
                    self._in_flight.discard(item.device_id)
                elif isinstance(item, Background):
                    self._background_running -= 1
                else:
                    self._jobs_running -= 1
                self._progress.notify_all()
            self._wake.set()

    def close(self) -> None:
        """Stop taking work; polls in flight are abandoned (their threads end on their own)."""
        self._closed = True
        self._wake.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
