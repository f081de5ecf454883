"""Token flows against a mocked token endpoint (responses): expiry, renewal, 401 retry,
the password grant's refresh and fallback, and one renewal under concurrency."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses
from pydantic import SecretStr
from responses import matchers

from exporter.api import auth
from exporter.api.auth import (
    MAX_LIFETIME,
    MIN_LIFETIME,
    KeptSecret,
    TokenProvider,
    token_from_response,
    token_lifetime,
)
from exporter.api.client import PoderoClient
from exporter.api.connections import new_session
from exporter.api.transport import ApiError, RetryPolicy, Transport
from exporter.config.model import AuthConfig
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
        self.expiries: list[float | None] = []  # what the token expiry gauge is set to
        self.invalid: list[str] = []

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        self.requests.append((endpoint, code))

    def invalid_response(self, endpoint: str) -> None:
        self.invalid.append(endpoint)

    def token_result(self, ok: bool, expires_at: float | None) -> None:
        self.tokens.append(ok)
        self.expiries.append(expires_at)


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
        client.device_data(
            "inverter", "o", "u", "i", start=NOON - 3600, end=NOON, resolution="15MIN"
        )
        == []
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


def refusing(*refused: str) -> Callable[[str], str]:
    """A send that the API answers 401 for these tokens, and with the token otherwise."""

    def send(token: str) -> str:
        if token in refused:
            raise ApiError("inverter_data", "HTTP 401: no", 401)
        return token

    return send


@responses.activate
def test_32_concurrent_401s_cause_one_renewal() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.post(TOKEN_URL, json=token_body(2))
    tokens, _, _, _ = make(CLIENT)
    send = refusing(tokens.token())
    barrier = threading.Barrier(32)
    seen: list[str] = []

    def call() -> None:
        barrier.wait()
        seen.append(tokens.authorized("inverter_data", send))

    threads = [threading.Thread(target=call) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == ["tok-2"] * 32
    assert len(responses.calls) == 2


# --- renewals for 401s, rationed (issue 20) ----------------------------------------------------
def token_requests() -> int:
    return sum(1 for c in responses.calls if c.request.url == TOKEN_URL)


@responses.activate
def test_a_renewed_token_refused_as_well_is_kept_and_renewals_for_401s_back_off() -> None:
    for n in range(1, 6):
        responses.post(TOKEN_URL, json=token_body(n))
    tokens, clock, _, _ = make(CLIENT)
    send = refusing(*(f"tok-{n}" for n in range(1, 6)))  # a home whose access was revoked

    def call() -> int:
        with pytest.raises(ApiError) as info:
            tokens.authorized("inverter_data", send)
        return info.value.status or 0

    assert call() == 401
    assert token_requests() == 2  # the first 401 renews once; tok-2 is refused as well
    for _ in range(5):  # within the backoff: the 401 stands, the token stays
        assert call() == 401
        assert tokens.token() == "tok-2"
    assert token_requests() == 2
    clock.advance(10)
    assert call() == 401
    assert token_requests() == 3  # the backoff has passed: one renewal, which did not help
    clock.advance(19)
    call()
    assert token_requests() == 3  # the backoff doubled: 20 s
    clock.advance(1)
    call()
    assert token_requests() == 4
    assert tokens.token() == "tok-4"  # kept: every other caller still has a token


@responses.activate
def test_a_renewal_that_helps_is_not_rationed_beyond_a_second() -> None:
    for n in range(1, 6):
        responses.post(TOKEN_URL, json=token_body(n))
    tokens, clock, _, _ = make(CLIENT)
    tokens.token()
    # The API revokes the token in use, again and again: each renewal helps.
    assert tokens.authorized("inverter_data", refusing("tok-1")) == "tok-2"
    clock.advance(1)
    assert tokens.authorized("inverter_data", refusing("tok-1", "tok-2")) == "tok-3"
    # Two 401s within a second: the second one stands, whatever the devices do.
    with pytest.raises(ApiError):
        tokens.authorized("inverter_data", refusing("tok-1", "tok-2", "tok-3"))
    assert token_requests() == 3
    clock.advance(1)
    assert tokens.authorized("inverter_data", refusing("tok-1", "tok-2", "tok-3")) == "tok-4"


@responses.activate
def test_a_call_whose_token_was_renewed_meanwhile_tries_the_new_one_without_a_request() -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=1000))
    responses.post(TOKEN_URL, json=token_body(2, expires_in=1000))
    tokens, clock, _, _ = make(CLIENT)
    tokens.token()
    sent: list[str] = []

    def send(token: str) -> str:
        sent.append(token)
        if token == "tok-1":
            clock.advance(950)  # meanwhile the renewal ahead of expiry is due and made
            assert tokens.token() == "tok-2"
            raise ApiError("inverter_data", "HTTP 401: revoked", 401)
        return token

    assert tokens.authorized("inverter_data", send) == "tok-2"
    assert sent == ["tok-1", "tok-2"] and token_requests() == 2


@responses.activate
def test_a_failed_renewal_for_a_401_keeps_the_token_for_everyone_else() -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.post(TOKEN_URL, status=503, json={"error": "down"})
    tokens, _, recorder, _ = make(CLIENT, attempts=1)
    with pytest.raises(ApiError) as info:
        tokens.authorized("inverter_data", refusing("tok-1"))
    assert info.value.status == 401  # the call's own answer, not the token endpoint's
    assert tokens.token() == "tok-1" and recorder.tokens == [True, False]
    assert token_requests() == 2


@responses.activate
def test_broken_token_response_is_counted_as_invalid() -> None:
    responses.post(TOKEN_URL, json={"token": "x"})
    tokens, _, recorder, _ = make(CLIENT)
    with pytest.raises(ApiError, match="no access_token"):
        tokens.token()
    assert recorder.invalid == ["token"]


# --- hostile token responses (issue 11) -------------------------------------------------------
@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        ("1e12", 86400),
        ("1e999", 86400),  # json.loads makes it inf
        ("NaN", 36000),
        ("0.001", 60),
        ("-1", 60),
        ("0", 60),
        ('"soon"', 36000),
        ('"3600"', 3600),
        ("true", 36000),
        ("null", 36000),
        ("3600", 3600),
    ],
)
@responses.activate
def test_token_lifetimes_are_clamped_into_a_sane_window(expires_in: str, lifetime: float) -> None:
    body = json.dumps(token_body(1)).replace('"expires_in": 36000', f'"expires_in": {expires_in}')
    responses.post(TOKEN_URL, body=body, content_type="application/json")
    tokens, clock, _, _ = make(CLIENT)
    assert tokens.token() == "tok-1"
    assert tokens.expires_at == NOON + lifetime
    clock.advance(0.9 * lifetime - 1)
    assert tokens.token() == "tok-1"
    assert len(responses.calls) == 1  # not a new token for every request


UNFIT = "token response has an access_token unfit for a header"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"access_token": "tok\r\nX-Evil: 1"}, UNFIT),
        ({"access_token": "tok en"}, UNFIT),
        ({"access_token": "t" * 10_000}, UNFIT),
        ({"access_token": "tök"}, UNFIT),
        ({"access_token": 42}, "token response has no access_token"),
        ({"access_token": "tok", "token_type": "MAC"}, "token_type 'MAC' is not Bearer"),
        (["tok"], "token response is not an object"),
    ],
)
@responses.activate
def test_unusable_token_responses_are_refused(body: Any, reason: str) -> None:
    responses.post(TOKEN_URL, json=body)
    tokens, _, recorder, _ = make(CLIENT)
    with pytest.raises(ApiError) as info:
        tokens.token()
    assert str(info.value) == f"token: {reason}"
    assert recorder.invalid == ["token"] and recorder.tokens == [False]


@responses.activate
def test_a_token_redirect_is_not_followed() -> None:
    elsewhere = "https://elsewhere.invalid/steal"
    responses.post(PASSWORD_URL, status=307, headers={"Location": elsewhere})
    thief = responses.post(elsewhere, json=token_body(9))
    tokens, _, recorder, _ = make(PASSWORD, PASSWORD_URL)
    with pytest.raises(ApiError, match=re.escape("redirect to https://elsewhere.invalid:443 not")):
        tokens.token()
    assert thief.call_count == 0  # the username and password were not posted there
    assert recorder.requests == [("token", "307")]


@responses.activate
def test_a_failed_token_request_backs_off_and_callers_get_the_failure_at_once() -> None:
    responses.post(TOKEN_URL, status=503, json={"error": "down"})
    tokens, clock, recorder, _ = make(CLIENT, attempts=1)
    with pytest.raises(ApiError, match="HTTP 503: down"):
        tokens.token()
    for _ in range(5):  # five polls within the backoff
        with pytest.raises(ApiError) as info:
            tokens.token()
        assert str(info.value) == "token: HTTP 503: down" and info.value.status == 503
    assert len(responses.calls) == 1
    clock.advance(10)
    with pytest.raises(ApiError):
        tokens.token()
    assert len(responses.calls) == 2
    clock.advance(19)  # the backoff doubled: 20 s
    with pytest.raises(ApiError):
        tokens.token()
    assert len(responses.calls) == 2
    responses.replace(responses.POST, TOKEN_URL, json=token_body(3))
    clock.advance(1)
    assert tokens.token() == "tok-3"
    assert recorder.tokens == [False, False, True]


@responses.activate
def test_32_concurrent_callers_share_one_failed_token_request() -> None:
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    tokens, _, _, _ = make(CLIENT)
    barrier = threading.Barrier(32)
    failures: list[str] = []

    def call() -> None:
        barrier.wait()
        try:
            tokens.token()
        except ApiError as exc:
            failures.append(exc.reason)

    threads = [threading.Thread(target=call) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(failures) == 32
    assert len(responses.calls) == 1  # one request; the other 31 got its failure


@responses.activate
def test_a_failed_renewal_is_not_retried_on_every_call() -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=1000))
    responses.post(TOKEN_URL, status=503, json={"error": "down"})
    tokens, clock, _, _ = make(CLIENT, attempts=1)
    tokens.token()
    clock.advance(950)  # renewal due, token still valid
    for _ in range(10):
        assert tokens.token() == "tok-1"
    assert len(responses.calls) == 2  # one renewal attempt, then the backoff


def test_a_secret_file_is_read_capped_and_without_bom_or_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"\xef\xbb\xbfs3cret\r\n")
    auth = AuthConfig(client_id="cid", client_secret_file=str(path))
    assert auth.secret().get_secret_value() == "s3cret"
    path.write_bytes(b"x" * (64 * 1024 + 1))
    with pytest.raises(ValueError, match="is larger than 64 KiB"):
        auth.secret()
    path.write_bytes(b"\xff\xfe s3cret")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        auth.secret()


@responses.activate
def test_a_secret_file_gone_bad_is_a_token_failure_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("csecret\n")
    tokens, _, recorder, _ = make(AuthConfig(client_id="cid", client_secret_file=str(path)))
    path.unlink()
    with pytest.raises(ApiError) as info:
        tokens.token()
    assert str(info.value).startswith("token: cannot read the secret: ")
    assert recorder.tokens == [False] and len(responses.calls) == 0


# --- the secret file, read outside the token lock (issue 20) ------------------------------------
class SlowSecretFile:
    """Stands in for read_secret_file: counts reads, and holds a read while `hold` is set
    (as a file on a hung mount would), noting whether the token lock was held."""

    def __init__(self, tokens: TokenProvider) -> None:
        self._tokens = tokens
        self.reads = 0
        self.lock_held: list[bool] = []
        self.hold = False
        self.reading = threading.Event()
        self.release = threading.Event()

    def __call__(self, path: str) -> SecretStr:
        self.reads += 1
        self.lock_held.append(self._tokens._lock.locked())
        if self.hold:
            self.reading.set()
            assert self.release.wait(10), "the test never released the read"
        return SecretStr(Path(path).read_text().strip())


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    return thread, out


def basic_secrets() -> list[str]:
    return [
        base64.b64decode(c.request.headers["Authorization"].split()[1]).decode().split(":")[1]
        for c in responses.calls
        if c.request.url == TOKEN_URL
    ]


@responses.activate
def test_the_secret_file_is_read_outside_the_token_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    path = tmp_path / "secret"
    path.write_text("csecret\n")
    tokens, _, _, _ = make(AuthConfig(client_id="cid", client_secret_file=str(path)))
    slow = SlowSecretFile(tokens)
    monkeypatch.setattr("exporter.api.auth.read_secret_file", slow)
    slow.hold = True
    first, got = in_thread(tokens.token)
    try:
        assert slow.reading.wait(10)
        # The read is under way and the token lock is free for everyone else.
        assert tokens._lock.acquire(blocking=False)
        tokens._lock.release()
    finally:
        slow.release.set()
    first.join(10)
    assert got == ["tok-1"] and slow.lock_held == [False]


@responses.activate
def test_a_slow_secret_file_stalls_no_caller_while_a_secret_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=100))
    responses.post(TOKEN_URL, json=token_body(2, expires_in=100))
    path = tmp_path / "secret"
    path.write_text("csecret\n")
    tokens, clock, _, _ = make(AuthConfig(client_id="cid", client_secret_file=str(path)))
    slow = SlowSecretFile(tokens)
    monkeypatch.setattr("exporter.api.auth.read_secret_file", slow)
    assert tokens.token() == "tok-1" and slow.reads == 1
    clock.advance(101)  # expired: the next caller needs a token request, hence the secret
    path.write_text("csecret-2\n")  # changed: it is read again, and that read hangs
    slow.hold = True
    stuck, stuck_got = in_thread(tokens.token)
    try:
        assert slow.reading.wait(10)
        other, other_got = in_thread(tokens.token)
        other.join(10)
        # Not stalled: the other caller asked for a token with the secret kept from before.
        assert not other.is_alive() and other_got == ["tok-2"]
        assert stuck.is_alive()
    finally:
        slow.release.set()
    stuck.join(10)
    assert stuck_got == ["tok-2"]  # the hung read ended: no second request for it
    assert basic_secrets() == ["csecret", "csecret"] and slow.lock_held == [False, False]


@responses.activate
def test_the_secret_file_is_read_again_only_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 5):
        responses.post(TOKEN_URL, json=token_body(n, expires_in=100))
    path = tmp_path / "secret"
    path.write_text("csecret\n")
    tokens, clock, _, _ = make(AuthConfig(client_id="cid", client_secret_file=str(path)))
    slow = SlowSecretFile(tokens)
    monkeypatch.setattr("exporter.api.auth.read_secret_file", slow)
    tokens.token()
    clock.advance(101)
    tokens.token()
    assert slow.reads == 1  # unchanged: the kept secret
    replacement = tmp_path / "secret.new"
    replacement.write_text("rotated\n")
    replacement.replace(path)  # as a Kubernetes secret mount swaps its files
    clock.advance(101)
    tokens.token()
    assert slow.reads == 2
    assert basic_secrets() == ["csecret", "csecret", "rotated"]


# --- what a mutation run found unpinned (issue 22) ----------------------------------------------
def auth_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, Any]]:
    """(level, message, fields) of the auth module's log lines."""
    return [
        (r.levelname, r.getMessage(), getattr(r, "kv", None))
        for r in caplog.records
        if r.name == "exporter.api.auth"
    ]


