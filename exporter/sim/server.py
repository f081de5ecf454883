"""The simulated API over HTTP on a loopback port: routes, fault injection on the wire
(latency, resets, truncated and malformed bodies) and the `/_sim/...` control endpoints."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from exporter.sim.api import HOSTILE_ERROR, ApiError, Faults, SimulatedApi
from exporter.sim.arrivals import StampedSocketReader, ask_for_timestamps
from exporter.sim.clock import ManualClock
from exporter.sim.devices import DEVICE_OVERRIDABLE, LISTINGS, PATHS
from exporter.sim.fleet import API, MEASURED

_DATA = re.compile(rf"^{API}/org/([^/]+)/users/([^/]+)/inverters/([^/]+)/data/?$")
_DETAIL = re.compile(rf"^{API}/org/([^/]+)/users/([^/]+)/inverters/([^/]+)/?$")
_INVERTERS = re.compile(rf"^{API}/org/([^/]+)/users/([^/]+)/inverters/?$")
_USERS = re.compile(rf"^{API}/org/([^/]+)/users/?$")
_ORG_SAVINGS = re.compile(rf"^{API}/org/([^/]+)/devices/savings/?$")
# The other devices of a home: (endpoint, kind, pattern), e.g. ("heat_pump_data", ...).
_DEVICE_ROUTES = [
    route
    for kind, segment in PATHS.items()
    for route in (
        *(
            (
                f"{kind}_{what}",
                kind,
                re.compile(rf"^{API}/org/([^/]+)/users/([^/]+)/{segment}/([^/]+)/{what}/?$"),
            )
            for what in ("data", "savings", "statistics")
        ),
        (kind, kind, re.compile(rf"^{API}/org/([^/]+)/users/([^/]+)/{segment}/([^/]+)/?$")),
        (LISTINGS[kind], kind, re.compile(rf"^{API}/org/([^/]+)/users/([^/]+)/{segment}/?$")),
    )
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle's algorithm and the
    # peer's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: _SimServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Reads through a reader that keeps the kernel's arrival time of each request.
        self._stamped = StampedSocketReader(self.connection)
        self.rfile.close()
        self.rfile = io.BufferedReader(self._stamped)

    def _arrived(self) -> None:
        """Count this request where it arrived (the kernel's time, else now)."""
        self.server.api.arrived(self.headers.get("Authorization"), at=self._stamped.stamp)

    def handle(self) -> None:
        # A client that gives up on an answer (a deadline, a size limit) hangs up mid-way.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    # --- plumbing ---------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(
        self, endpoint: str, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        self.server.api.count(endpoint, str(status))
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _reset(self, endpoint: str) -> None:
        self.server.api.count(endpoint, "reset")
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )

    def _faulted(self, endpoint: str) -> bool:
        """Apply a random fault for this request; True if the response has been sent."""
        api, f = self.server.api, self.server.api.faults
        if f.latency_ms:
            time.sleep(f.latency_ms / 1000.0)
        if api.roll(f.slow):
            # Longer than the client waits: it gives up, so no answer is sent at all.
            api.count(endpoint, "timeout")
            time.sleep(f.slow_s)
            self.close_connection = True
            return True
        if api.roll(f.reset):
            self._reset(endpoint)
            return True
        if api.roll(f.error_5xx):
            self._json(endpoint, 503, {"error": "Service temporarily unavailable."})
            return True
        if api.roll(f.rate_limit):
            self._json(
                endpoint,
                429,
                {"error": "Too many requests."},
                headers={"Retry-After": str(f.retry_after_s)},
            )
            return True
        return False

    def _broken_body(self, endpoint: str) -> bool:
        api, f = self.server.api, self.server.api.faults
        if api.roll(f.truncated):
            api.count(endpoint, "200")
            self._send(200, b'{"metadata": {}, "data": [{"time": "2026-')
            return True
        if api.roll(f.malformed):
            api.count(endpoint, "200")
            self._send(200, b"{metadata: oops,,}")
            return True
        if api.roll(f.html):
            api.count(endpoint, "200")
            self._send(200, b"<html><body>Bad gateway</body></html>", "text/html")
            return True
        return False

    # --- hostile bodies (Faults' hostile modes) ---------------------------------------------
    def _hostile_body(self, endpoint: str, inverter_id: str, payload: Any) -> bool:
        """Send the inverter's data the hostile way the faults ask for; True if sent."""
        api, f = self.server.api, self.server.api.faults
        if inverter_id in f.trickle_inverters:
            mode = "trickle"
        elif inverter_id in f.endless_inverters:
            mode = "endless"
        elif inverter_id in f.gzip_bomb_inverters:
            mode = "gzip_bomb"
        else:
            return False
        api.count(endpoint, mode)
        with contextlib.suppress(OSError):  # the client hung up: that was the point
            if mode == "trickle":
                self._trickle(json.dumps(payload).encode(), f.trickle_interval_s, f.trickle_headers)
            elif mode == "endless":
                self._endless()
            else:
                self._send(200, gzip_bomb(f.gzip_bomb_mib), headers={"Content-Encoding": "gzip"})
        self.close_connection = True
        return True

    def _trickle(self, body: bytes, interval: float, headers_too: bool) -> None:
        """A valid response, one byte every `interval` seconds (from the status line on, if
        `headers_too`), until it is done or the client hangs up."""
        self.close_connection = True
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        if not headers_too:
            self.wfile.write(head)
            self.wfile.flush()
            head = b""
        stream = head + body
        for i in range(len(stream)):
            self.wfile.write(stream[i : i + 1])
            self.wfile.flush()
            time.sleep(interval)

    def _endless(self) -> None:
        """A chunked JSON body that never ends, until the client hangs up."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        opening = b'{"metadata": {}, "data": ['
        self.wfile.write(b"%x\r\n%s\r\n" % (len(opening), opening))
        chunk = b'{"time": null},' * 4096
        frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        while True:
            self.wfile.write(frame)

    # --- routes -------------------------------------------------------------------------------
    def do_POST(self) -> None:
        api = self.server.api
        path = urlsplit(self.path).path
        body = self._body()
        if path.startswith("/_sim/"):
            self._admin_post(path, body)
            return
        self._arrived()
        auth = self.headers.get("Authorization")
        if path.rstrip("/") in ("/oauth2/token", f"{API}/auth/token"):
            if self._faulted("token") or self._redirected("token"):
                return
            if api.roll(api.faults.token_error):
                self._json("token", 503, {"error": "Token service unavailable."})
                return
            try:
                if path.rstrip("/") == "/oauth2/token":
                    payload = api.client_credentials(auth, body)
                else:
                    payload = api.partner_token(auth, body)
            except ApiError as exc:
                self._json("token", exc.status, {"error": exc.message})
                return
            api.count("token", "200")
            self._send(200, api.token_body(payload))
            return
        self._json("unknown", 404, {"error": "Not found."})

    def do_GET(self) -> None:
        api = self.server.api
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/_sim/"):
            self._admin_get(path)
            return
        self._arrived()
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        include_deleted = query.get("include_deleted", "false").lower() == "true"
        routes: list[tuple[str, re.Pattern[str]]] = [
            ("inverter_data", _DATA),
            ("inverter", _DETAIL),
            ("inverters", _INVERTERS),
            ("users", _USERS),
            ("organization_savings", _ORG_SAVINGS),
        ]
        for endpoint, pattern in routes:  # noqa: B007 - the matched endpoint is used below
            match = pattern.match(path)
            if match:
                break
        else:
            for endpoint, kind, pattern in _DEVICE_ROUTES:
                match = pattern.match(path)
                if match:
                    self._device_get(endpoint, kind, match, query, include_deleted)
                    return
            self._json("unknown", 404, {"error": "Not found."})
            return
        if self._faulted(endpoint) or self._redirected(endpoint):
            return
        try:
            token = api.check_bearer(self.headers.get("Authorization"))
            if api.roll(api.faults.revoke):
                api.revoke(token)
                raise ApiError(401, "Token has been revoked.")
            if self._broken_body(endpoint):
                return
            args = [str(g) for g in match.groups()]
            if endpoint == "inverter_data" and args[2] in api.faults.broken_inverters:
                raise ApiError(503, "This inverter's data is unavailable.")
            if endpoint == "inverter_data" and args[2] in api.faults.hostile_error_inverters:
                raise ApiError(400, HOSTILE_ERROR)
            if endpoint in api.faults.failing_endpoints:
                raise ApiError(503, "Service temporarily unavailable.")
            payload: Any
            if endpoint == "inverter_data":
                payload = api.inverter_data(args[0], args[1], args[2], query)
            elif endpoint == "inverter":
                payload = api.inverter_detail(args[0], args[1], args[2])
            elif endpoint == "inverters":
                payload = api.user_inverters(args[0], args[1], include_deleted)
            elif endpoint == "organization_savings":
                payload = api.organization_savings(args[0], query)
            else:
                payload = api.users(args[0], include_deleted)
        except ApiError as exc:
            self._json(endpoint, exc.status, {"error": exc.message})
            return
        if endpoint == "inverter_data" and self._hostile_body(endpoint, args[2], payload):
            return
        self._json(endpoint, 200, payload)

    def _device_get(
        self,
        endpoint: str,
        kind: str,
        match: re.Match[str],
        query: dict[str, str],
        include_deleted: bool,
    ) -> None:
        """A heat pump, EV or wallbox route: listing, detail or data."""
        api = self.server.api
        if self._faulted(endpoint):
            return
        try:
            api.check_bearer(self.headers.get("Authorization"))
            if endpoint in api.faults.failing_endpoints:
                raise ApiError(503, "Service temporarily unavailable.")
            org_id, user_id, *rest = (str(g) for g in match.groups())
            payload: Any
            if endpoint.endswith("_data"):
                payload = api.device_data(org_id, user_id, kind, rest[0], query)
            elif endpoint.endswith("_savings"):
                payload = api.device_savings(org_id, user_id, kind, rest[0], query)
            elif endpoint.endswith("_statistics"):
                payload = api.device_statistics(org_id, user_id, kind, rest[0], query)
            elif rest:
                payload = api.device_detail(org_id, user_id, kind, rest[0])
            else:
                payload = api.user_devices(org_id, user_id, kind, include_deleted)
        except ApiError as exc:
            self._json(endpoint, exc.status, {"error": exc.message})
            return
        self._json(endpoint, 200, payload)

    def _redirected(self, endpoint: str) -> bool:
        """Answer 307 to the same path at `redirect_to` if the faults say so."""
        f = self.server.api.faults
        if endpoint not in f.redirect_endpoints or not f.redirect_to:
            return False
        location = f.redirect_to.rstrip("/") + self.path
        self._json(endpoint, 307, {"error": "moved"}, headers={"Location": location})
        return True

    # --- test and demo controls (not part of the real API) ---------------------------------------
    def _admin_get(self, path: str) -> None:
        api = self.server.api
        if path == "/_sim/stats":
            self._send(200, json.dumps(api.stats()).encode())
        elif path == "/_sim/fleet":
            self._send(200, json.dumps(self.server.describe()).encode())
        else:
            self._send(404, b'{"error": "unknown control"}')

    def _admin_post(self, path: str, body: Any) -> None:
        api = self.server.api
        if path == "/_sim/faults" and isinstance(body, dict):
            known = {f.name for f in fields(Faults)}
            unknown = set(body) - known
            if unknown:
                self._send(400, json.dumps({"error": f"unknown faults {sorted(unknown)}"}).encode())
                return
            wrong = sorted(k for k, v in body.items() if not _fits(getattr(Faults, k), v))
            if wrong:
                self._send(400, json.dumps({"error": f"faults of the wrong type {wrong}"}).encode())
                return
            merged = {**asdict(api.faults), **body}
            for key in merged:
                if isinstance(getattr(Faults, key, None), tuple):
                    merged[key] = tuple(merged[key])
            api.faults = Faults(**merged)
            self._send(200, json.dumps(asdict(api.faults)).encode())
        elif path == "/_sim/override" and isinstance(body, dict) and "inverter_id" in body:
            # An inverter's measured values, or a heat pump's or EV's measured numbers.
            pinnable = (*MEASURED, *DEVICE_OVERRIDABLE)
            given = body.get("values", {})
            if not isinstance(given, dict) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in given.values()
            ):
                self._send(400, b'{"error": "values must map field names to numbers"}')
                return
            values = {k: float(v) for k, v in given.items() if k in pinnable}
            api.overrides[str(body["inverter_id"])] = values
            self._send(200, b"{}")
        elif path == "/_sim/clock" and isinstance(body, dict) and "now" in body:
            if not isinstance(api.clock, ManualClock):
                self._send(400, b'{"error": "start the simulator with --fake-clock"}')
                return
            api.clock.set(float(body["now"]))
            self._send(200, b"{}")
        elif path == "/_sim/reset-stats":
            api.reset_stats()
            self._send(200, b"{}")
        else:
            self._send(400, b'{"error": "bad control request"}')


class _SimServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    api: SimulatedApi

    def server_bind(self) -> None:
        # On from the start (the kernel turns stamping on a moment after it is first asked).
        ask_for_timestamps(self.socket)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.api._lock:
            self.api.connections += 1
        super().process_request(request, client_address)

    def describe(self) -> dict[str, Any]:
        api = self.api
        host, port = str(self.server_address[0]), int(self.server_address[1])
        return {
            "base_url": f"http://{host}:{port}",
            "client_id": api.client_id,
            "client_secret": api.client_secret,
            "username": api.username,
            "password": api.password,
            "org_ids": api.fleet.org_ids,
            "inverters": [
                {"org_id": i.org_id, "user_id": i.user_id, "inverter_id": i.id}
                for i in api.fleet.inverters
            ],
            "publish_lag_s": {i.id: i.publish_lag_s for i in api.fleet.inverters},
            "devices": [
                {"org_id": d.org_id, "user_id": d.user_id, "device_id": d.id, "kind": d.kind}
                for d in api.fleet.devices
            ],
        }


def _fits(default: Any, value: Any) -> bool:
    """Whether a fault's new value has the type of its default (a number for a number, a
    list of strings for a tuple): one of another type would crash every later request."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


