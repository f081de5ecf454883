"""Benchmark 15: one replica of 30,000 devices of mixed homes (issue 23), against its goals.

The simulator's mixed homes (inverters, heat pumps, electric vehicles, wallboxes; `--inverters`
is chosen so that about `--devices` devices are listed, and the exact counts are printed).

A. Start: one exporter with discovery on, 300 ms latency, concurrency 64, and a budget of
   10,000 requests/s, which does not bind (64 workers at 300 ms send at most 213/s). Seconds
   from start to the first device's data (goal <= 5 s) and to every device's data (readiness:
   the first listing round done and every device polled once), against Little's bound for
   EVERY API call made until then, read from the simulator's /_sim/stats (tokens, listings,
   detail calls, data): calls x L / C (goal <= 2 x).
B. Scrapes at that size, polling running: two scraper processes read the whole plain body
   (goal p50 <= 150 ms), then gzip (goal p50 <= 50 ms); then gzip scrapes while four client
   processes read `/api/v1/devices` (varied pages, filters and sorts) as fast as they can (goal
   `/metrics` max <= 1 s). Series exported per device of each kind with the default `metrics:`.
C. Memory: a fresh process, the simulator's fake clock in lockstep and no latency (as
   bench_footprint): the first cycle as `--once` runs it (listings and first polls on the
   scheduler), an hour of polling when due in one-second ticks with the page refreshed every
   tick, and a second listing round at the end (the inventory loop's hourly one). Resident
   memory at the end (goal <= 300 MB; the aim is about 10 KB per device).

    python -m benchmarks.bench_large_fleet [--devices 30000] [--quick] [--skip memory ...]
"""

from __future__ import annotations

import argparse
import gc
import http.client
import multiprocessing
import re
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from benchmarks.bench_fleet_start import config_for, first_and_all
from benchmarks.bench_scrape_fleet import scrape_many, status_client
from benchmarks.harness import (
    LockstepClock,
    load_average,
    machine,
    median,
    percentile,
    poll_for_hours,
    rss_mb,
    settled_rss,
    sim_stats,
    verdict,
)
from exporter.app import Exporter
from exporter.base.clock import SystemClock
from exporter.base.memory import limit_malloc_arenas, release_free_memory
from exporter.serve.web import WebApp, start_web
from exporter.sim import spawn

START = 1_795_428_000.0  # 2026-11-23 10:00:00 UTC, as bench_footprint
# Devices listed per simulated inverter in the mixed homes (deleted inverters are not listed):
# 15,250 inverters give 29,975 devices.
DEVICES_PER_INVERTER = 1.9656
LATENCY_MS = 300
CONCURRENCY = 64
BUDGET = 10_000
FIRST_DATA_GOAL = 5.0
LISTINGS = {"users", "inverters", "heat_pumps", "electric_vehicles", "wallboxes"}
DEVICE_PATHS = (
    "/api/v1/devices",
    "/api/v1/devices?sort=data_age_seconds&order=desc&limit=500",
    "/api/v1/devices?problems=1",
    "/api/v1/devices?kind=heat_pump&sort=name",
    "/api/v1/devices?q=Fronius",
    "/api/v1/devices?offset=10000&limit=1000",
)
_DEVICE_ID = re.compile(rb'device_id="([^"]*)"')


def inverters_for(devices: int) -> int:
    return max(1, round(devices / DEVICES_PER_INVERTER))


def calls_by_class(responses: dict[str, dict[str, int]]) -> dict[str, int]:
    """The simulator's responses by endpoint, as tokens, listings, details and data."""
    classes: Counter[str] = Counter()
    for endpoint, codes in responses.items():
        if endpoint == "token":
            name = "tokens"
        elif endpoint.endswith("_data"):
            name = "data"
        elif endpoint in LISTINGS:
            name = "listings"
        else:
            name = "details"
        classes[name] += sum(codes.values())
    return {k: classes[k] for k in ("tokens", "listings", "details", "data")}


def scrape_for(port: int, seconds: float, gzip_ok: bool) -> list[float]:
    """One scraper process: /metrics again and again for `seconds`; the latency of each."""
    latencies = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        connection.request("GET", "/metrics", headers=headers)
        connection.getresponse().read()
        latencies.append(time.perf_counter() - started)
    connection.close()
    return latencies


def scrapes(port: int, count: int, gzip_ok: bool) -> tuple[list[float], int]:
    """Two scraper processes reading whole bodies: every latency, and the size of a body."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        runs = [pool.submit(scrape_many, port, count, gzip_ok) for _ in range(2)]
        results = [r.result() for r in runs]
    return [t for lat, _ in results for t in lat], results[0][1]


def scrapes_beside_status(port: int, seconds: float) -> tuple[list[float], int]:
    """Two gzip scrapers for `seconds` while four status clients read /api/v1/devices as fast
    as they can (started a second earlier): every scrape's latency, status answers with 200."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(6, mp_context=context) as pool:
        clients = [pool.submit(status_client, port, seconds + 1.0, DEVICE_PATHS) for _ in range(4)]
        time.sleep(1.0)  # let the status clients get going first
        runs = [pool.submit(scrape_for, port, seconds, True) for _ in range(2)]
        latencies = [t for r in runs for t in r.result()]
        served = sum(c.result() for c in clients)
    return latencies, served


