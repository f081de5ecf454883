"""Token flows against a mocked token endpoint (responses): expiry, renewal, 401 retry,
the password grant's refresh and fallback, and one renewal under concurrency."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import pytest
import responses
from responses import matchers

from exporter.auth import TokenProvider
from exporter.client import PoderoClient
from exporter.config import AuthConfig
from exporter.transport import ApiError, RetryPolicy, Transport, new_session
from tests.conftest import NOON
from tests.fakes import FakeClock

BASE = "https://podero.invalid"
TOKEN_URL = f"{BASE}/oauth2/token/"
PASSWORD_URL = f"{BASE}/api/partners/v2.0/auth/token"
DATA_URL = f"{BASE}/api/partners/v2.0/org/o/users/u/inverters/i/data"


class Recorder:
    """An ApiObserver that keeps what it was told."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.tokens: list[bool] = []
        self.invalid: list[str] = []

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        self.requests.append((endpoint, code))

    def invalid_response(self, endpoint: str) -> None:
        self.invalid.append(endpoint)

    def token_result(self, ok: bool, expires_at: float | None) -> None:
        self.tokens.append(ok)


def make(
    auth: AuthConfig, url: str = TOKEN_URL, attempts: int = 2
) -> tuple[TokenProvider, FakeClock, Recorder, Transport]:
    clock = FakeClock(NOON)
    recorder = Recorder()
    transport = Transport(
        new_session(32),
        timeout=5,
        policy=RetryPolicy(attempts, 1.0),
        clock=clock,
        observer=recorder,
    )
    return TokenProvider(auth, url, transport, clock), clock, recorder, transport


CLIENT = AuthConfig(client_id="cid", client_secret="csecret")  # type: ignore[arg-type]
PASSWORD = AuthConfig(grant_type="password", username="me@example.com", password="pw")  # type: ignore[arg-type]


def token_body(n: int, expires_in: int = 36000, refresh: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": f"tok-{n}",
        "expires_in": expires_in,
        "token_type": "Bearer",
        "scope": "read write",
    }
    if refresh:
        body["refresh_token"] = refresh
    return body


@responses.activate
def test_client_credentials_sends_basic_header_and_json_body() -> None:
    basic = base64.b64encode(b"cid:csecret").decode()
    responses.post(
        TOKEN_URL,
        json=token_body(1),
        match=[
            matchers.header_matcher(
                {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}
            ),
            matchers.json_params_matcher({"grant_type": "client_credentials"}),
        ],
    )
    tokens, _clock, recorder, _ = make(CLIENT)
    assert tokens.token() == "tok-1"
    assert tokens.expires_at == NOON + 36000
    assert recorder.tokens == [True]


@responses.activate
def test_token_is_reused_until_renewal_is_due_then_renewed_ahead_of_expiry() -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=1000))
    responses.post(TOKEN_URL, json=token_body(2, expires_in=1000))
    tokens, clock, _, _ = make(CLIENT)
    assert tokens.token() == "tok-1"
    clock.advance(899)  # 10% of the lifetime before expiry is the renewal point
    assert tokens.token() == "tok-1"
    assert len(responses.calls) == 1
    clock.advance(2)
    assert tokens.token() == "tok-2"  # renewed while tok-1 was still valid
    assert len(responses.calls) == 2


@responses.activate
def test_expired_token_is_replaced() -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=60))
    responses.post(TOKEN_URL, json=token_body(2, expires_in=60))
    tokens, clock, _, _ = make(CLIENT)
    tokens.token()
    clock.advance(61)
    assert tokens.token() == "tok-2"


@responses.activate
def test_failed_renewal_keeps_the_still_valid_token_and_counts_the_failure() -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=1000))
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_client"})
    tokens, clock, recorder, _ = make(CLIENT)
    tokens.token()
    clock.advance(950)
    assert tokens.token() == "tok-1"
    assert recorder.tokens == [True, False]


@responses.activate
def test_token_failure_without_a_valid_token_raises() -> None:
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    tokens, _, recorder, _ = make(CLIENT)
    with pytest.raises(ApiError, match="token: HTTP 401: invalid_client"):
        tokens.token()
    assert recorder.tokens == [False]


