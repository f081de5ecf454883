"""A reload touches only what changed: learned schedules, backoff and last data of unchanged
inverters survive a change of any unrelated setting."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.app import Exporter
from exporter.config.model import Config
from exporter.sim import RunningSimulator
from exporter.state.store import DeviceState
from tests.conftest import to_config
from tests.fakes import FakeClock, poll_due

QUARTER = 900.0


def raw_of(config: Config, sim: RunningSimulator) -> dict[str, Any]:
    raw = config.model_dump(mode="json")
    raw["podero"]["auth"]["client_secret"] = sim.describe()["client_secret"]
    return raw


def learned(exporter: Exporter, clock: FakeClock) -> None:
    """Poll through two simulated hours so every inverter learns its publication lag."""
    exporter.poller.poll_all()
    end = clock.time() + 2 * 3600
    while clock.time() < end:
        clock.advance(exporter.config.poll.interval_seconds)
        poll_due(exporter.poller, clock.time())


def readings(exporter: Exporter) -> dict[str, DeviceState]:
    return {s.target.device_id: s for s in exporter.store.snapshot()}


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("poll", "max_data_age_seconds", 7200),
        ("poll", "lookback_seconds", 7200),
        ("poll", "skip_until_due", False),
        ("podero", "timeout_seconds", 5),
        ("podero", "max_concurrency", 3),
        ("thresholds", "battery_low_percent", 30),
    ],
)
def test_learned_schedules_survive_an_unrelated_change(
    sim_config: Config, sim: RunningSimulator, clock: FakeClock, section: str, key: str, value: Any
) -> None:
    exporter = Exporter(sim_config, clock)
    learned(exporter, clock)
    poller = exporter.poller
    schedules = dict(poller._schedules)
    assert all(s.lag is not None and s.newest is not None for s in schedules.values())
    before = readings(exporter)
    raw = raw_of(sim_config, sim)
    raw.setdefault(section, {})[key] = value
    assert exporter.reload(lambda: to_config(raw)) is None
    assert exporter.poller is poller  # the same loop, not a new one
    assert poller._schedules == schedules
    after = readings(exporter)
    assert {i: s.reading for i, s in after.items()} == {i: s.reading for i, s in before.items()}
    assert {i: s.last_success for i, s in after.items()} == {
        i: s.last_success for i, s in before.items()
    }
    exporter.stop()


def test_a_new_interval_keeps_what_was_learned_and_moves_only_the_phase(
    sim_config: Config, sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter = Exporter(sim_config, clock)
    learned(exporter, clock)
    schedules = dict(exporter.poller._schedules)
    raw = raw_of(sim_config, sim)
    raw["poll"] = {"interval_seconds": 30}
    assert exporter.reload(lambda: to_config(raw)) is None
    for inverter_id, new in exporter.poller._schedules.items():
        old = schedules[inverter_id]
        assert (new.newest, new.lag, new.misses) == (old.newest, old.lag, old.misses)
        assert 0 <= new.offset < 30
        assert new.next_poll >= old.next_poll
    exporter.stop()


def test_adding_an_inverter_leaves_the_others_untouched(
    sim_config: Config, sim: RunningSimulator, clock: FakeClock
) -> None:
    raw = raw_of(sim_config, sim)
    first, rest = raw["inverters"][:4], raw["inverters"][4:]
    exporter = Exporter(to_config({**raw, "inverters": first}), clock)
    learned(exporter, clock)
    schedules = dict(exporter.poller._schedules)
    before = readings(exporter)
    assert exporter.reload(lambda: to_config({**raw, "inverters": first + rest})) is None
    now = exporter.poller._schedules
    assert len(now) == 5
    assert {i: now[i] for i in schedules} == schedules
    added = rest[0]["inverter_id"]
    assert now[added].newest is None and now[added].next_poll <= clock.time()  # due at once
    after = readings(exporter)
    # (The reload also refreshes inventory in the background: compare what polls wrote.)
    assert all(
        (after[i].reading, after[i].last_success, after[i].next_poll)
        == (before[i].reading, before[i].last_success, before[i].next_poll)
        for i in before
    )
    assert after[added].reading is None
    exporter.stop()