def series_per_device(
    port: int, kinds: dict[str, str]
) -> tuple[dict[str, tuple[float, int]], int, int]:
    """Series per device of each kind on the plain page (mean, most); the series of no device;
    the page's bytes."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("GET", "/metrics")
    body = connection.getresponse().read()
    connection.close()
    per_device: Counter[bytes] = Counter()
    shared = 0
    for line in body.split(b"\n"):
        if not line or line.startswith(b"#"):
            continue
        found = _DEVICE_ID.search(line)
        if found:
            per_device[found.group(1)] += 1
        else:
            shared += 1
    by_kind: dict[str, list[int]] = defaultdict(list)
    for device_id, kind in kinds.items():
        by_kind[kind].append(per_device.get(device_id.encode(), 0))
    per_kind = {k: (sum(v) / len(v), max(v)) for k, v in sorted(by_kind.items())}
    return per_kind, shared, len(body)


def start_phase(devices: int, scrape_count: int, status_seconds: float) -> None:
    inverters = inverters_for(devices)
    args = ("--inverters", str(inverters), "--latency-ms", str(LATENCY_MS))
    print(f"### A start: simulator --inverters {inverters} (mixed homes), {load_average()}")
    with spawn(*args) as sim:
        sim_devices = Counter(d["kind"] for d in sim["devices"])
        config = config_for(sim, CONCURRENCY, discovery=True)
        assert config.podero.max_requests_per_second == BUDGET
        started = time.perf_counter()
        exporter = Exporter(config, SystemClock())
        exporter.start()
        latency = LATENCY_MS / 1000
        first, done = first_and_all(exporter, started, limit=600 + 4 * devices * latency)
        stats = sim_stats(sim)
        kinds = {s.target.device_id: s.target.kind for s in exporter.store.snapshot()}
        counted = Counter(kinds.values())
        homes = len({s.target.user_id for s in exporter.store.snapshot()})
        calls = calls_by_class(stats["responses"])
        total = sum(calls.values())
        bound = total * latency / CONCURRENCY
        print(
            f"simulated: {inverters} inverters (deleted ones included) and "
            f"{dict(sim_devices)}; listed and polled by the exporter: {len(kinds)} devices "
            f"in {homes} homes {dict(sorted(counted.items()))}"
        )
        print(
            f"latency {LATENCY_MS} ms, concurrency {CONCURRENCY}, budget {BUDGET}/s (does not "
            f"bind: {CONCURRENCY} workers at {LATENCY_MS} ms send at most "
            f"{CONCURRENCY / latency:.0f}/s)"
        )
        print(
            f"first data {first:6.2f} s (goal <= {FIRST_DATA_GOAL:g} s: "
            f"{verdict(first <= FIRST_DATA_GOAL)}); all {len(kinds)} devices {done:7.2f} s"
        )
        print(
            f"API calls until then: {total} = {calls}; Little's bound {total} x {latency:g} s / "
            f"{CONCURRENCY} = {bound:.2f} s; ratio {done / bound:.2f} (goal <= 2: "
            f"{verdict(done <= 2 * bound)}); busiest second at the simulator "
            f"{stats['busiest_second']}; {load_average()}"
        )
        scrape_phase(exporter, sim, kinds, scrape_count, status_seconds)
        exporter.stop()


class Meanwhile:
    """What the exporter did during a measurement: API calls per second (at the simulator) and
    the CPU its process used (this process: the scrapers and status clients run in others)."""

    def __init__(self, sim: dict[str, Any]) -> None:
        self._sim = sim
        self._calls = sim_stats(sim)["requests"]
        self._cpu = time.process_time()
        self._started = time.perf_counter()

    def __str__(self) -> str:
        elapsed = time.perf_counter() - self._started
        calls = (sim_stats(self._sim)["requests"] - self._calls) / elapsed
        cpu = (time.process_time() - self._cpu) / elapsed
        return f"meanwhile {calls:.0f} API calls/s, exporter CPU {cpu:.0%} of a core"


def scrape_phase(
    exporter: Exporter,
    sim: dict[str, Any],
    kinds: dict[str, str],
    count: int,
    status_seconds: float,
) -> None:
    page = exporter.page
    app = WebApp(
        page.chunks,
        lambda: True,
        lambda: None,
        status=exporter.status_view(),
        metrics_gzip=page.gzip_chunks,
    )
    port = start_web("127.0.0.1:0", app).server_address[1]
    per_kind, shared, size = series_per_device(port, kinds)
    devices = len(kinds)
    device_series = round(sum(per_kind[k][0] * n for k, n in Counter(kinds.values()).items()))
    print(f"### B scrapes at {devices} devices, polling running, {load_average()}")
    print(
        "series per device with the default metrics (mean, most): "
        + ", ".join(f"{k} {mean:.1f} ({most})" for k, (mean, most) in per_kind.items())
        + f"; {device_series} device series + {shared} others = {device_series + shared} "
        f"series, {size / 1e6:.1f} MB plain page"
    )
    for label, gzip_ok, goal in (
        ("plain (whole body read, 2 scrapers):", False, 150),
        ("gzip (2 scrapers):                  ", True, 50),
    ):
        meanwhile = Meanwhile(sim)
        latencies, body = scrapes(port, count, gzip_ok)
        p50 = median(latencies) * 1000
        print(
            f"{label} p50 {p50:7.1f} ms, p99 {percentile(latencies, 99) * 1000:7.1f} ms, "
            f"{body / 1e6:.2f} MB ({len(latencies)} scrapes; goal p50 <= {goal} ms: "
            f"{verdict(p50 <= goal)}); {meanwhile}; {load_average()}"
        )
    meanwhile = Meanwhile(sim)
    busy, served = scrapes_beside_status(port, status_seconds)
    b50, bmax = median(busy) * 1000, max(busy) * 1000
    print(
        f"gzip while 4 clients read /api/v1/devices for {status_seconds:g} s: p50 {b50:7.1f} ms, "
        f"max {bmax:7.1f} ms ({len(busy)} scrapes; goal max <= 1 s: {verdict(bmax <= 1000)}); "
        f"status requests answered 200: {served}; {meanwhile}; {load_average()}"
    )


def memory_run(devices: int, hours: float) -> dict[str, Any]:
    """Phase C in a fresh process (run by a spawned pool): resident memory after `hours` of
    simulated polling of `devices` devices of mixed homes."""
    limit_malloc_arenas()  # as the podero-exporter command does at start
    baseline = rss_mb()
    inverters = inverters_for(devices)
    with spawn("--inverters", str(inverters), "--fake-clock", str(START)) as sim:
        clock = LockstepClock(START, sim["base_url"])
        config = config_for(sim, CONCURRENCY, discovery=True)
        sim.clear()  # the benchmark's copy of the fleet is not the exporter's memory
        stages = {"config": settled_rss()}
        exporter = Exporter(config, clock)
        cpu_started = time.process_time()
        exporter.poll_once()  # listings and first polls on the scheduler, as --once and start
        polls = sum(1 for s in exporter.store.snapshot() if s.polled)
        release_free_memory()  # as the poll loop does after its first cycle
        stages["first cycle"] = rss_mb()
        exporter.page.refresh()
        stages["page"] = rss_mb()
        polls += poll_for_hours(exporter, clock, START, hours)
        exporter.discover()  # the inventory loop's next listing round
        exporter.page.refresh()
        cpu = time.process_time() - cpu_started
        gc.collect()
        final = rss_mb()
        counted = Counter(s.target.kind for s in exporter.store.snapshot())
        exporter.stop()
    return {
        "baseline": baseline,
        "stages": stages,
        "final": final,
        "polls": polls,
        "cpu": cpu,
        "devices": dict(sorted(counted.items())),
    }


def memory_phase(devices: int, hours: float) -> None:
    print(f"### C memory: {devices} devices, {hours:g} h simulated, no latency, {load_average()}")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        r = pool.submit(memory_run, devices, hours).result()
    total = sum(r["devices"].values())
    final = r["final"]
    print(f"devices {total} {r['devices']}, {r['polls']} polls")
    print(
        f"resident memory: {final:.1f} MB at the end (interpreter alone {r['baseline']:.1f} MB; "
        f"{(final - r['baseline']) * 1024 / total:.1f} KB per device above it; "
        f"goal <= 300 MB: {verdict(final <= 300)}); {load_average()}"
    )
    print(
        "after each start-up stage: " + ", ".join(f"{k} {v:.1f} MB" for k, v in r["stages"].items())
    )
    print(f"CPU: {r['cpu']:.1f} s = {r['cpu'] / r['polls'] * 1000:.2f} CPU seconds per 1,000 polls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=None, help="default 30,000")
    parser.add_argument("--quick", action="store_true", help="3,000 devices, short phases")
    parser.add_argument("--hours", type=float, default=None, help="memory phase (default 1)")
    parser.add_argument("--scrapes", type=int, default=None, help="per scraper (default 50)")
    parser.add_argument("--status-seconds", type=float, default=None, help="default 30")
    parser.add_argument("--skip", nargs="*", default=[], choices=["start", "memory"])
    args = parser.parse_args()
    devices = args.devices or (3000 if args.quick else 30_000)
    hours = args.hours if args.hours is not None else (0.25 if args.quick else 1.0)
    count = args.scrapes or (20 if args.quick else 50)
    status_seconds = args.status_seconds or (10.0 if args.quick else 30.0)
    print(f"machine: {machine()}; {load_average()}")
    if "start" not in args.skip:
        start_phase(devices, count, status_seconds)
    if "memory" not in args.skip:
        memory_phase(devices, hours)


if __name__ == "__main__":
    main()
