"""The simulated API's behaviour, independent of HTTP: both token flows, the data and
discovery endpoints, strict errors (401, 404, 400 with {"error": ...}), injected faults and
request counts."""

from __future__ import annotations

import base64
import json
import math
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from exporter.base.clock import Clock, SystemClock
from exporter.sim.arrivals import NO_TOKEN, Arrivals
from exporter.sim.devices import (
    COUNTS,
    DEVICE_FORECAST,
    DEVICE_PUBLISH_LAG_S,
    DEVICE_UNITS,
    FIELDS,
    SimDevice,
    device_day,
)
from exporter.sim.fleet import (
    ALL_FIELDS,
    MAX_POINTS,
    MEASURED,
    RESOLUTIONS,
    UNITS,
    SimFleet,
    SimInverter,
    bucket_end,
    bucket_start,
    iso,
)
from exporter.sim.noise import STEP
from exporter.sim.savings import (
    SAVINGS_KINDS,
    SAVINGS_RESOLUTIONS,
    SAVINGS_UNITS,
    STATISTICS_UNITS,
    Totals,
    body,
    bucket_totals,
    savings_point,
    statistics_point,
)


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
    # Hostile modes: what a broken or malicious API could send (issue 11). Per inverter (its
    # data call, or its listing), or per endpoint.
    trickle_inverters: tuple[str, ...] = ()  # the data body, one byte per trickle_interval_s
    trickle_interval_s: float = 1.0
    trickle_headers: bool = False  # trickle the status line and headers too
    endless_inverters: tuple[str, ...] = ()  # a chunked data body that never ends
    gzip_bomb_inverters: tuple[str, ...] = ()  # a gzip data body inflating to gzip_bomb_mib
    gzip_bomb_mib: int = 1024
    hostile_inverters: tuple[str, ...] = ()  # listing strings (and their user's) hostile
    hostile_error_inverters: tuple[str, ...] = ()  # data answers 400 with a hostile error
    future_nan_inverters: tuple[str, ...] = ()  # data has a forecast point with NaN, later
    redirect_endpoints: tuple[str, ...] = ()  # e.g. ("token",): 307 to redirect_to + path
    redirect_to: str = ""  # another origin, e.g. http://127.0.0.1:PORT
    token_expires_in_raw: str = ""  # JSON text sent as expires_in, e.g. "NaN", "1e999"
    old_users_listing: bool = False  # users without the num_* device counts (older API)