BASIC_CID = {"Authorization": "Basic " + base64.b64encode(b"cid:csecret").decode()}


@pytest.mark.parametrize(
    ("value", "lifetime"), [(10**400, MAX_LIFETIME), (-(10**400), MIN_LIFETIME)]
)
def test_an_integer_too_large_for_a_float_is_clamped_by_its_sign(
    value: int, lifetime: float
) -> None:
    assert token_lifetime(value) == (lifetime, "expires_in is outside 60..86400 s, clamped")


def test_only_the_first_40_characters_of_a_lifetime_string_are_read() -> None:
    # A megabyte of digits costs no more than a short string; what follows is not looked at.
    assert token_lifetime("0" * 36 + "3600" + "x") == (3600.0, None)


@pytest.mark.parametrize(
    ("refresh", "kept"),
    [("r1", "r1"), ("r1\r\nX-Evil: 1", None), ("r" * 10_000, None), (42, None), ("", None)],
)
def test_a_refresh_token_unfit_for_a_request_is_dropped(refresh: Any, kept: str | None) -> None:
    token, _ = token_from_response({"access_token": "tok", "refresh_token": refresh}, NOON)
    assert token.refresh_token == kept


def test_a_token_type_is_shown_cut_to_20_characters() -> None:
    with pytest.raises(ApiError) as info:
        token_from_response({"access_token": "tok", "token_type": "X" * 30}, NOON)
    assert str(info.value) == f"token: token_type '{'X' * 19}…' is not Bearer"


