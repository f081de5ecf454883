"""A simulator of the Podero Partner API on loopback, for the demo, the tests and benchmarks.

Serves both token flows, the inverter data endpoint and the discovery endpoints with
deterministic, realistic data for a seed: a diurnal solar curve, household load, a battery
whose charge follows the power flows, export as the balance, a price curve, and
forecast-only points (price, estimated consumption) after now. Strict like the real API
(401, 404, 400 with {"error": ...}) and able to inject faults: latency, 5xx, 429 with
Retry-After, short token lifetimes, revoked tokens, resets and broken bodies.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import math
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from exporter.clock import Clock, FakeClock, SystemClock

API = "/api/partners/v2.0"
STEP = 900  # the simulator's base bucket: 15 minutes
RESOLUTIONS = {"15MIN": 900, "1HOUR": 3600, "1DAY": 86400, "1WEEK": 7 * 86400, "1MONTH": None}
MEASURED = (
    "solar_production_w",
    "export_power_to_grid_w",
    "household_consumption_w",
    "battery_charge_level_percent",
    "battery_charge_discharge_power_w",
)
FORECAST = ("price", "estimated_consumption")
ALL_FIELDS = (*MEASURED, "price", "estimated_consumption", "unoptimized_consumption")
UNITS = {
    "solar_production_w": "W",
    "export_power_to_grid_w": "W",
    "household_consumption_w": "W",
    "battery_charge_level_percent": "%",
    "battery_charge_discharge_power_w": "W",
    "estimated_consumption": "W",
    "unoptimized_consumption": "W",
    "price": "EUR/MWh",
}
MAX_POINTS = 5000
# Batteries keep this much charge (percent) as backup reserve and never discharge below it.
BATTERY_RESERVE = 20.0
MANUFACTURERS = (
    ("Fronius", "Symo GEN24 10.0 Plus"),
    ("Huawei", "SUN2000-8KTL-M1"),
    ("SMA", "Sunny Tripower X 12"),
    ("SolarEdge", "SE8K-RWS"),
    ("Kostal", "PLENTICORE plus 7.0"),
)


def _unit(*keys: object) -> float:
    """A deterministic number in [0, 1) for the given keys."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SimUser:
    """A partner's customer."""

    id: str
    org_id: str
    external_user_id: str
    email: str
    first_name: str
    last_name: str
    deleted: bool = False


@dataclass(frozen=True)
class SimInverter:
    """One simulated inverter with the parameters its data is generated from."""

    index: int
    id: str
    org_id: str
    user_id: str
    seed: int
    solar_rating_w: float
    base_load_w: float
    battery_capacity_wh: float  # 0 = no battery
    battery_max_w: float
    publish_lag_s: float  # a point's measured values appear this long after its time
    manufacturer: str
    model: str
    price_zone: str
    lifecycle_state: str = "authenticated"
    is_authenticated: bool = True
    action_needed: bool = False
    connection_status: str = "connected"
    monitoring_status: str = "ok"
    deleted: bool = False

    def listing(self) -> dict[str, Any]:
        """The inverter as the list and detail endpoints show it."""
        return {
            "id": self.id,
            "lifecycle_state": self.lifecycle_state,
            "connection_status": self.connection_status,
            "monitoring_status": self.monitoring_status,
            "steering_status": "ok" if self.is_authenticated else "error",
            "is_authenticated": self.is_authenticated,
            "action_needed": self.action_needed,
            "device_model": {"manufacturer": self.manufacturer, "model": self.model},
            "price_zone": self.price_zone,
            "solar_power_rating_kw": round(self.solar_rating_w / 1000, 2),
            "battery_capacity_kwh": round(self.battery_capacity_wh / 1000, 2)
            if self.battery_capacity_wh
            else None,
            "is_battery_connected": self.battery_capacity_wh > 0,
            "current_state_last_updated_at": None,
            "deleted_at": "2026-01-15T10:00:00Z" if self.deleted else None,
        }


