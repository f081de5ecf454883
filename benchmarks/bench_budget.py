"""Benchmark 5: the request budget seen from the server side.

An exporter with max_requests_per_second 20 polls 2,000 inverters of a spawned simulator
(50 ms latency) for a while; the simulator records when each request arrives. Prints the
busiest one-second window it saw (goal: never above 20).

    python -m benchmarks.bench_budget [--rps 20] [--inverters 2000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.harness import exporter_config, machine, reset_sim_stats, sim_stats, verdict
from exporter.app import Exporter
from exporter.base.clock import SystemClock
from exporter.sim import spawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=float, default=20)
    parser.add_argument("--inverters", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with spawn("--inverters", str(args.inverters), "--latency-ms", "50") as sim:
        config = exporter_config(sim, max_concurrency=16, max_requests_per_second=args.rps)
        reset_sim_stats(sim)
        exporter = Exporter(config, SystemClock())
        started = time.monotonic()
        exporter.start()
        time.sleep(args.seconds)  # a benchmark's fixed observation window, not a test wait
        stats = sim_stats(sim)
        elapsed = time.monotonic() - started
        exporter.stop()
    busiest = stats["busiest_second"]
    print(
        f"budget {args.rps:g} requests/s, {args.inverters} inverters, {elapsed:.0f} s: "
        f"{stats['requests']} requests ({stats['requests'] / elapsed:.1f}/s on average), "
        f"busiest one-second window at the simulator: {busiest} "
        f"(goal <= {args.rps:g}: {verdict(busiest <= args.rps)})"
    )


if __name__ == "__main__":
    main()
