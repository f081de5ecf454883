"""The transport on its own: each exchange, its deadline and its report, the decision on each
answer (retry, redirect, error, body), the backoff curve, and the socket wrapper that holds a
receive to the exchange's deadline (on a socket pair and loopback connections, no server).

test_api.py sees the transport through the client; these pin its rules at their limits."""

from __future__ import annotations

import email.utils
import gzip
import http.server
import inspect
import json
import logging
import random
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter.api import connections as connections_module
from exporter.api import transport as transport_module
from exporter.api.bodies import ByteBudget
from exporter.api.budget import RequestBudget
from exporter.api.connections import (
    _DeadlineHTTPConnection,
    _DeadlineHTTPPool,
    _DeadlineHTTPSConnection,
    _DeadlineHTTPSPool,
    _DeadlineSocket,
    current_deadline,
    departing,
    new_session,
    socket_deadline,
)
from exporter.api.transport import (
    ApiError,
    InvalidResponse,
    Reply,
    RetryableError,
    RetryPolicy,
    StopBeforeDeadline,
    Transport,
    decode_json,
    media_type,
    origin,
    parse_retry_after,
)
from tests.conftest import NOON
from tests.fakes import FakeClock

BASE = "https://podero.invalid"
URL = f"{BASE}/api/partners/v2.0/org/o/users/u/inverters/i/data"
OK = {"data": []}


class Reports:
    """An ApiObserver that keeps every exchange: (endpoint, code, seconds)."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[str, str, float]] = []

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        self.exchanges.append((endpoint, code, seconds))

    def invalid_response(self, endpoint: str) -> None: ...

    def token_result(self, ok: bool, expires_at: float | None) -> None: ...

    @property
    def codes(self) -> list[str]:
        return [code for _, code, _ in self.exchanges]


def make(
    *,
    attempts: int = 1,
    timeout: float = 5,
    max_wait: float = 30.0,
    multiplier: float = 0.5,
    max_body: int = 1024 * 1024,
    bodies: ByteBudget | None = None,
    session: Any = None,
) -> tuple[Transport, FakeClock, Reports]:
    clock = FakeClock(NOON)
    reports = Reports()
    transport = Transport(
        session if session is not None else new_session(4),
        timeout=timeout,
        policy=RetryPolicy(attempts, max_wait, multiplier),
        clock=clock,
        observer=reports,
        max_body_bytes=max_body,
        bodies=bodies,
    )
    return transport, clock, reports


def failure(transport: Transport, method: str = "GET", **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        transport.send("inverter_data", method, URL, **kwargs)
    return info.value


def in_new_thread(call: Any) -> Any:
    """`call()` in a thread that never held bodies (the thread-local state a fresh worker
    has), its result or exception returned."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return out[0]


# --- the pure helpers ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Podero.INVALID/x", ("https", "podero.invalid", 443)),
        ("HTTP://podero.invalid/x", ("http", "podero.invalid", 80)),
        ("https://podero.invalid:8443/x", ("https", "podero.invalid", 8443)),
        ("https://podero.invalid:99999/x", ("https", "podero.invalid", -1)),  # no such port
        ("ftp://podero.invalid/x", ("ftp", "podero.invalid", None)),
        ("/relative/path", ("", "", None)),
    ],
)
def test_an_origin_is_scheme_host_and_port_made_explicit(
    url: str, expected: tuple[str, str, int | None]
) -> None:
    assert origin(url) == expected


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({}, ""),
        ({"Content-Type": " Application/JSON ; charset=utf-8"}, "application/json"),
        ({"Content-Type": "application/json; a=1; b=2"}, "application/json"),
    ],
)
def test_a_media_type_is_the_content_type_without_parameters(
    headers: dict[str, str], kind: str
) -> None:
    assert media_type(headers) == kind


