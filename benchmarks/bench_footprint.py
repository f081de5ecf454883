"""Benchmark 4: memory and CPU at 10,000 inverters over an hour of simulated polling.

The exporter and the spawned simulator share a fake clock moved in one-second ticks; the
exporter polls when due, as in production, fetches every inverter's inventory once, and its
page is refreshed every tick. Prints the
resident memory of the exporter process afterwards (goal <= 150 MB) and CPU seconds per
1,000 polls.

    python -m benchmarks.bench_footprint [--inverters 10000] [--hours 1]
"""

from __future__ import annotations

import argparse
import gc
import time

from benchmarks.harness import (
    LockstepClock,
    exporter_config,
    machine,
    poll_for_hours,
    rss_mb,
    settled_rss,
    verdict,
)
from exporter.app import Exporter
from exporter.base.memory import limit_malloc_arenas, release_free_memory
from exporter.sim import spawn

START = 1_795_428_000.0  # 2026-11-23 10:00:00 UTC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inverters", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    limit_malloc_arenas()  # as the podero-exporter command does at start
    baseline_rss = rss_mb()
    with spawn("--inverters", str(args.inverters), "--fake-clock", str(START)) as sim:
        clock = LockstepClock(START, sim["base_url"])
        config = exporter_config(sim, max_concurrency=16, max_requests_per_second=10_000)
        sim.clear()  # the benchmark's copy of the fleet is not the exporter's memory
        stages = {"config": settled_rss()}
        exporter = Exporter(config, clock)
        cpu_started = time.process_time()
        polls = exporter.poller.poll_all().succeeded
        release_free_memory()  # as the poll loop does after its first cycle
        stages["first cycle"] = rss_mb()
        exporter.refresh_static_inventory()  # as the inventory thread does at start
        stages["inventory"] = rss_mb()
        exporter.page.refresh()
        stages["page"] = after_first = rss_mb()
        polls += poll_for_hours(exporter, clock, START, args.hours)
        cpu = time.process_time() - cpu_started
        gc.collect()
        final = rss_mb()
        exporter.stop()
    print(f"{args.inverters} inverters, {args.hours:g} h simulated, {polls} polls")
    print(
        f"resident memory: {final:.1f} MB at the end (interpreter alone {baseline_rss:.1f} MB, "
        f"after the first cycle {after_first:.1f} MB; goal <= 150 MB: {verdict(final <= 150)})"
    )
    print(
        "resident memory after each start-up stage: "
        + ", ".join(f"{k} {v:.1f} MB" for k, v in stages.items())
    )
    print(
        f"CPU: {cpu:.1f} s in all = {cpu / polls * 1000:.2f} CPU seconds per 1,000 polls "
        "(polling, parsing and rendering; the simulator runs in its own process)"
    )


if __name__ == "__main__":
    main()
