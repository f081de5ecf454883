"""Test doubles: a clock that moves only when told to, and driving the poller by hand."""

from __future__ import annotations

from exporter.poller import CycleResult, Poller
from exporter.sim.clock import ManualClock


class FakeClock(ManualClock):
    """The simulator's manual clock, remembering every sleep (unless told not to, for long
    benchmark runs)."""

    def __init__(self, start: float = 1_700_000_000.0, *, record_sleeps: bool = True) -> None:
        super().__init__(start)
        self._record = record_sleeps
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        if self._record:
            self.sleeps.append(seconds)
        super().sleep(seconds)


def poll_due(poller: Poller, now: float) -> CycleResult:
    """Poll, and wait for, every inverter whose next poll is due by `now` (what the
    scheduler's loop would hand out, all at once: for tests and benchmarks that move a fake
    clock instead of running the loop)."""
    due = []
    with poller._lock:
        while (target := poller._next_due_poll(now)) is not None:
            due.append(target)
    try:
        return poller.poll_many(due)
    finally:
        with poller._lock:
            for target in due:
                poller._in_flight.discard(target.device_id)