class SimFleet:
    """Orgs, users and inverters generated from a seed, and the data of each inverter."""

    def __init__(self, seed: int = 1, inverters: int = 3, orgs: int = 1) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.org_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(orgs)]
        self.users: list[SimUser] = []
        self.inverters: list[SimInverter] = []
        user: SimUser | None = None
        for i in range(inverters):
            # Most customers have one inverter; every seventh has a second one.
            if user is None or i % 7 != 1:
                org = self.org_ids[len(self.users) % orgs]
                n = len(self.users)
                first, last = (
                    rng.choice(("Anna", "Ben", "Clara", "David", "Eva", "Felix")),
                    rng.choice(("Berger", "Huber", "Wagner", "Gruber", "Bauer", "Moser")),
                )
                user = SimUser(
                    id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    org_id=org,
                    external_user_id=f"cust-{n + 1:05d}",
                    email=f"{first.lower()}.{last.lower()}{n + 1}@example.com",
                    first_name=first,
                    last_name=last,
                )
                self.users.append(user)
            manufacturer, model = MANUFACTURERS[rng.randrange(len(MANUFACTURERS))]
            battery = 0.0 if i % 5 == 4 else rng.choice((5000.0, 7700.0, 10000.0, 13500.0))
            self.inverters.append(
                SimInverter(
                    index=i,
                    id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    org_id=user.org_id,
                    user_id=user.id,
                    seed=rng.getrandbits(32),
                    solar_rating_w=rng.choice((4000.0, 6000.0, 8000.0, 10000.0, 12000.0)),
                    base_load_w=rng.uniform(250, 600),
                    battery_capacity_wh=battery,
                    battery_max_w=min(5000.0, battery / 2) if battery else 0.0,
                    publish_lag_s=rng.uniform(300, 600),
                    manufacturer=manufacturer,
                    model=model,
                    price_zone=rng.choice(("AT", "DE")),
                    # Variety for discovery and health views; small fleets stay healthy.
                    is_authenticated=i % 13 != 12,
                    connection_status="connected" if i % 13 != 12 else "disconnected",
                    # The demo's third inverter needs action, so dashboards show the case.
                    action_needed=i % 17 == 2,
                    monitoring_status="ok" if i % 17 != 2 else "warning",
                    lifecycle_state="authenticated" if i % 23 != 22 else "pending",
                    deleted=i % 29 == 28,
                )
            )
        self.by_id = {inv.id: inv for inv in self.inverters}
        self.users_by_id = {u.id: u for u in self.users}

    def steps(self, inv: SimInverter, day: int) -> list[dict[str, float | None]]:
        return _day_steps(inv, day)


def _solar(inv: SimInverter, t: float, day: int) -> float:
    hour = ((t / 3600.0) + 1.0) % 24  # local time is roughly UTC+1
    sun = math.sin(math.pi * (hour - 6.0) / 12.0)
    if sun <= 0:
        return 0.0
    clouds = 0.55 + 0.45 * _unit(inv.seed, day)
    flicker = 0.85 + 0.15 * _unit(inv.seed, t)
    return float(inv.solar_rating_w * sun**1.5 * clouds * flicker)


def _household(inv: SimInverter, t: float) -> float:
    hour = ((t / 3600.0) + 1.0) % 24
    morning = math.exp(-(((hour - 7.5) / 1.2) ** 2))
    evening = math.exp(-(((hour - 19.0) / 2.0) ** 2))
    noise = _unit(inv.seed, "load", t)
    return inv.base_load_w * (0.8 + 1.2 * morning + 2.0 * evening) + 300 * noise


def _price(inv: SimInverter, t: float) -> float:
    hour = ((t / 3600.0) + 1.0) % 24
    return round(95 + 45 * math.sin(2 * math.pi * (hour - 10) / 24) + 12 * _unit("p", t), 2)