@responses.activate
def test_a_reply_that_is_not_json_is_an_invalid_token_response() -> None:
    responses.post(TOKEN_URL, body="<html>", content_type="text/html")
    tokens, _, recorder, _ = make(CLIENT)
    with pytest.raises(ApiError) as info:
        tokens.token()
    assert str(info.value) == "token: content type 'text/html' is not JSON"
    assert recorder.invalid == ["token"]


@responses.activate
def test_every_token_result_reports_the_expiry_in_use(caplog: pytest.LogCaptureFixture) -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=1000))
    responses.post(TOKEN_URL, status=503, json={"error": "down"})
    tokens, clock, recorder, _ = make(CLIENT, attempts=1)
    with caplog.at_level(logging.DEBUG, logger="exporter.api.auth"):
        tokens.token()
        clock.advance(950)
        assert tokens.token() == "tok-1"
    # A failed renewal leaves the gauge at the token still in use, not at nothing.
    assert recorder.expiries == [NOON + 1000, NOON + 1000]
    assert auth_logs(caplog) == [
        ("DEBUG", "obtained an access token", {"valid_seconds": 1000}),
        (
            "WARNING",
            "token renewal failed, using the current token",
            {"reason": "HTTP 503: down", "status": 503},
        ),
    ]


@responses.activate
def test_a_renewal_is_due_at_exactly_its_time_and_sends_the_credentials() -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=1000))
    responses.post(TOKEN_URL, json=token_body(2), match=[matchers.header_matcher(BASIC_CID)])
    tokens, clock, _, _ = make(CLIENT)
    tokens.token()
    clock.advance(900)  # 1000 s lifetime: due 100 s before expiry, to the second
    assert tokens.token() == "tok-2"


