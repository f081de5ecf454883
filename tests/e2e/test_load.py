"""50 concurrent scrapers for 30 s against an exporter polling 1,000 simulated inverters:
no scrape fails."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import pytest

from exporter.sim import spawn
from tests.e2e.processes import exporter_process

pytestmark = pytest.mark.e2e

SCRAPERS = 50
SECONDS = 30.0


def test_50_concurrent_scrapers_for_30s(tmp_path: Path) -> None:
    with spawn("--inverters", "1000") as sim:
        raw = {
            "podero": {
                "base_url": sim["base_url"],
                "auth": {"client_id": sim["client_id"], "client_secret": sim["client_secret"]},
                "max_concurrency": 16,
                "max_requests_per_second": 1000,
            },
            "inverters": sim["inverters"],
        }
        # Ready means the first cycle over 1,000 inverters is done.
        with exporter_process(tmp_path, raw, timeout=60) as exporter:
            proc, port = exporter.proc, exporter.port
            results: list[tuple[int, int, int]] = []
            errors: list[str] = []
            lock = threading.Lock()
            deadline = time.monotonic() + SECONDS

            def scraper() -> None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                while time.monotonic() < deadline:
                    try:
                        connection.request("GET", "/metrics")
                        response = connection.getresponse()
                        body = response.read()
                        length = int(response.getheader("Content-Length") or -1)
                        with lock:
                            results.append((response.status, len(body), length))
                    except (OSError, http.client.HTTPException) as exc:
                        with lock:
                            errors.append(repr(exc))
                        connection.close()
                        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.close()

            threads = [threading.Thread(target=scraper) for _ in range(SCRAPERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            assert len(results) >= SCRAPERS
            assert all(status == 200 for status, _, _ in results)
            assert all(size == length and size > 100_000 for _, size, length in results)
            assert proc.poll() is None