@lru_cache(maxsize=50_000)
def _day_steps(inv: SimInverter, day: int) -> list[dict[str, float | None]]:
    """The 96 quarter-hours of one day: solar, load, battery and grid in balance."""
    level = BATTERY_RESERVE + 5.0 + 40.0 * _unit(inv.seed, "level", day)
    steps: list[dict[str, float | None]] = []
    for k in range(86400 // STEP):
        t = day * 86400 + k * STEP
        solar = _solar(inv, t, day)
        load = _household(inv, t)
        battery_w: float | None = None  # positive = discharging
        if inv.battery_capacity_wh:
            surplus = solar - load
            hours = STEP / 3600.0
            if surplus > 0:
                room = (100.0 - level) / 100.0 * inv.battery_capacity_wh / hours
                battery_w = -min(surplus, inv.battery_max_w, room)
            else:
                stored = max(0.0, level - BATTERY_RESERVE) / 100.0 * inv.battery_capacity_wh / hours
                battery_w = min(-surplus, inv.battery_max_w, stored)
            level -= battery_w * hours / inv.battery_capacity_wh * 100.0
            level = min(100.0, max(0.0, level))
        grid = solar - load + (battery_w or 0.0)
        steps.append(
            {
                "solar_production_w": round(solar, 1),
                "household_consumption_w": round(load, 1),
                "battery_charge_discharge_power_w": None
                if battery_w is None
                else round(battery_w, 1),
                "battery_charge_level_percent": round(level, 1)
                if inv.battery_capacity_wh
                else None,
                "export_power_to_grid_w": round(grid, 1),
                "price": _price(inv, t),
                "estimated_consumption": round(0.9 * load + 0.1 * inv.base_load_w, 1),
                "unoptimized_consumption": round(load * 1.08, 1),
            }
        )
    return steps


def _bucket_start(t: float, resolution: str) -> float:
    if resolution == "1MONTH":
        d = datetime.fromtimestamp(t, UTC)
        return datetime(d.year, d.month, 1, tzinfo=UTC).timestamp()
    size = RESOLUTIONS[resolution]
    assert size is not None
    offset = 4 * 86400 if resolution == "1WEEK" else 0  # weeks start on Monday
    return math.floor((t - offset) / size) * size + offset


def _bucket_end(start: float, resolution: str) -> float:
    if resolution == "1MONTH":
        d = datetime.fromtimestamp(start, UTC)
        year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return datetime(year, month, 1, tzinfo=UTC).timestamp()
    size = RESOLUTIONS[resolution]
    assert size is not None
    return start + size


@dataclass
class Faults:
    """What the simulator gets wrong on purpose; probabilities are per request."""

    latency_ms: float = 0.0
    error_5xx: float = 0.0
    rate_limit: float = 0.0
    retry_after_s: int = 1
    slow: float = 0.0
    slow_s: float = 5.0
    reset: float = 0.0
    truncated: float = 0.0
    malformed: float = 0.0
    html: float = 0.0
    revoke: float = 0.0
    token_error: float = 0.0
    token_lifetime_s: int = 36000
    token_prefix: str = ""  # marks issued tokens (canaries in secret-hygiene tests)
    broken_inverters: tuple[str, ...] = ()  # these inverters' data always answers 503
    failing_endpoints: tuple[str, ...] = ()  # e.g. ("users",): these always answer 503


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SimulatedApi:
    """The API's behaviour, independent of HTTP: tokens, data, listings, faults, counts."""

    def __init__(
        self,
        fleet: SimFleet,
        clock: Clock | None = None,
        faults: Faults | None = None,
        client_id: str = "sim-client",
        client_secret: str | None = None,
        username: str = "partner@example.com",
        password: str | None = None,
    ) -> None:
        self.fleet = fleet
        self.clock = clock or SystemClock()
        self.faults = faults or Faults()
        self.client_id = client_id
        self.client_secret = client_secret or f"sim-secret-{fleet.seed}"
        self.username = username
        self.password = password or f"sim-password-{fleet.seed}"
        self._lock = threading.Lock()
        self._rng = random.Random(fleet.seed)
        self._tokens: dict[str, float] = {}
        self._refresh_tokens: set[str] = set()
        self.counts: Counter[tuple[str, str]] = Counter()
        self._arrivals: deque[float] = deque()
        self.busiest_second = 0
        self.connections = 0
        self.overrides: dict[str, dict[str, float]] = {}

    # --- faults and counting -------------------------------------------------------------
    def roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._lock:
            return self._rng.random() < probability

    def arrived(self) -> None:
        """Note a request's arrival for the busiest-one-second-window statistic."""
        now = time.monotonic()
        with self._lock:
            self._arrivals.append(now)
            while self._arrivals and self._arrivals[0] <= now - 1.0:
                self._arrivals.popleft()
            self.busiest_second = max(self.busiest_second, len(self._arrivals))

    def count(self, endpoint: str, code: str) -> None:
        with self._lock:
            self.counts[(endpoint, code)] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            responses: dict[str, dict[str, int]] = {}
            for (endpoint, code), n in self.counts.items():
                responses.setdefault(endpoint, {})[code] = n
            return {
                "responses": responses,
                "requests": sum(self.counts.values()),
                "busiest_second": self.busiest_second,
                "connections": self.connections,
            }

    def reset_stats(self) -> None:
        with self._lock:
            self.counts.clear()
            self.connections = 0
            self._arrivals.clear()
            self.busiest_second = 0

    # --- tokens ----------------------------------------------------------------------------
    def _issue(self, with_refresh: bool) -> dict[str, Any]:
        token = self.faults.token_prefix + secrets.token_urlsafe(24)
        lifetime = self.faults.token_lifetime_s
        with self._lock:
            self._tokens[token] = self.clock.time() + lifetime
        body: dict[str, Any] = {
            "access_token": token,
            "expires_in": lifetime,
            "token_type": "Bearer",
            "scope": "read write",
        }
        if with_refresh:
            refresh = secrets.token_urlsafe(24)
            with self._lock:
                self._refresh_tokens.add(refresh)
            body["refresh_token"] = refresh
        return body

    def client_credentials(self, authorization: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("grant_type") != "client_credentials":
            raise ApiError(400, "unsupported_grant_type")
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if authorization != f"Basic {expected}":
            raise ApiError(401, "invalid_client")
        return self._issue(with_refresh=False)

    def partner_token(self, authorization: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request")
        grant = body.get("grant_type")
        if grant == "client_credentials":
            return self.client_credentials(authorization, body)
        if grant == "password":
            if body.get("username") != self.username or body.get("password") != self.password:
                raise ApiError(401, "invalid_grant")
            return self._issue(with_refresh=True)
        if grant == "refresh_token":
            with self._lock:
                known = body.get("refresh_token") in self._refresh_tokens
                if known:
                    self._refresh_tokens.discard(body["refresh_token"])
            if not known:
                raise ApiError(401, "invalid_grant")
            return self._issue(with_refresh=True)
        raise ApiError(400, "unsupported_grant_type")

    def check_bearer(self, authorization: str | None) -> str:
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(401, "Authentication credentials were not provided.")
        token = authorization[len("Bearer ") :]
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None or expires <= self.clock.time():
            raise ApiError(401, "Invalid or expired token.")
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    # --- resources ---------------------------------------------------------------------------
    def _inverter(self, org_id: str, user_id: str, inverter_id: str) -> SimInverter:
        inv = self.fleet.by_id.get(inverter_id)
        if inv is None or inv.org_id != org_id or inv.user_id != user_id:
            raise ApiError(404, "Not found.")
        return inv

    def users(self, org_id: str, include_deleted: bool) -> list[dict[str, Any]]:
        if org_id not in self.fleet.org_ids:
            raise ApiError(404, "Not found.")
        return [
            {**asdict(u), "id": u.id}
            for u in self.fleet.users
            if u.org_id == org_id and (include_deleted or not u.deleted)
        ]

    def user_inverters(
        self, org_id: str, user_id: str, include_deleted: bool
    ) -> list[dict[str, Any]]:
        user = self.fleet.users_by_id.get(user_id)
        if user is None or user.org_id != org_id:
            raise ApiError(404, "Not found.")
        return [
            inv.listing()
            for inv in self.fleet.inverters
            if inv.user_id == user_id and (include_deleted or not inv.deleted)
        ]

    def inverter_detail(self, org_id: str, user_id: str, inverter_id: str) -> dict[str, Any]:
        inv = self._inverter(org_id, user_id, inverter_id)
        now = self.clock.time()
        latest = self._points(inv, now - 3600, now, "15MIN", now)
        current: dict[str, Any] = next(
            (p for p in reversed(latest) if p["solar_production_w"] is not None), {}
        )
        solar = current.get("solar_production_w")
        load = current.get("household_consumption_w")
        return {
            **inv.listing(),
            "current_solar_production_w": solar,
            "current_power_to_grid_w": current.get("export_power_to_grid_w"),
            "household_consumption_w": load,
            "battery_charge_level_percent": current.get("battery_charge_level_percent"),
            "battery_charge_discharge_power_w": current.get("battery_charge_discharge_power_w"),
            "solar_surplus_w": None if solar is None or load is None else solar - load,
        }

    def inverter_data(
        self, org_id: str, user_id: str, inverter_id: str, query: dict[str, str]
    ) -> dict[str, Any]:
        inv = self._inverter(org_id, user_id, inverter_id)
        now = self.clock.time()
        resolution = query.get("resolution", "15MIN")
        if resolution not in RESOLUTIONS:
            raise ApiError(400, f"Invalid resolution '{resolution}'.")
        day = math.floor(now / 86400) * 86400
        start = _parse_query_time(query, "from_datetime", day)
        end = _parse_query_time(query, "to_datetime", day + 86400)
        if start > end:
            raise ApiError(400, "from_datetime must not be after to_datetime.")
        if (end - start) / STEP > MAX_POINTS * 4:
            raise ApiError(400, "The requested range is too large.")
        wanted: tuple[str, ...] = ALL_FIELDS
        if query.get("keywords"):
            wanted = tuple(query["keywords"].split(","))
            unknown = [k for k in wanted if k not in ALL_FIELDS]
            if unknown:
                raise ApiError(400, f"Unknown keywords: {','.join(unknown)}.")
        points = self._points(inv, start, end, resolution, now)
        data = [{"time": p["time"], **{k: p[k] for k in wanted}} for p in points]
        return {
            "metadata": {
                "requested_at": _iso(now),
                "query": {
                    "from_datetime": _iso(start),
                    "to_datetime": _iso(end),
                    "resolution": resolution,
                },
                "units": {k: UNITS[k] for k in wanted},
            },
            "data": data,
        }

    def published_until(self, inv: SimInverter, now: float) -> float:
        """Quarter-hours starting before this time have their measured values published."""
        return now - inv.publish_lag_s

    def _points(
        self, inv: SimInverter, start: float, end: float, resolution: str, now: float
    ) -> list[dict[str, Any]]:
        published = self.published_until(inv, now)
        horizon = now + 86400  # forecasts reach one day ahead
        override = self.overrides.get(inv.id, {})
        points: list[dict[str, Any]] = []
        t = _bucket_start(start, resolution)
        while t < end and t <= horizon and len(points) < MAX_POINTS:
            t_end = _bucket_end(t, resolution)
            steps = [
                (s, self.fleet.steps(inv, int(s // 86400))[int(s % 86400) // STEP])
                for s in range(int(t), int(min(t_end, horizon)), STEP)
            ]
            measured = [v for s, v in steps if s < published]
            point: dict[str, Any] = {"time": _iso(t)}
            for key in ALL_FIELDS:
                source = (
                    measured
                    if key in MEASURED or key == "unoptimized_consumption"
                    else [v for _, v in steps]
                )
                values = [x for v in source if (x := v[key]) is not None]
                point[key] = round(sum(values) / len(values), 1) if values else None
            if measured:
                for key, value in override.items():
                    point[key] = value
            points.append(point)
            t = t_end
        return points


def _parse_query_time(query: dict[str, str], key: str, default: float) -> float:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    text = raw[:-1] + "+00:00" if raw.endswith("Z") else raw
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"Invalid {key} '{raw}'.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


_DATA = re.compile(rf"^{API}/org/([^/]+)/users/([^/]+)/inverters/([^/]+)/data/?$")
_DETAIL = re.compile(rf"^{API}/org/([^/]+)/users/([^/]+)/inverters/([^/]+)/?$")
_INVERTERS = re.compile(rf"^{API}/org/([^/]+)/users/([^/]+)/inverters/?$")
_USERS = re.compile(rf"^{API}/org/([^/]+)/users/?$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle's algorithm and the
    # peer's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: _SimServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

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

    # --- routes -------------------------------------------------------------------------------
    def do_POST(self) -> None:
        api = self.server.api
        path = urlsplit(self.path).path
        body = self._body()
        if path.startswith("/_sim/"):
            self._admin_post(path, body)
            return
        api.arrived()
        auth = self.headers.get("Authorization")
        if path.rstrip("/") in ("/oauth2/token", f"{API}/auth/token"):
            if self._faulted("token"):
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
            self._json("token", 200, payload)
            return
        self._json("unknown", 404, {"error": "Not found."})

    def do_GET(self) -> None:
        api = self.server.api
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/_sim/"):
            self._admin_get(path)
            return
        api.arrived()
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        include_deleted = query.get("include_deleted", "false").lower() == "true"
        routes: list[tuple[str, re.Pattern[str]]] = [
            ("inverter_data", _DATA),
            ("inverter", _DETAIL),
            ("inverters", _INVERTERS),
            ("users", _USERS),
        ]
        for endpoint, pattern in routes:  # noqa: B007 - the matched endpoint is used below
            match = pattern.match(path)
            if match:
                break
        else:
            self._json("unknown", 404, {"error": "Not found."})
            return
        if self._faulted(endpoint):
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
            if endpoint in api.faults.failing_endpoints:
                raise ApiError(503, "Service temporarily unavailable.")
            payload: Any
            if endpoint == "inverter_data":
                payload = api.inverter_data(args[0], args[1], args[2], query)
            elif endpoint == "inverter":
                payload = api.inverter_detail(args[0], args[1], args[2])
            elif endpoint == "inverters":
                payload = api.user_inverters(args[0], args[1], include_deleted)
            else:
                payload = api.users(args[0], include_deleted)
        except ApiError as exc:
            self._json(endpoint, exc.status, {"error": exc.message})
            return
        self._json(endpoint, 200, payload)

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
            merged = {**asdict(api.faults), **body}
            for key in ("broken_inverters", "failing_endpoints"):
                merged[key] = tuple(merged[key])
            api.faults = Faults(**merged)
            self._send(200, json.dumps(asdict(api.faults)).encode())
        elif path == "/_sim/override" and isinstance(body, dict) and "inverter_id" in body:
            values = {k: float(v) for k, v in body.get("values", {}).items() if k in MEASURED}
            api.overrides[str(body["inverter_id"])] = values
            self._send(200, b"{}")
        elif path == "/_sim/clock" and isinstance(body, dict) and "now" in body:
            if not isinstance(api.clock, FakeClock):
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
        }


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


def _listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or "127.0.0.1", int(port))


def main(argv: list[str] | None = None) -> int:
    """`podero-simulator`: serve the simulated API until interrupted."""
    parser = argparse.ArgumentParser(prog="podero-simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8089", help="HOST:PORT to serve on")
    parser.add_argument("--inverters", type=int, default=3, help="how many inverters to simulate")
    parser.add_argument("--orgs", type=int, default=1, help="how many organizations")
    parser.add_argument("--seed", type=int, default=1, help="seed for ids, data and faults")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API call")
    parser.add_argument("--token-lifetime", type=int, default=36000, help="token expires_in")
    parser.add_argument(
        "--faults",
        type=json.loads,
        default={},
        metavar="JSON",
        help='faults to inject, e.g. {"error_5xx": 0.1, "rate_limit": 0.05}',
    )
    parser.add_argument(
        "--fake-clock",
        type=float,
        default=None,
        metavar="EPOCH",
        help="run on a clock that starts at EPOCH and moves only by "
        "POST /_sim/clock (for simulated days in benchmarks)",
    )
    parser.add_argument(
        "--describe-json",
        action="store_true",
        help="print the credentials and ids as one JSON line",
    )
    args = parser.parse_args(argv)
    host, port = _listen_address(args.listen)
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the simulator only serves on loopback addresses")
    api = SimulatedApi(
        SimFleet(seed=args.seed, inverters=args.inverters, orgs=args.orgs),
        clock=None if args.fake_clock is None else FakeClock(args.fake_clock),
        faults=Faults(
            **{"latency_ms": args.latency_ms, "token_lifetime_s": args.token_lifetime} | args.faults
        ),
    )
    sim = start_simulator(api, host, port)
    info = sim.describe()
    if args.describe_json:
        print(json.dumps(info), flush=True)
    else:
        print(f"podero-simulator serving {info['base_url']}")
        print(f"client_id: {info['client_id']}")
        print(f"client_secret: {info['client_secret']}")
        print(f"username: {info['username']}  password: {info['password']}")
        for inv in info["inverters"]:
            print(
                f"inverter org_id={inv['org_id']} user_id={inv['user_id']} "
                f"inverter_id={inv['inverter_id']}"
            )
        print("", flush=True)
    try:
        sim.thread.join()
    except KeyboardInterrupt:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


@contextlib.contextmanager
def spawn(*args: str, log_path: str | None = None) -> Iterator[dict[str, Any]]:
    """Run `podero-simulator` in a child process on an ephemeral loopback port for the
    duration of the block; yields its description (base_url, credentials, ids)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "exporter.simulator",
        "--listen",
        f"127.0.0.1:{port}",
        "--describe-json",
        *args,
    ]
    log = open(log_path or os.devnull, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"podero-simulator exited with {proc.wait()}")
        yield dict(json.loads(line))
    finally:
        stop_process(proc)
        log.close()


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if the process has not ended after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
