"""Benchmarks 7-9 (fleet scale end to end): time to first data with discovery, the first cycle
of configured inverters with their inventory, and listing requests per shard.

7. Discovery: U homes with one inverter each behind a simulator with latency L; the exporter
   starts with discovery on (concurrency C). Seconds from start to the first inverter's data
   and to every inverter's data, against Little's bound for the (1 + U + N) requests the job
   needs: (1 + U + N) x L / C. Goals: first data within 5 s, all within 2 x the bound.
8. Configured: N inverters in the config, inventory (one detail call each) included: seconds
   from start until every inverter has data, against N x L / C. Goal: at most 1.15 x.
9. Shards: listing requests per replica with 2 and 4 shards; each should be about 1/shards
   of the homes.

    python -m benchmarks.bench_fleet_start [--quick]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import yaml

from benchmarks.harness import machine, reset_sim_stats, sim_stats, verdict
from exporter.app import Exporter
from exporter.base.clock import SystemClock
from exporter.config.model import Config, parse_config
from exporter.sim import demo_config, spawn

FIRST_DATA_GOAL = 5.0


def config_for(sim: dict[str, Any], concurrency: int, discovery: bool, **extra: Any) -> Config:
    raw = demo_config(sim)
    raw["podero"].update(
        max_concurrency=concurrency, max_requests_per_second=10_000, timeout_seconds=30
    )
    if discovery:
        raw["inverters"] = []
        raw["discovery"] = {"org_ids": sim["org_ids"]}
    raw.update(extra)
    return parse_config(yaml.dump(raw, Dumper=yaml.CSafeDumper), {})


def first_and_all(exporter: Exporter, started: float, limit: float) -> tuple[float, float]:
    """Seconds from `started` to the first inverter with data and to readiness (every
    inverter polled once after the first listing round)."""
    first = None
    while time.perf_counter() - started < limit:
        if first is None and any(s.reading is not None for s in exporter.store.snapshot()):
            first = time.perf_counter() - started
        if exporter.ready:
            return first or time.perf_counter() - started, time.perf_counter() - started
        time.sleep(0.01)  # sampling the exporter's progress, not waiting for an outcome
    raise RuntimeError(f"not ready after {limit:.0f} s")


def discovery_run(homes: int, latency_ms: float, concurrency: int) -> bool:
    args = ("--inverters", str(homes), "--one-inverter-per-home", "--latency-ms", str(latency_ms))
    with spawn(*args) as sim:
        config = config_for(sim, concurrency, discovery=True)
        started = time.perf_counter()
        exporter = Exporter(config, SystemClock())
        exporter.start()
        latency = latency_ms / 1000
        first, done = first_and_all(exporter, started, limit=60 + 4 * homes * latency)
        inverters = len(exporter.targets)
        stats = sim_stats(sim)
        exporter.stop()
    bound = (1 + homes + inverters) * latency / concurrency
    ok = first <= FIRST_DATA_GOAL and done <= 2 * bound
    print(
        f"U={homes:>6} L={latency_ms:>4.0f} ms C={concurrency:>2}: first data {first:6.2f} s "
        f"(goal <= {FIRST_DATA_GOAL:g} s), all {inverters} inverters {done:7.2f} s, bound "
        f"{bound:7.2f} s, ratio {done / bound:.2f} (goal <= 2: {verdict(ok)}); "
        f"{stats['requests']} requests"
    )
    return ok


def configured_run(inverters: int, latency_ms: float, concurrency: int) -> bool:
    with spawn("--inverters", str(inverters), "--latency-ms", str(latency_ms)) as sim:
        config = config_for(sim, concurrency, discovery=False)
        started = time.perf_counter()
        exporter = Exporter(config, SystemClock())
        exporter.start()
        latency = latency_ms / 1000
        _, cycle = first_and_all(exporter, started, limit=60 + 4 * inverters * latency)
        while any(s.target.inventory is None for s in exporter.store.snapshot()):
            if time.perf_counter() - started > 60 + 8 * inverters * latency:
                break
            time.sleep(0.01)  # sampling progress
        inventory = time.perf_counter() - started
        with_inventory = sum(1 for s in exporter.store.snapshot() if s.target.inventory)
        exporter.stop()
    bound = inverters * latency / concurrency
    ok = cycle <= 1.15 * bound
    print(
        f"N={inverters:>6} configured, L={latency_ms:.0f} ms C={concurrency}: first cycle "
        f"{cycle:6.2f} s, bound {bound:6.2f} s, ratio {cycle / bound:.3f} (goal <= 1.15: "
        f"{verdict(ok)}); inventory of {with_inventory} done at {inventory:6.2f} s "
        f"(bound for polls + details {2 * bound:.2f} s)"
    )
    return ok


def shard_run(homes: int, shards: int) -> bool:
    with spawn("--inverters", str(homes), "--one-inverter-per-home") as sim:
        counts = []
        for index in range(shards):
            config = config_for(sim, 16, discovery=True, shard={"count": shards, "index": index})
            exporter = Exporter(config, SystemClock())
            reset_sim_stats(sim)
            exporter.discover()
            responses = sim_stats(sim)["responses"]
            counts.append(int(responses.get("inverters", {}).get("200", 0)))
            exporter.stop()
    shares = [n / homes for n in counts]
    ok = sum(counts) == homes and all(abs(s - 1 / shards) < 0.25 / shards for s in shares)
    print(
        f"{shards} shards, {homes} homes: listing requests per replica {counts} = "
        f"{', '.join(f'{s:.3f}' for s in shares)} of the homes (1/{shards} = {1 / shards:.3f}; "
        f"{verdict(ok)})"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 homes only")
    parser.add_argument("--homes", type=int, nargs="*", help="only these fleet sizes")
    parser.add_argument("--latency-ms", type=int, nargs="*", help="only these latencies")
    parser.add_argument("--concurrency", type=int, nargs="*", help="only these concurrencies")
    parser.add_argument("--skip", nargs="*", default=[], choices=["discovery", "configured"])
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if "discovery" not in args.skip:
        print("### 7 time to first data with discovery")
        sizes = args.homes or ((2000,) if args.quick else (2000, 10000))
        for homes in sizes:
            for latency in args.latency_ms or (100, 300):
                for concurrency in args.concurrency or (32, 64):
                    discovery_run(homes, latency, concurrency)
    if "configured" not in args.skip:
        print("### 8 one cycle of configured inverters from start, inventory included")
        configured_run(2000, 200, 32)
    print("### 9 listing requests per replica")
    for shards in (2, 4):
        shard_run(2000, shards)


if __name__ == "__main__":
    main()
