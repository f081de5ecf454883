"""Hostile input from the API (issue 11), end to end in-process: the simulator's hostile modes
on loopback, a real exporter polling it. Each test checks that the attack is contained AND
that the healthy inverters polled at the same time get their correct data.

Deadlines are real time (a trickling body is abandoned after `timeout_seconds` of wall
clock): those tests use a deadline of two seconds and wait for the poll to end, asserting
only a generous upper bound. Everything else runs on the fake clock.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.app import Exporter
from exporter.kinds import selection
from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi, start_simulator
from exporter.sim.api import HOSTILE_LISTING
from exporter.sim.fleet import iso
from exporter.state.readings import latest_reading, parse_data_response
from tests.conftest import NOON, to_config
from tests.fakes import FakeClock
from tests.test_exposition import samples_of

FLEET = 8
SOLAR = "podero_inverter_solar_production_watts"


@pytest.fixture
def fleet(clock: FakeClock) -> Iterator[RunningSimulator]:
    """Eight simulated inverters on loopback, on the fake clock."""
    sim = start_simulator(SimulatedApi(SimFleet(seed=7, inverters=FLEET), clock, Faults()))
    yield sim
    sim.stop()


def ids(sim: RunningSimulator) -> list[str]:
    return [i["inverter_id"] for i in sim.describe()["inverters"]]


def config(sim: RunningSimulator, discovery: bool = False, **podero: Any) -> dict[str, Any]:
    info = sim.describe()
    raw: dict[str, Any] = {
        "podero": {
            "base_url": info["base_url"],
            "auth": {"client_id": info["client_id"], "client_secret": info["client_secret"]},
            "retry": {"attempts": 1, "max_wait_seconds": 1},
            "max_requests_per_second": 1000,
            "max_concurrency": 4,
            **podero,
        },
        # Every family served, so that every label and value meets the hostile input.
        "metrics": {"enable": list(selection.GROUPS)},
    }
    if discovery:
        raw["discovery"] = {"org_ids": info["org_ids"]}
    else:
        raw["inverters"] = [{**inv, "name": f"inv-{n}"} for n, inv in enumerate(info["inverters"])]
    return raw


def page(exporter: Exporter) -> str:
    body = exporter.page.render()
    return body.decode("utf-8")  # strict: the page must be valid UTF-8


def exported(exporter: Exporter, name: str) -> dict[str, float]:
    """Samples of a family by device_id."""
    return {
        dict(labels)["device_id"]: value
        for n, labels, value in samples_of(page(exporter))
        if n == name
    }


def true_solar(sim: RunningSimulator, inverter_id: str, now: float) -> float:
    """What the simulator says the inverter's newest solar production is."""
    inv = sim.api.fleet.by_id[inverter_id]
    body = sim.api.inverter_data(
        inv.org_id,
        inv.user_id,
        inv.id,
        {"from_datetime": iso(now - 3600), "to_datetime": iso(now), "resolution": "15MIN"},
    )
    reading = latest_reading(parse_data_response(body, until=now), now)
    assert reading is not None
    return reading.values["solar_production_w"]


def assert_healthy_correct(
    exporter: Exporter, sim: RunningSimulator, healthy: list[str], now: float
) -> None:
    up, solar = exported(exporter, "podero_device_up"), exported(exporter, SOLAR)
    for inverter_id in healthy:
        assert up[inverter_id] == 1.0, inverter_id
        assert solar[inverter_id] == true_solar(sim, inverter_id, now), inverter_id


def errors(exporter: Exporter) -> dict[str, str]:
    return {s.target.device_id: s.last_error or "" for s in exporter.store.snapshot()}


# --- time: trickling answers ----------------------------------------------------------------
@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_four_trickling_inverters_do_not_starve_the_healthy_ones(
    fleet: RunningSimulator, clock: FakeClock, headers_too: bool
) -> None:
    every = ids(fleet)
    trickling, healthy = every[:4], every[4:]
    fleet.api.faults = Faults(
        trickle_inverters=tuple(trickling), trickle_interval_s=0.2, trickle_headers=headers_too
    )
    exporter = Exporter(to_config(config(fleet, timeout_seconds=2)), clock)
    started = time.monotonic()
    result = exporter.poller.poll_all()  # four workers, four trickles: all busy at first
    elapsed = time.monotonic() - started
    assert (result.succeeded, result.failed) == (4, 4)
    # Each trickle is cut at its two-second deadline: the cycle takes about two deadlines
    # (old code: one body byte per 0.2 s, some 400 s per trickling inverter).
    assert elapsed < 15
    assert_healthy_correct(exporter, fleet, healthy, NOON)
    for inverter_id in trickling:
        assert errors(exporter)[inverter_id] == "no complete answer within 2s"
    exporter.stop()


