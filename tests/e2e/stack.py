"""A demo exporter scraped by a real Prometheus server with the shipped rules loaded."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import require_tool
from tests.e2e.processes import demo_simulator_url, exporter_command, free_port, running, wait_for

RULES = Path(__file__).resolve().parents[2] / "prometheus/podero.rules.yml"


@dataclass
class Stack:
    exporter: str
    prometheus: str
    simulator: str
    log: Path


def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("stack")
    port, prom_port = free_port(), free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "podero", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp / "exporter.log"
    with (
        running(exporter_command("--demo", "--web.listen-address", f"127.0.0.1:{port}"), log),
        running(
            [
                prometheus_bin,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            tmp / "prometheus.log",
        ),
    ):
        prometheus = f"http://127.0.0.1:{prom_port}"
        wait_for(
            lambda: requests.get(f"{prometheus}/-/ready", timeout=2).ok,
            60,
            "Prometheus to be ready",
        )
        simulator = demo_simulator_url(log)
        yield Stack(f"http://127.0.0.1:{port}", prometheus, simulator, log)


def query(stack: Stack, expr: str) -> list[dict[str, object]]:
    r = requests.get(f"{stack.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def has_data(result: list[dict[str, object]]) -> bool:
    values = [float(s["value"][1]) for s in result]  # type: ignore[index]
    return any(not math.isnan(v) for v in values)
