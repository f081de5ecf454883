"""The scheduler's decisions on a fake timeline: phases, skip-until-due, backoff."""

from __future__ import annotations

import statistics

from exporter.state.schedule import (
    PollSchedule,
    after_poll,
    aligned_after,
    aligned_at_or_after,
    next_due,
    phase_offset,
)

INTERVAL = 60.0
RES = 900.0
T0 = 1_795_435_200.0  # a quarter-hour boundary


def test_phases_are_stable_and_spread_evenly() -> None:
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(6000)]
    offsets = [phase_offset(i, INTERVAL) for i in ids]
    assert offsets == [phase_offset(i, INTERVAL) for i in ids]
    assert all(0 <= o < INTERVAL for o in offsets)
    per_second = [0] * 60
    for o in offsets:
        per_second[int(o)] += 1
    # 100 per one-second slot on average; no slot holds a burst.
    assert max(per_second) < 150 and min(per_second) > 60
    assert abs(statistics.mean(offsets) - 30) < 1.5


def test_alignment() -> None:
    assert aligned_at_or_after(T0 + 10, 60, 10) == T0 + 10
    assert aligned_after(T0 + 10, 60, 10) == T0 + 70
    assert aligned_at_or_after(T0 + 11, 60, 10) == T0 + 70


def poll(s: PollSchedule, now: float, newest: float | None, ok: bool = True) -> PollSchedule:
    return after_poll(s, now=now, ok=ok, newest=newest, interval=INTERVAL, resolution=RES)


def test_skips_polls_until_the_next_point_can_exist() -> None:
    s = PollSchedule(offset=5.0)
    # First sighting: newest point at T0 seen at T0+400; the next one is due at T0+900.
    s = poll(s, T0 + 400, T0)
    assert next_due(s, RES) == T0 + RES
    assert s.next_poll == T0 + RES + 5  # the first phase slot at or after the due time
    # Nothing yet at the due time: poll again one interval later.
    s = poll(s, s.next_poll, T0)
    assert s.misses == 1 and s.next_poll == T0 + RES + 65
    # It arrives: the observed lag (point time to sighting) is learned.
    s = poll(s, s.next_poll, T0 + RES)
    assert s.misses == 0 and s.lag == 65
    assert s.next_poll == T0 + 2 * RES + 65
    # Next time it is there at once: no skipped or wasted poll.
    s = poll(s, s.next_poll, T0 + 2 * RES)
    assert s.misses == 0
    assert s.next_poll >= T0 + 3 * RES + 60


def test_errors_poll_again_at_the_interval_without_learning() -> None:
    s = poll(PollSchedule(offset=0.0), T0 + 100, T0)
    failed = poll(s, T0 + 120, None, ok=False)
    assert failed.next_poll == T0 + 180
    assert failed.newest == T0 and failed.lag == s.lag


def test_silent_inverter_backs_off_up_to_one_resolution() -> None:
    s = poll(PollSchedule(offset=0.0), T0 + 1, T0)
    now = s.next_poll
    gaps = []
    for _ in range(40):
        before = now
        s = poll(s, now, T0)
        now = s.next_poll
        gaps.append(now - before)
    # Patient for one resolution (15 polls at the interval), then doubling up to 900 s.
    assert gaps[:14] == [60.0] * 14
    assert gaps[15] == 120 and gaps[16] == 240
    assert max(gaps) == RES and gaps[-1] == RES


def test_inverter_without_any_data_is_polled_at_the_interval_then_backs_off() -> None:
    s = PollSchedule(offset=30.0)
    s = poll(s, T0, None)
    assert s.next_poll == T0 + 30
    assert s.misses == 1


def test_without_skip_until_due_every_interval_is_polled() -> None:
    s = after_poll(
        PollSchedule(offset=0.0),
        now=T0 + 1,
        ok=True,
        newest=T0,
        interval=INTERVAL,
        resolution=RES,
        skip_until_due=False,
    )
    assert s.next_poll == T0 + 60


def test_an_inverter_silent_for_weeks_is_still_polled_once_per_resolution() -> None:
    # 2**misses outgrows a float after about 1000 misses (11 days at one poll per 900 s).
    now = T0 + 30 * 86_400.0
    s = poll(PollSchedule(offset=0.0, newest=T0, lag=30.0, misses=3000), now, T0)
    assert s.misses == 3001 and s.next_poll == now + RES
    assert (s.newest, s.lag) == (T0, 30.0)