@responses.activate
def test_a_token_is_not_used_at_exactly_its_expiry() -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=1000))
    responses.post(TOKEN_URL, status=503, json={"error": "down"})
    tokens, clock, _, _ = make(CLIENT, attempts=1)
    tokens.token()
    clock.advance(1000)
    with pytest.raises(ApiError, match="HTTP 503"):
        tokens.token()


@responses.activate
def test_the_failure_backoff_starts_over_after_a_success() -> None:
    responses.post(TOKEN_URL, status=503, json={"error": "down"})
    responses.post(TOKEN_URL, json=token_body(2, expires_in=100))
    responses.post(TOKEN_URL, status=503, json={"error": "down"})
    responses.post(TOKEN_URL, json=token_body(4, expires_in=100))
    tokens, clock, _, _ = make(CLIENT, attempts=1)
    with pytest.raises(ApiError):
        tokens.token()
    clock.advance(10)
    assert tokens.token() == "tok-2"
    clock.advance(90)
    assert tokens.token() == "tok-2"  # the renewal failed: 10 s backoff, not 20
    clock.advance(10)
    assert tokens.token() == "tok-4"
    assert len(responses.calls) == 4


@responses.activate
def test_an_unusable_lifetime_is_logged_once_with_what_was_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=1000))
    odd = {**token_body(2), "expires_in": "x" * 50}
    responses.post(TOKEN_URL, json=odd)
    responses.post(TOKEN_URL, json={**odd, "access_token": "tok-3"})
    tokens, clock, _, _ = make(CLIENT)
    with caplog.at_level(logging.WARNING, logger="exporter.api.auth"):
        tokens.token()  # a usable lifetime: nothing to say
        clock.advance(900)
        assert tokens.token() == "tok-2"
        clock.advance(35100)  # 36000 s assumed: renewed 900 s ahead
        assert tokens.token() == "tok-3"
    assert auth_logs(caplog) == [
        (
            "WARNING",
            "token lifetime not usable as sent",
            {
                "reason": "expires_in is not a number, assumed 36000 s",
                "expires_in": "'" + "x" * 38 + "…",
                "valid_seconds": 36000,
            },
        )
    ]