@responses.activate
def test_password_grant_refreshes_with_refresh_token() -> None:
    responses.post(
        PASSWORD_URL,
        json=token_body(1, 100, refresh="r1"),
        match=[
            matchers.json_params_matcher(
                {"grant_type": "password", "username": "me@example.com", "password": "pw"}
            )
        ],
    )
    responses.post(
        PASSWORD_URL,
        json=token_body(2, 100, refresh="r2"),
        match=[
            matchers.json_params_matcher({"grant_type": "refresh_token", "refresh_token": "r1"})
        ],
    )
    tokens, clock, _, _ = make(PASSWORD, PASSWORD_URL)
    assert tokens.token() == "tok-1"
    clock.advance(95)
    assert tokens.token() == "tok-2"


@responses.activate
def test_password_grant_falls_back_to_password_when_refresh_fails() -> None:
    responses.post(PASSWORD_URL, json=token_body(1, 100, refresh="r1"))
    responses.post(PASSWORD_URL, status=401, json={"error": "invalid_grant"})
    responses.post(PASSWORD_URL, json=token_body(3, 100, refresh="r3"))
    tokens, clock, _, _ = make(PASSWORD, PASSWORD_URL)
    tokens.token()
    clock.advance(101)
    assert tokens.token() == "tok-3"
    grants = [json.loads(c.request.body or b"{}")["grant_type"] for c in responses.calls]
    assert grants == ["password", "refresh_token", "password"]


@responses.activate
def test_401_from_the_api_renews_the_token_and_retries_once() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.post(TOKEN_URL, json=token_body(2))
    responses.get(
        DATA_URL,
        status=401,
        json={"error": "expired"},
        match=[matchers.header_matcher({"Authorization": "Bearer tok-1"})],
    )
    responses.get(
        DATA_URL,
        json={"metadata": {}, "data": []},
        match=[matchers.header_matcher({"Authorization": "Bearer tok-2"})],
    )
    tokens, _, recorder, transport = make(CLIENT)
    client = PoderoClient(BASE, transport, tokens)
    assert (
        client.inverter_data("o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN") == []
    )
    assert [c for c in recorder.requests] == [
        ("token", "200"),
        ("inverter_data", "401"),
        ("token", "200"),
        ("inverter_data", "200"),
    ]


@responses.activate
def test_a_second_401_is_not_retried_again() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.get(DATA_URL, status=401, json={"error": "no"})
    tokens, _, recorder, transport = make(CLIENT)
    client = PoderoClient(BASE, transport, tokens)
    with pytest.raises(ApiError) as info:
        client.get_json("inverter_data", "/org/o/users/u/inverters/i/data")
    assert info.value.status == 401
    assert [code for ep, code in recorder.requests if ep == "inverter_data"] == ["401", "401"]


@responses.activate
def test_32_concurrent_callers_share_one_token_request() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    tokens, _, _, _ = make(CLIENT)
    barrier = threading.Barrier(32)
    seen: list[str] = []

    def call() -> None:
        barrier.wait()
        seen.append(tokens.token())

    threads = [threading.Thread(target=call) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == ["tok-1"] * 32
    assert len(responses.calls) == 1


@responses.activate
def test_32_concurrent_401s_cause_one_renewal() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.post(TOKEN_URL, json=token_body(2))
    tokens, _, _, _ = make(CLIENT)
    first = tokens.token()
    barrier = threading.Barrier(32)

    def call() -> None:
        barrier.wait()
        tokens.invalidate(first)
        assert tokens.token() == "tok-2"

    threads = [threading.Thread(target=call) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(responses.calls) == 2


@responses.activate
def test_broken_token_response_is_counted_as_invalid() -> None:
    responses.post(TOKEN_URL, json={"token": "x"})
    tokens, _, recorder, _ = make(CLIENT)
    with pytest.raises(ApiError, match="no access_token"):
        tokens.token()
    assert recorder.invalid == ["token"]
