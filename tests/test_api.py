"""The retry policy of the API transport, with HTTP mocked by responses and a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
import requests
import responses

from exporter.auth import TokenProvider
from exporter.client import PoderoClient
from exporter.config import AuthConfig
from exporter.transport import (
    ApiError,
    InvalidResponse,
    RetryPolicy,
    Transport,
    new_session,
    parse_retry_after,
)
from tests.conftest import NOON
from tests.fakes import FakeClock
from tests.test_auth import BASE, DATA_URL, TOKEN_URL, Recorder, token_body


def client(attempts: int = 4, max_wait: float = 30.0) -> tuple[PoderoClient, FakeClock, Recorder]:
    clock = FakeClock(NOON)
    recorder = Recorder()
    transport = Transport(
        new_session(4),
        timeout=5,
        policy=RetryPolicy(attempts, max_wait),
        clock=clock,
        observer=recorder,
    )
    auth = AuthConfig(client_id="cid", client_secret="s")  # type: ignore[arg-type]
    return (
        PoderoClient(BASE, transport, TokenProvider(auth, TOKEN_URL, transport, clock)),
        clock,
        recorder,
    )


def data_calls() -> int:
    return sum(1 for c in responses.calls if c.request.url and "/data" in c.request.url)


OK = {"metadata": {}, "data": [{"time": "2026-11-23T12:00:00Z", "solar_production_w": 5}]}


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
@responses.activate
def test_retryable_status_is_retried_until_success(status: int) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=status, json={"error": "busy"})
    responses.get(DATA_URL, status=status, json={"error": "busy"})
    responses.get(DATA_URL, json=OK)
    api, clock, recorder = client()
    points = api.inverter_data("o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN")
    assert [p.values for p in points] == [{"solar_production_w": 5.0}]
    assert data_calls() == 3
    assert len(clock.sleeps) == 2  # slept (on the fake clock) before each retry
    assert [c for e, c in recorder.requests if e == "inverter_data"] == [str(status)] * 2 + ["200"]


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError("reset"),
        requests.Timeout("slow"),
        requests.exceptions.ChunkedEncodingError("cut"),
    ],
)
@responses.activate
def test_connection_errors_and_timeouts_are_retried(error: Exception) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, body=error)
    responses.get(DATA_URL, json=OK)
    api, _, recorder = client()
    assert len(api.inverter_data("o", "u", "i", start=0, end=1, resolution="15MIN")) == 1
    codes = [c for e, c in recorder.requests if e == "inverter_data"]
    assert codes[0] in ("connection_error", "timeout") and codes[1] == "200"


@pytest.mark.parametrize("status", [400, 403, 404, 422])
@responses.activate
def test_other_client_errors_are_not_retried(status: int) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=status, json={"error": "No data for the range."})
    api, clock, _ = client()
    with pytest.raises(ApiError) as info:
        api.inverter_data("o", "u", "i", start=0, end=1, resolution="15MIN")
    assert data_calls() == 1
    assert clock.sleeps == []
    assert info.value.status == status
    assert str(info.value) == f"inverter_data: HTTP {status}: No data for the range."


@responses.activate
def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=503, json={"error": "down"})
    api, clock, _ = client(attempts=3)
    with pytest.raises(ApiError, match="HTTP 503: down"):
        api.inverter_data("o", "u", "i", start=0, end=1, resolution="15MIN")
    assert data_calls() == 3
    assert len(clock.sleeps) == 2


@responses.activate
def test_retry_after_seconds_is_honoured() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=429, headers={"Retry-After": "7"}, json={})
    responses.get(DATA_URL, json=OK)
    api, clock, _ = client()
    api.inverter_data("o", "u", "i", start=0, end=1, resolution="15MIN")
    assert clock.sleeps == [7.0]


@responses.activate
def test_retry_after_http_date_is_honoured_and_capped() -> None:
    later = format_datetime(datetime.fromtimestamp(NOON + 12, UTC), usegmt=True)
    much_later = format_datetime(datetime.fromtimestamp(NOON + 600, UTC), usegmt=True)
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=503, headers={"Retry-After": later}, json={})
    responses.get(DATA_URL, status=503, headers={"Retry-After": much_later}, json={})
    responses.get(DATA_URL, json=OK)
    api, clock, _ = client(max_wait=30)
    api.inverter_data("o", "u", "i", start=0, end=1, resolution="15MIN")
    assert clock.sleeps[0] == pytest.approx(12, abs=1)
    assert clock.sleeps[1] == 30  # capped at max_wait_seconds


@responses.activate
def test_backoff_without_retry_after_is_jittered_and_bounded() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    for _ in range(5):
        responses.get(DATA_URL, status=500, json={})
    api, clock, _ = client(attempts=6, max_wait=2)
    with pytest.raises(ApiError):
        api.inverter_data("o", "u", "i", start=0, end=1, resolution="15MIN")
    assert len(clock.sleeps) == 5
    assert all(0 <= s <= 2 for s in clock.sleeps)


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", NOON) == 120
    assert parse_retry_after(None, NOON) is None
    assert parse_retry_after("soon", NOON) is None
    past = format_datetime(datetime.fromtimestamp(NOON - 50, UTC), usegmt=True)
    assert parse_retry_after(past, NOON) == 0


@responses.activate
def test_non_json_200_is_an_invalid_response_and_counted() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, body="<html>oops</html>", content_type="text/html")
    api, _, recorder = client()
    with pytest.raises(InvalidResponse, match="is not JSON"):
        api.inverter_data("o", "u", "i", start=0, end=1, resolution="15MIN")
    assert recorder.invalid == ["inverter_data"]


@responses.activate
def test_request_carries_range_and_resolution() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(
        DATA_URL,
        json=OK,
        match=[
            responses.matchers.query_param_matcher(
                {
                    "from_datetime": "2026-11-23T11:07:30Z",
                    "to_datetime": "2026-11-23T12:07:30Z",
                    "resolution": "1HOUR",
                }
            )
        ],
    )
    api, _, _ = client()
    api.inverter_data("o", "u", "i", start=NOON - 3600, end=NOON, resolution="1HOUR")
