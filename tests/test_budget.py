"""The request budget on a fake clock, and each replica's share of the organization's."""

from __future__ import annotations

import math
import random
import threading
from typing import Any

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
    clock = FakeClock(0.0)
    budget = RequestBudget(10, clock)
    slots: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        slot = budget.reserve()
        with lock:
            slots.append(slot)

    threads = [threading.Thread(target=take) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert busiest_window(slots) <= 10
    assert len(set(round(s, 6) for s in slots)) == 40


def test_a_process_that_wakes_late_sends_no_more_than_the_budget_in_a_second() -> None:
    clock = FakeClock(0.0)
    budget = RequestBudget(10, clock)
    slots = [budget.reserve() for _ in range(30)]  # 30 threads took their slots (0 to 3 s)
    clock.set(3.5)  # and the process got no CPU until every slot had passed
    left = []
    waited = []
    for slot in slots:  # each thread wakes and goes: as many as may in each second
        waited.append(budget.wait_for(slot))
        left.append(clock.monotonic())
    assert waited[:10] == [0.0] * 10 and waited[10] == pytest.approx(1.02)  # the cap's wait
    assert busiest_window(left) == 10
    assert left[9] == 3.5 and left[10] == pytest.approx(4.52) and left[-1] == pytest.approx(5.54)


class CutIn(FakeClock):
    """Twice, another thread's request leaves just as the thread under test wakes in the cap."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.budget: RequestBudget | None = None
        self.cuts = 0

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self.budget is not None and self.cuts < 2:
            self.cuts += 1
            self.budget.wait_for(self.monotonic())


def test_a_request_that_loses_its_turn_in_the_cap_waits_again_and_counts_every_wait() -> None:
    clock = CutIn(0.0)
    budget = RequestBudget(1, clock)  # one request in any 1.02 s
    budget.acquire()  # left at 0.0
    clock.budget = budget
    waited = budget.wait_for(0.0)  # its slot long past: only the cap holds it back
    assert clock.cuts == 2
    assert waited == pytest.approx(3 * 1.02) and clock.monotonic() == pytest.approx(3.06)


def test_requests_at_the_pace_of_the_budget_wait_for_nothing_more() -> None:
    clock = FakeClock(0.0)
    budget = RequestBudget(10, clock)
    waited = [budget.acquire() for _ in range(100)]
    # The spacing (1.02/10 s) alone keeps every window within 10: the cap never waits.
    assert waited[0] == 0 and all(math.isclose(w, 0.102) for w in waited[1:])


def test_yielding_requests_are_held_to_the_same_cap() -> None:
    clock = FakeClock(0.0)
    budget = RequestBudget(5, clock)
    slots = [budget.reserve() for _ in range(5)]
    clock.set(10.0)  # every reserved slot passed unused: the cap saw none of them
    for slot in slots:
        budget.wait_for(slot)
    with budget.yielding():
        # Five left at 10.0: the sixth waits until the cap's window (1.02 s) has passed.
        assert budget.acquire() == pytest.approx(1.02)
    assert clock.monotonic() == pytest.approx(11.02)


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
    """Why the shares are whole requests: two replicas of 12.5/s, in step, would take 26
    slots in one second (each replica's cap then holds it to 12: 24 together)."""
    slots: list[float] = []
    sent: list[float] = []
    for _ in range(2):
        clock = FakeClock(0.0)
        budget = RequestBudget(TOTAL / 2, clock)
        slots += [budget.reserve() for _ in range(100)]
        clock = FakeClock(0.0)
        budget = RequestBudget(TOTAL / 2, clock)
        for _ in range(100):
            budget.acquire()
            sent.append(clock.time())
    assert busiest_window(slots) == 26
    assert busiest_window(sent) == 24


@pytest.mark.parametrize(("index", "expected"), [(0, 7), (3, 6)])
def test_the_exporter_takes_its_replicas_share(index: int, expected: int) -> None:
    raw = minimal_config(shard={"count": 4, "index": index})
    raw["podero"]["max_requests_per_second"] = TOTAL
    assert requests_per_second(to_config(raw)) == expected


# --- yielding(): savings fetches take only free slots, after every poll -----------------------


class Interleaved(FakeClock):
    """A clock whose first sleep lets another thread (a data poll) reserve a slot meanwhile."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.budget: RequestBudget | None = None
        self.poll_waited: list[float] = []
        self.mine: list[float] = []  # the sleeps of the thread under test (not the poll's)

    def sleep(self, seconds: float) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # the poll's wait for its slot: its own, not the clock's under test
        self.mine.append(seconds)
        if self.budget is not None and len(self.sleeps) == 0:
            budget = self.budget
            poll = threading.Thread(target=lambda: self.poll_waited.append(budget.acquire()))
            with self._lock_free_sleep():
                poll.start()
                poll.join(10)
        super().sleep(seconds)

    def _lock_free_sleep(self) -> Any:
        # The poll's own sleep (its slot is ahead) must not recurse into this hook.
        budget, self.budget = self.budget, None
        clock = self

        class Restore:
            def __enter__(self) -> None:
                return None

            def __exit__(self, *exc: object) -> None:
                clock.budget = budget

        return Restore()


def test_a_yielding_request_on_an_idle_budget_goes_at_once_and_holds_one_slot() -> None:
    clock = FakeClock(100.0)
    budget = RequestBudget(4, clock)
    with budget.yielding():
        assert budget.acquire() == 0.0
    assert clock.sleeps == []
    # It took the slot of that moment: the next request waits one spacing, not more.
    assert budget.acquire() == pytest.approx(1.02 / 4)


def test_a_yielding_request_waits_for_the_reserved_slots_and_takes_the_next_free_one() -> None:
    clock = FakeClock(100.0)
    budget = RequestBudget(2, clock)
    budget.acquire()
    budget.acquire()  # at 100.51, and the next slot at 101.02
    with budget.yielding():
        waited = budget.acquire()
    assert waited == pytest.approx(0.51)
    assert clock.time() == pytest.approx(101.02)
    assert budget.acquire() == pytest.approx(0.51)  # one spacing after the yielding one


def test_a_poll_arriving_while_a_yielding_request_waits_goes_first() -> None:
    clock = Interleaved(100.0)
    budget = RequestBudget(2, clock)
    budget.acquire()  # the slot after this one is at 100.51
    clock.budget = budget
    with budget.yielding():
        waited = budget.acquire()
    # The poll reserved 100.51 while the yielding request slept towards it; the yielding one
    # then took the slot after the poll's (101.02), and the next one is after that.
    assert clock.poll_waited == [pytest.approx(0.51)]
    assert clock.mine == [pytest.approx(0.51), pytest.approx(0.51)]
    assert waited == pytest.approx(1.02) and clock.time() == pytest.approx(101.02)
    clock.budget = None
    assert budget.acquire() == pytest.approx(0.51)


def test_a_request_outside_yielding_reserves_ahead_and_waits_once() -> None:
    clock = Interleaved(100.0)
    budget = RequestBudget(2, clock)
    budget.acquire()
    clock.budget = budget
    with budget.yielding(), budget.yielding():
        pass  # nested blocks restore what was before them
    assert budget.acquire() == pytest.approx(0.51)  # its slot is reserved: one sleep only
    assert clock.poll_waited == [pytest.approx(1.02)]  # the poll took the slot after it
    assert clock.mine == [pytest.approx(0.51)]


def test_yielding_blocks_nest_and_end_with_their_thread() -> None:
    clock = FakeClock(100.0)
    budget = RequestBudget(2, clock)
    flags = []
    with budget.yielding():
        with budget.yielding():
            flags.append(budget._local.yielding)
        flags.append(budget._local.yielding)
        other: list[bool] = []
        thread = threading.Thread(
            target=lambda: other.append(getattr(budget._local, "yielding", False))
        )
        thread.start()
        thread.join(10)
    flags.append(budget._local.yielding)
    assert flags == [True, True, False] and other == [False]
