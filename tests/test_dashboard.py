"""The shipped Grafana dashboard and its provisioning, checked statically."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import yaml

from exporter.clock import Clock
from exporter.config import Config
from tests.metric_names import exposed_names, metric_names, with_thresholds

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "grafana/dashboards/podero-inverters.json"


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def data_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_queries() -> list[str]:
    queries = [t["expr"] for p in data_panels() for t in p["targets"]]
    queries += [v["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return queries


def test_dashboard_json_is_what_the_builder_produces() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_dashboard", ROOT / "grafana/build_dashboard.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text() == module.render(), "run python grafana/build_dashboard.py"


def test_every_panel_has_title_description_unit_and_templated_datasource() -> None:
    panels = data_panels()
    assert len(panels) >= 17
    for panel in panels:
        assert panel["title"], panel
        assert panel.get("description"), panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for t in panel["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_units_fit_the_metrics() -> None:
    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in data_panels()}
    assert units["Solar production"] == "watt"
    assert units["Battery charge"] == "percentunit"
    assert units["Mean battery charge"] == "percentunit"
    assert units["Data age"] == "s"
    assert units["API requests by status code"] == "reqps"


def test_no_inputs_and_no_hard_coded_datasource() -> None:
    text = DASHBOARD.read_text()
    board = dashboard()
    assert "__inputs" not in board
    uids = set(re.findall(r'"uid": "([^"]*)"', text))
    assert uids == {"${datasource}", "podero-inverters"}
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["query"].startswith("label_values(")
    assert variables["name"]["multi"] and variables["name"]["includeAll"]
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_required_panels_exist() -> None:
    titles = {p["title"] for p in data_panels()}
    assert {
        "Inverters reporting",
        "Stale inverters",
        "Solar production",
        "Grid export",
        "Grid import",
        "Mean battery charge",
        "Household consumption",
        "Grid export and import",
        "Battery power",
        "Battery charge",
        "Price",
        "Data age",
        "API requests by status code",
        "API request latency p95",
        "Token expiry",
        "Poll duration p95",
        "Inverters by manufacturer and model",
        "Inverters needing action",
    } <= titles
    battery = next(p for p in data_panels() if p["title"] == "Battery charge")
    assert any("threshold" in t["expr"] for t in battery["targets"])
    power = next(p for p in data_panels() if p["title"] == "Battery power")
    assert {t["legendFormat"] for t in power["targets"]} == {
        "{{name}} charging",
        "{{name}} discharging",
    }


def test_every_metric_in_the_dashboard_is_exposed(sim_config: Config, clock: Clock) -> None:
    exposed = exposed_names(with_thresholds(sim_config), clock)
    used = set().union(*(metric_names(q) for q in dashboard_queries()))
    assert used, "no metric names found"
    assert not {n for n in used if n not in exposed}


def test_provisioning_files() -> None:
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    boards = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/podero.yml").read_text())
    assert boards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
