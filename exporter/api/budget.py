"""A global request budget: never more than N requests to the API in any one-second window."""

from __future__ import annotations

import threading

from exporter.base.clock import Clock

# Requests are spaced slightly wider than 1/N so that scheduling jitter between leaving the
# budget and reaching the server cannot squeeze N+1 requests into one second at the server.
SPACING_MARGIN = 1.02


class RequestBudget:
    """Hands out send slots spaced 1/rate apart, first come first served, across all threads."""

    def __init__(self, requests_per_second: float, clock: Clock) -> None:
        self._spacing = SPACING_MARGIN / requests_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._next_slot = float("-inf")

    def acquire(self) -> float:
        """Block until this caller's slot; returns how long it waited."""
        with self._lock:
            now = self._clock.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._spacing
        wait = slot - now
        if wait > 0:
            self._clock.sleep(wait)
        return max(0.0, wait)
