"""When requests reach the simulator: the busiest one-second window and counts per whole second,
in all and per client (the access token a request carries), so that a benchmark can check a
request budget from the server's side, for one exporter or several sharing a credential. A
request counts when it reached the host (the kernel's receive time, on Linux), not when a busy
simulator got round to parsing it."""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# Linux's SO_TIMESTAMP (= SCM_TIMESTAMP; 29 on x86 and Arm), which the socket module does not
# name: the kernel stamps each received packet with the wall-clock time it arrived (a timeval).
SO_TIMESTAMP = 29 if sys.platform == "linux" else None
_TIMEVAL = struct.Struct("@qq")
# Requests without an access token (the token requests themselves, or a client that sends none).
NO_TOKEN = "no-token"
# Per-second counts cover this many seconds after a reset (a long demo must not grow without
# bound); later arrivals still count in `requests` and `busiest_second`.
MAX_SECONDS = 86_400


# Arrival times are kept per whole second until this many seconds after the newest, for the
# sliding windows; a note later than that (a thread stalled that long) counts per second only.
SETTLE_SECONDS = 5


class _Counts:
    """Arrivals of one client (or of all): per whole second since the reset, and the busiest
    sliding one-second window (exact, whatever order the arrivals are noted in, as long as
    none is noted more than SETTLE_SECONDS after a later one)."""

    def __init__(self, first_second: int) -> None:
        self.first_second = first_second
        self.per_second: list[int] = []
        self.requests = 0
        self.first_arrival: float | None = None  # seconds after the reset
        self._recent: dict[int, list[float]] = {}  # whole second -> arrival times
        self._settled_below = first_second  # windows starting before this second are counted
        self._busiest_settled = 0

    def note(self, elapsed: float) -> None:
        whole = int(elapsed)
        second = whole - self.first_second
        if whole < MAX_SECONDS:
            if second >= len(self.per_second):
                self.per_second.extend([0] * (second + 1 - len(self.per_second)))
            self.per_second[second] += 1
        self.requests += 1
        if self.first_arrival is None or elapsed < self.first_arrival:
            self.first_arrival = elapsed
        if whole >= self._settled_below:
            self._recent.setdefault(whole, []).append(elapsed)
        newest = max(self._recent, default=whole)
        while self._settled_below < newest - SETTLE_SECONDS:
            start = self._settled_below
            self._busiest_settled = max(self._busiest_settled, self._busiest_from(start))
            self._recent.pop(start, None)
            self._settled_below = start + 1

    def _busiest_from(self, second: int) -> int:
        """The most arrivals in a one-second window [t, t + 1) with t in this whole second
        (such a window ends before the second after next)."""
        mine = self._recent.get(second)
        if not mine:
            return 0
        times = sorted(mine + self._recent.get(second + 1, []))
        most, end = 0, 0
        for i in range(len(mine)):
            while end < len(times) and times[end] < times[i] + 1.0:
                end += 1
            most = max(most, end - i)
        return most

    @property
    def busiest(self) -> int:
        return max([self._busiest_settled, *(self._busiest_from(s) for s in self._recent)])

    def stats(self) -> dict[str, Any]:
        return {
            "first_second": self.first_second,
            "first_arrival_seconds": self.first_arrival,
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

    def note(self, client: str = NO_TOKEN, at: float | None = None) -> None:
        """Count a request of `client` that arrived `at` (on the arrivals' clock; now if
        None). Notes may come slightly out of order: each counts in its own second."""
        with self._lock:
            elapsed = max(0.0, (self._monotonic() if at is None else at) - self._started)
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


def ask_for_timestamps(sock: socket.socket) -> None:
    """Have the kernel stamp the packets this socket receives (Linux; elsewhere nothing)."""
    if SO_TIMESTAMP is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)


class StampedSocketReader(io.RawIOBase):
    """A socket's reading side that keeps the kernel's arrival time of the latest bytes read
    (`stamp`, on the monotonic clock; None where the kernel gives none), so that a request is
    counted when it reached the host, not when a busy simulator got round to parsing it."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.stamp: float | None = None
        ask_for_timestamps(sock)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data, ancillary, _, _ = self._sock.recvmsg(len(buffer), socket.CMSG_SPACE(_TIMEVAL.size))
        # The kernel stamps packets only once timestamps are on (it turns them on a moment after
        # the first socket asks): bytes without a stamp leave None, never an older stamp.
        self.stamp = None
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(raw) >= _TIMEVAL.size:
                seconds, micros = _TIMEVAL.unpack(raw[: _TIMEVAL.size])
                self.stamp = seconds + micros / 1e6 - (time.time() - time.monotonic())
        buffer[: len(data)] = data
        return len(data)
