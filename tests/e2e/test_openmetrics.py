"""A real Prometheus scraping the demo exporter twice, once as OpenMetrics 1.0 and once in the
classic text format, stores the same series (names and labels) from both.

Prometheus before 2.49 has no `scrape_protocols` and always asks for OpenMetrics first, so both
jobs go through a small loopback proxy that forwards to /metrics: for the classic job it asks
for `text/plain; version=0.0.4` only; for the other it passes Prometheus' own Accept header. The
proxy records the Content-Type each job was answered with, so the test knows which format each
job ingested. Where Prometheus knows `scrape_protocols`, the jobs say them too.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.conftest import require_tool
from tests.e2e.processes import exporter_process, prometheus_server, wait_for

pytestmark = pytest.mark.e2e

CLASSIC_ACCEPT = "text/plain;version=0.0.4"
PROTOCOLS = {"classic": "PrometheusText0.0.4", "openmetrics": "OpenMetricsText1.0.0"}


@contextmanager
def accept_proxy(upstream: str, answered: dict[str, set[str]]) -> Iterator[str]:
    """A loopback proxy: GET /<job> fetches upstream /metrics, as the classic format for the
    job "classic", else with the scraper's own Accept; records each job's Content-Type."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            job = self.path.strip("/")
            accept = CLASSIC_ACCEPT if job == "classic" else self.headers.get("Accept", "")
            answer = requests.get(f"{upstream}/metrics", headers={"Accept": accept}, timeout=10)
            answered.setdefault(job, set()).add(answer.headers["Content-Type"])
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers["Content-Type"])
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def knows_scrape_protocols() -> bool:
    out = subprocess.run(
        [require_tool("prometheus"), "--version"], capture_output=True, text=True, check=False
    )
    found = re.search(r"version (\d+)\.(\d+)", out.stdout + out.stderr)
    return found is not None and (int(found[1]), int(found[2])) >= (2, 49)


def stored_series(prometheus: str, job: str) -> set[frozenset[tuple[str, str]]]:
    """Every series the job's last scrape stored, without the job label."""
    answer = requests.get(
        f"{prometheus}/api/v1/query", params={"query": f'{{job="{job}"}}'}, timeout=10
    ).json()
    return {
        frozenset((k, v) for k, v in r["metric"].items() if k != "job")
        for r in answer["data"]["result"]
    }


def test_openmetrics_and_classic_scrapes_store_the_same_series(tmp_path: Path) -> None:
    answered: dict[str, set[str]] = {}
    with (
        exporter_process(tmp_path, None) as exporter,
        accept_proxy(exporter.base, answered) as proxy,
    ):
        jobs = []
        for job, protocol in PROTOCOLS.items():
            scrape: dict[str, object] = {"job_name": job, "metrics_path": f"/{job}"}
            if knows_scrape_protocols():
                scrape["scrape_protocols"] = [protocol]
            jobs.append({**scrape, "static_configs": [{"targets": [proxy]}]})
        config = {"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}
        with prometheus_server(tmp_path, config) as prometheus:
            differences: list[object] = []

            def same_series() -> tuple[set[frozenset[tuple[str, str]]], ...] | None:
                om = stored_series(prometheus, "openmetrics")
                classic = stored_series(prometheus, "classic")
                # OpenMetrics' `_created` samples, which the classic page no longer carries.
                om_only = {s for s in om if dict(s)["__name__"].endswith("_created")}
                differences[:] = [len(classic), sorted(map(sorted, (om - om_only) ^ classic))[:5]]
                return (om, om_only) if len(classic) > 150 and om - om_only == classic else None

            try:
                om, created = wait_for(same_series, 60, "the same series from both jobs")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; differing series: {differences}") from None
    assert answered["openmetrics"] == {"application/openmetrics-text; version=1.0.0; charset=utf-8"}
    assert answered["classic"] == {"text/plain; version=0.0.4; charset=utf-8"}
    names = {dict(s)["__name__"] for s in om}
    assert "podero_inverter_solar_energy_joules_total" in names
    assert "podero_device_info" in names
    # Prometheus before 3.0 stores OpenMetrics' `_created` samples as series of their own.
    assert {dict(s)["__name__"] for s in created} <= {
        n.removesuffix("_total") + "_created" for n in names
    } | {n.removesuffix("_count") + "_created" for n in names}
