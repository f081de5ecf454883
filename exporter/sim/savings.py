"""What the simulated optimisation saved, consistent with the devices' curves: the savings of
heat pumps and electric vehicles (`/savings`), the statistics of heat pumps (`/statistics`)
and the organization's savings (`/devices/savings`).

The Partner API documents these endpoints only as "daily and coarser resolutions, with units
in the metadata". The simulator's choice, which the exporter reads liberally:

    GET .../heat-pumps/{id}/savings?from_datetime=..&to_datetime=..&resolution=1DAY
    {"metadata": {"requested_at": "..", "query": {..}, "currency": "EUR",
                  "units": {"savings": "EUR", "cost": "EUR", "unoptimized_cost": "EUR",
                            "consumption": "kWh", "unoptimized_consumption": "kWh"}},
     "data": [{"time": "2026-11-23T00:00:00Z", "savings": 0.4211, "cost": 1.6652,
               "unoptimized_cost": 2.0863, "consumption": 17.652,
               "unoptimized_consumption": 20.732}]}

Resolutions 1DAY (default), 1WEEK and 1MONTH (UTC buckets, as the data endpoints'); a finer
one answers 400. Buckets start from the one holding from_datetime up to to_datetime, never
after now. A bucket sums the quarter-hours of its range whose measured values are published
(those the data endpoint shows measured: starting before now minus the publication lag); a
bucket without any has null values. `/statistics` has the same shape with `consumption`,
`unoptimized_consumption` (kWh), `average_price` (EUR/MWh, weighted by consumption),
`average_inlet_temp` and `average_hot_water_temp` (°C, means of the quarter-hours).

The model, per published quarter-hour q of a device (its data curves):
    consumption (kWh)   += estimated_consumption_W(q) x 0.25 h / 1000
    unoptimized (kWh)   += unoptimized_consumption_W(q) x 0.25 h / 1000
    cost (EUR)          += estimated_consumption_W(q) x 0.25 h / 1e6 x price_EUR_per_MWh(q)
    unoptimized_cost    += the same with unoptimized_consumption_W(q)
    savings = unoptimized_cost - cost
summed exactly (in integers of the curves' decimals: deciwatts and cents per MWh), then
rounded: energy to 3 decimals, money to 4, temperatures to 1, prices to 2. An organization's
figures are the sums over its heat pumps and vehicles (not deleted).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from functools import lru_cache
from typing import Any

from exporter.sim.devices import (
    DEVICE_PUBLISH_LAG_S,
    ELECTRIC_VEHICLE,
    HEAT_PUMP,
    SimDevice,
    consumption,
    day_prices,
    device_day,
)
from exporter.sim.noise import STEP

SAVINGS_RESOLUTIONS = ("1DAY", "1WEEK", "1MONTH")
SAVINGS_KINDS = (HEAT_PUMP, ELECTRIC_VEHICLE)
CURRENCY = "EUR"
SAVINGS_UNITS = {
    "savings": "EUR",
    "cost": "EUR",
    "unoptimized_cost": "EUR",
    "consumption": "kWh",
    "unoptimized_consumption": "kWh",
}
STATISTICS_UNITS = {
    "consumption": "kWh",
    "unoptimized_consumption": "kWh",
    "average_price": "EUR/MWh",
    "average_inlet_temp": "°C",
    "average_hot_water_temp": "°C",
}
QUARTERS = 86400 // STEP
# deciwatt quarter-hours per kWh (0.1 W x 0.25 h = 0.025 Wh); deciwatt quarter-hours times
# cents per MWh per EUR (0.025 Wh = 2.5e-8 MWh; a cent is 0.01 EUR).
DWQ_PER_KWH = 40_000
DWQ_CENTS_PER_EUR = 4_000_000_000


@dataclass(frozen=True)
class Totals:
    """Exact sums over published quarter-hours: how many, energy (deciwatt quarter-hours),
    energy x price (x cents per MWh) with and without the optimisation, temperatures (tenths
    of a degree; statistics only)."""

    quarters: int = 0
    energy: int = 0
    unoptimized: int = 0
    cost: int = 0
    unoptimized_cost: int = 0
    inlet: int = 0
    hot_water: int = 0

    def __add__(self, other: Totals | tuple[int, ...]) -> Totals:
        theirs = astuple(other) if isinstance(other, Totals) else other
        return Totals(*(a + b for a, b in zip(astuple(self), theirs, strict=False)))


def _tenths(value: Any) -> int:
    return round(float(value) * 10) if isinstance(value, int | float) else 0


# A device-day's sums, as a compact tuple (~350 bytes with its key: at most ~35 MB; a month
# of 3,000 devices fits). From the consumption and prices alone, never the whole curve
# (`device_day`), whose cache the data polls need for today: ~15 ms per device-month.
@lru_cache(maxsize=100_000)
def day_totals(device: SimDevice, day: int, quarters: int) -> tuple[int, int, int, int, int]:
    """(quarters, energy, unoptimized, cost, unoptimized cost) of the first `quarters`
    quarter-hours of a day of a device."""
    energy = unoptimized = cost = unoptimized_cost = 0
    prices = day_prices(day)
    for k in range(quarters):
        used, unused = consumption(device, day * 86400 + k * STEP, day)
        dw, unoptimized_dw = round(used * 10), round(unused * 10)
        cents = round(prices[k] * 100)
        energy += dw
        unoptimized += unoptimized_dw
        cost += dw * cents
        unoptimized_cost += unoptimized_dw * cents
    return quarters, energy, unoptimized, cost, unoptimized_cost


def day_temperatures(device: SimDevice, day: int, quarters: int) -> Totals:
    """A heat pump's summed inlet and hot water temperatures (tenths) of those quarters."""
    steps = device_day(device, day)[:quarters]
    return Totals(
        inlet=sum(_tenths(q.get("inlet_temp_act")) for q in steps),
        hot_water=sum(_tenths(q.get("hot_water_temp")) for q in steps),
    )


