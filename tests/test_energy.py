"""Energy counters: each completed bucket adds mean power x duration exactly once, split by
sign; nulls add nothing; the totals start at 0 with the first poll and never decrease."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import responses
from hypothesis import given
from hypothesis import strategies as st

from exporter.app import Exporter
from exporter.state.energy import POWER_FIELDS, EnergyTotals, add_completed_buckets
from exporter.state.readings import DataPoint
from tests.conftest import INV_A, INV_B, minimal_config, to_config
from tests.fakes import FakeClock
from tests.test_poller import BASE, data_url

Q = 900.0  # a 15-minute bucket
T0 = 1_795_435_200.0  # 2026-11-23 12:00:00 UTC, a bucket boundary
LOOKBACK = 3600.0


def point(start: float, **values: float) -> DataPoint:
    return DataPoint(time=start, values=values)


def add(totals: EnergyTotals, points: list[DataPoint], now: float) -> EnergyTotals:
    return add_completed_buckets(totals, points, now=now, bucket_seconds=Q, horizon=LOOKBACK)


def joules(totals: EnergyTotals) -> dict[str, float]:
    out = {}
    for field in POWER_FIELDS:
        out[f"{field}+"] = totals.joules(field, "positive")
        out[f"{field}-"] = totals.joules(field, "negative")
    return {k: v for k, v in out.items() if v}


def test_completed_buckets_add_mean_power_times_duration_split_by_sign() -> None:
    totals = EnergyTotals(since=T0)
    points = [
        point(
            T0,
            solar_production_w=2000,
            export_power_to_grid_w=500,
            battery_charge_discharge_power_w=-1000,
            household_consumption_w=600,
        ),
        point(
            T0 + Q,
            solar_production_w=1000,
            export_power_to_grid_w=-300,
            battery_charge_discharge_power_w=400,
            household_consumption_w=800,
        ),
        point(T0 + 2 * Q, solar_production_w=9999),  # still filling at `now`: not yet
    ]
    totals = add(totals, points, now=T0 + 2 * Q + 60)
    assert joules(totals) == {
        "solar_production_w+": (2000 + 1000) * Q,
        "export_power_to_grid_w+": 500 * Q,
        "export_power_to_grid_w-": 300 * Q,
        "household_consumption_w+": (600 + 800) * Q,
        "battery_charge_discharge_power_w+": 400 * Q,
        "battery_charge_discharge_power_w-": 1000 * Q,
    }


def test_each_bucket_counts_exactly_once_across_polls() -> None:
    totals = EnergyTotals(since=T0)
    first = [point(T0, solar_production_w=1000)]
    totals = add(totals, first, now=T0 + Q)
    # The next poll sees the same bucket again (the lookback overlaps) and one more.
    totals = add(totals, [*first, point(T0 + Q, solar_production_w=2000)], now=T0 + 2 * Q)
    totals = add(totals, [*first, point(T0 + Q, solar_production_w=2000)], now=T0 + 2 * Q + 5)
    assert joules(totals) == {"solar_production_w+": 3000 * Q}


def test_gaps_and_nulls_add_nothing_and_a_late_bucket_is_counted_when_it_arrives() -> None:
    totals = EnergyTotals(since=T0)
    # T0 + Q is missing (a gap) and T0 + 2Q has a null solar value.
    points = [point(T0, solar_production_w=1000), point(T0 + 2 * Q, household_consumption_w=400)]
    totals = add(totals, points, now=T0 + 3 * Q)
    assert joules(totals) == {"solar_production_w+": 1000 * Q, "household_consumption_w+": 400 * Q}
    # The missing bucket shows up late: counted now, once.
    late = [*points, point(T0 + Q, solar_production_w=500)]
    totals = add(totals, late, now=T0 + 3 * Q + 60)
    totals = add(totals, late, now=T0 + 3 * Q + 120)
    assert joules(totals)["solar_production_w+"] == 1500 * Q
    # A revision of a counted bucket is not counted again.
    revised = [point(T0, solar_production_w=99_999), *late[1:]]
    assert add(totals, revised, now=T0 + 3 * Q + 180) == totals


def test_buckets_that_ended_before_the_first_poll_are_not_counted() -> None:
    first_poll = T0 + 2 * Q + 30
    totals = EnergyTotals(since=first_poll)
    history = [point(T0 + i * Q, solar_production_w=1000) for i in range(2)]
    totals = add(totals, history, now=first_poll)
    assert joules(totals) == {}  # present, at zero
    totals = add(totals, [*history, point(T0 + 2 * Q, solar_production_w=800)], now=T0 + 3 * Q)
    assert joules(totals) == {"solar_production_w+": 800 * Q}


def test_a_restart_starts_again_at_zero() -> None:
    points = [point(T0 + i * Q, solar_production_w=1000) for i in range(4)]
    before = add(EnergyTotals(since=T0), points, now=T0 + 4 * Q)
    assert joules(before) == {"solar_production_w+": 4000 * Q}
    restarted = add(EnergyTotals(since=T0 + 4 * Q + 10), points, now=T0 + 4 * Q + 10)
    assert joules(restarted) == {}


def test_old_starts_are_forgotten_so_the_state_stays_small() -> None:
    totals = EnergyTotals(since=T0)
    for i in range(200):
        totals = add(totals, [point(T0 + i * Q, solar_production_w=100)], now=T0 + (i + 1) * Q)
    assert len(totals.counted) <= LOOKBACK / Q + 2
    assert totals.joules("solar_production_w", "positive") == 200 * 100 * Q


watts = st.one_of(st.none(), st.floats(-20_000, 20_000, allow_nan=False))


def naive_totals(
    points: list[DataPoint], polls: list[float], since: float
) -> dict[tuple[str, str], float]:
    """The same rule without any memory limit: a bucket counts once, at the first poll that
    sees it completed, after `since`, within the horizon."""
    counted: set[float] = set()
    out = {(f, part): 0.0 for f in POWER_FIELDS for part in ("positive", "negative")}
    for now in polls:
        for p in points:
            end = p.time + Q
            if end > now or end <= since or p.time < now - LOOKBACK - Q or p.time in counted:
                continue
            counted.add(p.time)
            for field, value in p.values.items():
                if value > 0:
                    out[(field, "positive")] += value * Q
                elif value < 0:
                    out[(field, "negative")] -= value * Q
    return out


@given(
    st.lists(
        st.tuples(st.integers(-8, 12), st.dictionaries(st.sampled_from(POWER_FIELDS), watts)),
        max_size=30,
    ),
    st.lists(st.integers(0, 14 * int(Q)), min_size=1, max_size=8),
)
def test_totals_never_decrease_and_match_a_naive_sum(
    seen: list[tuple[int, dict[str, float | None]]], polls: list[int]
) -> None:
    first: dict[int, dict[str, float | None]] = {}
    for slot, values in seen:
        first.setdefault(slot, values)
    points = [
        point(T0 + slot * Q, **{k: v for k, v in values.items() if v is not None})
        for slot, values in first.items()
    ]
    times = [T0 + offset for offset in sorted(polls)]
    totals = previous = EnergyTotals(since=T0 - 1)
    for now in times:
        # A hostile API answers with every point it has, not only those asked for.
        totals = add_completed_buckets(totals, points, now=now, bucket_seconds=Q, horizon=LOOKBACK)
        for field in POWER_FIELDS:
            for part in ("positive", "negative"):
                assert totals.joules(field, part) >= previous.joules(field, part)
        previous = totals
    expected = naive_totals(points, times, T0 - 1)
    for (field, part), value in expected.items():
        assert abs(totals.joules(field, part) - value) <= 1e-6 * max(1.0, abs(value))


# --- through the poller, with HTTP mocked --------------------------------------------------
def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def body(*points: dict[str, Any]) -> str:
    return json.dumps({"metadata": {}, "data": list(points)})


def counters(exporter: Exporter) -> dict[tuple[str, str], float]:
    out = {}
    for line in exporter.page.render().decode().splitlines():
        if "_energy_joules_total{" in line:
            name, rest = line.split("{", 1)
            who = rest.split('name="')[1].split('"')[0]
            out[(name, who)] = float(line.rsplit(" ", 1)[1])
    return out


@responses.activate
def test_counters_exist_at_zero_from_the_first_poll_and_grow_per_completed_bucket() -> None:
    clock = FakeClock(T0 + 2 * Q + 30)
    responses.post(f"{BASE}/oauth2/token/", json={"access_token": "t", "expires_in": 3600})
    history = [
        {"time": iso(T0), "solar_production_w": 1000, "export_power_to_grid_w": -200},
        {"time": iso(T0 + Q), "solar_production_w": 1000, "export_power_to_grid_w": -200},
    ]
    responses.get(data_url(INV_A), body=body(*history), content_type="application/json")
    responses.get(data_url(INV_B), status=503)
    exporter = Exporter(to_config(minimal_config()), clock)
    exporter.poller.poll_all()
    first = counters(exporter)
    assert len(first) == 12 and set(first.values()) == {0.0}  # 6 counters x 2, even for b
    fresh = {
        "time": iso(T0 + 2 * Q),
        "solar_production_w": 2000,
        "export_power_to_grid_w": 700,
        "battery_charge_discharge_power_w": -500,
        "household_consumption_w": None,
    }
    responses.replace(
        responses.GET, data_url(INV_A), body=body(*history, fresh), content_type="application/json"
    )
    clock.set(T0 + 3 * Q + 60)
    exporter.poller.poll_all()
    exporter.poller.poll_all()  # the same bucket again: counted once
    grown = counters(exporter)
    assert grown[("podero_inverter_solar_energy_joules_total", "a")] == 2000 * Q
    assert grown[("podero_inverter_grid_export_energy_joules_total", "a")] == 700 * Q
    assert grown[("podero_inverter_grid_import_energy_joules_total", "a")] == 0.0
    assert grown[("podero_inverter_battery_charge_energy_joules_total", "a")] == 500 * Q
    assert grown[("podero_inverter_household_energy_joules_total", "a")] == 0.0
    assert grown[("podero_inverter_solar_energy_joules_total", "b")] == 0.0
    exporter.stop()


def test_the_boundaries_of_what_counts_are_exact() -> None:
    now = T0 + 8 * Q
    oldest = now - LOOKBACK - Q  # the oldest start still remembered: T0 + 3 Q
    points = [
        point(oldest - Q, solar_production_w=1),  # starts before the oldest: forgotten
        point(oldest, solar_production_w=10),  # starts at the oldest: counts
        point(now - Q, solar_production_w=100),  # ends exactly at now: counts
    ]
    assert joules(add(EnergyTotals(since=T0), points, now)) == {"solar_production_w+": 110 * Q}
    # A bucket that ends exactly when the totals began is not theirs.
    late = EnergyTotals(since=oldest + Q)
    assert joules(add(late, points, now)) == {"solar_production_w+": 100 * Q}


def test_a_bucket_at_the_oldest_start_is_remembered_and_not_counted_again() -> None:
    now = T0 + 8 * Q
    oldest = now - LOOKBACK - Q
    points = [point(oldest, solar_production_w=10)]
    once = add(EnergyTotals(since=T0), points, now)
    assert once.counted == frozenset({oldest})
    assert add(once, points, now) is once  # the same poll again: nothing new


def test_power_below_one_watt_counts_on_its_side_and_zero_on_neither() -> None:
    points = [
        point(T0, solar_production_w=0.5, battery_charge_discharge_power_w=-0.5),
        point(T0 + Q, solar_production_w=0.0, battery_charge_discharge_power_w=0.0),
    ]
    totals = add(EnergyTotals(since=T0), points, now=T0 + 2 * Q)
    assert joules(totals) == {
        "solar_production_w+": 0.5 * Q,
        "battery_charge_discharge_power_w-": 0.5 * Q,
    }
    assert totals.counted == frozenset({T0, T0 + Q})
