"""The exporter's HTTP server against hostile clients, byte for byte on raw sockets: request
smuggling through bodies and ambiguous lengths, oversized heads, slow and idle clients, and
connection floods."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from exporter.base.clock import SystemClock
from exporter.render.status import Header, StatusView
from exporter.serve.web import ExporterHTTPServer, ServerLimits, WebApp, start_web
from exporter.state.store import ReadingStore
from tests.e2e.processes import wait_for

BODY = b"podero_up 1\n"
# What a smuggler hides in a body: if the server ever reads it as a request, reload runs.
SMUGGLED = b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
LIMITS = ServerLimits(max_body_bytes=1024, max_header_bytes=8192)


@dataclass
class Served:
    server: ExporterHTTPServer
    reloads: list[int] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


def serve(limits: ServerLimits = LIMITS, body: tuple[bytes, ...] = (BODY,)) -> Iterator[Served]:
    reloads: list[int] = []

    def reload() -> None:
        reloads.append(1)

    server = start_web(
        "127.0.0.1:0", WebApp(lambda: list(body), lambda: True, reload), limits=limits
    )
    try:
        yield Served(server, reloads)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def served() -> Iterator[Served]:
    yield from serve()


def exchange(served: Served, data: bytes, *, half_close: bool = True) -> bytes:
    """Send `data` and return all the server wrote back until it closed the connection.
    With `half_close`, tell the server that nothing more comes; without, only the server
    can end the exchange (socket.timeout if it never does)."""
    with served.connect() as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_to_end(sock)


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed);
    socket.timeout (10 s) if it never does."""
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


def statuses(response: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"(?:^|\n)HTTP/1\.[01] (\d{3}) ", response)]


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


HEALTHY = request("GET /-/healthy HTTP/1.1\nHost: x\n")


def refused_and_closed(served: Served, data: bytes) -> bytes:
    """Send `data` and then a well-formed request on the same connection: the server must
    answer once and close without reading on."""
    response = exchange(served, data + HEALTHY, half_close=False)
    assert b"Healthy." not in response
    return response


def test_a_get_body_is_read_not_run_as_the_next_request(served: Served) -> None:
    get = request(f"GET /metrics HTTP/1.1\nHost: x\nContent-Length: {len(SMUGGLED)}\n", SMUGGLED)
    response = exchange(served, get + HEALTHY)
    # Two responses, framed right: the body was skipped, the next real request served.
    assert statuses(response) == [200, 200]
    assert BODY in response and b"Healthy." in response
    assert served.reloads == []


def test_a_body_over_the_limit_gets_413_and_the_connection_closes(served: Served) -> None:
    over = LIMITS.max_body_bytes + 1
    with served.connect() as sock:
        sock.sendall(request(f"GET /metrics HTTP/1.1\nHost: x\nContent-Length: {over}\n"))
        response = read_to_end(sock)  # answered before the body is even sent
        assert statuses(response) == [413]
        assert b"Connection: close" in response
        with pytest.raises(OSError):
            for _ in range(100):  # the closed connection refuses more bytes sooner or later
                sock.sendall((SMUGGLED * 40)[:over])
    assert served.reloads == []


def test_an_over_limit_body_sent_at_once_is_not_parsed_either(served: Served) -> None:
    padding = b"x" * (LIMITS.max_body_bytes + 1 - len(SMUGGLED))
    body = SMUGGLED + padding
    response = exchange(
        served, request(f"POST /-/reload HTTP/1.1\nHost: x\nContent-Length: {len(body)}\n", body)
    )
    # The 413 may be lost to the reset a close with unread bytes causes; a reload never runs.
    assert statuses(response) in ([413], [])
    assert served.reloads == []


def test_content_length_with_transfer_encoding_is_refused_and_closed(served: Served) -> None:
    chunked_then_smuggled = b"0\r\n\r\n" + SMUGGLED
    response = refused_and_closed(
        served,
        request(
            "GET /metrics HTTP/1.1\nHost: x\nContent-Length: 5\nTransfer-Encoding: chunked\n",
            chunked_then_smuggled,
        ),
    )
    assert statuses(response) == [400]
    assert b"Transfer-Encoding is not accepted" in response
    assert served.reloads == []


def test_transfer_encoding_alone_is_refused_and_closed(served: Served) -> None:
    body = b"0\r\n\r\n" + SMUGGLED
    response = refused_and_closed(
        served, request("GET /metrics HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n", body)
    )
    assert statuses(response) == [400]
    assert served.reloads == []


