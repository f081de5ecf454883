"""Time as a dependency: the daemon runs on the system clock; tests inject their own."""

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