# Strings no API should send, and a real one may: a lone surrogate (the JSON escape
# \udc80), control characters, a terminal escape, bidirectional overrides, markup, a CRLF
# header injection, and sheer length.
HOSTILE_LISTING = {
    "device_model": {
        "manufacturer": "Evil\u202eCorp\x00\x1b[31m",
        "model": "X\udc80<script>alert(1)</script>",
    },
    "price_zone": "Z" * 100_000,
    "lifecycle_state": "auth\nenticated",
    "connection_status": "\ud800",
    "monitoring_status": "ok\r\nSet-Cookie: x=1",
}
HOSTILE_USER = {"external_user_id": "cust\udc80\n\u2028" + "x" * 5000}
HOSTILE_ERROR = "No data\udc80\n\x1b[2J" + "!" * 10_000


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
        arrival_clock: Callable[[], float] = time.monotonic,
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
        # The access token's name for the arrival counts: token-1, token-2, ... in issue order.
        self._token_names: dict[str, str] = {}
        self.arrivals = Arrivals(arrival_clock)
        # The kernel's arrival times are on the real monotonic clock; with another, "now".
        self._kernel_times = arrival_clock is time.monotonic
        self.connections = 0
        self.overrides: dict[str, dict[str, float]] = {}

    # --- faults and counting -------------------------------------------------------------
    def roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._lock:
            return self._rng.random() < probability

    def arrived(self, authorization: str | None = None, at: float | None = None) -> None:
        """Note a request's arrival (`at`, on time.monotonic: when it reached the host; None:
        now) by the access token it carries (`Authorization`), for the per-second counts. A
        real request budget is per credential; each process that shares one fetches its own
        token, so a token stands for one exporter process."""
        client = NO_TOKEN
        if authorization and authorization.startswith("Bearer "):
            with self._lock:
                client = self._token_names.get(authorization[len("Bearer ") :], "unknown-token")
        self.arrivals.note(client, at if self._kernel_times else None)

    def count(self, endpoint: str, code: str) -> None:
        with self._lock:
            self.counts[(endpoint, code)] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            responses: dict[str, dict[str, int]] = {}
            for (endpoint, code), n in self.counts.items():
                responses.setdefault(endpoint, {})[code] = n
            counted = {
                "responses": responses,
                "requests": sum(self.counts.values()),
                "connections": self.connections,
            }
        return counted | self.arrivals.stats()

    def reset_stats(self) -> None:
        with self._lock:
            self.counts.clear()
            self.connections = 0
        self.arrivals.reset()

    # --- tokens ----------------------------------------------------------------------------
    def token_body(self, payload: dict[str, Any]) -> bytes:
        """A token response as JSON, with `expires_in` replaced by the raw fault if set."""
        raw = self.faults.token_expires_in_raw
        if not raw:
            return json.dumps(payload).encode()
        text = json.dumps({**payload, "expires_in": "@@expires_in@@"})
        return text.replace('"@@expires_in@@"', raw).encode()

    def _issue(self, with_refresh: bool) -> dict[str, Any]:
        token = self.faults.token_prefix + secrets.token_urlsafe(24)
        lifetime = self.faults.token_lifetime_s
        with self._lock:
            self._tokens[token] = self.clock.time() + lifetime
            self._token_names[token] = f"token-{len(self._token_names) + 1}"
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
        hostile = {
            inv.user_id for i in self.faults.hostile_inverters if (inv := self.fleet.by_id.get(i))
        }
        return [
            {
                **asdict(u),
                "id": u.id,
                **({} if self.faults.old_users_listing else self._counts(u.id, include_deleted)),
                **(HOSTILE_USER if u.id in hostile else {}),
            }
            for u in self.fleet.users
            if u.org_id == org_id and (include_deleted or not u.deleted)
        ]

    def _counts(self, user_id: str, include_deleted: bool) -> dict[str, int]:
        """The users listing's device counts of one home."""
        inverters = [
            inv
            for inv in self.fleet.inverters_by_user.get(user_id, [])
            if inv.id in self.fleet.by_id and (include_deleted or not inv.deleted)
        ]
        counts = {"num_inverters": len(inverters)}
        for kind, key in COUNTS.items():
            counts[key] = len(self.user_devices(None, user_id, kind, include_deleted))
        return counts

    # --- the other devices of a home -------------------------------------------------------
    def user_devices(
        self, org_id: str | None, user_id: str, kind: str, include_deleted: bool
    ) -> list[dict[str, Any]]:
        """A home's heat pumps, electric vehicles or wallboxes (org_id None: not checked)."""
        user = self.fleet.users_by_id.get(user_id)
        if user is None or (org_id is not None and user.org_id != org_id):
            raise ApiError(404, "Not found.")
        return [
            d.listing()
            for d in self.fleet.devices_by_user.get((user_id, kind), [])
            if d.id in self.fleet.devices_by_id and (include_deleted or not d.deleted)
        ]

    def _device(self, org_id: str, user_id: str, kind: str, device_id: str) -> SimDevice:
        device = self.fleet.devices_by_id.get(device_id)
        if (
            device is None
            or device.kind != kind
            or device.org_id != org_id
            or device.user_id != user_id
        ):
            raise ApiError(404, "Not found.")
        return device

    def device_detail(self, org_id: str, user_id: str, kind: str, device_id: str) -> dict[str, Any]:
        return self._device(org_id, user_id, kind, device_id).listing()

    def device_data(
        self, org_id: str, user_id: str, kind: str, device_id: str, query: dict[str, str]
    ) -> dict[str, Any]:
        """A heat pump's or an EV's data points: the inverter data's parameters and shape."""
        device = self._device(org_id, user_id, kind, device_id)
        if kind not in FIELDS:
            raise ApiError(404, "Not found.")
        now = self.clock.time()
        resolution, start, end = _data_range(query, now)
        fields = FIELDS[kind]
        override = self.overrides.get(device.id, {})
        published = now - DEVICE_PUBLISH_LAG_S
        horizon = now + 86400
        data: list[dict[str, Any]] = []
        t = bucket_start(start, resolution)
        while t < end and t <= horizon and len(data) < MAX_POINTS:
            t_end = bucket_end(t, resolution)
            steps = [
                (s, device_day(device, int(s // 86400))[int(s % 86400) // STEP])
                for s in range(int(t), int(min(t_end, horizon)), STEP)
            ]
            point: dict[str, Any] = {"time": iso(t)}
            for key in fields:
                source = [v for s, v in steps if key in DEVICE_FORECAST or s < published]
                values = [x for v in source if (x := v[key]) is not None]
                if not values:
                    point[key] = None
                elif key in override:  # pinned by a test (a boolean as 0 or 1)
                    pinned = override[key]
                    point[key] = bool(pinned) if isinstance(values[-1], bool) else pinned
                elif isinstance(values[-1], bool):
                    point[key] = values[-1]  # the state at the end of the bucket
                else:
                    point[key] = round(sum(float(x) for x in values) / len(values), 1)
            data.append(point)
            t = t_end
        return {
            "metadata": {
                "requested_at": iso(now),
                "query": {
                    "from_datetime": iso(start),
                    "to_datetime": iso(end),
                    "resolution": resolution,
                },
                "units": {k: DEVICE_UNITS[k] for k in fields if k in DEVICE_UNITS},
            },
            "data": data,
        }

    # --- what the optimisation saved (sim/savings.py) ------------------------------------------
    def device_savings(
        self, org_id: str, user_id: str, kind: str, device_id: str, query: dict[str, str]
    ) -> dict[str, Any]:
        """A heat pump's or vehicle's savings per bucket (`/savings`)."""
        device = self._device(org_id, user_id, kind, device_id)
        if kind not in SAVINGS_KINDS:
            raise ApiError(404, "Not found.")
        return self._aggregated([device], query, savings_point, SAVINGS_UNITS)

    def device_statistics(
        self, org_id: str, user_id: str, kind: str, device_id: str, query: dict[str, str]
    ) -> dict[str, Any]:
        """A heat pump's statistics per bucket (`/statistics`)."""
        device = self._device(org_id, user_id, kind, device_id)
        if kind != "heat_pump":
            raise ApiError(404, "Not found.")
        return self._aggregated(
            [device], query, statistics_point, STATISTICS_UNITS, temperatures=True
        )

    def organization_savings(self, org_id: str, query: dict[str, str]) -> dict[str, Any]:
        """The savings of all the organization's heat pumps and vehicles (`/devices/savings`)."""
        if org_id not in self.fleet.org_ids:
            raise ApiError(404, "Not found.")
        devices = [
            d
            for d in self.fleet.devices
            if d.org_id == org_id
            and d.kind in SAVINGS_KINDS
            and not d.deleted
            and d.id in self.fleet.devices_by_id
        ]
        return self._aggregated(devices, query, savings_point, SAVINGS_UNITS)

    def _aggregated(
        self,
        devices: list[SimDevice],
        query: dict[str, str],
        point: Any,
        units: dict[str, str],
        temperatures: bool = False,
    ) -> dict[str, Any]:
        now = self.clock.time()
        resolution = query.get("resolution") or "1DAY"
        if resolution not in SAVINGS_RESOLUTIONS:
            raise ApiError(
                400,
                f"Invalid resolution '{resolution}': use one of {', '.join(SAVINGS_RESOLUTIONS)}.",
            )
        _, start, end = _data_range({**query, "resolution": resolution}, now)
        data: list[dict[str, Any]] = []
        t = bucket_start(start, resolution)
        while t < end and t <= now and len(data) < MAX_POINTS:
            t_end = bucket_end(t, resolution)
            totals: Totals = bucket_totals(devices, t, t_end, now, temperatures)
            data.append(point(iso(t), totals))
            t = t_end
        asked = {"from_datetime": iso(start), "to_datetime": iso(end), "resolution": resolution}
        return body(data, asked, iso(now), units)

    def listing(self, inv: SimInverter) -> dict[str, Any]:
        """The inverter's listing, hostile if the faults say so."""
        if inv.id in self.faults.hostile_inverters:
            return {**inv.listing(), **HOSTILE_LISTING}
        return inv.listing()

    def user_inverters(
        self, org_id: str, user_id: str, include_deleted: bool
    ) -> list[dict[str, Any]]:
        user = self.fleet.users_by_id.get(user_id)
        if user is None or user.org_id != org_id:
            raise ApiError(404, "Not found.")
        return [
            self.listing(inv)
            for inv in self.fleet.inverters_by_user.get(user_id, [])
            # (Tests remove inverters from by_id to make them disappear.)
            if inv.id in self.fleet.by_id and (include_deleted or not inv.deleted)
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
            **self.listing(inv),
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
        resolution, start, end = _data_range(query, now)
        wanted: tuple[str, ...] = ALL_FIELDS
        if query.get("keywords"):
            wanted = tuple(query["keywords"].split(","))
            unknown = [k for k in wanted if k not in ALL_FIELDS]
            if unknown:
                raise ApiError(400, f"Unknown keywords: {','.join(unknown)}.")
        points = self._points(inv, start, end, resolution, now)
        data = [{"time": p["time"], **{k: p[k] for k in wanted}} for p in points]
        if inv.id in self.faults.future_nan_inverters:
            # A forecast an hour ahead whose numbers are NaN (json.dumps writes NaN).
            later = bucket_start(now, resolution) + 3600
            data.append({"time": iso(later), "price": math.nan, "estimated_consumption": math.nan})
        return {
            "metadata": {
                "requested_at": iso(now),
                "query": {
                    "from_datetime": iso(start),
                    "to_datetime": iso(end),
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
        t = bucket_start(start, resolution)
        while t < end and t <= horizon and len(points) < MAX_POINTS:
            t_end = bucket_end(t, resolution)
            steps = [
                (s, self.fleet.steps(inv, int(s // 86400))[int(s % 86400) // STEP])
                for s in range(int(t), int(min(t_end, horizon)), STEP)
            ]
            measured = [v for s, v in steps if s < published]
            point: dict[str, Any] = {"time": iso(t)}
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


def _data_range(query: dict[str, str], now: float) -> tuple[str, float, float]:
    """The resolution and [start, end) a data request asks for (today by default), checked
    as the API checks them."""
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
    return resolution, start, end


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