@pytest.mark.parametrize(
    "lengths",
    [["abc"], ["-5"], ["+5"], ["0x5"], ["5_0"], ["5 5"], ["5, 5"], ["99999999999999999999"]],
    ids=str,
)
def test_malformed_content_length_is_400(served: Served, lengths: list[str]) -> None:
    head = "POST /-/reload HTTP/1.1\nHost: x\n" + "".join(f"Content-Length: {n}\n" for n in lengths)
    response = refused_and_closed(served, request(head, b"12345" + SMUGGLED))
    assert statuses(response) == [400]
    assert served.reloads == []


def test_repeated_content_length_is_400(served: Served) -> None:
    # Which of the two a proxy used is anyone's guess: a smuggling classic.
    head = f"GET /metrics HTTP/1.1\nHost: x\nContent-Length: 0\nContent-Length: {len(SMUGGLED)}\n"
    response = refused_and_closed(served, request(head, SMUGGLED))
    assert statuses(response) == [400]
    assert served.reloads == []


@pytest.mark.parametrize(
    "header",
    [
        "Content-Length : 0",  # space before the colon
        "X-Folded: a\n b",  # obsolete line folding
        "X-Bad\tName: 1",
        "X-Nul: a\x00b",
    ],
    ids=["space-before-colon", "folded", "bad-name", "nul"],
)
def test_ambiguous_header_lines_are_400(served: Served, header: str) -> None:
    response = refused_and_closed(served, request(f"GET /metrics HTTP/1.1\nHost: x\n{header}\n"))
    assert statuses(response) == [400]


def test_huge_header_is_refused_and_closed(served: Served) -> None:
    huge = "a" * (LIMITS.max_header_bytes + 1)
    response = exchange(
        served, request(f"GET /metrics HTTP/1.1\nHost: x\nX-Huge: {huge}\n") + SMUGGLED
    )
    assert statuses(response) in ([431], [400])
    assert served.reloads == []