@responses.activate
def test_a_401_renewal_sends_the_credentials_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    responses.post(TOKEN_URL, json=token_body(1), match=[matchers.header_matcher(BASIC_CID)])
    responses.post(TOKEN_URL, json=token_body(2), match=[matchers.header_matcher(BASIC_CID)])
    tokens, _, _, _ = make(CLIENT)
    with caplog.at_level(logging.INFO, logger="exporter.api.auth"):
        assert tokens.authorized("inverter_data", refusing("tok-1")) == "tok-2"
    assert auth_logs(caplog) == [
        ("INFO", "token refused, renewing it and retrying", {"endpoint": "inverter_data"})
    ]


@responses.activate
def test_a_401_renewal_of_the_password_grant_uses_the_refresh_token() -> None:
    responses.post(PASSWORD_URL, json=token_body(1, refresh="r1"))
    responses.post(PASSWORD_URL, json=token_body(2, refresh="r2"))
    tokens, _, _, _ = make(PASSWORD, PASSWORD_URL)
    assert tokens.authorized("inverter_data", refusing("tok-1")) == "tok-2"
    grants = [json.loads(c.request.body or b"{}")["grant_type"] for c in responses.calls]
    assert grants == ["password", "refresh_token"]


@responses.activate
def test_a_refused_refresh_token_is_logged_before_the_password_is_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    responses.post(PASSWORD_URL, json=token_body(1, 100, refresh="r1"))
    responses.post(PASSWORD_URL, status=401, json={"error": "invalid_grant"})
    responses.post(PASSWORD_URL, json=token_body(3, 100))
    tokens, clock, _, _ = make(PASSWORD, PASSWORD_URL)
    tokens.token()
    clock.advance(101)
    with caplog.at_level(logging.INFO, logger="exporter.api.auth"):
        assert tokens.token() == "tok-3"
    assert auth_logs(caplog) == [
        (
            "INFO",
            "refresh token refused, signing in with the password",
            {"reason": "HTTP 401: invalid_grant", "status": 401},
        )
    ]


