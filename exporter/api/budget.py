"""The request budget: never more than N requests to the API in any one-second window, where N
is this replica's share of the organization's budget."""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from exporter.base.clock import Clock

# Requests are spaced slightly wider than 1/N so that scheduling jitter between leaving the
# budget and reaching the server cannot squeeze N+1 requests into one second at the server.
SPACING_MARGIN = 1.02
SUM_MARGIN = 1e-9
# The window of the cap on departures: as much wider than a second as the slots' spacing,
# which therefore never makes a request wait at the budget's pace, and absorbs 20 ms of
# jitter between leaving the budget and reaching the server (with a 1 ms margin, replicas
# starved of CPU still sent 52 in a second against a share of 50).
CAP_WINDOW = SPACING_MARGIN


class RequestBudget:
    """Hands out send slots spaced 1/rate apart, first come first served, across all threads;
    a thread inside `yielding()` takes only a slot that is free at once, after everyone else.

    And a hard cap on when requests actually leave: a thread that wakes late for its slot (a
    process starved of CPU wakes many at once) goes only while fewer than `floor(rate)`
    requests left within the last CAP_WINDOW (1.02 s). Without it, a stalled replica sent
    the slots it missed together with the next second's: 85 requests in one second against
    a share of 50, with four replicas and their simulator on two cores
    (benchmarks/bench_replicas.py)."""

    def __init__(self, requests_per_second: float, clock: Clock) -> None:
        self._spacing = SPACING_MARGIN / requests_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._next_slot = float("-inf")
        self._local = threading.local()
        # The moments requests left within the last window, in order (no cap below one
        # request per second, where the spacing alone is the budget).
        self._limit = math.floor(requests_per_second)
        self._left: list[float] = []

    @contextmanager
    def yielding(self) -> Iterator[None]:
        """In the block, this thread's requests reserve no slot ahead: each waits until the
        budget is idle and takes the slot of that moment, so that a request of the normal
        kind (a data poll) arriving meanwhile goes first and is never pushed back by more
        than the one slot being sent."""
        before = getattr(self._local, "yielding", False)
        self._local.yielding = True
        try:
            yield
        finally:
            self._local.yielding = before

    def acquire(self) -> float:
        """Block until this caller's slot and until the request may leave; how long it
        waited."""
        slot, waited = self.take_slot()
        return waited + self.depart(slot)

    def take_slot(self) -> tuple[float, float]:
        """Block until this caller's slot: (the slot, how long it waited). The request then
        leaves through `depart(slot)`, called as close to the socket as the caller can."""
        if getattr(self._local, "yielding", False):
            return float("-inf"), self._acquire_idle()
        slot = self.reserve()
        return slot, self._sleep_until(slot)

    def reserve(self) -> float:
        """The next free slot (a monotonic moment), taken for the caller."""
        with self._lock:
            slot = max(self._clock.monotonic(), self._next_slot)
            self._next_slot = slot + self._spacing
        return slot

    def wait_for(self, slot: float) -> float:
        """Block until `slot`, and then until the request may leave; how long it waited."""
        return self._sleep_until(slot) + self.depart(slot)

    def _sleep_until(self, slot: float) -> float:
        wait = slot - self._clock.monotonic()
        if wait > 0:
            self._clock.sleep(wait)
        return max(0.0, wait)

    def depart(self, slot: float = float("-inf")) -> float:
        """Wait while `limit` requests left in the last window; then count this one as
        leaving now (never before its slot); how long it waited. The transport calls it just
        before a request's first byte goes to the socket: a thread that took its slot and
        then waited for the interpreter (64 workers, a render, a process starved of CPU)
        leaves no earlier than it is counted."""
        waited = 0.0
        while True:
            with self._lock:
                now = max(self._clock.monotonic(), slot)
                while self._left and self._left[0] + CAP_WINDOW <= now:  # as `due` below
                    del self._left[0]
                recent = bisect.bisect_right(self._left, now)  # left by now, in the window
                if not self._limit or recent < self._limit:
                    bisect.insort(self._left, now)
                    return waited
                due = self._left[recent - self._limit] + CAP_WINDOW
                wait = due - now
            self._clock.sleep(wait)
            waited += wait
            slot = due  # not before it, even if the clock's sleep came back a hair early

    def _acquire_idle(self) -> float:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock.monotonic()
                if self._next_slot <= now:
                    self._next_slot = now + self._spacing
                    return waited
                wait = self._next_slot - now
            # Someone holds the slots up to then; one reserved meanwhile moves it on again.
            self._clock.sleep(wait)
            waited += wait


def replica_share(total: float, index: int, count: int) -> float:
    """Requests per second for replica `index` of `count` out of the organization's `total`.

    Whole requests, split as evenly as they go (the first `floor(total) mod count` replicas take
    one more): a replica of share k sends at most k in any one-second window, so the replicas
    together never exceed `total` in any window, whatever their phases. (An even fraction such
    as 25 / 2 = 12.5 would let each send 13 in some window: 26 together.) Below one request
    per second each, every replica takes `total / count`, which holds on average only."""
    whole = math.floor(total)
    if count == 1:
        return total
    if whole < count:
        # A hair under the exact fraction, so that adding up the shares cannot round above.
        return total / count * (1 - SUM_MARGIN)
    base, extra = divmod(whole, count)
    return float(base + (1 if index < extra else 0))
