"""Benchmark 13: backfill throughput in buckets per second against Little's law.

A backfill of N devices over D days sends R requests (a token, one inventory detail per
configured device, one data page per day of each device with a data series). With latency L
and C requests in flight no client can fetch them faster than R x L / C, which caps the
buckets per second at (buckets with data) / (R x L / C). It prints the fetch phase's ratio to
that bound, and the CPU both processes used (they share the machine's cores). Writing the
OpenMetrics file from the journal is timed apart (it does not talk to the API); so is a rerun
of the finished range.

Two fleets of `--devices` each: inverters only, and the simulator's mixed homes (inverters,
heat pumps, electric vehicles and wallboxes, about half of them inverters; a wallbox has no
data series, so it costs a detail request and no page).

    python -m benchmarks.bench_backfill [--devices 1000] [--days 1] [--latency-ms 100]
        [--fleet both|inverters|mixed]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import machine, reset_sim_stats, sim_stats
from exporter import backfill
from exporter.api.client import iso
from exporter.base.clock import SystemClock
from exporter.config.model import Config, parse_config
from exporter.sim import demo_config, spawn
from exporter.sim.fleet import SimFleet

DAY = 86400


def inverters_for_mixed(devices: int) -> int:
    """How many inverters a simulated fleet needs for `devices` devices of every kind (the
    simulator's default seed, as `spawn` runs it)."""
    inverters = max(1, devices // 2)
    while True:
        fleet = SimFleet(seed=1, inverters=inverters)
        if len(fleet.inverters) + len(fleet.devices) >= devices:
            return inverters
        inverters += 1


def config_of(sim: dict[str, Any], devices: int, mixed: bool, concurrency: int) -> Config:
    """The first `devices` devices of the simulator (its inverters, or its inverters and the
    homes' other devices), configured with their kinds."""
    raw = demo_config(sim)
    raw["podero"].update(
        max_concurrency=concurrency, max_requests_per_second=10_000, timeout_seconds=30
    )
    if mixed:
        for n, device in enumerate(sim["devices"]):
            raw["inverters"].append(
                {
                    "org_id": device["org_id"],
                    "user_id": device["user_id"],
                    "inverter_id": device["device_id"],
                    "kind": device["kind"],
                    "name": f"{device['kind']}-{n:05d}",
                }
            )
        # Whole homes first: sorting by home keeps a home's devices together when cut.
        raw["inverters"].sort(key=lambda entry: entry["user_id"])
    raw["inverters"] = raw["inverters"][:devices]
    return parse_config(yaml.dump(raw, Dumper=yaml.CSafeDumper), {})


def bench(sim: dict[str, Any], config: Config, args: argparse.Namespace, title: str) -> None:
    latency = args.latency_ms / 1000
    kinds = Counter(entry.kind for entry in config.inverters)
    print(f"--- {title}: {len(config.inverters)} devices ({dict(kinds)})")
    end = math.floor(time.time() / DAY) * DAY
    start = end - args.days * DAY
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        output = Path(tmp) / "history.om"
        flags = ["--from", iso(start), "--to", iso(end), "--output", str(output)]
        reset_sim_stats(sim)
        cpu = time.process_time()
        result = backfill.run(
            config,
            backfill.parse_args([*flags, "--label", "job=podero"]),
            SystemClock(),
            io.StringIO(),
        )
        cpu = time.process_time() - cpu
        stats = sim_stats(sim)
        requests = stats["requests"]
        bound = requests * latency / args.concurrency
        ratio = result.fetch_seconds / bound
        buckets = result.buckets
        print(result.summary(output))
        print(f"requests: {requests} ({stats['responses']}) on {stats['connections']} connections")
        print(
            f"fetch: {result.fetch_seconds:.2f} s = {buckets / result.fetch_seconds:,.0f} "
            f"buckets/s; Little's bound {bound:.2f} s = {buckets / bound:,.0f} buckets/s; "
            f"ratio {ratio:.3f}"
        )
        size = output.stat().st_size
        print(
            f"write: {result.write_seconds:.2f} s for {size / 1e6:.0f} MB "
            f"({buckets / result.write_seconds:,.0f} buckets/s); whole run {result.seconds:.2f} s "
            f"= {buckets / result.seconds:,.0f} buckets/s"
        )
        print(f"backfill CPU: {cpu:.1f} s for the whole run (all threads)")
        reset_sim_stats(sim)
        again = backfill.run(config, backfill.parse_args(flags), SystemClock(), io.StringIO())
        data = {k: v for k, v in sim_stats(sim)["responses"].items() if k.endswith("_data")}
        print(
            f"rerun of the finished range: {data} data requests, {again.resumed} pages from the "
            f"journal, {again.seconds:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--fleet", choices=("both", "inverters", "mixed"), default="both")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"{args.devices} devices x {args.days} day(s) of 15-minute buckets, "
        f"latency {args.latency_ms:g} ms, concurrency {args.concurrency}"
    )
    fleets = [f for f in ("inverters", "mixed") if args.fleet in (f, "both")]
    for fleet in fleets:
        mixed = fleet == "mixed"
        inverters = inverters_for_mixed(args.devices) if mixed else args.devices
        sim_args = ("--inverters", str(inverters), "--latency-ms", str(args.latency_ms))
        with spawn(*sim_args) as sim:
            config = config_of(sim, args.devices, mixed, args.concurrency)
            bench(sim, config, args, "mixed homes" if mixed else "inverters")
    # The simulators have been waited for: their CPU time is now the children's.
    print(
        f"simulator CPU: {os.times().children_user + os.times().children_system:.1f} s in all "
        f"(all runs and start-ups); {os.cpu_count()} cores shared by both processes"
    )


if __name__ == "__main__":
    main()
