"""The other devices of the simulated homes: heat pumps, electric vehicles and wallboxes,
drawn from their own random generator (so the inverters of a seed never change), with
deterministic 15-minute curves: a heat pump cycling its compressor and reheating hot water,
an EV plugged in in the evening and charged overnight."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from exporter.sim.noise import STEP, _unit, local_hour, price_at

HEAT_PUMP = "heat_pump"
ELECTRIC_VEHICLE = "electric_vehicle"
WALLBOX = "wallbox"
# The API's path segment and the users listing's count field of each kind.
PATHS = {HEAT_PUMP: "heat-pumps", ELECTRIC_VEHICLE: "electric-vehicles", WALLBOX: "wallboxes"}
LISTINGS = {HEAT_PUMP: "heat_pumps", ELECTRIC_VEHICLE: "electric_vehicles", WALLBOX: "wallboxes"}
COUNTS = {
    HEAT_PUMP: "num_heat_pumps",
    ELECTRIC_VEHICLE: "num_electric_vehicles",
    WALLBOX: "num_wallboxes",
}
HEAT_PUMP_FIELDS = (
    "inlet_temp_act",
    "hot_water_temp",
    "estimated_consumption",
    "unoptimized_consumption",
    "price",
)
EV_FIELDS = (
    "battery_level",
    "is_charging",
    "is_plugged_in",
    "is_at_optimized_location",
    "estimated_consumption",
    "unoptimized_consumption",
    "price",
)
FIELDS = {HEAT_PUMP: HEAT_PUMP_FIELDS, ELECTRIC_VEHICLE: EV_FIELDS}
# Forecast fields reach a day ahead; the others appear once measured (after the lag).
DEVICE_FORECAST = ("price", "estimated_consumption")
# The measured values a test may pin with /_sim/override (booleans given as 0 or 1).
DEVICE_OVERRIDABLE = (
    "inlet_temp_act",
    "hot_water_temp",
    "battery_level",
    "is_charging",
    "is_plugged_in",
    "is_at_optimized_location",
)
DEVICE_UNITS = {
    "inlet_temp_act": "°C",
    "hot_water_temp": "°C",
    "battery_level": "%",
    "estimated_consumption": "W",
    "unoptimized_consumption": "W",
    "price": "EUR/MWh",
}
MODELS = {
    HEAT_PUMP: (("Viessmann", "Vitocal 250-A"), ("Daikin", "Altherma 3 H HT")),
    ELECTRIC_VEHICLE: (("Tesla", "Model 3"), ("Volkswagen", "ID.4"), ("Hyundai", "Ioniq 5")),
    WALLBOX: (("go-e", "Charger Gemini"), ("Easee", "Charge")),
}
DEVICE_PUBLISH_LAG_S = 420.0


@dataclass(frozen=True)
class SimDevice:
    """One simulated heat pump, electric vehicle or wallbox of a home."""

    kind: str
    id: str
    org_id: str
    user_id: str
    seed: int
    manufacturer: str
    model: str
    power_w: float  # heat pump compressor or charger power
    capacity_kwh: float = 0.0  # EV battery
    actions: tuple[str, ...] = ()  # action codes the customer must resolve
    smart_optimization: bool = True
    optimization_score: float = 0.0
    lifecycle_state: str = "authenticated"
    deleted: bool = False

    def listing(self) -> dict[str, Any]:
        """The device as the list and detail endpoints show it (the common device fields)."""
        connected = "reauthenticate" not in self.actions
        return {
            "id": self.id,
            "connection_status": "connected" if connected else "disconnected",
            "monitoring_status": "ok",
            "steering_status": "ok" if connected else "error",
            "lifecycle_state": self.lifecycle_state,
            "is_smart_optimization_active": self.smart_optimization,
            "optimization_score": self.optimization_score,
            "current_mode": "smart" if self.smart_optimization else "manual",
            "is_pause_power_active": False,
            "actual_steering_state": None,
            "device_model": {"manufacturer": self.manufacturer, "model": self.model},
            "owner": {"id": self.user_id, "email": None, "external_id": None},
            "deleted_at": "2026-01-15T10:00:00Z" if self.deleted else None,
            "actions": [
                {"code": code, "resolution_link": f"https://app.example.com/fix/{self.id}/{code}"}
                for code in self.actions
            ],
        }


def make_devices(seed: int, homes: list[tuple[str, str]]) -> list[SimDevice]:
    """The devices of these homes (org id, user id): every second home a heat pump, every
    third an EV with a wallbox; from a generator of its own, so that the inverters drawn
    from `random.Random(seed)` stay as they were."""
    rng = random.Random(seed + 1)
    devices: list[SimDevice] = []

    def add(kind: str, home: tuple[str, str], n: int, **extra: Any) -> None:
        manufacturer, model = MODELS[kind][rng.randrange(len(MODELS[kind]))]
        devices.append(
            SimDevice(
                kind=kind,
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                org_id=home[0],
                user_id=home[1],
                seed=rng.getrandbits(32),
                manufacturer=manufacturer,
                model=model,
                optimization_score=round(rng.uniform(0.5, 1.0), 2),
                # Variety for the dashboards: one heat pump in four needs reauthentication.
                actions=("reauthenticate",) if kind == HEAT_PUMP and n % 4 == 2 else (),
                lifecycle_state="authenticated" if n % 11 != 10 else "pending",
                **extra,
            )
        )

    for n, home in enumerate(homes):
        if n % 2 == 0:
            add(HEAT_PUMP, home, n, power_w=rng.choice((2500.0, 3500.0, 5000.0)))
        if n % 3 == 0:
            add(
                ELECTRIC_VEHICLE,
                home,
                n,
                power_w=rng.choice((7400.0, 11000.0)),
                capacity_kwh=rng.choice((58.0, 77.0)),
                smart_optimization=n % 6 == 0,
            )
            add(WALLBOX, home, n, power_w=rng.choice((11000.0, 22000.0)))
    return devices


@lru_cache(maxsize=20_000)
def device_day(device: SimDevice, day: int) -> list[dict[str, float | bool | None]]:
    """The 96 quarter-hours of one day of a heat pump or an electric vehicle."""
    steps = []
    for k in range(86400 // STEP):
        t = day * 86400 + k * STEP
        if device.kind == HEAT_PUMP:
            steps.append(_heat_pump_step(device, t))
        else:
            steps.append(_ev_step(device, t, day))
    return steps


def consumption(device: SimDevice, t: float, day: int) -> tuple[float, float]:
    """A heat pump's or vehicle's consumption in the quarter-hour at t, with and without the
    optimisation (W), exactly as its data curve (`device_day`) has it, without the rest of
    the quarter-hour: what the savings sum over weeks of quarter-hours."""
    if device.kind == HEAT_PUMP:
        return _heat_pump_power(device, t, _heat_pump_cycle(device, t)[3])
    state = _ev_state(device, t, day)
    return state[4], state[5]


@lru_cache(maxsize=64)
def day_prices(day: int) -> tuple[float, ...]:
    """The price (EUR/MWh) of each quarter-hour of a day, as the curves have it."""
    return tuple(price_at(day * 86400 + k * STEP) for k in range(86400 // STEP))


@lru_cache(maxsize=65_536)
def _cycle_offset(seed: int) -> float:
    return 3 * _unit(seed)


@lru_cache(maxsize=65_536)
def _arrival(seed: int, day: int) -> float:
    """A vehicle's battery level (percent) when it comes home at 18:00 on a day."""
    return 25.0 + 35.0 * _unit(seed, "arrival", day)


