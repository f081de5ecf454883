"""The exporter's HTTP side: /metrics, a landing page, health, readiness and reload.

It only reads: the page body comes from a snapshot of the store, never from the API.
"""

from __future__ import annotations

import html
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from exporter import __version__
from exporter.exposition import CONTENT_TYPE

log = logging.getLogger(__name__)


@dataclass
class WebApp:
    """What the HTTP handlers need: the metrics body, readiness, and the reload action."""

    metrics: Callable[[], list[bytes]]  # the body in chunks, written one after another
    ready: Callable[[], bool]
    reload: Callable[[], str | None]  # None on success, else the reason it failed
    status: Callable[[], str] = lambda: ""

    def landing_page(self) -> bytes:
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Podero exporter</title>"
            "</head><body><h1>Podero exporter</h1>"
            f"<p>Version {html.escape(__version__)}. {html.escape(self.status())}</p>"
            "<ul><li><a href='metrics'>Metrics</a></li>"
            "<li><a href='-/healthy'>Health</a></li><li><a href='-/ready'>Readiness</a></li>"
            "</ul></body></html>"
        ).encode()


class _Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
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
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(len(c) for c in chunks)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            for chunk in chunks:
                self.wfile.write(chunk)

    def do_GET(self) -> None:
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, app.metrics(), CONTENT_TYPE)
        elif path == "/":
            self._send(200, app.landing_page(), "text/html; charset=utf-8")
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
            self.rfile.read(length)
        if self.path.split("?", 1)[0] != "/-/reload":
            self._send(404, b"Not found.\n")
            return
        error = self.server.app.reload()
        if error is None:
            self._send(200, b"Reloaded.\n")
        else:
            self._send(500, f"Reload failed: {error}\n".encode())


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    app: WebApp


def parse_listen_address(value: str) -> tuple[str, int]:
    """`:10042`, `0.0.0.0:10042`, `[::1]:10042` or `localhost:10042` as (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address {value!r}: expected HOST:PORT, e.g. :10042")
    return host.strip("[]"), int(port)


def start_web(address: str, app: WebApp) -> ExporterHTTPServer:
    """Listen on `address` and serve `app` from a background thread."""
    host, port = parse_listen_address(address)
    server_class: type[ExporterHTTPServer] = ExporterHTTPServer
    if ":" in host:

        class _V6(ExporterHTTPServer):
            address_family = socket.AF_INET6

        server_class = _V6
    server = server_class((host, port), _Handler)
    server.app = app
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="web", daemon=True
    ).start()
    return server