def test_a_retry_after_date_in_minus_0000_is_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RFC 5322: -0000 is UTC with no zone to say; parsedate gives a naive datetime for it.
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        when = datetime.fromtimestamp(NOON + 12, UTC)
        value = when.strftime("%a, %d %b %Y %H:%M:%S -0000")
        assert parse_retry_after(value, NOON) == 12.0
        gmt = email.utils.format_datetime(when, usegmt=True)
        assert parse_retry_after(gmt, NOON) == 12.0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_retries_stop_before_a_wait_that_would_reach_the_deadline() -> None:
    clock = FakeClock(100.0)
    stop = StopBeforeDeadline(110.0, clock)
    assert stop(SimpleNamespace(upcoming_sleep=10.0))  # type: ignore[arg-type]
    assert not stop(SimpleNamespace(upcoming_sleep=9.5))  # type: ignore[arg-type]


def json_reply(body: bytes, content_type: str | None = "application/json") -> Reply:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return Reply(200, headers, body, URL)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (json_reply(b"{}", None), "content type '' is not JSON"),
        (json_reply(b"{}", "text/html"), "content type 'text/html' is not JSON"),
        (json_reply(b"{}", "text/" + "x" * 70), f"content type 'text/{'x' * 54}…' is not JSON"),
        (json_reply(b""), "empty body"),
        (json_reply(b"{"), "body is not valid JSON"),
    ],
)
def test_a_reply_without_usable_json_says_why_naming_the_endpoint(
    reply: Reply, message: str
) -> None:
    with pytest.raises(InvalidResponse) as info:
        decode_json("inverter_data", reply)
    assert str(info.value) == f"inverter_data: {message}"


def test_the_item_guard_refuses_a_body_at_exactly_its_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport_module, "MAX_JSON_ITEMS", 10)
    # Items are commas, braces and brackets: 1 + 4 + 4 = 9, then 1 + 5 + 4 = 10.
    assert decode_json("x", json_reply(b"[{},{},{},{},0]")) == [{}, {}, {}, {}, 0]
    with pytest.raises(InvalidResponse) as info:
        decode_json("x", json_reply(b"[{},{},{},{},{}]"))
    assert str(info.value) == "x: body has more than 10 items"


def test_an_error_message_is_cleaned_to_300_characters() -> None:
    error = ApiError("inverter_data", "é" * 400, 400)
    assert error.reason == "é" * 299 + "…" and error.endpoint == "inverter_data"
    retryable = RetryableError("inverter_data", "busy", 503, 2.0)
    assert (retryable.endpoint, retryable.status, retryable.retry_after) == (
        "inverter_data",
        503,
        2.0,
    )


# --- the session ---------------------------------------------------------------------------------
def test_a_session_pools_one_connection_per_worker_through_deadline_sockets() -> None:
    session = new_session(7)
    adapter = session.get_adapter("https://podero.invalid/")
    assert session.get_adapter("http://127.0.0.1:9/") is adapter
    assert isinstance(adapter, connections_module._DeadlineAdapter)
    assert (adapter._pool_connections, adapter._pool_maxsize) == (4, 7)
    assert adapter.max_retries.total == 0
    assert adapter.poolmanager.pool_classes_by_scheme == {
        "http": _DeadlineHTTPPool,
        "https": _DeadlineHTTPSPool,
    }
    assert adapter.poolmanager.connection_pool_kw["maxsize"] == 7
    proxied = adapter.proxy_manager_for("http://127.0.0.1:3128")
    assert proxied.pool_classes_by_scheme["https"] is _DeadlineHTTPSPool
    socks = adapter.proxy_manager_for("SOCKS5://127.0.0.1:1080")
    assert socks.pool_classes_by_scheme["https"] is not _DeadlineHTTPSPool  # its own


@responses.activate
def test_every_request_says_who_it_is_and_what_it_takes() -> None:
    responses.get(URL, json=OK)
    transport, _, _ = make()
    transport.send("inverter_data", "GET", URL)
    headers = responses.calls[0].request.headers
    assert headers["User-Agent"] == "podero-exporter"
    assert headers["Accept-Encoding"] == "gzip, deflate"  # what the decoder knows, no more
    assert headers["Accept"] == "application/json"
    assert dict(new_session(1).headers) == {
        "User-Agent": "podero-exporter",
        "Accept-Encoding": "gzip, deflate",
        "Accept": "application/json",
        "Connection": "keep-alive",
    }