@responses.activate
def test_a_failed_401_renewal_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    responses.post(TOKEN_URL, json=token_body(1))
    responses.post(TOKEN_URL, status=503, json={"error": "down"})
    tokens, _, _, _ = make(CLIENT, attempts=1)
    tokens.token()
    with caplog.at_level(logging.WARNING, logger="exporter.api.auth"), pytest.raises(ApiError):
        tokens.authorized("inverter_data", refusing("tok-1"))
    assert auth_logs(caplog) == [
        (
            "WARNING",
            "token renewal after a 401 failed, keeping the current token",
            {"reason": "HTTP 503: down", "status": 503},
        )
    ]


@responses.activate
def test_the_401_backoff_starts_over_once_a_renewal_helps(caplog: pytest.LogCaptureFixture) -> None:
    for n in range(1, 7):
        responses.post(TOKEN_URL, json=token_body(n))
    tokens, clock, _, _ = make(CLIENT)
    with caplog.at_level(logging.WARNING, logger="exporter.api.auth"):
        with pytest.raises(ApiError):
            tokens.authorized("inverter_data", refusing("tok-1", "tok-2"))  # backoff 10 s
        clock.advance(10)
        assert tokens.authorized("inverter_data", refusing("tok-2")) == "tok-3"  # it helped
        clock.advance(1)
        with pytest.raises(ApiError):
            tokens.authorized("inverter_data", refusing("tok-3", "tok-4"))  # 10 s again
        clock.advance(10)
        assert tokens.authorized("inverter_data", refusing("tok-4")) == "tok-5"
    assert token_requests() == 5
    verdict = "a renewed token was refused as well: renewals for 401s back off"
    assert auth_logs(caplog) == [
        ("WARNING", verdict, {"backoff_seconds": 10.0}),
        ("WARNING", verdict, {"backoff_seconds": 10.0}),
    ]


