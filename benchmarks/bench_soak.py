"""Soak benchmark: at least 10,000 poll cycles with faults; memory, threads and file
descriptors must stay flat.

A spawned simulator injects 5xx, 429, resets, broken bodies and revoked tokens; the exporter
runs on a fake clock in lockstep with it, polling every inverter each 60 s tick. Prints
resident memory after warm-up and at the end (goal: growth under 10 MB), and the thread and
file-descriptor counts.

    python -m benchmarks.bench_soak [--cycles 10000] [--inverters 10]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import threading

from benchmarks.harness import LockstepClock, exporter_config, machine, rss_mb, verdict, with_poll
from exporter.app import Exporter
from exporter.sim import spawn

START = 1_795_392_000.0
FAULTS = {
    "error_5xx": 0.05,
    "rate_limit": 0.03,
    "retry_after_s": 0,
    "reset": 0.03,
    "truncated": 0.02,
    "malformed": 0.02,
    "html": 0.02,
    "revoke": 0.02,
    "token_lifetime_s": 1800,
}


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--inverters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with spawn(
        "--inverters",
        str(args.inverters),
        "--fake-clock",
        str(START),
        "--faults",
        json.dumps(FAULTS),
    ) as sim:
        clock = LockstepClock(START, sim["base_url"])
        config = with_poll(
            exporter_config(
                sim,
                max_concurrency=4,
                max_requests_per_second=10_000,
                retry={"attempts": 3, "max_wait_seconds": 1},
            ),
            interval_seconds=60,
            skip_until_due=False,
        )
        exporter = Exporter(config, clock)
        ok = failed = 0
        marks: dict[str, tuple[float, int, int]] = {}
        for cycle in range(1, args.cycles + 1):
            clock.set(START + cycle * 60.0)
            result = exporter.poller.poll_all()
            exporter.page.render()
            ok, failed = ok + result.succeeded, failed + result.failed
            if cycle == args.warmup:
                gc.collect()
                marks["warm"] = (rss_mb(), threading.active_count(), fds())
        gc.collect()
        marks["end"] = (rss_mb(), threading.active_count(), fds())
        exporter.stop()
    (warm_rss, warm_threads, warm_fds), (end_rss, end_threads, end_fds) = (
        marks["warm"],
        marks["end"],
    )
    growth = end_rss - warm_rss
    print(
        f"{args.cycles} cycles x {args.inverters} inverters: {ok} polls ok, {failed} failed "
        f"(faults injected)"
    )
    print(
        f"resident memory after {args.warmup} cycles {warm_rss:.1f} MB, at the end "
        f"{end_rss:.1f} MB: growth {growth:+.1f} MB (goal < 10 MB: {verdict(growth < 10)})"
    )
    print(
        f"threads {warm_threads} -> {end_threads}, file descriptors {warm_fds} -> {end_fds} "
        f"({verdict(end_threads <= warm_threads and end_fds <= warm_fds)})"
    )


if __name__ == "__main__":
    main()