def _heat_pump_cycle(device: SimDevice, t: float) -> tuple[float, float, float, bool]:
    """(hour, cold, phase, running): the compressor's two-hour cycles, longer when cold."""
    hour = local_hour(t)
    cold = 0.5 + 0.5 * math.cos(2 * math.pi * (hour - 3) / 24)  # 1 at 3 am, 0 at 3 pm
    phase = (t / 3600.0 + _cycle_offset(device.seed)) % 2.0 / 2.0  # two-hour cycles
    return hour, cold, phase, phase < 0.3 + 0.5 * cold


def _heat_pump_power(device: SimDevice, t: float, running: bool) -> tuple[float, float]:
    """(estimated, unoptimized) consumption in W, as published (one decimal)."""
    power = device.power_w * (0.8 + 0.2 * _unit(device.seed, "w", t)) if running else 25.0
    return round(power, 1), round(power * 1.12 + 40.0, 1)


def _heat_pump_step(device: SimDevice, t: float) -> dict[str, float | bool | None]:
    """The compressor runs in cycles (longer at night, when it is cold); the inlet follows
    it between ~35 and ~55 °C; hot water cools with use and is reheated to ~60 °C."""
    hour, cold, phase, running = _heat_pump_cycle(device, t)
    inlet = 35.0 + 20.0 * math.sin(math.pi * min(phase / (0.3 + 0.5 * cold), 1.0)) * running
    reheat = (hour % 8.0) / 8.0  # reheated every 8 hours, drawn down in between
    hot_water = 60.0 - 15.0 * reheat + 1.5 * _unit(device.seed, "hw", t)
    power, unoptimized = _heat_pump_power(device, t, running)
    return {
        "inlet_temp_act": round(inlet if running else 35.0 + 5.0 * cold, 1),
        "hot_water_temp": round(hot_water, 1),
        "estimated_consumption": power,
        "unoptimized_consumption": unoptimized,
        "price": price_at(t),
    }


def _ev_state(
    device: SimDevice, t: float, day: int
) -> tuple[float, bool, bool, bool, float, float]:
    """(level, plugged, charging, home, power, unoptimized power) of a vehicle at t."""
    hour = local_hour(t)
    arrival = _arrival(device.seed, day)  # percent at 18:00
    per_hour = device.power_w / 1000.0 / device.capacity_kwh * 100.0  # percent per hour
    if 7.0 <= hour < 18.0:  # driving: from 90 % in the morning down to the arrival level
        level = 90.0 - (90.0 - arrival) * (hour - 7.0) / 11.0
        plugged = charging = home = False
    else:
        since = hour - 18.0 if hour >= 18.0 else hour + 6.0  # hours since plugging in
        charged = max(0.0, since - 4.0) * per_hour
        level = min(90.0, arrival + charged)
        plugged = home = True
        charging = since >= 4.0 and level < 90.0
    power = device.power_w if charging else 0.0
    # Without optimisation the car charges as soon as it is plugged in.
    since_plug = (hour - 18.0) % 24.0
    unoptimized = device.power_w if since_plug < (90.0 - arrival) / per_hour else 0.0
    return level, plugged, charging, home, round(power, 1), round(unoptimized, 1)


def _ev_step(device: SimDevice, t: float, day: int) -> dict[str, float | bool | None]:
    """Away from 7:00 to 18:00; plugged in at home from 18:00; charged from 22:00 (smart:
    the cheap night hours) until full or unplugged; the level drops while driving."""
    level, plugged, charging, home, power, unoptimized = _ev_state(device, t, day)
    return {
        "battery_level": round(level, 1),
        "is_charging": charging,
        "is_plugged_in": plugged,
        "is_at_optimized_location": home,
        "estimated_consumption": power,
        "unoptimized_consumption": unoptimized,
        "price": price_at(t),
    }
