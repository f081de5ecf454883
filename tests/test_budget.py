"""The request budget on a fake clock, and each replica's share of the organization's."""

from __future__ import annotations

import math
import random
import threading

import pytest

from exporter.api.budget import RequestBudget, replica_share
from exporter.app import requests_per_second
from tests.conftest import minimal_config, to_config
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
    assert clock.sleeps == []  # not even a sleep(0)


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


TOTAL = 25


@pytest.mark.parametrize(
    ("count", "shares"),
    [
        (1, [25]),
        (2, [13, 12]),
        (3, [9, 8, 8]),
        (4, [7, 6, 6, 6]),
        (7, [4, 4, 4, 4, 3, 3, 3]),
    ],
)
def test_each_replica_takes_its_share_of_the_organizations_budget(
    count: int, shares: list[int]
) -> None:
    assert [replica_share(TOTAL, i, count) for i in range(count)] == shares
    assert sum(shares) == TOTAL


def test_as_many_whole_requests_as_replicas_gives_each_exactly_one() -> None:
    # Not a hair under one (the rule below one request per second each).
    assert [replica_share(3, i, 3) for i in range(3)] == [1.0, 1.0, 1.0]
    assert [replica_share(3.5, i, 3) for i in range(3)] == [1.0, 1.0, 1.0]
    assert replica_share(2.9, 0, 3) < 2.9 / 3


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10, 25, 26, 64, 300])
@pytest.mark.parametrize("total", [0.5, 1, 3, 9.99, 20, 25, 25.5, 100, 1000.3, 10_000])
def test_the_shares_never_add_up_to_more_than_the_total(total: float, count: int) -> None:
    shares = [replica_share(total, i, count) for i in range(count)]
    assert all(s > 0 for s in shares)
    assert sum(shares) <= total and math.fsum(shares) <= total
    # Little is left unused: less than one request per second in all.
    assert total - sum(shares) < 1


@pytest.mark.parametrize("count", [2, 3, 4, 7])
def test_replicas_together_never_exceed_the_total_in_any_second(count: int) -> None:
    """Each replica on its own budget, started at unrelated moments: the requests of all of
    them, merged as the API sees them, stay within the organization's budget in every
    one-second window."""
    phases = random.Random(count)
    sent: list[float] = []
    for index in range(count):
        clock = FakeClock(phases.uniform(0, 1))
        budget = RequestBudget(replica_share(TOTAL, index, count), clock)
        for _ in range(200):
            budget.acquire()
            sent.append(clock.time())
    assert busiest_window(sent) <= TOTAL


def test_an_even_fraction_would_exceed_the_total_in_some_second() -> None:
    """Why the shares are whole requests: two replicas of 12.5/s, in step, send 26 in one
    second."""
    sent: list[float] = []
    for _ in range(2):
        clock = FakeClock(0.0)
        budget = RequestBudget(TOTAL / 2, clock)
        for _ in range(100):
            budget.acquire()
            sent.append(clock.time())
    assert busiest_window(sent) == 26


@pytest.mark.parametrize(("index", "expected"), [(0, 7), (3, 6)])
def test_the_exporter_takes_its_replicas_share(index: int, expected: int) -> None:
    raw = minimal_config(shard={"count": 4, "index": index})
    raw["podero"]["max_requests_per_second"] = TOTAL
    assert requests_per_second(to_config(raw)) == expected
