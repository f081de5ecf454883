"""The golden /metrics page: a fixed simulated fleet (seed 7, five inverters with inventory)
polled once at a fixed moment; the per-inverter part of the page, byte for byte, with every
group of families enabled (config `metrics:`), so that every family of the table is golden.

Regenerate after an intended change with `.venv/bin/python -m tests.golden` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

from exporter.app import Exporter
from exporter.kinds import selection
from exporter.sim import Faults, SimFleet, SimulatedApi, demo_config, start_simulator
from tests.conftest import NOON, to_config
from tests.fakes import FakeClock

GOLDEN = Path(__file__).resolve().parent / "golden" / "metrics.txt"


def render_golden() -> str:
    """The per-inverter exposition of the fixed fleet after inventory and one poll each."""
    clock = FakeClock(NOON)
    sim = start_simulator(SimulatedApi(SimFleet(seed=7, inverters=5), clock, Faults()))
    try:
        raw = demo_config(sim.describe())
        raw["podero"]["max_requests_per_second"] = 1000
        raw["thresholds"] = {"battery_low_percent": 15, "grid_export_high_watts": 7000}
        raw["metrics"] = {"enable": list(selection.groups())}
        exporter = Exporter(to_config(raw), clock)
        exporter.poll_once()
        # Next-poll times depend on when each poll finished on the shared clock: not golden.
        text = b"".join(exporter.page.refresh()).decode()
        exporter.stop()
    finally:
        sim.stop()
    return "".join(
        line + "\n"
        for line in text.splitlines()
        if not line.startswith(
            (
                "podero_device_next_poll_timestamp_seconds{",
                "podero_device_last_success_timestamp_seconds{",
            )
        )
    )


if __name__ == "__main__":
    GOLDEN.write_text(render_golden())
    print(f"wrote {GOLDEN}")