@responses.activate
def test_one_verdict_per_token_however_many_calls_it_failed() -> None:
    for n in range(1, 5):
        responses.post(TOKEN_URL, json=token_body(n))
    tokens, clock, _, _ = make(CLIENT)
    tokens.token()
    revoked = refusing("tok-1", "tok-2", "tok-3")

    def send_b(token: str) -> str:
        if token == "tok-1":
            # Meanwhile another call renews for its own 401 and tok-2 is refused as well.
            with pytest.raises(ApiError):
                tokens.authorized("inverter_data", revoked)
        return revoked(token)

    with pytest.raises(ApiError):
        tokens.authorized("inverter_data", send_b)  # tok-1, then tok-2: refused again
    assert token_requests() == 2
    clock.advance(10)  # the one verdict on tok-2 set 10 s, whatever calls shared it
    with pytest.raises(ApiError):
        tokens.authorized("inverter_data", revoked)
    assert token_requests() == 3


@responses.activate
def test_a_token_at_exactly_its_expiry_is_not_tried_after_a_401() -> None:
    for n in range(1, 4):
        responses.post(TOKEN_URL, json=token_body(n, expires_in=1000))
    tokens, clock, _, _ = make(CLIENT)
    tokens.token()

    def send(token: str) -> str:
        if token == "tok-1":
            clock.advance(950)
            assert tokens.token() == "tok-2"  # renewed ahead of expiry meanwhile...
            clock.advance(1000)  # ...and expired by the time the 401 comes back
            raise ApiError("inverter_data", "HTTP 401: revoked", 401)
        return token

    assert tokens.authorized("inverter_data", send) == "tok-3"


@responses.activate
def test_calls_that_make_no_token_request_do_not_look_at_the_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    responses.post(TOKEN_URL, json=token_body(1, expires_in=1000))
    responses.post(TOKEN_URL, status=503, json={"error": "down"})
    responses.post(TOKEN_URL, json=token_body(3, expires_in=1000))
    responses.post(TOKEN_URL, json=token_body(4, expires_in=1000))
    path = tmp_path / "secret"
    path.write_text("csecret\n")
    tokens, clock, _, _ = make(
        AuthConfig(client_id="cid", client_secret_file=str(path)), attempts=1
    )
    looks: list[str] = []
    real = auth.file_identity
    monkeypatch.setattr(auth, "file_identity", lambda p: looks.append(p) or real(p))
    tokens.token()
    clock.advance(950)
    assert tokens.token() == "tok-1" and len(looks) == 2  # a renewal, which failed
    for _ in range(3):  # backing off: no renewal, no look at the file
        assert tokens.token() == "tok-1"
    assert len(looks) == 2
    clock.advance(10)
    assert tokens.token() == "tok-3" and len(looks) == 3
    assert tokens.authorized("inverter_data", refusing("tok-3")) == "tok-4"
    assert len(looks) == 4
    # Two 401s within a second: the second stands, and costs no look at the file either.
    with pytest.raises(ApiError):
        tokens.authorized("inverter_data", refusing("tok-3", "tok-4"))
    assert len(looks) == 4


class WatchedLock:
    """A lock that sets `waiting` when a caller blocks on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting = threading.Event()

    def acquire(self, blocking: bool = True) -> bool:
        if blocking:
            self.waiting.set()
        return self._lock.acquire(blocking)

    def release(self) -> None:
        self._lock.release()


def test_a_second_reader_waits_for_the_first_read_of_the_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret"
    path.write_text("csecret\n")
    kept = KeptSecret(AuthConfig(client_id="cid", client_secret_file=str(path)))
    lock = WatchedLock()
    kept._looking = lock  # type: ignore[assignment]
    reading, release = threading.Event(), threading.Event()

    def slow_read(p: str) -> SecretStr:
        reading.set()
        assert release.wait(10)
        return SecretStr(Path(p).read_text().strip())

    monkeypatch.setattr(auth, "read_secret_file", slow_read)
    first, first_got = in_thread(kept.value)
    try:
        assert reading.wait(10)
        second, second_got = in_thread(lambda: (kept.value(), lock.waiting.set())[0])
        assert lock.waiting.wait(10)
        assert second_got == []  # nothing kept yet: it waits for the read under way
    finally:
        release.set()
    first.join(10)
    second.join(10)
    assert first_got == second_got == ["csecret"]


def secret_file_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[TokenProvider, FakeClock, SlowSecretFile, Path]:
    """A provider whose secret file was read once for tok-1 (1000 s), the clock at its renewal,
    and the file changed: the next caller's read of it hangs until released."""
    path = tmp_path / "secret"
    path.write_text("csecret\n")
    tokens, clock, _, _ = make(AuthConfig(client_id="cid", client_secret_file=str(path)))
    slow = SlowSecretFile(tokens)
    monkeypatch.setattr("exporter.api.auth.read_secret_file", slow)
    assert tokens.token() == "tok-1"
    path.write_text("csecret-2\n")
    slow.hold = True
    return tokens, clock, slow, path