@lru_cache(maxsize=4)
def gzip_bomb(mib: int) -> bytes:
    """A gzip body of about mib KiB that inflates to `mib` MiB of a JSON body's whitespace."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b'{"metadata": {}, "data": [')]
    spaces = b" " * (1 << 20)
    parts.extend(packer.compress(spaces) for _ in range(mib))
    parts.append(packer.compress(b"]}") + packer.flush())
    return b"".join(parts)


@dataclass
class RunningSimulator:
    """A simulator serving on a loopback port in a background thread."""

    api: SimulatedApi
    server: _SimServer
    thread: threading.Thread = field(repr=False)

    @property
    def base_url(self) -> str:
        return str(self.server.describe()["base_url"])

    def describe(self) -> dict[str, Any]:
        return self.server.describe()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_simulator(api: SimulatedApi, host: str = "127.0.0.1", port: int = 0) -> RunningSimulator:
    """Serve `api` on host:port (0 = an ephemeral port) until `stop()`."""
    server = _SimServer((host, port), _Handler)
    server.api = api
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="simulator", daemon=True
    )
    thread.start()
    return RunningSimulator(api=api, server=server, thread=thread)


def demo_config(info: dict[str, Any], inverters: int | None = None) -> dict[str, Any]:
    """An exporter config (as a dict) for polling a simulator, given its `describe()`."""
    listed = info["inverters"] if inverters is None else info["inverters"][:inverters]
    names = ("rooftop-vienna", "garage-graz", "barn-linz", "villa-salzburg", "shed-innsbruck")
    return {
        "podero": {
            "base_url": info["base_url"],
            "auth": {
                "grant_type": "client_credentials",
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
            },
        },
        "inverters": [
            {**inv, "name": names[i] if i < len(names) else f"sim-{i:05d}"}
            for i, inv in enumerate(listed)
        ],
    }
