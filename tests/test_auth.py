"""Token flows against a mocked token endpoint (responses): expiry, renewal, 401 retry,
the password grant's refresh and fallback, and one renewal under concurrency."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses
from pydantic import SecretStr
from responses import matchers

from exporter.api.auth import TokenProvider
from exporter.api.client import PoderoClient
from exporter.api.transport import ApiError, RetryPolicy, Transport, new_session
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


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"access_token": "tok\r\nX-Evil: 1"}, "unfit for a header"),
        ({"access_token": "tok en"}, "unfit for a header"),
        ({"access_token": "t" * 10_000}, "unfit for a header"),
        ({"access_token": "tök"}, "unfit for a header"),
        ({"access_token": 42}, "no access_token"),
        ({"access_token": "tok", "token_type": "MAC"}, "token_type 'MAC' is not Bearer"),
        (["tok"], "not an object"),
    ],
)
@responses.activate
def test_unusable_token_responses_are_refused(body: Any, reason: str) -> None:
    responses.post(TOKEN_URL, json=body)
    tokens, _, recorder, _ = make(CLIENT)
    with pytest.raises(ApiError, match=reason):
        tokens.token()
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
    with pytest.raises(ApiError, match="cannot read the secret"):
        tokens.token()
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
