"""The real exporter process against the simulator, checked with promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.sim import spawn
from tests.conftest import VALUE_METRICS, require_tool, run_cli
from tests.e2e.processes import exporter_process, wait_for

pytestmark = pytest.mark.e2e

PER_INVERTER = (
    *VALUE_METRICS,
    "podero_device_data_timestamp_seconds",
    "podero_device_up",
    "podero_device_info",
)
INVENTORY = ("podero_device_authenticated", "podero_device_action_needed")
# Opt-in (config `metrics:`): the demo serves the defaults, so none of these.
OPT_IN = (
    "podero_inverter_connection_status",
    "podero_inverter_monitoring_status",
    "podero_inverter_solar_power_rating_watts",
    "podero_inverter_battery_capacity_joules",
    "podero_inverter_battery_connected",
    "podero_device_next_poll_timestamp_seconds",
    "podero_device_last_success_timestamp_seconds",
    "podero_device_smart_optimization_active",
)
EXPORTER_WIDE = (
    "podero_api_requests_total",
    "podero_api_request_duration_seconds",
    "podero_oauth_token_requests_total",
    "podero_oauth_token_expiry_timestamp_seconds",
    "podero_poll_duration_seconds",
    "podero_exporter_build_info",
)


def names_per_metric(text: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("kind", "inverter") == "inverter":  # the demo's homes have more
                found.setdefault(sample.name, set()).add(sample.labels.get("name", ""))
    return found


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )


def test_demo_serves_every_metric_for_every_inverter_and_passes_promtool(tmp_path: Path) -> None:
    with exporter_process(tmp_path, None, wait="/-/healthy") as exporter:
        proc, base = exporter.proc, exporter.base

        def complete() -> str | None:
            text = requests.get(f"{base}/metrics", timeout=5).text
            found = names_per_metric(text)
            ok = all(len(found.get(m, ())) == 3 for m in PER_INVERTER + INVENTORY)
            return text if ok else None

        text = wait_for(complete, 15, "every per-inverter metric for 3 inverters")
        assert proc.poll() is None
        found = names_per_metric(text)
        for metric in EXPORTER_WIDE:
            assert any(n.startswith(metric) for n in found), metric
        assert requests.get(f"{base}/-/ready", timeout=5).status_code == 200
        landing = requests.get(f"{base}/", timeout=5)
        assert landing.ok and "href='metrics'" in landing.text
        assert requests.get(f"{base}/nope", timeout=5).status_code == 404
        result = promtool_check(text)
        assert result.returncode == 0 and result.stdout == "" and result.stderr == "", (
            result.stdout + result.stderr
        )
        # Discovery is on in the demo: inventory metrics for every discovered inverter.
        for metric in INVENTORY:
            assert len(found.get(metric, ())) == 3, metric
        assert not set(OPT_IN) & set(found)
        assert (
            'manufacturer="' in text and 'podero_discovery_devices{kind="inverter",org_id="' in text
        )


def test_once_against_a_standalone_simulator(tmp_path: Path) -> None:
    with spawn("--inverters", "4", "--seed", "3") as sim:
        config = {
            "podero": {
                "base_url": sim["base_url"],
                "auth": {
                    "client_id": sim["client_id"],
                    "client_secret_file": str(tmp_path / "secret"),
                },
            },
            "inverters": [{**inv, "name": f"inv{i}"} for i, inv in enumerate(sim["inverters"])],
        }
        (tmp_path / "secret").write_text(sim["client_secret"] + "\n")
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        result = run_cli("--config.file", str(tmp_path / "config.yaml"), "--once")
        assert result.returncode == 0, result.stderr
        found = names_per_metric(result.stdout)
        assert found["podero_device_up"] == {"inv0", "inv1", "inv2", "inv3"}
        assert promtool_check(result.stdout).returncode == 0
        assert sim["client_secret"] not in result.stdout + result.stderr


def test_once_fails_when_no_inverter_succeeds(tmp_path: Path) -> None:
    with spawn("--inverters", "1") as sim:
        config = {
            "podero": {
                "base_url": sim["base_url"],
                "auth": {"client_id": sim["client_id"], "client_secret": "wrong"},
                "retry": {"attempts": 1},
            },
            "inverters": sim["inverters"],
        }
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        result = run_cli("--config.file", str(tmp_path / "config.yaml"), "--once")
        assert result.returncode == 1
        assert "podero_device_up" in result.stdout
        assert 'msg="poll failed"' in result.stderr
        assert 'endpoint=token status=401 reason="HTTP 401: invalid_client"' in result.stderr
