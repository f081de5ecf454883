"""Benchmark 14: `--once` on the scheduler.

N configured inverters behind a spawned simulator with latency L; `Exporter.poll_once()` (what
`--once` runs) makes every detail call and every first poll on C workers. Prints the wall time
against Little's bound for the calls the simulator answered: calls x L / C (or calls / budget,
when the budget is the tighter limit). Goal: at most 2 x the bound.

    python -m benchmarks.bench_once [--inverters 2000] [--latency-ms 200] [--concurrency 64]
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
    parser.add_argument("--inverters", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rps", type=float, default=10_000, help="max_requests_per_second")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with spawn("--inverters", str(args.inverters), "--latency-ms", str(args.latency_ms)) as sim:
        config = exporter_config(
            sim,
            max_concurrency=args.concurrency,
            max_requests_per_second=args.rps,
            timeout_seconds=30,
        )
        reset_sim_stats(sim)
        started = time.perf_counter()
        exporter = Exporter(config, SystemClock())
        result = exporter.poll_once()
        seconds = time.perf_counter() - started
        exporter.stop()
        stats = sim_stats(sim)
    calls = stats["requests"]
    latency = args.latency_ms / 1000
    bound = max(calls * latency / args.concurrency, calls / args.rps)
    print(
        f"--once, {args.inverters} configured inverters, L={args.latency_ms:g} ms, "
        f"C={args.concurrency}: {seconds:.2f} s for {calls} calls "
        f"({result.succeeded} polls ok, {result.failed} failed); Little's bound "
        f"{calls} x {latency:g} s / {args.concurrency} = {bound:.2f} s, ratio "
        f"{seconds / bound:.2f} (goal <= 2: {verdict(seconds <= 2 * bound)})"
    )


if __name__ == "__main__":
    main()
