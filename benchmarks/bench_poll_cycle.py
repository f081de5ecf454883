"""Benchmark 1: poll cycle time against the physical limit (Little's law).

With N inverters, a per-request latency L and C requests in flight, no client can finish a
cycle faster than N x L / C. Goal: at most 1.15 x that bound. Also the naive sequential loop
(one request at a time, what most exporters do) for comparison.

    python -m benchmarks.bench_poll_cycle [--inverters 1000 10000] [--sequential 1000]
"""

from __future__ import annotations

import argparse

from benchmarks.harness import exporter_config, machine, reset_sim_stats, sim_stats, verdict
from exporter.app import Exporter
from exporter.base.clock import SystemClock
from exporter.sim import spawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inverters", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--sequential",
        type=int,
        default=1000,
        help="inverters for the naive sequential loop (0 to skip)",
    )
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    print(f"machine: {machine()}")
    print(f"latency {args.latency_ms:g} ms, concurrency {args.concurrency}")
    cycles: dict[int, float] = {}
    for n in args.inverters:
        with spawn("--inverters", str(n), "--latency-ms", str(args.latency_ms)) as sim:
            config = exporter_config(
                sim,
                max_concurrency=args.concurrency,
                max_requests_per_second=10_000,
                timeout_seconds=30,
            )
            exporter = Exporter(config, SystemClock())
            targets = [s.target for s in exporter.store.snapshot()]
            # Warm up: a token and one keep-alive connection per worker.
            exporter.poller.poll_many(targets[: args.concurrency])
            reset_sim_stats(sim)
            result = exporter.poller.poll_all()
            stats = sim_stats(sim)
            bound = n * latency / args.concurrency
            cycles[n] = result.seconds
            ratio = result.seconds / bound
            print(
                f"N={n:>6}: cycle {result.seconds:7.2f} s, bound {bound:7.2f} s, "
                f"ratio {ratio:.3f} (goal <= 1.15: {verdict(ratio <= 1.15)}); "
                f"{result.succeeded} ok, {result.failed} failed; "
                f"{stats['requests']} requests on {stats['connections']} new connections"
            )
            if args.sequential and n == args.inverters[0]:
                seq_targets = targets[: args.sequential]
                import time

                started = time.perf_counter()
                for target in seq_targets:
                    exporter.poller.poll_one(target)
                sequential = time.perf_counter() - started
                ours = result.seconds * len(seq_targets) / n
                print(
                    f"naive sequential loop, {len(seq_targets)} inverters: {sequential:.1f} s "
                    f"= {sequential / ours:.1f} x this exporter's cycle"
                )
            exporter.stop()


if __name__ == "__main__":
    main()
