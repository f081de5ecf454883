"""How the exporter serves HTTP: cheroot (CherryPy's WSGI server) with strict HTTP/1.1
framing (one way to frame a body: Content-Length, small; headers checked before anything acts
on them), bounded threads and connections, deadlines for idle and slow clients, TLS from the
web config, and the listening sockets systemd passes. What is answered is web.py's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import cheroot.errors
import cheroot.server
import cheroot.ssl
import cheroot.wsgi
from cheroot.makefile import StreamReader, StreamWriter

from exporter.serve.webconfig import ServerTLS

log = logging.getLogger(__name__)
# A WSGI application (web.Site).
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class ServerLimits:
    """What one client may cost the server."""

    # A connection with no request in progress (new, or kept alive between scrapes) is
    # closed after this long; it also bounds each socket read and write.
    idle_timeout: float = 120.0
    # From a request's first byte (or the TLS handshake) to its last: slow senders
    # (slowloris) lose their connection even if they trickle a byte at a time. Well under a
    # scrape timeout (10 s by default): however many slow senders keep every worker busy, a
    # scrape waits for one for a few seconds at most. A request (no endpoint takes a body)
    # is one packet for any real client.
    request_timeout: float = 3.0
    threads: int = 16  # requests served at once; more wait their turn
    max_connections: int = 256  # open at once; then the longest idle one is closed
    max_body_bytes: int = 16 * 1024  # no endpoint takes a body; larger ones get 413
    max_header_bytes: int = 32 * 1024  # request line and headers; larger ones get 431/414


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LENGTH = re.compile(rb"[0-9]{1,15}")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_UNIQUE = frozenset({b"Content-Length", b"Host", b"Authorization"})


class _StrictHeaderReader(cheroot.server.HeaderReader):
    """Request headers as RFC 9112 has them, refusing (400, connection closed) whatever two
    parsers could read differently: folded lines, space before the colon, control
    characters, repeated Content-Length/Host/Authorization, a Content-Length that is not
    plain digits, and Transfer-Encoding (no endpoint takes a body, so Content-Length is
    the one framing accepted; with both, which one a proxy used is anyone's guess)."""

    def __call__(self, rfile: Any, hdict: dict[bytes, bytes] | None = None) -> dict[bytes, bytes]:
        headers: dict[bytes, bytes] = {} if hdict is None else hdict
        while True:
            line = rfile.readline()
            if not line:
                raise ValueError("Illegal end of headers.")
            if line == b"\r\n":
                break
            if not line.endswith(b"\r\n"):
                raise ValueError("HTTP requires CRLF terminators")
            name, colon, value = line[:-2].partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                raise ValueError("Malformed header line (folded, or space before the colon).")
            value = value.strip(b" \t")
            if _CONTROL.search(value):
                raise ValueError("Control character in a header value.")
            key = name.title()
            if key in headers:
                if key in _UNIQUE:
                    raise ValueError(f"Repeated {key.decode()} header.")
                value = headers[key] + b", " + value
            headers[key] = value
        if b"Transfer-Encoding" in headers:
            raise ValueError(
                "Transfer-Encoding is not accepted (with Content-Length it is ambiguous); "
                "send a Content-Length."
            )
        length = headers.get(b"Content-Length")
        if length is not None and not _LENGTH.fullmatch(length):
            raise ValueError("Malformed Content-Length Header.")
        return headers


class _Request(cheroot.server.HTTPRequest):
    header_reader = _StrictHeaderReader()

    def read_request_headers(self) -> bool:
        try:
            return bool(super().read_request_headers())  # type: ignore[no-untyped-call]
        except cheroot.errors.MaxSizeExceeded:
            # The rest of the headers are still unread: answer and close.
            self.simple_response(
                "431 Request Header Fields Too Large",
                "The request headers exceed the maximum allowed bytes.",
            )
            self.close_connection = True
            return False


class _Gateway(cheroot.wsgi.Gateway_10):
    """Reads the whole request body (its size is checked already) before the application
    runs, so that nothing of it can be taken for the next request on the connection."""

    def respond(self) -> None:
        body = self.env["wsgi.input"].read()
        self.env["wsgi.input"] = io.BytesIO(body)
        self.req.server.request_received(self.req.conn)
        response = self.req.server.wsgi_app(self.env, self.start_response)
        chunks = [chunk for chunk in response if chunk]
        try:
            if chunks:
                self.write(chunks[0])  # the headers, and cheroot's checks of the first chunk
            rest = chunks[1:]
            size = sum(len(chunk) for chunk in rest)
            wfile = self.req.conn.wfile
            # A body of many chunks (a /metrics page holds one per block and family) goes out
            # in a few gather writes instead of a write per chunk; cheroot's path wherever
            # its framing has a say (chunked, or a length that does not match).
            if (
                isinstance(wfile, _SocketWriter)
                and not self.req.chunked_write
                and self.remaining_bytes_out is not None
                and size <= self.remaining_bytes_out
            ):
                wfile.write_many(rest)
                self.remaining_bytes_out -= size
            else:
                for chunk in rest:
                    self.write(chunk)
        finally:
            self.req.ensure_headers_sent()
            close = getattr(response, "close", None)
            if close is not None:
                close()


# Buffers per sendmsg: well under the kernel's IOV_MAX (1024 on Linux).
GATHER = 512


class _SocketWriter:
    """A connection's output: each write goes straight to the socket, without copying a
    30 MB body into a buffer first."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.bytes_written = 0

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        self.bytes_written += len(data)
        return len(data)

    def write_many(self, chunks: list[bytes]) -> None:
        """Write these chunks in order, as few system calls as the socket takes them in
        (sendmsg gathers up to GATHER buffers; TLS sockets have no sendmsg: one by one)."""
        if isinstance(self._sock, ssl.SSLSocket):
            for chunk in chunks:
                self.write(chunk)
            return
        views = [memoryview(chunk) for chunk in chunks]
        start = 0
        while start < len(views):
            sent = self._sock.sendmsg(views[start : start + GATHER])
            if sent <= 0:
                raise ConnectionError("the socket took no bytes")
            self.bytes_written += sent
            while start < len(views) and sent >= len(views[start]):
                sent -= len(views[start])
                start += 1
            if sent:  # a partial buffer: the rest of it goes first next time
                views[start] = views[start][sent:]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _hang_up(conn: cheroot.server.HTTPConnection) -> None:
    """Shut a connection's socket down, waking the thread blocked reading it; the thread
    then closes it. The plain-socket call leaves the TLS object to that thread."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(conn.socket, socket.SHUT_RDWR)


class _Connection(cheroot.server.HTTPConnection):
    RequestHandlerClass = _Request

    def __init__(self, server: ExporterHTTPServer, sock: socket.socket, makefile: Any) -> None:
        super().__init__(server, sock, makefile)
        self.wfile = _SocketWriter(sock)
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # the peer's delayed ACK add ~40 ms to every keep-alive response.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fresh = True  # accepted, not yet waited on for its first request
        self.handshaken = not isinstance(sock, ssl.SSLSocket)
        self.request_started: float | None = None
        self.closed = False
        server.opened(self)

    def communicate(self) -> bool:
        server: ExporterHTTPServer = self.server
        server.busy(self)
        try:
            if not self.handshaken and not self._handshake():
                return False
            return bool(super().communicate())  # type: ignore[no-untyped-call]
        finally:
            server.done(self)

    def _handshake(self) -> bool:
        # In the worker thread, not the accept loop: a client that stalls its handshake
        # holds one worker until the request deadline, not the whole server.
        sock: ssl.SSLSocket = self.socket
        client = {"client": self.remote_addr}
        try:
            sock.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.debug("tls handshake failed", extra={**client, "reason": str(exc)})
            return False
        self.handshaken = True
        tls = self.server.tls
        if tls is not None and not tls.allows_client(sock.getpeercert()):
            log.warning(
                "client certificate refused",
                extra={**client, "reason": "no SAN listed in client_allowed_sans"},
            )
            return False
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            super().close()
        finally:
            self.server.closed(self)


class _TLSReader(StreamReader):
    def __init__(self, sock: ssl.SSLSocket, mode: str, bufsize: int) -> None:
        super().__init__(sock, mode, bufsize)
        self._tls = sock

    def has_data(self) -> bool:
        # Bytes OpenSSL has decrypted already do not make the socket readable.
        return bool(super().has_data()) or self._tls.pending() > 0  # type: ignore[no-untyped-call]


class _TLSAdapter(cheroot.ssl.Adapter):
    """TLS with the web config's current SSLContext; the handshake is left to the worker
    that serves the connection (see _Connection._handshake)."""

    def __init__(self, tls: ServerTLS) -> None:
        self.tls = tls
        self.context = None

    def bind(self, sock: socket.socket) -> socket.socket:
        return sock

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
        wrapped = self.tls.context().wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def get_environ(self) -> dict[str, str]:
        return {}

    def makefile(
        self, sock: ssl.SSLSocket, mode: str = "r", bufsize: int = io.DEFAULT_BUFFER_SIZE
    ) -> Any:
        if "r" in mode:
            return _TLSReader(sock, mode, bufsize)
        return StreamWriter(sock, mode, bufsize)  # unused: _Connection writes to the socket


class ExporterHTTPServer(cheroot.wsgi.Server):
    """cheroot's server with this exporter's limits. A new or idle connection waits in the
    selector, not in a thread; a bounded pool of threads serves requests."""

    ConnectionClass = _Connection

    def __init__(
        self,
        host: str,
        port: int,
        site: WsgiApp,
        limits: ServerLimits,
        tls: ServerTLS | None,
        listening: socket.socket | None = None,
    ) -> None:
        if listening is not None:  # a socket someone else bound (systemd): serve it as it is
            host, port = listening.getsockname()[:2]
        super().__init__(
            (host, port),
            site,
            numthreads=limits.threads,
            server_name="podero-exporter",
            request_queue_size=128,
            shutdown_timeout=2,
        )
        self.gateway = _Gateway
        self.timeout = limits.idle_timeout
        # How often idle connections are checked, and how long stop() waits for the selector.
        self.expiration_interval = min(0.1, limits.idle_timeout / 4)
        self.max_request_header_size = limits.max_header_bytes
        self.max_request_body_size = limits.max_body_bytes
        self.keep_alive_conn_limit = limits.max_connections
        self.ssl_adapter = _TLSAdapter(tls) if tls is not None else None
        self.tls = tls
        self.limits = limits
        self._lock = threading.Lock()
        self._open = 0
        self._idle: dict[_Connection, None] = {}  # waiting in the selector, oldest first
        self._busy: set[_Connection] = set()  # in a worker
        self._stopping = threading.Event()
        self._listening = listening

    def prepare(self) -> None:
        if os.environ.get("LISTEN_PID"):
            # cheroot would serve file descriptor 3 in place of every address it was given.
            raise OSError(
                "LISTEN_PID is set: serve systemd's sockets with --web.systemd-socket, "
                "or unset LISTEN_PID and LISTEN_FDS"
            )
        super().prepare()

    def bind(self, family: int, type: int, proto: int = 0) -> socket.socket:
        """The listening socket: a ready one if given, else a new one bound to bind_addr."""
        if self._listening is None:
            return super().bind(family, type, proto)  # type: ignore[no-any-return]
        self.socket = self._listening
        return self._listening

    @property
    def server_address(self) -> tuple[str, int]:
        """The (host, port) listened on, the real port when 0 was asked for."""
        host, port = self.bind_addr[:2]
        return str(host), int(port)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    # Connection bookkeeping, called by _Connection and cheroot.

    def opened(self, conn: _Connection) -> None:
        with self._lock:
            self._open += 1

    def closed(self, conn: _Connection) -> None:
        with self._lock:
            self._open -= 1
            self._idle.pop(conn, None)

    def busy(self, conn: _Connection) -> None:
        """A worker took the connection: its request (or TLS handshake) starts now."""
        with self._lock:
            conn.request_started = time.monotonic()
            self._busy.add(conn)

    def request_received(self, conn: _Connection) -> None:
        """The whole request is in: the request deadline no longer applies."""
        with self._lock:
            conn.request_started = None

    def done(self, conn: _Connection) -> None:
        """The worker is done with the connection (it closes it or puts it back)."""
        with self._lock:
            conn.request_started = None
            self._busy.discard(conn)

    def put_conn(self, conn: _Connection) -> None:
        with self._lock:
            self._idle[conn] = None
        super().put_conn(conn)

    def process_conn(self, conn: _Connection) -> None:
        if conn.fresh:
            # Just accepted: wait in the selector for its first bytes, like a kept-alive
            # connection, so that silent clients cost no thread.
            conn.fresh = False
            self._admit(conn)
            return
        with self._lock:
            self._idle.pop(conn, None)
        super().process_conn(conn)

    def _admit(self, conn: _Connection) -> None:
        with self._lock:
            over = self._open > self.limits.max_connections
            oldest = next(iter(self._idle), None) if over else None
            if oldest is not None:
                del self._idle[oldest]
        if over and oldest is None:
            log.debug("connection refused", extra={"client": conn.remote_addr, "reason": "full"})
            conn.close()
            return
        if oldest is not None:
            _hang_up(oldest)  # its worker closes it
        self.put_conn(conn)

    def _enforce_request_timeout(self) -> None:
        timeout = self.limits.request_timeout
        while not self._stopping.wait(min(0.25, timeout / 4)):
            now = time.monotonic()
            with self._lock:
                late = [
                    c
                    for c in self._busy
                    if c.request_started is not None and now - c.request_started > timeout
                ]
                for conn in late:
                    # Under the lock: a busy connection is not closed (and its file
                    # descriptor reused) before done() takes it out of _busy.
                    conn.request_started = None
                    _hang_up(conn)
            for conn in late:
                log.info("slow request cut off", extra={"client": conn.remote_addr})

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        if level >= logging.ERROR:
            log.error("http server error", extra={"reason": msg}, exc_info=traceback)
        else:
            log.debug("http connection error", extra={"reason": msg}, exc_info=traceback)

    def run(self, started: Future[None]) -> None:
        """Listen, report that to `started`, then serve until stopped. Run in a daemon
        thread: cheroot's workers are started here and inherit that."""
        try:
            self.prepare()
        except BaseException as exc:
            started.set_exception(exc)
            return
        threading.Thread(
            target=self._enforce_request_timeout, name="web-deadlines", daemon=True
        ).start()
        started.set_result(None)
        self.serve()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        # cheroot gives the workers shutdown_timeout to finish, then shuts their sockets for
        # reading only: a worker writing to a client that does not read would hold stop()
        # until the idle timeout. Hang those up entirely.
        cut = threading.Timer(self.shutdown_timeout, self._hang_up_busy)
        cut.daemon = True
        cut.start()
        try:
            super().stop()
        finally:
            cut.cancel()

    def _hang_up_busy(self) -> None:
        with self._lock:
            for conn in self._busy:
                _hang_up(conn)

    def shutdown(self) -> None:
        """Stop accepting, close every connection, stop the threads."""
        self.stop()

    def server_close(self) -> None:
        self.stop()


# The first file descriptor systemd passes (SD_LISTEN_FDS_START).
SYSTEMD_FIRST_FD = 3
SYSTEMD_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def systemd_sockets(environ: Mapping[str, str], pid: int) -> list[socket.socket]:
    """The listening TCP sockets systemd passed this process (`LISTEN_PID` is `pid`,
    `LISTEN_FDS` of them from fd 3), as sd_listen_fds(3) and exporter-toolkit take them.
    Raises ValueError saying what is missing or wrong."""
    owner, count = environ.get("LISTEN_PID", ""), environ.get("LISTEN_FDS", "")
    if not owner or not count:
        raise ValueError(
            "--web.systemd-socket: LISTEN_PID and LISTEN_FDS are not set: this process was not "
            "started by systemd socket activation (a .socket unit with ListenStream=)"
        )
    if not owner.isascii() or not owner.isdigit() or int(owner) != pid:
        raise ValueError(
            f"--web.systemd-socket: LISTEN_PID is {owner!r}, not this process ({pid}): "
            "the sockets were passed to another process"
        )
    if not count.isascii() or not count.isdigit() or not 1 <= int(count) <= 64:
        raise ValueError(f"--web.systemd-socket: LISTEN_FDS {count!r}: no socket was passed")
    sockets = []
    for fd in range(SYSTEMD_FIRST_FD, SYSTEMD_FIRST_FD + int(count)):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ValueError(
                f"--web.systemd-socket: fd {fd} is not a socket ({exc.strerror or exc})"
            ) from None
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or not listening:
            sock.detach()
            raise ValueError(
                f"--web.systemd-socket: fd {fd} is not a listening TCP socket "
                "(the socket unit needs ListenStream=[ADDRESS:]PORT)"
            )
        sock.set_inheritable(False)
        sockets.append(sock)
    return sockets