def test_a_time_on_the_grid_stays_there_at_any_scale() -> None:
    # (t - offset) / interval can come out a hair above k (1.1 / 0.1 = 11.000000000000002):
    # a time on the grid must not move one interval later.
    assert aligned_at_or_after(1.1, 0.1, 0.0) == 11 * 0.1
    assert aligned_at_or_after(T0 + 10, 3600.0, 10.0) == T0 + 10  # an hourly grid
    assert aligned_at_or_after(T0 + 11, 3600.0, 10.0) == T0 + 3610
    assert aligned_after(T0 + 10, 3600.0, 10.0) == T0 + 3610


def test_the_first_lag_sample_is_taken_as_it_is() -> None:
    s = PollSchedule(offset=0.0, newest=T0)  # nothing learned yet, no miss
    s = poll(s, T0 + RES + 100, T0 + RES)
    assert (s.lag, s.misses) == (100.0, 0)
    assert s.next_poll == T0 + 2 * RES + 120  # the first slot at or after T0 + 2 RES + 100


def test_sightings_without_misses_let_the_lag_decay_towards_the_real_one() -> None:
    decay = 0.02 * INTERVAL
    learned = PollSchedule(offset=0.0, newest=T0, lag=100.0)
    # Seen later than the lag says: the lag is kept (less the decay), not raised.
    assert poll(learned, T0 + RES + 200, T0 + RES).lag == 100.0 - decay
    # Seen sooner: the new sample (less the decay).
    assert poll(learned, T0 + RES + 50, T0 + RES).lag == 50.0 - decay
    # Never below zero.
    small = PollSchedule(offset=0.0, newest=T0, lag=0.5)
    assert poll(small, T0 + RES + 10, T0 + RES).lag == 0.0


def test_after_a_miss_the_next_sighting_replaces_the_lag() -> None:
    # One miss means the lag was too short: the new sample is taken whole, not decayed.
    missed = PollSchedule(offset=0.0, newest=T0, lag=100.0, misses=1)
    s = poll(missed, T0 + RES + 300, T0 + RES)
    assert (s.lag, s.misses) == (300.0, 0)


def test_an_observed_lag_is_at_least_zero_and_at_most_two_resolutions() -> None:
    missed = PollSchedule(offset=0.0, newest=T0, misses=1)
    # A point stamped after the clock's now (clocks apart): no negative lag.
    early = poll(missed, T0 + RES - 5, T0 + RES)
    assert early.lag == 0.0 and early.next_poll == T0 + 2 * RES
    # A point first seen long after its time (the exporter was down): capped.
    late = poll(missed, T0 + RES + 5000, T0 + RES)
    assert late.lag == 2 * RES


def test_a_poll_that_finds_nothing_new_keeps_what_was_learned() -> None:
    s = PollSchedule(offset=0.0, newest=T0, lag=40.0)
    s = poll(s, T0 + RES + 60, T0)
    assert (s.newest, s.lag, s.misses) == (T0, 40.0, 1)
    s = poll(s, T0 + RES + 120, None)  # an empty answer: no newest point at all
    assert (s.newest, s.lag, s.misses) == (T0, 40.0, 2)


def test_a_failed_poll_keeps_the_miss_count_and_what_was_learned() -> None:
    s = PollSchedule(offset=0.0, newest=T0, lag=30.0, misses=3)
    failed = poll(s, T0 + 2000, None, ok=False)
    assert (failed.newest, failed.lag, failed.misses) == (T0, 30.0, 3)
    assert failed.next_poll == T0 + 2040
    unskipped = after_poll(
        s,
        now=T0 + 2000,
        ok=True,
        newest=T0 + RES,
        interval=INTERVAL,
        resolution=RES,
        skip_until_due=False,
    )
    assert (unskipped.newest, unskipped.lag, unskipped.misses) == (T0, 30.0, 3)


def test_a_resolution_no_longer_than_the_interval_never_backs_off() -> None:
    s, now = PollSchedule(offset=0.0, newest=T0), T0 + 600
    for misses in range(1, 40):
        s = after_poll(s, now=now, ok=True, newest=T0, interval=60.0, resolution=30.0)
        assert s.misses == misses and s.next_poll == now + 60
        now = s.next_poll