# --- bodies --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("identity", lambda body: body),
    ],
)
@responses.activate
def test_each_content_encoding_the_transport_accepts_is_decoded(encoding: str, encode: Any) -> None:
    text = json.dumps({"data": ["x" * 100] * 10}).encode()
    responses.get(
        URL,
        body=encode(text),
        headers={"Content-Encoding": encoding},
        content_type="application/json",
    )
    transport, _, _ = make()
    assert transport.send("inverter_data", "GET", URL).body == text


@responses.activate
def test_a_body_that_is_not_json_is_not_read() -> None:
    responses.get(URL, body="<html>" * 1000, content_type="text/html")
    transport, _, _ = make()
    reply = transport.send("inverter_data", "GET", URL)
    assert (reply.status, reply.body, reply.url) == (200, b"", URL)


@responses.activate
def test_an_unreadable_body_is_an_invalid_response_of_its_endpoint() -> None:
    responses.get(URL, body=b"x" * 2000, content_type="application/json")
    responses.get(
        URL, body=b"not gzip", headers={"Content-Encoding": "gzip"}, content_type="application/json"
    )
    transport, _, _ = make(max_body=1000)
    assert str(failure(transport)) == (
        "inverter_data: body too large: more than 1000 bytes on the wire"
    )
    assert str(failure(transport)) == "inverter_data: the gzip body does not decode"


@responses.activate
def test_an_error_body_is_read_to_64_kib_for_its_text() -> None:
    responses.get(URL, status=300, json={"error": "x" * (70 * 1024)})  # not 2xx: an error
    responses.get(URL, status=400, json={"error": "\x00" * 1200 + "tail"})
    responses.get(URL, status=400, json={"error": "no such range"})
    transport, _, _ = make()
    error = failure(transport)
    assert (str(error), error.status) == ("inverter_data: HTTP 300", 300)
    # Only the first 1200 characters of the error are looked at (here all invisible).
    assert str(failure(transport)) == "inverter_data: HTTP 400: "
    assert str(failure(transport)) == "inverter_data: HTTP 400: no such range"


# --- redirects -----------------------------------------------------------------------------------
@responses.activate
def test_a_relative_same_origin_redirect_is_followed_to_its_location() -> None:
    responses.get(URL, status=308, headers={"Location": "/api/partners/v2.0/moved?page=2"})
    responses.get(f"{BASE}/api/partners/v2.0/moved", json=OK)
    transport, _, reports = make()
    reply = transport.send("inverter_data", "GET", URL, params={"page": "1"})
    assert reply.url == f"{BASE}/api/partners/v2.0/moved?page=2"
    assert reports.codes == ["308", "200"]


@responses.activate
def test_a_redirect_without_a_location_leads_back_to_the_same_url_until_the_limit() -> None:
    responses.get(URL, status=302)
    transport, _, reports = make()
    error = failure(transport)
    assert (str(error), error.status) == ("inverter_data: more than 3 redirects", None)
    assert reports.codes == ["302"] * 4


@pytest.mark.parametrize(("method", "follow"), [("GET", False), ("POST", True), ("POST", False)])
@responses.activate
def test_only_gets_that_may_follow_redirects_follow_them(method: str, follow: bool) -> None:
    responses.add(method, URL, status=307, headers={"Location": URL + "/"})
    transport, _, reports = make()
    error = failure(transport, method, follow_redirects=follow)
    assert str(error) == (
        "inverter_data: HTTP 307: redirect to https://podero.invalid:443 not followed "
        "(credentials go only to the configured URL)"
    )
    assert error.status == 307 and reports.codes == ["307"]


@responses.activate
def test_a_redirect_to_another_origin_is_refused_naming_it() -> None:
    responses.get(URL, status=301, headers={"Location": "http://podero.invalid/data"})
    transport, _, _ = make()
    error = failure(transport)
    assert str(error) == (
        "inverter_data: HTTP 301: redirect to another origin (http://podero.invalid:80) refused"
    )
    assert error.status == 301


