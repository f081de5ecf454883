"""When requests reach the simulator: the busiest one-second window and counts per whole second,
in all and per client (the access token a request carries), so that a benchmark can check a
request budget from the server's side, for one exporter or several sharing a credential."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

# Requests without an access token (the token requests themselves, or a client that sends none).
NO_TOKEN = "no-token"
# Per-second counts cover this many seconds after a reset (a long demo must not grow without
# bound); later arrivals still count in `requests` and `busiest_second`.
MAX_SECONDS = 86_400


class _Counts:
    """Arrivals of one client (or of all): per whole second since the reset, and the busiest
    sliding one-second window."""

    def __init__(self, first_second: int) -> None:
        self.first_second = first_second
        self.per_second: list[int] = []
        self.window: deque[float] = deque()
        self.busiest = 0
        self.requests = 0

    def note(self, elapsed: float) -> None:
        second = int(elapsed) - self.first_second
        if int(elapsed) < MAX_SECONDS:
            if second >= len(self.per_second):
                self.per_second.extend([0] * (second + 1 - len(self.per_second)))
            self.per_second[second] += 1
        self.requests += 1
        self.window.append(elapsed)
        while self.window[0] <= elapsed - 1.0:
            self.window.popleft()
        self.busiest = max(self.busiest, len(self.window))

    def stats(self) -> dict[str, Any]:
        return {
            "first_second": self.first_second,
            "per_second": list(self.per_second),
            "busiest_second": self.busiest,
            "requests": self.requests,
        }


class Arrivals:
    """Request arrivals on a monotonic clock (the real one unless a test gives another).

    `per_second[i]` counts the requests that arrived in second i after the last reset (whole,
    fixed windows); `busiest_second` is the most in any one-second window, wherever it starts.
    Each client's `per_second` starts at its `first_second` (the second of its first request).
    Per-second counts stop `MAX_SECONDS` after the reset."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._started = self._monotonic()
            self._all = _Counts(0)
            self._clients: dict[str, _Counts] = {}

    def elapsed(self) -> float:
        """Seconds since the last reset, on the arrivals' clock."""
        return self._monotonic() - self._started

    def note(self, client: str = NO_TOKEN) -> None:
        with self._lock:
            elapsed = max(0.0, self._monotonic() - self._started)
            self._all.note(elapsed)
            counts = self._clients.get(client)
            if counts is None:
                counts = self._clients[client] = _Counts(int(elapsed))
            counts.note(elapsed)

    @property
    def busiest_second(self) -> int:
        with self._lock:
            return self._all.busiest

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "elapsed_seconds": self._monotonic() - self._started,
                "busiest_second": self._all.busiest,
                "per_second": list(self._all.per_second),
                "clients": {name: c.stats() for name, c in self._clients.items()},
            }
