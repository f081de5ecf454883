"""The request budget: never more than N requests to the API in any one-second window, where N
is this replica's share of the organization's budget."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from exporter.base.clock import Clock

# Requests are spaced slightly wider than 1/N so that scheduling jitter between leaving the
# budget and reaching the server cannot squeeze N+1 requests into one second at the server.
SPACING_MARGIN = 1.02
SUM_MARGIN = 1e-9


class RequestBudget:
    """Hands out send slots spaced 1/rate apart, first come first served, across all threads;
    a thread inside `yielding()` takes only a slot that is free at once, after everyone else."""

    def __init__(self, requests_per_second: float, clock: Clock) -> None:
        self._spacing = SPACING_MARGIN / requests_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._next_slot = float("-inf")
        self._local = threading.local()

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
        """Block until this caller's slot; returns how long it waited."""
        if getattr(self._local, "yielding", False):
            return self._acquire_idle()
        with self._lock:
            now = self._clock.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._spacing
        wait = slot - now
        if wait > 0:
            self._clock.sleep(wait)
        return max(0.0, wait)

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
