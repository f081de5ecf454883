"""The exporter's HTTP side: /metrics, a landing page, health, readiness and reload, and
the addresses it listens on.

It only reads: the page body comes from a snapshot of the store, never from the API. How
connections are served (framing, limits, deadlines, TLS) is server.py's.
"""

from __future__ import annotations

import base64
import hashlib
import html
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from exporter import __version__
from exporter.render.exposition import CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE
from exporter.render.status import SCRIPT, STYLE, BadQuery, Busy, StatusView
from exporter.serve.server import ExporterHTTPServer, ServerLimits
from exporter.serve.webconfig import BasicAuth, WebConfig

DEFAULT_LIMITS = ServerLimits()


@dataclass
class WebApp:
    """What the HTTP handlers need: the metrics body, readiness, reload, the status views."""

    metrics: Callable[[], list[bytes]]  # the body in chunks, written one after another
    ready: Callable[[], bool]
    # None on success, else the reason it failed; raises TimeoutError while it still runs.
    # None itself: no /-/reload (served only with --web.enable-lifecycle).
    reload: Callable[[], str | None] | None
    status: StatusView | None = None
    # The same body gzip-compressed (one gzip member of ready deflate segments), if the page
    # keeps one.
    metrics_gzip: Callable[[], list[bytes]] | None = None
    metrics_path: str = "/metrics"  # --web.telemetry-path
    # The body in OpenMetrics 1.0, plain and gzip, for a scraper that asks for it (Accept).
    openmetrics: Callable[[], list[bytes]] | None = None
    openmetrics_gzip: Callable[[], list[bytes]] | None = None

    def landing_page(self, params: dict[str, str]) -> bytes:
        if self.status is not None:
            return self.status.html(params)
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Podero exporter</title>"
            f"</head><body><h1>Podero exporter {html.escape(__version__)}</h1>"
            f"<p><a href='{html.escape(self.metrics_path.lstrip('/'))}'>Metrics</a></p>"
            "</body></html>"
        ).encode()


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (`gzip` or `*`, not with q=0)."""
    for part in header.lower().split(",")[:32]:
        coding, _, params = part.strip().partition(";")
        if coding.strip() not in ("gzip", "*"):
            continue
        q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
        try:
            return float(q) > 0
        except ValueError:
            return False
    return False


OPENMETRICS = "application/openmetrics-text"
TEXT_RANGES = ("text/plain", "text/*", "*/*")


def accepts_openmetrics(header: str) -> bool:
    """Whether an Accept header prefers OpenMetrics 1.0 (`application/openmetrics-text` with
    version 1.0.0 or none, q > 0) at least as much as the classic text format."""
    best = {"openmetrics": 0.0, "text": 0.0}
    for part in header.lower().split(",")[:32]:
        media, *raw_params = (p.strip() for p in part.split(";"))
        params = dict(p.partition("=")[::2] for p in raw_params)
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            continue
        if media == OPENMETRICS and params.get("version", "1.0.0") == "1.0.0":
            best["openmetrics"] = max(best["openmetrics"], q)
        elif media in TEXT_RANGES and params.get("version", "0.0.4") == "0.0.4":
            best["text"] = max(best["text"], q)
    return best["openmetrics"] > 0 and best["openmetrics"] >= best["text"]


def _inline_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# The status page's only inline style and script, allowed by hash: anything else that got
# into the page (an escaping bug) would not run.
HTML_CSP = (
    f"default-src 'none'; style-src {_inline_hash(STYLE)}; script-src {_inline_hash(SCRIPT)}; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"


@dataclass
class _Response:
    status: int
    body: bytes | list[bytes]
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


# The paths Site.route answers besides the telemetry path, which may be none of them.
FIXED_PATHS = ("/", "/api/v1/inverters", "/api/v1/devices", "/-/healthy", "/-/ready", "/-/reload")


class Site:
    """The WSGI application: basic auth, the routes, and the headers every response carries."""

    def __init__(self, app: WebApp, auth: BasicAuth, headers: dict[str, str]) -> None:
        self.app = app
        self.auth = auth
        self.headers = headers  # from the web config; they win over our defaults

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if self.auth.allows(environ.get("HTTP_AUTHORIZATION")):
            params = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            gzip_ok = accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
            om = accepts_openmetrics(environ.get("HTTP_ACCEPT", ""))
            try:
                response = self.route(method, environ.get("PATH_INFO", "/"), params, gzip_ok, om)
            except Busy:
                response = _Response(
                    503, b"Busy: too many status requests; retry.\n", headers={"Retry-After": "1"}
                )
            except BadQuery as exc:  # its message does not repeat the value
                response = _Response(400, f"Bad request: {exc}.\n".encode())
        else:
            response = _Response(
                401,
                b"Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="podero-exporter"'},
            )
        chunks = [response.body] if isinstance(response.body, bytes) else response.body
        html_page = response.content_type.startswith("text/html")
        headers = {
            "Content-Type": response.content_type,
            "Content-Length": str(sum(len(c) for c in chunks)),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": HTML_CSP if html_page else OTHER_CSP,
            **response.headers,
            **self.headers,
        }
        start_response(
            f"{response.status} {HTTPStatus(response.status).phrase}", [*headers.items()]
        )
        return [] if method == "HEAD" else chunks

    def route(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        gzip_ok: bool = False,
        openmetrics: bool = False,
    ) -> _Response:
        """The response for an authorized request."""
        app = self.app
        if path == "/-/reload" and app.reload is None:
            return _Response(404, b"Not found: /-/reload needs --web.enable-lifecycle.\n")
        if method == "POST":
            if path != "/-/reload" or app.reload is None:
                return _Response(404, b"Not found.\n")
            return _reload_response(app.reload)
        if method not in ("GET", "HEAD"):
            allow = "POST" if path == "/-/reload" else "GET, HEAD"
            return _Response(405, b"Method not allowed.\n", headers={"Allow": allow})
        if path == app.metrics_path:
            return self._metrics(gzip_ok, openmetrics)
        if path == "/":
            return _Response(200, app.landing_page(params), "text/html; charset=utf-8")
        if path == "/api/v1/inverters" and app.status is not None:
            return _Response(200, app.status.json(params), "application/json")
        if path == "/api/v1/devices" and app.status is not None:
            return _Response(200, app.status.json(params, devices=True), "application/json")
        if path == "/-/healthy":
            return _Response(200, b"Healthy.\n")
        if path == "/-/ready":
            if app.ready():
                return _Response(200, b"Ready.\n")
            return _Response(503, b"Not ready: the first poll cycle has not finished.\n")
        if path == "/-/reload":
            return _Response(405, b"Use POST to reload.\n", headers={"Allow": "POST"})
        return _Response(404, b"Not found.\n")

    def _metrics(self, gzip_ok: bool, openmetrics: bool) -> _Response:
        """/metrics in the format the scraper asked for, gzip if it accepts it."""
        app = self.app
        plain, gzip, content_type = app.metrics, app.metrics_gzip, CONTENT_TYPE
        if openmetrics and app.openmetrics is not None:
            plain, gzip = app.openmetrics, app.openmetrics_gzip
            content_type = OPENMETRICS_CONTENT_TYPE
        vary = "Accept, Accept-Encoding" if app.openmetrics is not None else "Accept-Encoding"
        if gzip_ok and gzip is not None:
            headers = {"Content-Encoding": "gzip", "Vary": vary}
            return _Response(200, gzip(), content_type, headers)
        return _Response(200, plain(), content_type, {"Vary": vary})


def _reload_response(reload: Callable[[], str | None]) -> _Response:
    try:
        error = reload()
    except TimeoutError:
        return _Response(
            503,
            b"Reload still running: the running config stays until it finishes.\n",
            headers={"Retry-After": "5"},
        )
    if error is None:
        return _Response(200, b"Reloaded.\n")
    return _Response(500, f"Reload failed: {error}\n".encode())


def parse_listen_address(value: str) -> tuple[str, int]:
    """`:10042`, `0.0.0.0:10042`, `[::1]:10042` or `localhost:10042` as (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address {value!r}: expected HOST:PORT, e.g. :10042")
    return host.strip("[]"), int(port)


def start_web(
    address: str | socket.socket,
    app: WebApp,
    web_config: WebConfig | None = None,
    limits: ServerLimits = DEFAULT_LIMITS,
) -> ExporterHTTPServer:
    """Listen on `address` (HOST:PORT, or a listening socket) and serve `app` from background
    threads, with the TLS, basic auth and headers of `web_config` if given. Raises OSError if
    it cannot listen."""
    return _start(address, _site(app, web_config), web_config, limits)


def _site(app: WebApp, web_config: WebConfig | None) -> Site:
    config = web_config or WebConfig()
    return Site(app, BasicAuth(config.basic_auth_users), dict(config.http_server_config.headers))


def _start(
    address: str | socket.socket, site: Site, web_config: WebConfig | None, limits: ServerLimits
) -> ExporterHTTPServer:
    tls = (web_config or WebConfig()).server_tls
    if isinstance(address, socket.socket):
        server = ExporterHTTPServer("", 0, site, limits, tls, listening=address)
    else:
        host, port = parse_listen_address(address)
        server = ExporterHTTPServer(host or "0.0.0.0", port, site, limits, tls)
    started: Future[None] = Future()
    threading.Thread(target=server.run, args=(started,), name="web", daemon=True).start()
    started.result()
    return server


class WebServers:
    """One server per listen address or systemd socket, serving the same site (one basic
    auth cache); stopped together."""

    def __init__(self, servers: list[ExporterHTTPServer]) -> None:
        self.servers = servers

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [server.server_address for server in self.servers]

    def shutdown(self) -> None:
        for server in self.servers:
            server.shutdown()

    def server_close(self) -> None:
        for server in self.servers:
            server.server_close()


def start_servers(
    listeners: Sequence[str | socket.socket],
    app: WebApp,
    web_config: WebConfig | None = None,
    limits: ServerLimits = DEFAULT_LIMITS,
) -> WebServers:
    """Serve `app` on every address or socket (each with its own `limits`). Raises OSError
    naming the address it cannot listen on; none is left listening then."""
    site = _site(app, web_config)
    servers: list[ExporterHTTPServer] = []
    try:
        for listener in listeners:
            try:
                servers.append(_start(listener, site, web_config, limits))
            except OSError as exc:
                where = listener if isinstance(listener, str) else f"fd {listener.fileno()}"
                raise OSError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    except BaseException:
        WebServers(servers).shutdown()
        raise
    return WebServers(servers)
