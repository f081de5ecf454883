"""Time as a dependency: the real clock for the daemon, a fake one for tests and benchmarks."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Stopped(Exception):
    """Raised by a clock's sleep when the process is shutting down."""


class Clock(Protocol):
    """Wall time for data timestamps and a sleep that can be interrupted."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock; `sleep` ends early (raising Stopped) once `stop()` is called."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if self._stop.wait(max(0.0, seconds)):
            raise Stopped()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


class FakeClock:
    """A clock that only moves when told to; `sleep` advances it instead of waiting."""

    def __init__(self, start: float = 1_700_000_000.0, *, record_sleeps: bool = True) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._record = record_sleeps  # long benchmark runs keep no history
        self.sleeps: list[float] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.time()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            if self._record:
                self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, now: float) -> None:
        with self._lock:
            self._now = now
