"""The global request budget on a fake clock."""

from __future__ import annotations

import threading

from exporter.api.budget import RequestBudget
from tests.fakes import FakeClock


def busiest_window(times: list[float], width: float = 1.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - width:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_never_more_than_the_budget_in_any_one_second_window() -> None:
    clock = FakeClock(0.0)
    budget = RequestBudget(20, clock)
    sent = []
    for _ in range(500):
        budget.acquire()
        sent.append(clock.time())
    assert busiest_window(sent) == 20
    assert sent[-1] >= 499 / 20  # and it is not slower than it must be by much
    assert sent[-1] < 499 / 20 * 1.05


def test_idle_budget_lets_the_first_request_through_at_once() -> None:
    clock = FakeClock(100.0)
    budget = RequestBudget(5, clock)
    assert budget.acquire() == 0
    clock.advance(10)
    assert budget.acquire() == 0


def test_slots_are_unique_across_threads() -> None:
    class Recording(FakeClock):
        def sleep(self, seconds: float) -> None:
            self.sleeps.append(seconds)  # do not move time: each thread's wait is its slot

    clock = Recording(0.0)
    budget = RequestBudget(10, clock)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        w = budget.acquire()
        with lock:
            waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert busiest_window(waits) <= 10
    assert len(set(round(w, 6) for w in waits)) == 40
