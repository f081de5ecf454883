"""The simulator's savings model (exporter/sim/savings.py's docstring), computed here again
from the devices' curves, so that tests compare the exporter's figures with exact values."""

from __future__ import annotations

from typing import Any

from exporter.sim.devices import DEVICE_PUBLISH_LAG_S, SimDevice, device_day

JOULES_PER_KWH = 3.6e6


def figures(devices: list[SimDevice], start: float, end: float, now: float) -> dict[str, float]:
    """Money saved (EUR, 4 decimals) and energy used (kWh, 3 decimals) by these devices in
    the quarter-hours of [start, end) that start before now minus the publication lag: per
    quarter, W x 0.25 h and that x the price in EUR/MWh, in deciwatts and cents per MWh
    (exact integers), then rounded."""
    published = now - DEVICE_PUBLISH_LAG_S
    used = cost = unoptimized_cost = 0
    for device in devices:
        t = start
        while t < end and t < published:
            q: dict[str, Any] = device_day(device, int(t // 86400))[int(t % 86400) // 900]
            cents = round(q["price"] * 100)
            dw, unoptimized = (
                round(q["estimated_consumption"] * 10),
                round(q["unoptimized_consumption"] * 10),
            )
            used += dw
            cost += dw * cents
            unoptimized_cost += unoptimized * cents
            t += 900
    kwh = round(used / 40_000, 3)
    return {
        # deciwatt quarter-hours x cents per MWh: 0.1 W x 0.25 h = 2.5e-8 MWh, x 0.01 EUR
        "savings": round(unoptimized_cost / 4_000_000_000 - cost / 4_000_000_000, 4),
        "kwh": kwh,
        "joules": round(kwh * JOULES_PER_KWH, 3),
    }