def published_quarters(day: int, now: float) -> int:
    """How many quarter-hours of a day have their measured values published at `now`."""
    published = now - DEVICE_PUBLISH_LAG_S
    starts_before = -(-(published - day * 86400) // STEP)  # quarters starting before it
    return int(min(QUARTERS, max(0, starts_before)))


def bucket_totals(
    devices: list[SimDevice], start: float, end: float, now: float, temperatures: bool = False
) -> Totals:
    """The sums of the devices' published quarter-hours in [start, end) (whole UTC days);
    with their temperatures if asked (statistics)."""
    sums = [0, 0, 0, 0, 0]
    total = Totals()
    for day in range(int(start // 86400), int(-(-end // 86400))):
        quarters = published_quarters(day, now)
        if quarters:
            for device in devices:
                for i, value in enumerate(day_totals(device, day, quarters)):
                    sums[i] += value
                if temperatures:
                    total = total + day_temperatures(device, day, quarters)
    return total + tuple(sums)


def body(
    points: list[dict[str, Any]], query: dict[str, str], now: str, units: dict[str, str]
) -> dict[str, Any]:
    """A savings or statistics response: the data endpoints' shape, with the currency."""
    return {
        "metadata": {"requested_at": now, "query": query, "currency": CURRENCY, "units": units},
        "data": points,
    }


def savings_point(time: str, totals: Totals) -> dict[str, Any]:
    """A savings bucket: null values when no quarter-hour of it is published."""
    if not totals.quarters:
        return {"time": time, **dict.fromkeys(SAVINGS_UNITS)}
    cost = totals.cost / DWQ_CENTS_PER_EUR
    unoptimized_cost = totals.unoptimized_cost / DWQ_CENTS_PER_EUR
    return {
        "time": time,
        "savings": round(unoptimized_cost - cost, 4),
        "cost": round(cost, 4),
        "unoptimized_cost": round(unoptimized_cost, 4),
        "consumption": round(totals.energy / DWQ_PER_KWH, 3),
        "unoptimized_consumption": round(totals.unoptimized / DWQ_PER_KWH, 3),
    }


def statistics_point(time: str, totals: Totals) -> dict[str, Any]:
    """A heat pump's statistics bucket."""
    if not totals.quarters:
        return {"time": time, **dict.fromkeys(STATISTICS_UNITS)}
    n = totals.quarters
    return {
        "time": time,
        "consumption": round(totals.energy / DWQ_PER_KWH, 3),
        "unoptimized_consumption": round(totals.unoptimized / DWQ_PER_KWH, 3),
        "average_price": round(totals.cost / totals.energy / 100, 2) if totals.energy else None,
        "average_inlet_temp": round(totals.inlet / n / 10, 1),
        "average_hot_water_temp": round(totals.hot_water / n / 10, 1),
    }