# --- errors, retries and the backoff curve -------------------------------------------------------
@responses.activate
def test_a_retryable_answer_that_stays_is_raised_with_its_endpoint_status_and_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    responses.get(URL, status=503, json={"error": "down"}, headers={"Retry-After": "7"})
    transport, clock, _ = make(attempts=2)
    with caplog.at_level(logging.DEBUG, logger="exporter.api.transport"):
        error = failure(transport)
    assert isinstance(error, RetryableError)
    assert (str(error), error.status, error.retry_after) == (
        "inverter_data: HTTP 503: down",
        503,
        7.0,
    )
    assert clock.sleeps == [7.0]
    assert [(r.getMessage(), getattr(r, "kv", None)) for r in caplog.records] == [
        ("retrying", {"endpoint": "inverter_data", "reason": "HTTP 503: down", "wait": 7.0})
    ]


@responses.activate
def test_the_backoff_grows_as_multiplier_times_two_to_the_try_up_to_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each jitter
    responses.get(URL, status=500, json={})
    transport, clock, _ = make(attempts=5, max_wait=3.0, multiplier=0.25)
    failure(transport)
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0]


@responses.activate
def test_a_failure_outside_a_holding_block_is_raised_as_it_is() -> None:
    responses.get(URL, status=404, json={"error": "gone"})
    responses.get(URL, status=200, json=OK)
    transport, _, _ = make(bodies=ByteBudget(1 << 20))
    error = in_new_thread(lambda: transport.send("inverter_data", "GET", URL))
    assert isinstance(error, ApiError) and str(error) == "inverter_data: HTTP 404: gone"
    reply = in_new_thread(lambda: transport.send("inverter_data", "GET", URL))
    assert reply.status == 200 and transport._bodies is not None
    assert transport._bodies.held == 0  # outside a holding block: given back at once


@responses.activate
def test_a_failed_try_gives_back_its_own_shares_and_not_those_of_earlier_calls() -> None:
    responses.get(URL, json=OK)
    responses.get(URL, status=400, json={"error": "bad"})
    budget = ByteBudget(1 << 20)
    transport, _, _ = make(bodies=budget)
    with transport.holding_bodies():
        transport.send("inverter_data", "GET", URL)
        held = budget.held
        assert held > 0
        failure(transport)
        assert budget.held == held
    assert budget.held == 0


# --- the exchange: deadline and report -----------------------------------------------------------
class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def read(self, amt: int, decode_content: bool = True) -> bytes:
        piece, self._body = self._body[:amt], self._body[amt:]
        return piece


class _Response:
    def __init__(self, body: bytes = b"{}") -> None:
        self.status_code = 200
        self.headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        self.raw = _Raw(body)

    def close(self) -> None:
        pass


class ScriptedSession:
    """A session whose `request` runs `act(kwargs)`: to look at the exchange from inside."""

    def __init__(self, act: Any) -> None:
        self._act = act
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> _Response:
        self.calls.append(kwargs)
        result = self._act(kwargs)
        return result if isinstance(result, _Response) else _Response()


