"""Benchmarks 10-11: compressed scrapes and scrapes beside status clients, at 10,000 inverters.

10. gzip: two scrapers ask for `Accept-Encoding: gzip` while polling runs. The page keeps a
    gzip member per block, compressed when the block changes, so a scrape only writes bytes.
    Baseline: the same body compressed per scrape (what a gzip middleware does). Goal: p50 at
    most 100 ms.
11. Status clients: four processes read `/` and `/api/v1/inverters` (varied pages, filters and
    sorts) as fast as they can while two scrapers fetch `/metrics`. Goal: `/metrics` p50 at
    most 250 ms and max at most 1 s.

    python -m benchmarks.bench_scrape_fleet [--inverters 10000] [--scrapes 100]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

from benchmarks.harness import (
    exporter_config,
    machine,
    median,
    percentile,
    verdict,
    wait_for_steady_state,
)
from exporter.app import Exporter
from exporter.base.clock import SystemClock
from exporter.serve.web import WebApp, start_web
from exporter.sim import spawn

STATUS_PATHS = (
    "/",
    "/api/v1/inverters",
    "/api/v1/inverters?sort=data_age_seconds&order=desc&limit=500",
    "/api/v1/inverters?problems=1",
    "/?q=Fronius&sort=solar_w",
    "/api/v1/inverters?offset=5000&limit=1000",
)


def scrape_many(port: int, scrapes: int, gzip_ok: bool) -> tuple[list[float], int]:
    """One scraper process: the latency of each scrape, and the size of the last body."""
    latencies, size = [], 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
    for _ in range(scrapes):
        started = time.perf_counter()
        connection.request("GET", "/metrics", headers=headers)
        body = connection.getresponse().read()
        latencies.append(time.perf_counter() - started)
        size = len(body)
    connection.close()
    return latencies, size


def status_client(port: int, seconds: float, paths: tuple[str, ...] = STATUS_PATHS) -> int:
    """One status client process: requests for `paths` in turn as fast as it can for
    `seconds`; how many got 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    deadline, ok, i = time.monotonic() + seconds, 0, 0
    while time.monotonic() < deadline:
        connection.request("GET", paths[i % len(paths)])
        response = connection.getresponse()
        response.read()
        ok += response.status == 200
        i += 1
    connection.close()
    return ok


def scrapes(port: int, count: int, gzip_ok: bool, status_seconds: float = 0) -> tuple:  # type: ignore[type-arg]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(6, mp_context=context) as pool:
        clients = (
            [pool.submit(status_client, port, status_seconds) for _ in range(4)]
            if (status_seconds)
            else []
        )
        if clients:
            time.sleep(1.0)  # let the status clients get going first
        runs = [pool.submit(scrape_many, port, count, gzip_ok) for _ in range(2)]
        results = [r.result() for r in runs]
        served = sum(c.result() for c in clients)
    latencies = [t for lat, _ in results for t in lat]
    return latencies, results[0][1], served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inverters", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=100, help="per scraper")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with spawn("--inverters", str(args.inverters)) as sim:
        config = exporter_config(sim, max_concurrency=32, max_requests_per_second=10_000)
        exporter = Exporter(config, SystemClock())
        exporter.start()
        wait_for_steady_state(exporter)
        page = exporter.page
        app = WebApp(
            page.chunks,
            lambda: True,
            lambda: None,
            status=exporter.status_view(),
            metrics_gzip=page.gzip_chunks,
        )
        ours = start_web("127.0.0.1:0", app)
        per_scrape = start_web(
            "127.0.0.1:0",
            WebApp(
                page.chunks,
                lambda: True,
                lambda: None,
                metrics_gzip=lambda: [gzip.compress(b"".join(page.chunks()))],
            ),
        )
        port, baseline_port = ours.server_address[1], per_scrape.server_address[1]
        plain, plain_size, _ = scrapes(port, args.scrapes, gzip_ok=False)
        zipped, zipped_size, _ = scrapes(port, args.scrapes, gzip_ok=True)
        slow, _, _ = scrapes(baseline_port, max(5, args.scrapes // 10), gzip_ok=True)
        busy, _, served = scrapes(port, args.scrapes, gzip_ok=True, status_seconds=30)
        exporter.stop()
    ms = lambda values, p: percentile(values, p) * 1000  # noqa: E731
    print(f"### 10 gzip scrapes, {args.inverters} inverters, 2 scrapers, polling running")
    print(
        f"plain:            p50 {median(plain) * 1000:7.1f} ms, p99 {ms(plain, 99):7.1f} ms, "
        f"{plain_size / 1e6:.1f} MB"
    )
    z50 = median(zipped) * 1000
    print(
        f"gzip per block:   p50 {z50:7.1f} ms, p99 {ms(zipped, 99):7.1f} ms, "
        f"{zipped_size / 1e6:.2f} MB (goal p50 <= 100 ms: {verdict(z50 <= 100)})"
    )
    s50 = median(slow) * 1000
    print(
        f"gzip per scrape:  p50 {s50:7.1f} ms, p99 {ms(slow, 99):7.1f} ms "
        f"({len(slow)} scrapes); per-block gzip is {s50 / z50:.1f}x faster"
    )
    b50, bmax = median(busy) * 1000, max(busy) * 1000
    ok = b50 <= 250 and bmax <= 1000
    print("### 11 /metrics (gzip) while 4 clients read the status page and API for 30 s")
    print(
        f"/metrics p50 {b50:7.1f} ms, max {bmax:7.1f} ms ({len(busy)} scrapes; goal p50 <= 250 "
        f"ms, max <= 1 s: {verdict(ok)}); status requests answered 200: {served}"
    )


if __name__ == "__main__":
    main()