def test_many_headers_over_the_limit_are_refused(served: Served) -> None:
    many = "".join(f"X-H{i}: {'v' * 90}\n" for i in range(LIMITS.max_header_bytes // 90))
    response = exchange(served, request(f"GET /metrics HTTP/1.1\nHost: x\n{many}"))
    assert statuses(response) in ([431], [400])


def test_keep_alive_still_serves_well_formed_requests(served: Served) -> None:
    three = request("GET /metrics HTTP/1.1\nHost: x\n") * 3
    post = request("POST /-/reload HTTP/1.1\nHost: x\nContent-Length: 3\n", b"abc")
    response = exchange(served, three + post)
    assert statuses(response) == [200, 200, 200, 200]
    assert served.reloads == [1]


# --- slow and idle clients ----------------------------------------------------------------


def test_an_idle_client_is_closed_after_the_idle_timeout() -> None:
    for served in serve(ServerLimits(idle_timeout=0.3, request_timeout=60)):
        with served.connect() as silent, served.connect() as partial:
            partial.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and then nothing
            # Both are closed by the server well before the client's 10 s timeout.
            assert read_to_end(silent) == b""
            assert statuses(read_to_end(partial)) in ([408], [])


def test_a_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    for served in serve(ServerLimits(idle_timeout=0.3, request_timeout=60)):
        with served.connect() as sock:
            sock.sendall(HEALTHY)
            # Answered, kept open (no "Connection: close"), then closed for idling.
            response = read_to_end(sock)
            assert statuses(response) == [200] and b"Connection: close" not in response


def test_a_slow_request_is_cut_off_at_the_request_deadline() -> None:
    # The idle timeout is long, so only the deadline can end these connections.
    for served in serve(ServerLimits(idle_timeout=60, request_timeout=0.5)):
        with served.connect() as stalled, served.connect() as trickler:
            stalled.sendall(b"GET /metrics HTTP/1.1\r\n")
            stalled_response = read_to_end(stalled)
            # A slowloris client that sends a byte now and then, never finishing the head.
            trickle = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
            pace = threading.Event()
            cut_off = False
            for byte in trickle:  # 20 s at this pace
                try:
                    trickler.sendall(bytes([byte]))
                except OSError:
                    cut_off = True
                    break
                pace.wait(0.02)  # pacing the client, not waiting for the server
            assert cut_off, "the server let a slowloris client trickle its whole head"
            assert statuses(stalled_response) in ([408], [400], [])
            assert served.reloads == []


# --- connection floods --------------------------------------------------------------------


def test_a_flood_of_silent_connections_costs_no_threads_and_scrapes_go_on() -> None:
    limits = ServerLimits(threads=2, max_connections=8, idle_timeout=60)
    for served in serve(limits):
        threads_before = threading.active_count()
        flood = [served.connect() for _ in range(40)]
        try:
            r = requests.get(f"http://127.0.0.1:{served.port}/metrics", timeout=10)
            assert r.status_code == 200 and r.content == BODY
            assert threading.active_count() <= threads_before  # not one thread per connection
            # The oldest idle connections made room: the server closed them.
            assert sum(read_to_end(sock) == b"" for sock in flood[:30]) == 30
            wait_for(
                lambda s=served.server: s.open_connections <= limits.max_connections,
                timeout=10,
                what="the evicted connections to be closed",
            )
        finally:
            for sock in flood:
                sock.close()


def test_slow_clients_in_every_thread_make_scrapes_wait_not_fail() -> None:
    limits = ServerLimits(threads=2, max_connections=64, idle_timeout=60, request_timeout=0.5)
    for served in serve(limits):
        threads_before = threading.active_count()
        slow = [served.connect() for _ in range(4)]
        try:
            for sock in slow:
                sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # occupies a worker
            r = requests.get(f"http://127.0.0.1:{served.port}/metrics", timeout=10)
            assert r.status_code == 200 and r.content == BODY
            assert threading.active_count() <= threads_before  # not one thread per connection
        finally:
            for sock in slow:
                sock.close()


def _slow_sender(port: int, stop: threading.Event) -> None:
    """Send the start of a request and never the rest; when cut off, start over."""
    while not stop.is_set():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
            sock.settimeout(1)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    if not sock.recv(1024):
                        break


def test_slow_senders_on_every_worker_with_the_default_limits_leave_scrapes_served() -> None:
    """More slow senders than workers, each starting over when cut off: with the default
    limits every scrape still gets its page within Prometheus' default scrape timeout."""
    limits = ServerLimits()
    for served in serve(limits):
        stop = threading.Event()
        attackers = [
            threading.Thread(target=_slow_sender, args=(served.port, stop))
            for _ in range(limits.threads + 4)
        ]
        for t in attackers:
            t.start()
        try:
            for _ in range(3):
                r = requests.get(f"http://127.0.0.1:{served.port}/metrics", timeout=10)
                assert r.status_code == 200 and r.content == BODY
        finally:
            stop.set()
            for t in attackers:
                t.join()


# --- response headers ---------------------------------------------------------------------


def test_html_pages_carry_security_headers(served: Served) -> None:
    r = requests.get(f"http://127.0.0.1:{served.port}/", timeout=10)
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp


def test_the_status_page_csp_allows_exactly_its_inline_style_and_script(served: Served) -> None:
    view = StatusView(
        ReadingStore(), SystemClock(), lambda: 300.0, lambda: Header(0.0, None, None, False)
    )
    r = requests.get(f"http://127.0.0.1:{served.port}/", timeout=10)
    csp = r.headers["Content-Security-Policy"]
    page = view.html({}).decode()
    inline = re.findall(r"<(style|script)>(.*?)</\1>", page, re.DOTALL)
    assert {kind for kind, _ in inline} == {"style", "script"}
    for kind, text in inline:
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"{kind}-src 'sha256-{digest}'" in csp


def test_head_sends_headers_only(served: Served) -> None:
    response = exchange(served, request("HEAD /metrics HTTP/1.1\nHost: x\n") + HEALTHY)
    assert statuses(response) == [200, 200]
    assert f"Content-Length: {len(BODY)}".encode() in response
    assert BODY not in response


def test_other_methods_are_405(served: Served) -> None:
    response = exchange(served, request("DELETE /metrics HTTP/1.1\nHost: x\n"))
    assert statuses(response) == [405]


def test_a_client_that_never_reads_cannot_hold_up_shutdown() -> None:
    big = (b"x" * (1 << 20),) * 64  # far more than the socket buffers hold
    for served in serve(ServerLimits(idle_timeout=600), body=big):
        with served.connect() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(HEALTHY.replace(b"/-/healthy", b"/metrics"))
            assert sock.recv(100).startswith(b"HTTP/1.1 200")  # the worker is writing now
            stopper = threading.Thread(target=served.server.shutdown)
            stopper.start()
            stopper.join(timeout=30)  # the idle timeout would be 600 s
            assert not stopper.is_alive()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this host")
def test_listens_on_ipv6_addresses() -> None:
    server = start_web("[::1]:0", WebApp(lambda: [BODY], lambda: True, lambda: None))
    try:
        host, port = server.server_address
        assert host == "::1"
        assert requests.get(f"http://[::1]:{port}/metrics", timeout=10).content == BODY
    finally:
        server.shutdown()
