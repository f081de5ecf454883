"""Benchmark 2: API economy over a simulated day.

A fake clock (moved in lockstep in the exporter and the simulator process) runs 24 hours
with a 60 s poll interval. Prints requests per new data point exported (goal <= 1.2; a fixed
60 s poll needs about 15) and the median delay between a point becoming available in the
simulator and appearing on /metrics (goal <= the poll interval).

    python -m benchmarks.bench_api_economy [--inverters 100] [--hours 24]
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.harness import (
    LockstepClock,
    exporter_config,
    machine,
    median,
    reset_sim_stats,
    sim_stats,
    verdict,
    with_poll,
)
from exporter.app import Exporter
from exporter.sim import spawn
from tests.fakes import poll_due

START = 1_795_392_000.0  # 2026-11-23 00:00:00 UTC
INTERVAL = 60.0


def simulate(inverters: int, hours: float, skip_until_due: bool) -> dict[str, Any]:
    """Run the exporter for `hours` of fake time; what it asked and what it exported."""
    with spawn("--inverters", str(inverters), "--fake-clock", str(START)) as sim:
        clock = LockstepClock(START, sim["base_url"])
        config = with_poll(
            exporter_config(sim, max_concurrency=8, max_requests_per_second=10_000),
            interval_seconds=INTERVAL,
            skip_until_due=skip_until_due,
        )
        exporter = Exporter(config, clock)
        lag = sim["publish_lag_s"]
        reset_sim_stats(sim)
        seen: dict[str, float] = {}
        delays: list[float] = []
        new_points = 0
        end = START + hours * 3600
        now = START
        exporter.poller.poll_all()
        while now < end:
            for state in exporter.store.snapshot():
                reading = state.reading
                inverter_id = state.target.device_id
                if reading is None or seen.get(inverter_id) == reading.time:
                    continue
                if inverter_id in seen:  # a point that appeared while we were watching
                    new_points += 1
                    delays.append(clock.time() - (reading.time + lag[inverter_id]))
                seen[inverter_id] = reading.time
            upcoming = exporter.poller.next_wakeup() or end
            now = max(now + 1.0, upcoming)  # one-second ticks at the finest
            clock.set(now)
            poll_due(exporter.poller, exporter.clock.time())
        stats = sim_stats(sim)
        exporter.stop()
        requests_made = stats["responses"].get("inverter_data", {})
        return {
            "requests": sum(requests_made.values()),
            "all_requests": stats["requests"],
            "new_points": new_points,
            "median_delay": median(delays) if delays else float("nan"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inverters", type=int, default=100)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument(
        "--baseline-inverters",
        type=int,
        default=10,
        help="inverters for the fixed-interval baseline (it asks 15x as often)",
    )
    args = parser.parse_args()
    print(f"machine: {machine()}")
    ours = simulate(args.inverters, args.hours, skip_until_due=True)
    ratio = ours["requests"] / max(1, ours["new_points"])
    print(
        f"poll when due, {args.inverters} inverters, {args.hours:g} h: "
        f"{ours['requests']} data requests ({ours['all_requests']} with tokens) for "
        f"{ours['new_points']} new points = {ratio:.3f} requests per point "
        f"(goal <= 1.2: {verdict(ratio <= 1.2)})"
    )
    print(
        f"median delay from availability to /metrics: {ours['median_delay']:.1f} s "
        f"(goal <= {INTERVAL:g} s: {verdict(ours['median_delay'] <= INTERVAL)})"
    )
    if args.baseline_inverters:
        fixed = simulate(args.baseline_inverters, args.hours, skip_until_due=False)
        fixed_ratio = fixed["requests"] / max(1, fixed["new_points"])
        print(
            f"fixed {INTERVAL:g} s poll, {args.baseline_inverters} inverters: "
            f"{fixed_ratio:.2f} requests per point, median delay "
            f"{fixed['median_delay']:.1f} s; poll-when-due asks "
            f"{fixed_ratio / ratio:.1f}x less"
        )


if __name__ == "__main__":
    main()
