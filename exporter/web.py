"""The exporter's HTTP side: /metrics, a landing page, health, readiness and reload.

It only reads: the page body comes from a snapshot of the store, never from the API.
"""

from __future__ import annotations

import html
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from exporter import __version__
from exporter.exposition import CONTENT_TYPE
from exporter.status import StatusView
from exporter.webconfig import BasicAuth, WebConfig, ssl_context

log = logging.getLogger(__name__)


@dataclass
class WebApp:
    """What the HTTP handlers need: the metrics body, readiness, reload, the status views."""

    metrics: Callable[[], list[bytes]]  # the body in chunks, written one after another
    ready: Callable[[], bool]
    reload: Callable[[], str | None]  # None on success, else the reason it failed
    status: StatusView | None = None

    def landing_page(self, params: dict[str, str]) -> bytes:
        if self.status is not None:
            return self.status.html(params)
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Podero exporter</title>"
            f"</head><body><h1>Podero exporter {html.escape(__version__)}</h1>"
            "<p><a href='metrics'>Metrics</a></p></body></html>"
        ).encode()


class _Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a connection may idle or dawdle before it is closed
    # Headers and body go out in separate writes: without this, Nagle's algorithm and the
    # peer's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s %s", self.address_string(), format % args)

    def _send(
        self,
        status: int,
        body: bytes | list[bytes],
        content_type: str = "text/plain; charset=utf-8",
        extra: dict[str, str] | None = None,
    ) -> None:
        chunks = [body] if isinstance(body, bytes) else body
        self.send_response(status)
        for key, value in self.server.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(len(c) for c in chunks)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            for chunk in chunks:
                self.wfile.write(chunk)

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake with %s failed: %s", self.client_address[0], exc)
                self.close_connection = True
                raise _HandshakeFailed() from None

    def _authorized(self) -> bool:
        if self.server.auth.allows(self.headers.get("Authorization")):
            return True
        self._send(
            401, b"Unauthorized\n", extra={"WWW-Authenticate": 'Basic realm="podero-exporter"'}
        )
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return
        app = self.server.app
        parts = urlsplit(self.path)
        path = parts.path
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if path == "/metrics":
            self._send(200, app.metrics(), CONTENT_TYPE)
        elif path == "/":
            self._send(200, app.landing_page(params), "text/html; charset=utf-8")
        elif path == "/api/v1/inverters" and app.status is not None:
            self._send(200, app.status.json(params), "application/json")
        elif path == "/-/healthy":
            self._send(200, b"Healthy.\n")
        elif path == "/-/ready":
            if app.ready():
                self._send(200, b"Ready.\n")
            else:
                self._send(503, b"Not ready: the first poll cycle has not finished.\n")
        elif path == "/-/reload":
            self._send(405, b"Use POST to reload.\n", extra={"Allow": "POST"})
        else:
            self._send(404, b"Not found.\n")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 16))
        if not self._authorized():
            return
        if self.path.split("?", 1)[0] != "/-/reload":
            self._send(404, b"Not found.\n")
            return
        error = self.server.app.reload()
        if error is None:
            self._send(200, b"Reloaded.\n")
        else:
            self._send(500, f"Reload failed: {error}\n".encode())


class _HandshakeFailed(Exception):
    """A TLS client that did not complete the handshake (wrong version, no certificate)."""


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    app: WebApp
    auth: BasicAuth = BasicAuth({})
    headers: dict[str, str] = {}

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that vanish or fail TLS are routine for a server; no tracebacks on stderr.
        log.debug("connection from %s ended with an error", client_address[0], exc_info=True)


def parse_listen_address(value: str) -> tuple[str, int]:
    """`:10042`, `0.0.0.0:10042`, `[::1]:10042` or `localhost:10042` as (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address {value!r}: expected HOST:PORT, e.g. :10042")
    return host.strip("[]"), int(port)


def start_web(address: str, app: WebApp, web_config: WebConfig | None = None) -> ExporterHTTPServer:
    """Listen on `address` and serve `app` from a background thread, with the TLS, basic
    auth and headers of `web_config` if given."""
    host, port = parse_listen_address(address)
    server_class: type[ExporterHTTPServer] = ExporterHTTPServer
    if ":" in host:

        class _V6(ExporterHTTPServer):
            address_family = socket.AF_INET6

        server_class = _V6
    server = server_class((host, port), _Handler)
    server.app = app
    if web_config is not None:
        server.auth = BasicAuth(web_config.basic_auth_users)
        server.headers = dict(web_config.http_server_config.headers)
        if web_config.tls_server_config is not None:
            context = ssl_context(web_config.tls_server_config)
            # The handshake runs in each connection's own thread (see _Handler.setup), so a
            # slow or broken client cannot stall the accept loop.
            server.socket = context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="web", daemon=True
    ).start()
    return server