class FakeTime:
    """The transport's view of `time`: a perf_counter the test moves, the real monotonic."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


def test_a_call_without_time_left_sends_nothing() -> None:
    session = ScriptedSession(lambda kwargs: None)
    transport, clock, reports = make(session=session, attempts=3)
    error = failure(transport, deadline=clock.monotonic())
    assert str(error) == "inverter_data: no time left before the call's deadline"
    assert isinstance(error, RetryableError) and session.calls == [] and reports.exchanges == []


def test_an_exchange_gets_what_is_left_however_little_and_its_socket_that_deadline() -> None:
    seen: list[float] = []
    session = ScriptedSession(lambda kwargs: seen.append(connections_module._deadline.at))
    transport, clock, _ = make(session=session, timeout=30)
    transport.send("inverter_data", "GET", URL, deadline=clock.monotonic() + 0.5)
    transport.send("inverter_data", "GET", URL)
    assert [call["timeout"] for call in session.calls] == [0.5, 30]
    assert 0 < seen[0] - time.monotonic() <= 0.5 and 0.5 < seen[1] - time.monotonic() <= 30
    assert all(call["allow_redirects"] is False for call in session.calls)
    assert getattr(connections_module._deadline, "at", None) is None  # only during the exchange


@pytest.mark.parametrize(
    ("error", "after", "code", "reason"),
    [
        (requests.ReadTimeout("slow"), 1.0, "timeout", "no complete answer within 5s"),
        (
            requests.ConnectionError("reset"),
            1.0,
            "connection_error",
            "connection failed: ConnectionError",
        ),
        (requests.ConnectionError("reset"), 5.0, "timeout", "no complete answer within 5s"),
        (OSError("broken pipe"), 4.5, "connection_error", "connection failed: OSError"),
    ],
)
def test_a_failed_exchange_is_a_timeout_when_it_took_all_its_time(
    monkeypatch: pytest.MonkeyPatch, error: Exception, after: float, code: str, reason: str
) -> None:
    fake = FakeTime()
    monkeypatch.setattr(transport_module, "time", fake)

    def fail(kwargs: dict[str, Any]) -> None:
        fake.now += after
        raise error

    transport, _, reports = make(session=ScriptedSession(fail))
    assert str(failure(transport)) == f"inverter_data: {reason}"
    assert reports.exchanges == [("inverter_data", code, after)]


def test_an_exchange_that_fails_in_an_unforeseen_way_is_still_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeTime()
    monkeypatch.setattr(transport_module, "time", fake)

    def fail(kwargs: dict[str, Any]) -> None:
        fake.now += 2.5
        raise RuntimeError("a bug below")

    transport, _, reports = make(session=ScriptedSession(fail))
    with pytest.raises(RuntimeError):
        transport.send("inverter_data", "GET", URL)
    assert reports.exchanges == [("inverter_data", "connection_error", 2.5)]


def test_a_body_waiting_for_room_in_the_byte_budget_gives_up_at_the_exchange_deadline() -> None:
    budget = ByteBudget(1000)
    budget.take(1000)  # all held elsewhere (another worker's body)
    session = ScriptedSession(lambda kwargs: _Response(b"[" + b"0," * 400 + b"0]"))
    transport, _, reports = make(session=session, timeout=0.01, bodies=budget)
    error = failure(transport)
    assert str(error) == "inverter_data: no complete answer within 0.01s"
    assert reports.codes == ["timeout"] and budget.held == 1000


# --- the socket: each receive ends at the exchange's deadline ------------------------------------
@pytest.fixture
def pair() -> Iterator[tuple[_DeadlineSocket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.settimeout(30)
    wrapped = _DeadlineSocket(ours)
    yield wrapped, theirs
    ours.close()
    theirs.close()


def test_a_receive_outside_an_exchange_keeps_the_socket_s_own_timeout(
    pair: tuple[_DeadlineSocket, socket.socket],
) -> None:
    wrapped, theirs = pair
    theirs.sendall(b"hello")
    buffer = bytearray(16)
    assert wrapped.recv_into(buffer, 2) == 2 and bytes(buffer[:2]) == b"he"
    assert wrapped.gettimeout() == 30 and wrapped._sock.gettimeout() == 30
    wrapped.settimeout(12)
    assert wrapped.gettimeout() == 12 and wrapped._sock.gettimeout() == 12
    # A worker thread that was never in an exchange reads as the socket would.
    assert in_new_thread(lambda: wrapped.recv_into(buffer, 3)) == 3
    assert bytes(buffer[:3]) == b"llo"


def test_a_receive_after_the_deadline_fails_at_once(
    pair: tuple[_DeadlineSocket, socket.socket],
) -> None:
    wrapped, theirs = pair
    theirs.sendall(b"hello")  # even with data waiting
    with socket_deadline(time.monotonic() - 0.001), pytest.raises(TimeoutError) as info:
        wrapped.recv_into(bytearray(16))
    assert str(info.value) == "the exchange's deadline has passed"


def test_a_receive_at_exactly_the_deadline_fails(
    pair: tuple[_DeadlineSocket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapped, theirs = pair
    theirs.sendall(b"hello")
    fake = FakeTime()
    monkeypatch.setattr(connections_module, "time", fake)
    fake.monotonic = lambda: 500.0  # type: ignore[method-assign]
    with socket_deadline(500.0), pytest.raises(TimeoutError):
        wrapped.recv_into(bytearray(16))


def test_a_receive_waits_at_most_until_the_deadline_or_the_socket_timeout_if_sooner(
    pair: tuple[_DeadlineSocket, socket.socket],
) -> None:
    wrapped, theirs = pair
    theirs.sendall(b"ab")
    with socket_deadline(time.monotonic() + 0.5):
        assert wrapped.recv_into(bytearray(1)) == 1  # half a second left: still in time
    assert 0 < wrapped._sock.gettimeout() <= 0.5
    wrapped.settimeout(0.2)
    with socket_deadline(time.monotonic() + 100):
        assert wrapped.recv_into(bytearray(1)) == 1
    assert wrapped._sock.gettimeout() == 0.2 and wrapped.gettimeout() == 0.2
    wrapped.settimeout(None)
    theirs.sendall(b"c")
    with socket_deadline(time.monotonic() + 100):
        assert wrapped.recv_into(bytearray(1)) == 1
    assert 99 < wrapped._sock.gettimeout() <= 100 and wrapped.gettimeout() is None


def test_reads_through_the_socket_s_file_keep_the_deadline(
    pair: tuple[_DeadlineSocket, socket.socket],
) -> None:
    wrapped, theirs = pair
    assert wrapped.fileno() == wrapped._sock.fileno()  # everything else is the socket's
    reader = wrapped.makefile("rb", buffering=1024)
    theirs.sendall(b"HTTP/1.1 200 OK\r\n")
    with socket_deadline(time.monotonic() + 100):
        assert reader.readline() == b"HTTP/1.1 200 OK\r\n"
    with socket_deadline(time.monotonic() - 0.001), pytest.raises(TimeoutError):
        reader.readline()
    reader.close()
    unbuffered = wrapped.makefile("rb", buffering=0)
    assert isinstance(unbuffered, socket.SocketIO) and unbuffered._sock is wrapped
    with socket_deadline(time.monotonic() - 0.001), pytest.raises(TimeoutError):
        unbuffered.read(1)
    unbuffered.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    yield server
    server.close()


def test_a_connection_s_socket_is_wrapped_once_connected(listener: socket.socket) -> None:
    connection = _DeadlineHTTPConnection("127.0.0.1", listener.getsockname()[1], timeout=30)
    connection.connect()
    try:
        assert isinstance(connection.sock, _DeadlineSocket)
        assert isinstance(connection.sock._sock, socket.socket)
        assert connection.sock.gettimeout() == 30
    finally:
        connection.close()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_a_tls_connection_s_socket_is_wrapped_after_the_handshake(
    listener: socket.socket, tmp_path: Path
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*_self_signed(tmp_path))

    def handshake() -> None:
        accepted, _ = listener.accept()
        with context.wrap_socket(accepted, server_side=True) as tls:
            tls.recv(1)  # until the client closes

    server = threading.Thread(target=handshake, daemon=True)
    server.start()
    connection = _DeadlineHTTPSConnection(
        "127.0.0.1", listener.getsockname()[1], timeout=30, cert_reqs="CERT_NONE"
    )
    connection.connect()
    try:
        assert isinstance(connection.sock, _DeadlineSocket)
        assert isinstance(connection.sock._sock, ssl.SSLSocket)
    finally:
        connection.close()
    server.join(30)


def test_yielding_marks_this_threads_sends_on_the_budget_and_is_a_no_op_without_one() -> None:
    clock = FakeClock(NOON)
    budget = RequestBudget(5, clock)
    transport = Transport(
        new_session(1),
        timeout=5,
        policy=RetryPolicy(1, 1.0, 0.5),
        clock=clock,
        observer=Reports(),
        budget=budget,
    )
    with transport.yielding():
        assert budget._local.yielding is True
    assert budget._local.yielding is False
    unbudgeted, _, _ = make()
    with unbudgeted.yielding() as inside:
        assert inside is None


# --- the budget's departure: at the socket ----------------------------------------------------
def test_a_request_leaves_the_budget_just_before_its_first_byte_and_once(
    pair: tuple[_DeadlineSocket, socket.socket],
) -> None:
    wrapped, theirs = pair
    theirs.setblocking(False)
    departed: list[bool] = []

    def depart() -> None:  # records whether the peer could already read anything
        try:
            theirs.recv(1, socket.MSG_PEEK)
            departed.append(True)
        except BlockingIOError:
            departed.append(False)

    with departing(depart):
        assert departed == []  # not at the start of the exchange
        wrapped.sendall(b"GET / HTTP/1.1\r\n")
        assert departed == [False]  # once, and before the bytes went
        wrapped.sendall(b"Host: x\r\n\r\n")
        wrapped.send(b"")
    assert departed == [False]  # the rest of the request and the block's end: not again
    wrapped.sendall(b"outside an exchange")
    assert departed == [False]


def test_a_request_that_never_met_our_socket_leaves_when_its_exchange_ends() -> None:
    left: list[str] = []
    with departing(lambda: left.append("left")):
        assert left == []
    assert left == ["left"]
    with pytest.raises(RuntimeError), departing(lambda: left.append("failed")):
        raise RuntimeError("the connection could not be made")
    assert left == ["left", "failed"]  # counted: it may have reached the server


def test_a_thread_that_never_entered_an_exchange_sends_and_leaves_as_a_plain_socket(
    pair: tuple[_DeadlineSocket, socket.socket],
) -> None:
    """A fresh worker has neither a deadline nor a departure of its own: nothing to look up."""
    wrapped, theirs = pair
    assert in_new_thread(current_deadline) is None
    assert in_new_thread(lambda: wrapped.sendall(b"ab")) is None
    assert in_new_thread(lambda: wrapped.send(b"c")) == 1
    assert theirs.recv(3) == b"abc"

    def leave_after_a_wait() -> float | None:
        with departing(lambda: 0.5):  # it waited, and there is no deadline to move on
            pass
        return current_deadline()

    assert in_new_thread(leave_after_a_wait) is None


def test_a_departure_that_did_not_wait_leaves_the_deadline_as_it_was() -> None:
    with socket_deadline(1000.0):
        for waited in (None, 0.0):
            with departing(lambda w=waited: w):  # type: ignore[misc]
                pass
            assert current_deadline() == 1000.0


def test_send_flags_reach_the_socket() -> None:
    sent: list[tuple[str, bytes, tuple[Any, ...]]] = []

    class Recording:
        def gettimeout(self) -> None:
            return None

        def sendall(self, data: bytes, *args: Any) -> None:
            sent.append(("sendall", data, args))

        def send(self, data: bytes, *args: Any) -> int:
            sent.append(("send", data, args))
            return len(data)

    wrapped = _DeadlineSocket(Recording())  # type: ignore[arg-type]
    wrapped.sendall(b"a", socket.MSG_NOSIGNAL)
    assert wrapped.send(b"b", socket.MSG_NOSIGNAL) == 1
    assert sent == [
        ("sendall", b"a", (socket.MSG_NOSIGNAL,)),
        ("send", b"b", (socket.MSG_NOSIGNAL,)),
    ]


class _Counting(http.server.BaseHTTPRequestHandler):
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_real_exchange_leaves_the_budget_from_the_socket_s_send_not_before() -> None:
    """requests and urllib3 build the request after its slot; only the socket's send counts it
    as leaving, so a thread held up in between (the interpreter is busy) cannot leave early."""
    _Counting.seen = 0  # requests this test's server has had (the test may run twice)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/data"

    class Recording(RequestBudget):
        def __init__(self) -> None:
            super().__init__(1000, FakeClock(NOON))
            self.departures: list[tuple[int, bool]] = []

        def depart(self, slot: float = float("-inf")) -> float:
            # "in" a name: mutation testing renames the function (..._DeadlineSocket_sendall...)
            callers = " ".join(frame.function for frame in inspect.stack())
            self.departures.append((_Counting.seen, "sendall" in callers))
            return super().depart(slot)

    budget = Recording()
    transport, _, _ = make()
    transport._budget = budget
    try:
        for _ in range(2):
            assert transport.send("inverter_data", "GET", url).status == 200
    finally:
        server.shutdown()
        server.server_close()
    assert budget.departures == [(0, True), (1, True)]


def test_the_wait_for_the_cap_at_the_socket_does_not_shorten_the_exchange_s_deadline(
    pair: tuple[_DeadlineSocket, socket.socket],
) -> None:
    wrapped, _ = pair
    with socket_deadline(1000.0), departing(lambda: 0.75):
        wrapped.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert current_deadline() == 1000.75
