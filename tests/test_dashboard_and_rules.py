"""The shipped Grafana dashboard, provisioning, compose stack and alert rules, checked
statically and with promtool."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.clock import FakeClock
from exporter.config import Config
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "grafana/dashboards/podero-inverters.json"
RULES = ROOT / "prometheus/podero.rules.yml"


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def data_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_queries() -> list[str]:
    queries = [t["expr"] for p in data_panels() for t in p["targets"]]
    queries += [v["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return queries


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:podero|process)_[a-z0-9_]+)", expr))
    return {
        re.sub(r"_(bucket|sum|count)$", "", n)
        if n.endswith(("_bucket", "_sum", "_count")) and "duration" in n
        else n
        for n in names
    }


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


def exposed_names(config: Config, clock: FakeClock) -> set[str]:
    exporter = Exporter(config, clock)
    exporter.poller.poll_all()
    text = exporter.page.render().decode()
    exporter.stop()
    return {f.name for f in text_string_to_metric_families(text)} | {
        s.name for f in text_string_to_metric_families(text) for s in f.samples
    }


def test_every_metric_in_dashboard_and_rules_is_exposed(
    sim_config: Config, clock: FakeClock
) -> None:
    raw = sim_config.model_dump(mode="json")
    raw["podero"]["auth"]["client_secret"] = sim_config.podero.auth.secret().get_secret_value()
    raw["thresholds"] = {"battery_low_percent": 15, "grid_export_high_watts": 7000}
    exposed = exposed_names(Config.model_validate(raw), clock)
    used = set().union(*(metric_names(q) for q in dashboard_queries()))
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= metric_names(rule["expr"])
    assert used, "no metric names found"
    missing = {n for n in used if n not in exposed}
    assert not missing


def test_provisioning_files() -> None:
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    boards = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/podero.yml").read_text())
    assert boards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_mounts_exist_and_images_are_pinned() -> None:
    services = compose()["services"]
    assert set(services) == {"exporter", "prometheus", "grafana"}
    assert "--demo" in services["exporter"]["command"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        image = service.get("image", "")
        if "build" not in service:
            assert re.match(r"^[\w./-]+:v?\d+\.\d+\.\d+$", image), f"{name}: {image} not pinned"
    assert (ROOT / "Dockerfile").exists()


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool")
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, check=False, cwd=ROOT / "prometheus"
    )


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", "podero.rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", "podero.rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_severity_summary_description_and_a_test() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    tests = (ROOT / "prometheus/podero.rules.test.yml").read_text()
    names = {r["alert"] for r in rules}
    assert {
        "PoderoBatteryLow",
        "PoderoGridExportHigh",
        "PoderoInverterDataStale",
        "PoderoInverterPollFailing",
        "PoderoAuthFailing",
        "PoderoExporterDown",
        "PoderoInverterNotAuthenticated",
        "PoderoInverterActionNeeded",
    } <= names
    for rule in rules:
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert f"alertname: {rule['alert']}" in tests


@pytest.mark.parametrize("config", ["prometheus.example.yml"])
def test_prometheus_example_config_passes_promtool(config: str) -> None:
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    used = compose()["services"]["prometheus"]["command"][0].split("/")[-1]
    assert used == config  # the compose stack uses the checked config
