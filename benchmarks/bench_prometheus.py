"""Benchmark 17: what a real Prometheus holds for one replica with the default families.

One exporter process (discovery on, the default `metrics:` selection) polls a spawned
simulator of mixed homes (`--devices`, no latency) until it is ready; then a real Prometheus
(the Debian package) scrapes it every 15 s, as the shipped example config does, for
`--scrapes` scrapes. Printed: samples per scrape, the scrape's duration as Prometheus saw
it, head series, and Prometheus' resident memory and Go heap in use, per head series; and
the same extrapolated linearly to `--target` devices (default 120,000: four such replicas),
marked as not measured.

    python -m benchmarks.bench_prometheus [--devices 30000] [--scrapes 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.bench_large_fleet import inverters_for
from benchmarks.bench_replicas import free_port, write_config
from benchmarks.harness import load_average, machine
from exporter.sim import spawn
from tests.e2e.processes import exporter_command, prometheus_server, running, wait_for

INTERVAL = "15s"


def instant(prometheus: str, expr: str) -> float:
    r = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=30)
    result = r.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else float("nan")


def own_metrics(prometheus: str) -> dict[str, float]:
    """Prometheus' own gauges, from its /metrics (it does not scrape itself here)."""
    text = requests.get(f"{prometheus}/metrics", timeout=30).text
    wanted = ("prometheus_tsdb_head_series", "process_resident_memory_bytes",
              "go_memstats_heap_inuse_bytes")  # fmt: skip
    return {
        family.name: family.samples[0].value
        for family in text_string_to_metric_families(text)
        if family.name in wanted
    }


def measure(devices: int, scrapes: int) -> dict[str, Any]:
    inverters = inverters_for(devices)
    with (
        tempfile.TemporaryDirectory(prefix="bench-prometheus-") as tmp,
        spawn("--inverters", str(inverters)) as sim,
    ):
        directory = Path(tmp)
        config = write_config(sim, 10_000, directory)
        sim.pop("inverters")
        sim.pop("devices")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = exporter_command(
            "--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}"
        )
        with running(command, directory / "exporter.log"):
            started = time.monotonic()
            wait_for(lambda: requests.get(f"{base}/-/ready", timeout=5).ok, 3600, "readiness")
            ready = time.monotonic() - started
            prometheus_config = {
                "global": {"scrape_interval": INTERVAL, "scrape_timeout": "10s"},
                "scrape_configs": [
                    {"job_name": "podero", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                ],
            }
            with prometheus_server(directory, prometheus_config) as prometheus:
                idle = own_metrics(prometheus)["process_resident_memory_bytes"] / 1e6
                done = 'count_over_time(up{job="podero"}[1h])'

                def scraped() -> bool:
                    return instant(prometheus, done) >= scrapes

                wait_for(scraped, 60 + 20 * scrapes, f"{scrapes} scrapes")
                figures = {
                    "devices": devices,
                    "ready s": ready,
                    "samples": instant(prometheus, 'scrape_samples_scraped{job="podero"}'),
                    "scrape s": instant(
                        prometheus, 'max_over_time(scrape_duration_seconds{job="podero"}[1h])'
                    ),
                    "scrape p50 s": instant(
                        prometheus,
                        'quantile_over_time(0.5, scrape_duration_seconds{job="podero"}[1h])',
                    ),
                    "up": instant(prometheus, 'min_over_time(up{job="podero"}[1h])'),
                    "idle MB": idle,
                }
                own = own_metrics(prometheus)
                figures["head series"] = own["prometheus_tsdb_head_series"]
                figures["rss MB"] = own["process_resident_memory_bytes"] / 1e6
                figures["heap MB"] = own["go_memstats_heap_inuse_bytes"] / 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="*", help="sizes (default 30,000)")
    parser.add_argument("--scrapes", type=int, default=8)
    parser.add_argument("--target", type=int, default=120_000)
    args = parser.parse_args()
    print(f"machine: {machine()}; {load_average()}")
    for devices in args.devices or [30_000]:
        f = measure(devices, args.scrapes)
        per_series_kb = (f["rss MB"] - f["idle MB"]) * 1e3 / f["head series"]
        scale = args.target / devices
        print(
            f"{devices} devices (mixed homes), ready after {f['ready s']:.0f} s; Prometheus "
            f"scraping every {INTERVAL} for {args.scrapes} scrapes (up the whole time: "
            f"{f['up'] == 1}): {f['samples']:.0f} samples per scrape, scrape duration p50 "
            f"{f['scrape p50 s'] * 1000:.0f} ms, max {f['scrape s'] * 1000:.0f} ms; "
            f"{f['head series']:.0f} head series; Prometheus resident {f['rss MB']:.0f} MB "
            f"({f['idle MB']:.0f} MB before the first scrape: {per_series_kb:.2f} KB per head "
            f"series), Go heap in use {f['heap MB']:.0f} MB; {load_average()}"
        )
        print(
            f"  extrapolated to {args.target} devices (NOT measured, linear in the series): "
            f"{f['samples'] * scale:,.0f} samples per scrape interval, about "
            f"{(f['idle MB'] + per_series_kb * f['head series'] * scale / 1e3) / 1e3:.1f} GB "
            "resident in Prometheus after the same number of scrapes"
        )


if __name__ == "__main__":
    main()