# --- size: endless and inflating bodies -----------------------------------------------------
@pytest.mark.parametrize("attack", ["endless", "gzip_bomb"])
def test_endless_and_inflating_bodies_are_cut_at_the_size_limit(
    fleet: RunningSimulator, clock: FakeClock, attack: str
) -> None:
    every = ids(fleet)
    hostile, healthy = every[:2], every[2:]
    fleet.api.faults = Faults(
        endless_inverters=tuple(hostile) if attack == "endless" else (),
        gzip_bomb_inverters=tuple(hostile) if attack == "gzip_bomb" else (),
        gzip_bomb_mib=64,
    )
    exporter = Exporter(to_config(config(fleet)), clock)  # the default limit: 16 MiB
    result = exporter.poller.poll_all()
    assert (result.succeeded, result.failed) == (6, 2)
    assert_healthy_correct(exporter, fleet, healthy, NOON)
    for inverter_id in hostile:
        assert errors(exporter)[inverter_id].startswith("body too large: more than 16777216")
    text = page(exporter)
    assert 'podero_api_invalid_responses_total{endpoint="inverter_data"} 2.0' in text
    exporter.stop()


# --- redirects ------------------------------------------------------------------------------
@pytest.fixture
def elsewhere(clock: FakeClock) -> Iterator[RunningSimulator]:
    """Another origin (another port), counting whatever reaches it."""
    sim = start_simulator(SimulatedApi(SimFleet(seed=7, inverters=FLEET), clock, Faults()))
    yield sim
    sim.stop()


def test_a_token_redirect_is_not_followed_and_the_secret_stays_home(
    fleet: RunningSimulator, elsewhere: RunningSimulator, clock: FakeClock
) -> None:
    fleet.api.faults = Faults(redirect_endpoints=("token",), redirect_to=elsewhere.base_url)
    raw = config(fleet)
    raw["podero"]["auth"] = {
        "grant_type": "password",
        "username": fleet.api.username,
        "password": fleet.api.password,
    }
    exporter = Exporter(to_config(raw), clock)
    result = exporter.poller.poll_all()
    assert result.failed == FLEET
    assert elsewhere.api.stats()["requests"] == 0  # nothing, least of all the password
    reason = next(iter(errors(exporter).values()))
    assert "redirect to http://127.0.0.1:" in reason and "not followed" in reason
    # The failure backs off: one token request for the whole cycle, not one per inverter.
    assert fleet.api.stats()["responses"]["token"] == {"307": 1}
    exporter.stop()


def test_a_data_redirect_to_another_origin_is_refused(
    fleet: RunningSimulator, elsewhere: RunningSimulator, clock: FakeClock
) -> None:
    fleet.api.faults = Faults(redirect_endpoints=("inverter_data",), redirect_to=elsewhere.base_url)
    exporter = Exporter(to_config(config(fleet)), clock)
    assert exporter.poller.poll_all().failed == FLEET
    assert elsewhere.api.stats()["requests"] == 0  # the bearer token never left
    assert "redirect to another origin" in next(iter(errors(exporter).values()))
    exporter.stop()


