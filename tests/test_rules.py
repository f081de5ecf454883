"""The shipped alert rules, Prometheus config and compose stack, checked statically and with
promtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.clock import Clock
from exporter.config import Config
from tests.conftest import require_tool
from tests.metric_names import exposed_names, metric_names, with_thresholds

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "prometheus/podero.rules.yml"


def test_every_metric_in_the_rules_is_exposed(sim_config: Config, clock: Clock) -> None:
    exposed = exposed_names(with_thresholds(sim_config), clock)
    used: set[str] = set()
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            used |= metric_names(rule["expr"])
    assert used, "no metric names found"
    assert not {n for n in used if n not in exposed}


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
