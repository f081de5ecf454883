"""The simulated fleet: organizations, users (homes) and inverters with deterministic,
realistic 15-minute data for a seed (a diurnal solar curve, household load, a battery that
follows the power flows, export as the balance, a price curve)."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from exporter.sim.devices import SimDevice, make_devices
from exporter.sim.noise import STEP, _unit, local_hour, price_at

API = "/api/partners/v2.0"
RESOLUTIONS = {"15MIN": 900, "1HOUR": 3600, "1DAY": 86400, "1WEEK": 7 * 86400, "1MONTH": None}
MEASURED = (
    "solar_production_w",
    "export_power_to_grid_w",
    "household_consumption_w",
    "battery_charge_level_percent",
    "battery_charge_discharge_power_w",
)
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
SOLAR_RATINGS = (4000.0, 6000.0, 8000.0, 10000.0, 12000.0)  # watts
MANUFACTURERS = (
    ("Fronius", "Symo GEN24 10.0 Plus"),
    ("Huawei", "SUN2000-8KTL-M1"),
    ("SMA", "Sunny Tripower X 12"),
    ("SolarEdge", "SE8K-RWS"),
    ("Kostal", "PLENTICORE plus 7.0"),
)


def iso(epoch: float) -> str:
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

    def __init__(
        self,
        seed: int = 1,
        inverters: int = 3,
        orgs: int = 1,
        second_every: int = 7,
        other_devices: bool = True,
    ) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.org_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(orgs)]
        self.users: list[SimUser] = []
        self.inverters: list[SimInverter] = []
        user: SimUser | None = None
        for i in range(inverters):
            # Most customers have one inverter; every seventh (`second_every`, 0: none) has two.
            if user is None or not second_every or i % second_every != 1:
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
                    solar_rating_w=rng.choice(SOLAR_RATINGS),
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
        # A home's inverters without a scan of the fleet (10,000 homes list in linear time).
        self.inverters_by_user: dict[str, list[SimInverter]] = {}
        for inv in self.inverters:
            self.inverters_by_user.setdefault(inv.user_id, []).append(inv)
        # The homes' other devices, from a generator of their own (devices.make_devices).
        homes = [(u.org_id, u.id) for u in self.users] if other_devices else []
        self.devices = make_devices(seed, homes)
        self.devices_by_id = {d.id: d for d in self.devices}
        self.devices_by_user: dict[tuple[str, str], list[SimDevice]] = {}
        for device in self.devices:
            self.devices_by_user.setdefault((device.user_id, device.kind), []).append(device)

    def steps(self, inv: SimInverter, day: int) -> list[dict[str, float | None]]:
        return _day_steps(inv, day)


def _solar(inv: SimInverter, t: float, day: int) -> float:
    hour = local_hour(t)
    sun = math.sin(math.pi * (hour - 6.0) / 12.0)
    if sun <= 0:
        return 0.0
    clouds = 0.55 + 0.45 * _unit(inv.seed, day)
    flicker = 0.85 + 0.15 * _unit(inv.seed, t)
    return float(inv.solar_rating_w * sun**1.5 * clouds * flicker)


def _household(inv: SimInverter, t: float) -> float:
    hour = local_hour(t)
    morning = math.exp(-(((hour - 7.5) / 1.2) ** 2))
    evening = math.exp(-(((hour - 19.0) / 2.0) ** 2))
    noise = _unit(inv.seed, "load", t)
    return inv.base_load_w * (0.8 + 1.2 * morning + 2.0 * evening) + 300 * noise


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
                "price": price_at(t),
                "estimated_consumption": round(0.9 * load + 0.1 * inv.base_load_w, 1),
                "unoptimized_consumption": round(load * 1.08, 1),
            }
        )
    return steps


def bucket_start(t: float, resolution: str) -> float:
    if resolution == "1MONTH":
        d = datetime.fromtimestamp(t, UTC)
        return datetime(d.year, d.month, 1, tzinfo=UTC).timestamp()
    size = RESOLUTIONS[resolution]
    assert size is not None
    offset = 4 * 86400 if resolution == "1WEEK" else 0  # weeks start on Monday
    return math.floor((t - offset) / size) * size + offset


def bucket_end(start: float, resolution: str) -> float:
    if resolution == "1MONTH":
        d = datetime.fromtimestamp(start, UTC)
        year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return datetime(year, month, 1, tzinfo=UTC).timestamp()
    size = RESOLUTIONS[resolution]
    assert size is not None
    return start + size