# --- strings ----------------------------------------------------------------------------------
def test_hostile_strings_in_listings_break_no_output(
    fleet: RunningSimulator, clock: FakeClock
) -> None:
    every = ids(fleet)
    fleet.api.faults = Faults(hostile_inverters=(every[0],), hostile_error_inverters=(every[1],))
    exporter = Exporter(to_config(config(fleet, discovery=True)), clock)
    exporter.refresh_inventory()
    result = exporter.poller.poll_all()
    # Every inverter but the one answering a hostile error; the homes' heat pumps and EVs too.
    polled_devices = sum(d.kind != "wallbox" and not d.deleted for d in fleet.api.fleet.devices)
    assert (result.succeeded, result.failed) == (FLEET - 1 + polled_devices, 1)
    text = page(exporter)  # valid UTF-8, every inverter in it
    assert set(exported(exporter, "podero_device_up")) >= set(every)
    assert {
        dict(labels)["device_id"]
        for n, labels, _ in samples_of(text)
        if n == "podero_device_info" and dict(labels)["kind"] == "inverter"
    } == set(every)
    assert_healthy_correct(exporter, fleet, every[2:], NOON)
    info = {
        dict(labels)["device_id"]: dict(labels)
        for n, labels, _ in samples_of(text)
        if n == "podero_device_info"
    }
    hostile = info[every[0]]
    assert hostile["manufacturer"] == "EvilCorp[31m"  # NUL, ESC and the override are gone
    assert hostile["model"] == "X\ufffd<script>alert(1)</script>"  # the surrogate is U+FFFD
    assert hostile["lifecycle_state"] == "authenticated"
    assert len(hostile["price_zone"]) == 200 and hostile["price_zone"].endswith("…")
    assert hostile["name"].startswith("cust\ufffdxxx") and len(hostile["name"]) == 127
    assert "\ud800" not in text and "Set-Cookie" not in text.split("connection_status")[0]
    assert "podero_render_errors_total 0.0" in text
    # The status page and its JSON: the same strings, escaped, for every inverter.
    status = exporter.status_view()
    html = status.html({}).decode("utf-8")
    assert "&lt;script&gt;" in html and "<script>alert" not in html
    rows = json.loads(status.json({}))["inverters"]
    assert len(rows) == FLEET
    error = next(r["last_error"] for r in rows if r["device_id"] == every[1])
    assert error.startswith("HTTP 400: No data\ufffd[2J!!!") and len(error) <= 300
    assert HOSTILE_LISTING["price_zone"] not in html
    exporter.stop()


# --- values -------------------------------------------------------------------------------------
def test_a_nan_in_a_future_forecast_does_not_cost_the_current_reading(
    fleet: RunningSimulator, clock: FakeClock
) -> None:
    every = ids(fleet)
    fleet.api.faults = Faults(future_nan_inverters=tuple(every))
    exporter = Exporter(to_config(config(fleet)), clock)
    assert exporter.poller.poll_all().succeeded == FLEET
    assert_healthy_correct(exporter, fleet, every, NOON)
    exporter.stop()


# --- tokens ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("expires_in", ["1e12", "1e999", "NaN", "0.001", "-1", '"soon"'])
def test_absurd_token_lifetimes_cost_few_token_requests_and_keep_the_status_page(
    clock: FakeClock, expires_in: str, caplog: pytest.LogCaptureFixture
) -> None:
    sim = start_simulator(
        SimulatedApi(SimFleet(seed=7, inverters=30), clock, Faults(token_expires_in_raw=expires_in))
    )
    try:
        exporter = Exporter(to_config(config(sim)), clock)
        with caplog.at_level(logging.WARNING, logger="exporter.api.auth"):
            for _ in range(3):  # three cycles a minute apart: 90 polls
                assert exporter.poller.poll_all().succeeded == 30
                clock.advance(60)
        # Old code: a new token for nearly every request (457 for 30 inverters).
        assert sum(sim.api.stats()["responses"]["token"].values()) <= 3
        expiry = exporter.client.token_expires_at
        assert expiry is not None and NOON + 60 <= expiry <= NOON + 86400
        assert "Podero exporter" in exporter.status_view().html({}).decode()
        noted = [r for r in caplog.records if r.getMessage() == "token lifetime not usable as sent"]
        assert len(noted) == 1  # logged once, not per token
        exporter.stop()
    finally:
        sim.stop()


def test_a_failing_token_endpoint_is_asked_once_per_backoff_not_per_poll(
    fleet: RunningSimulator, clock: FakeClock
) -> None:
    fleet.api.faults = Faults(token_error=1.0)
    exporter = Exporter(to_config(config(fleet)), clock)

    def token_requests() -> int:
        return sum(fleet.api.stats()["responses"].get("token", {}).values())

    assert exporter.poller.poll_all().failed == FLEET
    assert token_requests() == 1  # not eight
    clock.advance(5)
    assert exporter.poller.poll_all().failed == FLEET
    assert token_requests() == 1  # within the backoff: the failure at once
    assert set(errors(exporter).values()) == {"HTTP 503: Token service unavailable."}
    clock.advance(6)
    exporter.poller.poll_all()
    assert token_requests() == 2  # the backoff has passed: asked again (and doubled)
    fleet.api.faults = Faults()
    clock.advance(21)
    assert exporter.poller.poll_all().succeeded == FLEET
    exporter.stop()
