"""Benchmark 3: the cost of a scrape at 10,000 inverters.

The exporter polls a spawned simulator (its loop keeps running, so data keeps changing as in
production) while two concurrent scrapers fetch /metrics. The baseline renders the same store
through prometheus_client's generate_latest on every scrape (the usual exporter), served the
same way in the same run. Goal: p50 <= 50 ms and at least 10x faster than the baseline.

Where the time goes, in the same run: the same scrapers against the gzip path of the same
server (what Prometheus asks for), and against a floor: a bare socket server in a process of
its own that writes the same plain body from memory in one `sendall`. The floor is what
reading that many bytes costs the Python client over loopback; the exporter's plain p50 over
the floor's is what its server (cheroot, the chunked write path, the GIL shared with the
polling loop) adds.

    python -m benchmarks.bench_scrape [--inverters 10000] [--scrapes 100]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import socketserver
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.synchronize import Event as EventType

import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

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
from tests.reference import InverterCollector


def scrape_many(host: str, port: int, scrapes: int, gzip: bool = False) -> tuple[list[float], int]:
    """One scraper (run in its own process, as Prometheus is): latency of each scrape (the
    whole body read, not decompressed)."""
    latencies = []
    size = 0
    connection = http.client.HTTPConnection(host, port, timeout=60)
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    for _ in range(scrapes):
        started = time.perf_counter()
        connection.request("GET", "/metrics", headers=headers)
        size = len(connection.getresponse().read())
        latencies.append(time.perf_counter() - started)
    connection.close()
    return latencies, size


def scrape_latencies(
    port: int, scrapes: int, scrapers: int = 2, gzip: bool = False
) -> tuple[list[float], int]:
    """Latency of each scrape by `scrapers` concurrent scraper processes; and the body size."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(scrapers, mp_context=context) as pool:
        results = list(
            pool.map(
                scrape_many,
                ["127.0.0.1"] * scrapers,
                [port] * scrapers,
                [scrapes] * scrapers,
                [gzip] * scrapers,
            )
        )
    return [t for latencies, _ in results for t in latencies], results[0][1]


class _FloorHandler(socketserver.StreamRequestHandler):
    """Answers every request on a keep-alive connection with the same body, one sendall."""

    def handle(self) -> None:
        body: bytes = self.server.body  # type: ignore[attr-defined]
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        while True:
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                pass
            if not line:
                return
            self.wfile.write(head)
            self.wfile.write(body)


def serve_floor(body: bytes, port: multiprocessing.Queue[int], stop: EventType) -> None:
    """The floor server, in a process of its own until `stop` is set."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _FloorHandler)
    server.daemon_threads = True
    server.body = body  # type: ignore[attr-defined]
    port.put(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop.wait()
    server.shutdown()


def floor_latencies(body: bytes, scrapes: int) -> list[float]:
    """The same scrapers against the floor server serving `body`."""
    context = multiprocessing.get_context("spawn")
    port: multiprocessing.Queue[int] = context.Queue()
    stop = context.Event()
    process = context.Process(target=serve_floor, args=(body, port, stop))
    process.start()
    try:
        return scrape_latencies(port.get(timeout=60), scrapes)[0]
    finally:
        stop.set()
        process.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inverters", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=100, help="per scraper")
    parser.add_argument("--baseline-scrapes", type=int, default=10, help="per scraper")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with spawn("--inverters", str(args.inverters)) as sim:
        config = exporter_config(sim, max_concurrency=32, max_requests_per_second=10_000)
        exporter = Exporter(config, SystemClock())
        exporter.start()
        wait_for_steady_state(exporter)
        app = WebApp(
            exporter.page.chunks,
            lambda: True,
            lambda: None,
            metrics_gzip=exporter.page.gzip_chunks,
        )
        ours = start_web("127.0.0.1:0", app)
        reference = CollectorRegistry()
        reference.register(
            InverterCollector(
                exporter.store, exporter.clock, lambda: config.poll.max_data_age_seconds
            )
        )
        reference.register(_Telemetry(exporter))
        baseline = start_web(
            "127.0.0.1:0", WebApp(lambda: [generate_latest(reference)], lambda: True, lambda: None)
        )
        ours_url = f"http://127.0.0.1:{ours.server_address[1]}/metrics"
        page = requests.get(ours_url, timeout=60).content
        samples = sum(len(f.samples) for f in text_string_to_metric_families(page.decode()))
        port = ours.server_address[1]
        fast, size = scrape_latencies(port, args.scrapes)
        gzipped, gz_size = scrape_latencies(port, args.scrapes, gzip=True)
        slow, _ = scrape_latencies(baseline.server_address[1], args.baseline_scrapes)
        exporter.stop()
    floor = floor_latencies(page, args.scrapes)
    p50, p99 = median(fast) * 1000, percentile(fast, 99) * 1000
    g50, g99 = median(gzipped) * 1000, percentile(gzipped, 99) * 1000
    f50, f99 = median(floor) * 1000, percentile(floor, 99) * 1000
    b50, b99 = median(slow) * 1000, percentile(slow, 99) * 1000
    print(
        f"{args.inverters} inverters, {samples} samples, {size / 1e6:.1f} MB per scrape "
        f"({gz_size / 1e6:.2f} MB gzip), 2 concurrent scrapers, polling running"
    )
    print(
        f"this exporter, plain:     p50 {p50:7.1f} ms, p99 {p99:7.1f} ms "
        f"({len(fast)} scrapes; goal p50 <= 50 ms: {verdict(p50 <= 50)})"
    )
    print(
        f"this exporter, gzip:      p50 {g50:7.1f} ms, p99 {g99:7.1f} ms ({len(gzipped)} scrapes)"
    )
    print(
        f"floor (same body, bare socket, own process): p50 {f50:7.1f} ms, p99 {f99:7.1f} ms; "
        f"the server adds {p50 / f50:.2f}x at p50"
    )
    print(f"generate_latest baseline: p50 {b50:7.1f} ms, p99 {b99:7.1f} ms ({len(slow)} scrapes)")
    print(f"speed-up at p50: {b50 / p50:.1f}x (goal >= 10x: {verdict(b50 / p50 >= 10)})")


class _Telemetry:
    """The exporter's own registry as a collector, so the baseline serves the same samples."""

    def __init__(self, exporter: Exporter) -> None:
        self._registry = exporter.telemetry.registry

    def collect(self):  # type: ignore[no-untyped-def]
        return self._registry.collect()


if __name__ == "__main__":
    main()
