"""A demo exporter scraped by a real Prometheus server with the shipped rules loaded."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.e2e.processes import (
    demo_simulator_url,
    exporter_command,
    free_port,
    prometheus_server,
    running,
)
from tests.project import ROOT

RULES = ROOT / "prometheus/podero.rules.yml"


@dataclass
class Stack:
    exporter: str
    prometheus: str
    simulator: str
    log: Path


def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "podero", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    }
    log = tmp / "exporter.log"
    with (
        running(exporter_command("--demo", "--web.listen-address", f"127.0.0.1:{port}"), log),
        prometheus_server(tmp, config) as prometheus,
    ):
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