@responses.activate
def test_a_renewal_made_while_a_caller_read_the_secret_is_not_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 4):
        responses.post(TOKEN_URL, json=token_body(n, expires_in=1000))
    tokens, clock, slow, _ = secret_file_tokens(tmp_path, monkeypatch)
    clock.advance(950)
    reader, got = in_thread(tokens.token)
    try:
        assert slow.reading.wait(10)
        assert tokens.token() == "tok-2"  # another caller renews with the kept secret
    finally:
        slow.release.set()
    reader.join(10)
    assert got == ["tok-2"] and token_requests() == 2


@responses.activate
def test_a_caller_due_to_renew_takes_the_old_token_while_another_renews(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requesting, answer = threading.Event(), threading.Event()

    def slow_token(_: Any) -> tuple[int, dict[str, str], str]:
        requesting.set()
        assert answer.wait(10)
        return 200, {}, json.dumps(token_body(2))

    responses.post(TOKEN_URL, json=token_body(1, expires_in=1000))
    responses.add_callback(responses.POST, TOKEN_URL, slow_token, content_type="application/json")
    tokens, clock, slow, _ = secret_file_tokens(tmp_path, monkeypatch)
    clock.advance(950)
    reader, got = in_thread(tokens.token)
    try:
        assert slow.reading.wait(10)
        renewer, renewed = in_thread(tokens.token)
        assert requesting.wait(10)
        slow.release.set()
        reader.join(10)
        assert got == ["tok-1"]  # not held up by the renewal under way
    finally:
        slow.release.set()
        answer.set()
    renewer.join(10)
    assert renewed == ["tok-2"]


@responses.activate
def test_a_caller_that_waited_for_a_renewal_renews_again_if_it_is_already_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 4):
        responses.post(TOKEN_URL, json=token_body(n, expires_in=1000))
    tokens, clock, slow, _ = secret_file_tokens(tmp_path, monkeypatch)
    clock.advance(1000)  # expired: callers wait for a new token
    reader, got = in_thread(tokens.token)
    try:
        assert slow.reading.wait(10)
        assert tokens.token() == "tok-2"
        clock.advance(900)  # tok-2 is due for renewal, to the second
    finally:
        slow.release.set()
    reader.join(10)
    assert got == ["tok-3"]


@responses.activate
def test_a_verdict_while_a_caller_reads_the_secret_still_stops_its_renewal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 4):
        responses.post(TOKEN_URL, json=token_body(n))
    path = tmp_path / "secret"
    path.write_text("csecret\n")
    tokens, clock, _, _ = make(AuthConfig(client_id="cid", client_secret_file=str(path)))
    slow = SlowSecretFile(tokens)
    monkeypatch.setattr("exporter.api.auth.read_secret_file", slow)
    tokens.token()
    outcome: list[Any] = []

    def call_b() -> None:
        try:
            outcome.append(tokens.authorized("inverter_data", refusing("tok-2")))
        except ApiError as exc:
            outcome.append(exc.status)

    def send_a(token: str) -> str:
        if token == "tok-2":
            clock.advance(1)  # past the spacing: B may renew for its 401, and reads the secret
            path.write_text("csecret-2\n")
            slow.hold = True
            threads.append(in_thread(call_b)[0])
            assert slow.reading.wait(10)
        raise ApiError("inverter_data", "HTTP 401: revoked", 401)  # tok-2 did not help

    threads: list[threading.Thread] = []
    try:
        with pytest.raises(ApiError):
            tokens.authorized("inverter_data", send_a)
    finally:
        slow.release.set()
    threads[0].join(10)
    assert outcome == [401] and token_requests() == 2
