"""Benchmark 7: backfill throughput in buckets per second against Little's law.

A backfill of N inverters over D days sends R requests (a token, one inventory detail per
configured inverter, one data page per inverter and day). With latency L and C requests in
flight no client can fetch them faster than R x L / C, which caps the buckets per second at
N x D x 96 / (R x L / C). It prints the fetch phase's ratio to that bound, and the CPU both
processes used (they share the machine's cores). Writing the OpenMetrics file from the
journal is timed apart (it does not talk to the API); so is a rerun of the finished range.

    python -m benchmarks.bench_backfill [--inverters 1000] [--days 1] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import tempfile
import time
from pathlib import Path

from benchmarks.harness import exporter_config, machine, reset_sim_stats, sim_stats
from exporter import backfill
from exporter.client import iso
from exporter.clock import SystemClock
from exporter.sim import spawn

DAY = 86400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inverters", type=int, default=1000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    print(f"machine: {machine()}")
    print(
        f"{args.inverters} inverters x {args.days} day(s) of 15-minute buckets, "
        f"latency {args.latency_ms:g} ms, concurrency {args.concurrency}"
    )
    end = math.floor(time.time() / DAY) * DAY
    start = end - args.days * DAY
    with (
        spawn("--inverters", str(args.inverters), "--latency-ms", str(args.latency_ms)) as sim,
        tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp,
    ):
        config = exporter_config(
            sim,
            max_concurrency=args.concurrency,
            max_requests_per_second=10_000,
            timeout_seconds=30,
        )
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
        print(
            f"rerun of the finished range: {sim_stats(sim)['responses'].get('inverter_data', {})} "
            f"data requests, {again.resumed} pages from the journal, {again.seconds:.2f} s"
        )
    # The simulator has been waited for: its CPU time is now the children's.
    print(
        f"simulator CPU: {os.times().children_user + os.times().children_system:.1f} s in all "
        f"(both runs and start-up); {os.cpu_count()} cores shared by both processes"
    )


if __name__ == "__main__":
    main()
