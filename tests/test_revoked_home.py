"""A token storm from one home (issue 20): every data call of the four devices of one home
answers 401, even with a fresh token (its access was revoked), beside two healthy devices.
Token renewals are rationed for the whole process; the healthy devices keep their data and
their token. HTTP mocked by responses, time on a fake clock, the poller's own schedule."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import responses
from requests import PreparedRequest

from exporter.api.auth import MAX_REFUSAL_BACKOFF, REFUSAL_BACKOFF
from exporter.app import Exporter
from tests.conftest import NOON, ORG, USER, minimal_config, to_config
from tests.fakes import FakeClock, poll_due
from tests.test_poller import series

BASE = "https://podero.invalid"
TOKEN_URL = f"{BASE}/oauth2/token/"
REVOKED_USER = "55555555-5555-4555-8555-555555555555"
HEALTHY = {
    "h1": "66666666-6666-4666-8666-666666666661",
    "h2": "66666666-6666-4666-8666-666666666662",
}
REVOKED = {f"r{i}": f"77777777-7777-4777-8777-77777777777{i}" for i in range(1, 5)}
MINUTES = 30
STEP = 5.0  # the scheduler's loop, run by hand every 5 simulated seconds
DATA = re.compile(rf"{re.escape(BASE)}/api/partners/v2\.0/org/[^/]+/users/([^/]+)/inverters/.*")


class FakeApi:
    """The token endpoint (a new token per request, times noted) and the data endpoint (the
    revoked home's calls refused, the others answered with the newest complete bucket)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.token_times: list[float] = []
        self.tokens: list[str] = []
        self.healthy_calls: list[str] = []  # the token each healthy call carried
        self.revoked_calls = 0

    def token(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        self.token_times.append(self.clock.time())
        self.tokens.append(f"tok-{len(self.token_times)}")
        body = {"access_token": self.tokens[-1], "expires_in": 36000, "token_type": "Bearer"}
        return 200, {}, json.dumps(body)

    def data(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        match = DATA.match(request.url or "")
        assert match is not None
        if match.group(1) == REVOKED_USER:
            self.revoked_calls += 1
            return 401, {}, json.dumps({"error": "Access to this home has been revoked."})
        self.healthy_calls.append(request.headers["Authorization"].removeprefix("Bearer "))
        bucket = (self.clock.time() // 900 - 1) * 900
        stamp = datetime.fromtimestamp(bucket, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 200, {}, json.dumps({"data": [{"time": stamp, "solar_production_w": 1000}]})


def fleet_config() -> dict[str, Any]:
    inverters = [
        {"org_id": ORG, "user_id": USER, "inverter_id": inverter_id, "name": name}
        for name, inverter_id in HEALTHY.items()
    ] + [
        {"org_id": ORG, "user_id": REVOKED_USER, "inverter_id": inverter_id, "name": name}
        for name, inverter_id in REVOKED.items()
    ]
    raw = minimal_config(inverters=inverters)
    raw["poll"] = {"interval_seconds": 60, "skip_until_due": False}
    return raw


def most_renewals(seconds: float) -> int:
    """Renewals for 401s that "at most one per backoff period, the period doubling up to
    its maximum" allows in `seconds`: one at once, then one after each period."""
    count, at, period = 1, 0.0, REFUSAL_BACKOFF
    while at + period <= seconds:
        at += period
        period = min(MAX_REFUSAL_BACKOFF, 2 * period)
        count += 1
    return count


@responses.activate
def test_a_revoked_home_costs_few_token_requests_and_the_healthy_devices_nothing() -> None:
    clock = FakeClock(NOON)
    api = FakeApi(clock)
    responses.add_callback(
        responses.POST, TOKEN_URL, callback=api.token, content_type="application/json"
    )
    responses.add_callback(responses.GET, DATA, callback=api.data, content_type="application/json")
    exporter = Exporter(to_config(fleet_config()), clock)
    healthy_polls = 0
    try:
        for _ in range(int(MINUTES * 60 / STEP)):
            result = poll_due(exporter.poller, clock.time())
            healthy_polls += result.succeeded
            assert result.succeeded <= len(HEALTHY)
            up = series(exporter, "podero_device_up")
            assert {name: up[name] for name in HEALTHY} == {"h1": 1.0, "h2": 1.0}
            assert {name: up[name] for name in REVOKED if name in up} == {
                name: 0.0 for name in REVOKED if name in up
            }
            clock.advance(STEP)
    finally:
        exporter.stop()

    # The healthy devices polled at once and then every minute, every poll a success.
    polls = MINUTES + 1
    assert healthy_polls == len(HEALTHY) * polls
    assert len(api.healthy_calls) == healthy_polls
    # Every healthy call carried a token the API had handed out (none thrown away under it).
    assert set(api.healthy_calls) <= set(api.tokens)
    # The revoked home polled every minute as well, and kept failing.
    assert api.revoked_calls >= len(REVOKED) * polls
    # Token requests: the first, then renewals rationed for the whole process. (Before
    # issue 20: one per refused poll, 4 x 31 = 124 and more.)
    renewals = len(api.token_times) - 1
    assert renewals <= most_renewals(MINUTES * 60)
    assert renewals <= 10
    gaps = [b - a for a, b in zip(api.token_times[1:], api.token_times[2:], strict=False)]
    expected = [min(MAX_REFUSAL_BACKOFF, REFUSAL_BACKOFF * 2**i) for i in range(len(gaps))]
    assert all(gap >= wait for gap, wait in zip(gaps, expected, strict=True)), gaps
