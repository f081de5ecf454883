"""The exporter in demo mode scraped by a real Prometheus server with the rules loaded:
every dashboard query returns data, every rule is healthy, and a drained battery makes
PoderoBatteryLow go pending for that inverter only."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import require_tool
from tests.e2e.processes import exporter_command, free_port, running, wait_for
from tests.test_dashboard_and_rules import RULES, dashboard, data_panels

pytestmark = pytest.mark.e2e

# How the test stands in for Grafana: the values Grafana would put in for the variables.
VARIABLES = {"$job": "podero", "$name": ".*", "$__rate_interval": "30s"}


def substitute(expr: str) -> str:
    for key in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(key, VARIABLES[key])
    return expr


@dataclass
class Stack:
    exporter: str
    prometheus: str
    simulator: str
    log: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
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
        simulator = wait_for(
            lambda: (
                (m := re.search(r"simulated Podero API at (http://[\d.:]+)", log.read_text()))
                and m.group(1)
            ),
            20,
            "the demo's simulator address",
        )
        yield Stack(f"http://127.0.0.1:{port}", prometheus, simulator, log)


def query(stack: Stack, expr: str) -> list[dict[str, object]]:
    r = requests.get(f"{stack.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def has_data(result: list[dict[str, object]]) -> bool:
    values = [float(s["value"][1]) for s in result]  # type: ignore[index]
    return any(not math.isnan(v) for v in values)


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    exprs = {substitute(t["expr"]): p["title"] for p in data_panels() for t in p["targets"]}

    def all_have_data() -> bool:
        return all(has_data(query(stack, e)) for e in exprs)

    try:
        wait_for(all_have_data, 120, "every dashboard query to return data")
    except AssertionError:
        empty = {title: e for e, title in exprs.items() if not has_data(query(stack, e))}
        raise AssertionError(f"queries without data: {json.dumps(empty, indent=1)}") from None


def test_every_dashboard_variable_has_values(stack: Stack) -> None:
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
        assert match, variable["query"]
        selector, label = substitute(match.group(1)), match.group(2)

        def values(selector: str = selector, label: str = label) -> list[str] | None:
            r = requests.get(
                f"{stack.prometheus}/api/v1/label/{label}/values",
                params={"match[]": selector},
                timeout=10,
            )
            return list(r.json()["data"]) or None

        found = wait_for(values, 60, f"values of {variable['name']}")
        if variable["name"] == "name":
            listed = requests.get(f"{stack.exporter}/api/v1/inverters", timeout=5).json()
            assert set(found) == {i["name"] for i in listed["inverters"]}
            assert len(found) == 3


def test_every_rule_is_loaded_and_healthy(stack: Stack) -> None:
    expected = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}

    def healthy() -> list[dict[str, str]] | None:
        groups = requests.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()["data"][
            "groups"
        ]
        rules = [r for g in groups for r in g["rules"]]
        evaluated = all(r.get("lastEvaluation", "").startswith("20") for r in rules)
        return rules if rules and evaluated else None

    rules = wait_for(healthy, 30, "rules to be evaluated")
    assert {r["name"] for r in rules} == expected
    assert {r["name"]: r["health"] for r in rules} == {name: "ok" for name in expected}


def test_draining_one_battery_makes_only_that_inverter_pending(stack: Stack) -> None:
    fleet = requests.get(f"{stack.simulator}/_sim/fleet", timeout=5).json()
    drained = fleet["inverters"][1]["inverter_id"]
    r = requests.post(
        f"{stack.simulator}/_sim/override",
        timeout=5,
        json={"inverter_id": drained, "values": {"battery_charge_level_percent": 5}},
    )
    assert r.ok

    def pending() -> list[dict[str, object]] | None:
        result = query(stack, 'ALERTS{alertname="PoderoBatteryLow"}')
        return result or None

    alerts = wait_for(pending, 60, "PoderoBatteryLow to go pending")
    assert [a["metric"]["inverter_id"] for a in alerts] == [drained]  # type: ignore[index]
    assert alerts[0]["metric"]["alertstate"] == "pending"  # type: ignore[index]
    listed = requests.get(f"{stack.exporter}/api/v1/inverters", timeout=5).json()["inverters"]
    name = next(i["name"] for i in listed if i["inverter_id"] == drained)
    assert alerts[0]["metric"]["name"] == name  # type: ignore[index]
    ratio = query(stack, f'podero_inverter_battery_charge_ratio{{inverter_id="{drained}"}}')
    assert float(ratio[0]["value"][1]) == 0.05  # type: ignore[index]
