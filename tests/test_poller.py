"""The poll loop end to end in-process: simulator on loopback, fake clock, real HTTP."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest
import responses

from exporter.app import Exporter
from exporter.base.logs import LogfmtFormatter
from exporter.config.model import Config
from exporter.sim import Faults, RunningSimulator
from tests.conftest import INV_A, INV_B, NOON, ORG, USER, VALUE_METRICS, minimal_config, to_config
from tests.e2e.processes import wait_for
from tests.fakes import FakeClock, poll_due
from tests.test_exposition import samples_of
from tests.test_readings import BROKEN


def series(exporter: Exporter, name: str) -> dict[str, float]:
    text = exporter.page.render().decode()
    return {dict(labels)["name"]: value for n, labels, value in samples_of(text) if n == name}


def test_one_cycle_exports_every_metric_for_every_inverter(
    sim_config: Config, clock: FakeClock
) -> None:
    exporter = Exporter(sim_config, clock)
    result = exporter.poller.poll_all()
    assert (result.succeeded, result.failed) == (5, 0)
    names = {s.target.name for s in exporter.store.snapshot()}
    with_battery = names - {"shed-innsbruck"}  # the fifth simulated inverter has no battery
    for metric in VALUE_METRICS:
        expected = names if "battery" not in metric else with_battery
        assert set(series(exporter, metric)) >= expected, metric
    assert set(series(exporter, "podero_device_up").values()) == {1.0}
    assert set(series(exporter, "podero_inverter_battery_charge_ratio")) == with_battery
    ages = [NOON - t for t in series(exporter, "podero_device_data_timestamp_seconds").values()]
    assert all(0 <= age <= 1800 for age in ages)
    exporter.stop()


def test_one_failing_inverter_does_not_affect_the_others(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock
) -> None:
    raw = sim_config.model_dump(mode="json")
    raw["podero"]["auth"]["client_secret"] = sim.describe()["client_secret"]
    raw["inverters"][2]["user_id"] = USER  # wrong owner: the API answers 404
    exporter = Exporter(to_config(raw), clock)
    result = exporter.poller.poll_all()
    assert (result.succeeded, result.failed) == (4, 1)
    up = series(exporter, "podero_device_up")
    assert up.pop("barn-linz") == 0.0
    assert set(up.values()) == {1.0}
    assert "barn-linz" not in series(exporter, "podero_inverter_solar_production_watts")
    assert len(series(exporter, "podero_inverter_solar_production_watts")) == 4
    exporter.stop()


def test_api_outage_keeps_last_values_until_they_are_stale(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock
) -> None:
    exporter = Exporter(sim_config, clock)
    exporter.poller.poll_all()
    before = series(exporter, "podero_inverter_solar_production_watts")
    sim.api.faults = Faults(error_5xx=1.0)
    clock.advance(600)
    exporter.poller.poll_all()
    assert set(series(exporter, "podero_device_up").values()) == {0.0}
    assert series(exporter, "podero_inverter_solar_production_watts") == before
    clock.advance(3600)
    assert series(exporter, "podero_inverter_solar_production_watts") == {}
    assert len(series(exporter, "podero_device_data_timestamp_seconds")) == 5
    sim.api.faults = Faults()
    exporter.poller.poll_all()
    assert set(series(exporter, "podero_device_up").values()) == {1.0}
    assert len(series(exporter, "podero_inverter_solar_production_watts")) == 5
    exporter.stop()


def test_poll_due_follows_the_schedule(sim_config: Config, clock: FakeClock) -> None:
    raw = sim_config.model_dump(mode="json")
    raw["podero"]["auth"]["client_secret"] = sim_config.podero.auth.secret().get_secret_value()
    exporter = Exporter(to_config({**raw, "metrics": {"enable": ["schedule"]}}), clock)
    exporter.poller.poll_all()
    assert (
        poll_due(exporter.poller, exporter.clock.time()).succeeded == 0
    )  # nothing is due right after a poll
    nexts = series(exporter, "podero_device_next_poll_timestamp_seconds")
    assert all(v > NOON for v in nexts.values())
    clock.set(max(nexts.values()))
    assert poll_due(exporter.poller, exporter.clock.time()).succeeded == 5
    exporter.stop()


def test_reload_adds_and_removes_inverters_and_keeps_the_token(
    sim_config: Config, sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter = Exporter(sim_config, clock)
    exporter.poller.poll_all()
    tokens_before = sim.api.stats()["responses"]["token"]["200"]
    raw = sim_config.model_dump(mode="json")
    raw["podero"]["auth"]["client_secret"] = sim.describe()["client_secret"]
    raw["inverters"] = raw["inverters"][:2]
    assert exporter.reload(lambda: to_config(raw)) is None
    exporter.poller.poll_all()
    assert set(series(exporter, "podero_device_up")) == {"rooftop-vienna", "garage-graz"}
    assert sim.api.stats()["responses"]["token"]["200"] == tokens_before
    assert exporter.reload(lambda: to_config({"podero": {}})) is not None
    assert len(exporter.store) == 2  # the old config keeps running
    assert "podero_config_last_reload_successful 0.0" in exporter.page.render().decode()
    exporter.stop()


# --- broken responses for one inverter, with HTTP mocked by responses ------------------------
BASE = "https://podero.invalid"


def data_url(inverter_id: str) -> str:
    return f"{BASE}/api/partners/v2.0/org/{ORG}/users/{USER}/inverters/{inverter_id}/data"


GOOD = {
    "metadata": {},
    "data": [
        {
            "time": "2026-11-23T11:45:00Z",
            "solar_production_w": 1234,
            "battery_charge_level_percent": 50,
        }
    ],
}
EXTRA_BROKEN: list[tuple[str, dict[str, Any]]] = [
    ("empty-body", {"body": b"", "content_type": "application/json"}),
    ("non-json-content-type", {"body": b"<html>Bad gateway</html>", "content_type": "text/html"}),
    (
        "truncated-json",
        {"body": b'{"metadata": {}, "data": [{"ti', "content_type": "application/json"},
    ),
]
CASES = [
    (case, {"body": json.dumps(raw), "content_type": "application/json"}, reason)
    for case, raw, reason in BROKEN
    if case != "value-nan-literal"
]
CASES.append(
    (
        "value-nan-literal",
        {
            "body": '{"metadata": {}, "data": [{"time": "2026-11-23T11:00:00Z", "price": NaN}]}',
            "content_type": "application/json",
        },
        "out of range",
    )
)
CASES += [(case, kw, "") for case, kw in EXTRA_BROKEN]


@pytest.mark.parametrize(("case", "reply", "reason"), CASES, ids=[c[0] for c in CASES])
@responses.activate
def test_broken_response_is_counted_logged_once_and_isolated(
    case: str, reply: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(NOON)
    config = to_config(minimal_config())
    responses.post(f"{BASE}/oauth2/token/", json={"access_token": "t", "expires_in": 3600})
    responses.get(data_url(INV_B), json=GOOD)
    responses.get(data_url(INV_A), json=GOOD)
    exporter = Exporter(config, clock)
    exporter.poller.poll_all()
    before = series(exporter, "podero_inverter_solar_production_watts")
    assert before == {"a": 1234.0, "b": 1234.0}

    responses.replace(responses.GET, data_url(INV_A), status=200, **reply)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        clock.advance(60)
        exporter.poller.poll_all()
    up = series(exporter, "podero_device_up")
    assert up == {"a": 0.0, "b": 1.0}
    assert series(exporter, "podero_inverter_solar_production_watts") == before
    text = exporter.page.render().decode()
    assert 'podero_api_invalid_responses_total{endpoint="inverter_data"} 1.0' in text
    warnings = [LogfmtFormatter().format(r) for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert 'msg="poll failed"' in warnings[0]  # a constant message; identifiers are fields
    assert " name=a " in warnings[0] and f"device_id={INV_A}" in warnings[0]
    assert reason in warnings[0]
    exporter.stop()


def test_there_are_at_least_fifteen_broken_response_cases() -> None:
    assert len(CASES) >= 15


def test_repeated_full_cycles_do_not_grow_the_queue(sim_config: Config, clock: FakeClock) -> None:
    exporter = Exporter(sim_config, clock)
    for _ in range(400):
        exporter.poller.poll_all()
        clock.advance(60)
    assert len(exporter.poller._queue) <= 2 * 5 + 1024
    assert (
        poll_due(exporter.poller, exporter.clock.time()).succeeded
        + poll_due(exporter.poller, exporter.clock.time()).succeeded
        <= 5
    )
    exporter.stop()


def test_the_loop_ends_quietly_when_stopped(sim_config: Config, clock: FakeClock) -> None:
    exporter = Exporter(sim_config, clock)
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop() -> None:
        try:
            exporter.poller.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    wait_for(lambda: exporter.ready, 30, "the first cycle")
    clock.advance(3600)  # everything is due: the loop is busy handing out work
    stop.set()
    exporter.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert errors == []
