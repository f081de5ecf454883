"""The shipped alert rules, runbooks, Alertmanager and Prometheus configs and compose stack,
checked statically, with promtool and with amtool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.base.clock import Clock
from exporter.config.model import Config
from tests.conftest import require_tool
from tests.metric_names import exposed_names, metric_names, with_thresholds
from tests.project import ROOT

RULES = ROOT / "prometheus/podero.rules.yml"
RULE_TESTS = ROOT / "prometheus/podero.rules.test.yml"
ALERTMANAGER = ROOT / "alertmanager/alertmanager.yml"
RUNBOOKS = ROOT / "docs/runbooks"
# The alerts of the one vocabulary (issue 19, docs/alerting.md): silences, routes and
# dashboards name them, so a rename must be deliberate. One alert per concept, every kind.
ALERT_NAMES = {
    "PoderoBatteryLow",
    "PoderoGridExportHigh",
    "PoderoHotWaterLow",
    "PoderoVehicleNotCharged",
    "PoderoDeviceDataStale",
    "PoderoDeviceNoData",
    "PoderoDevicePollFailing",
    "PoderoDeviceNotAuthenticated",
    "PoderoDeviceActionNeeded",
    "PoderoAuthFailing",
    "PoderoDiscoveryFailing",
    "PoderoExporterDown",
    "PoderoExporterAbsent",
}
SCOPES = {"device", "exporter"}
# What the one vocabulary retired: none of it may remain in the shipped rules, Alertmanager
# config, operator resources or runbooks (docs/alerting.md's upgrade table names them once).
RETIRED = (
    "inverter_id",
    "podero_inverter_up",
    "podero_inverter_info",
    "podero_inverter_data_timestamp",
    "podero_inverter_last_success",
    "podero_inverter_next_poll",
    "podero_inverter_authenticated",
    "podero_inverter_action_needed",
    "podero_discovery_inverters",
    "PoderoInverter",
    "scope: inverter",
    'scope="inverter"',
)
RUNBOOK_SECTIONS = ("## What it means", "## What to check", "## What to do")


def rules() -> list[dict[str, Any]]:
    """The alerting rules (recording rules left out)."""
    return [
        r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
    ]


def recording_rules() -> list[dict[str, Any]]:
    return [
        r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r
    ]


def seconds(duration: str) -> int:
    """A Prometheus duration such as 15m, 1h or 0s (single unit) in seconds."""
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, f"unexpected duration {duration!r}"
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def test_every_metric_in_the_rules_is_exposed(sim_config: Config, clock: Clock) -> None:
    exposed = exposed_names(with_thresholds(sim_config), clock)
    used: set[str] = set()
    for rule in rules() + recording_rules():
        used |= metric_names(rule["expr"])
    assert used, "no metric names found"
    assert not {n for n in used if n not in exposed}


def test_the_alert_names_are_the_one_vocabularys() -> None:
    assert {r["alert"] for r in rules()} == ALERT_NAMES


def test_nothing_shipped_names_what_the_one_vocabulary_retired() -> None:
    shipped = [
        RULES,
        RULE_TESTS,
        ALERTMANAGER,
        *(ROOT / "alertmanager/templates").glob("*"),
        *(ROOT / "deploy/kubernetes/operator").glob("*.yaml"),
        *RUNBOOKS.glob("*.md"),
    ]
    # Not inside a longer name: the config key discovery.exclude_inverter_ids stays.
    found = {
        (p.relative_to(ROOT).as_posix(), word)
        for p in shipped
        for word in RETIRED
        if re.search(rf"(?<!\w){re.escape(word)}", p.read_text())
    }
    assert not found


def test_the_device_alerts_cover_every_kind_from_one_rule_each() -> None:
    """The PoderoDevice* alerts read the shared podero_device_* families and pick no kind, so
    a kind added to the exporter is alerted on without a new rule; their label `kind` says
    which it is."""
    device_alerts = [r for r in rules() if r["alert"].startswith("PoderoDevice")]
    assert {r["alert"] for r in device_alerts} == {
        "PoderoDeviceDataStale",
        "PoderoDeviceNoData",
        "PoderoDevicePollFailing",
        "PoderoDeviceNotAuthenticated",
        "PoderoDeviceActionNeeded",
    }
    for rule in device_alerts:
        names = metric_names(rule["expr"])
        assert names and all(n.startswith("podero_device_") for n in names), rule["alert"]
        assert "kind" not in rule["expr"], rule["alert"]
        assert "$labels.kind" in rule["annotations"]["description"], rule["alert"]


def test_every_alert_has_severity_scope_annotations_links_and_a_test() -> None:
    tests = RULE_TESTS.read_text()
    bases = set()
    for rule in rules():
        name, labels, annotations = rule["alert"], rule["labels"], rule["annotations"]
        assert labels["severity"] in ("info", "warning", "critical"), name
        assert labels["scope"] in SCOPES, name
        assert annotations["summary"] and annotations["description"], name
        base, _, path = annotations["runbook_url"].partition("/docs/runbooks/")
        assert path == f"{name}.md", name
        assert (RUNBOOKS / path).is_file(), f"{name}: no runbook {path}"
        bases.add(base)
        inverter_readings = all(
            n.startswith("podero_inverter_") for n in metric_names(rule["expr"])
        )
        if labels["scope"] == "device" and inverter_readings:
            link = "/d/podero-inverter?var-device_id={{ $labels.device_id }}"
        elif labels["scope"] == "device":  # the home: every device of the user, any kind
            link = "/d/podero-home?var-user_id={{ $labels.user_id }}"
        else:
            link = "/d/podero-fleet"
        assert annotations["dashboard"] == link, name
        assert f"alertname: {name}" in tests, f"{name} has no promtool test"
    # one prefix for all, so that a fork replaces it in one go (docs/alerting.md)
    assert len(bases) == 1 and next(iter(bases)).startswith("https://"), bases


def test_every_runbook_belongs_to_an_alert_and_answers_the_three_questions() -> None:
    names = {r["alert"] for r in rules()}
    runbooks = {p.stem: p.read_text() for p in RUNBOOKS.glob("*.md")}
    assert set(runbooks) == names
    for name, text in runbooks.items():
        assert text.startswith(f"# {name}\n"), name
        positions = [text.find(section) for section in RUNBOOK_SECTIONS]
        assert -1 not in positions and positions == sorted(positions), name


def test_alerts_about_the_exporters_series_outlast_the_takeover() -> None:
    """When the exporter dies, its series go stale at once: every alert on them must keep
    firing until PoderoExporterDown has fired, with a scrape interval to spare; and a stale
    device that a restart turns into one without data must not fall silent in between."""
    by_name = {r["alert"]: r for r in rules()}
    takeover = seconds(by_name["PoderoExporterDown"]["for"]) + 2 * 60  # a 2m scrape interval
    no_data = seconds(by_name["PoderoDeviceNoData"]["for"])
    for rule in rules():
        if rule["alert"] in ("PoderoExporterDown", "PoderoExporterAbsent"):
            assert "keep_firing_for" not in rule  # resolves as soon as the target is back
            continue
        kept = seconds(rule.get("keep_firing_for", "0s"))
        assert kept > takeover, rule["alert"]
        assert kept > no_data, rule["alert"]


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_mounts_exist_and_images_are_pinned() -> None:
    services = compose()["services"]
    assert set(services) == {"exporter", "prometheus", "alertmanager", "grafana"}
    assert "--demo" in services["exporter"]["command"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        image = service.get("image", "")
        if "build" not in service:
            assert re.match(r"^[\w./-]+:v?\d+\.\d+\.\d+$", image), f"{name}: {image} not pinned"
    assert services["alertmanager"]["image"] == "prom/alertmanager:v0.27.0"
    assert (ROOT / "Dockerfile").exists()


def test_compose_prometheus_sends_to_the_compose_alertmanager() -> None:
    services = compose()["services"]
    am = services["alertmanager"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    assert "./alertmanager:/etc/alertmanager:ro" in am["volumes"]
    assert "9093:9093" in am["ports"]
    assert "alertmanager" in services["prometheus"]["depends_on"]
    config = yaml.safe_load((ROOT / "prometheus/prometheus.example.yml").read_text())
    targets = [
        t
        for am_config in config["alerting"]["alertmanagers"]
        for static in am_config["static_configs"]
        for t in static["targets"]
    ]
    assert targets == ["alertmanager:9093"]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool")
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, check=False, cwd=ROOT / "prometheus"
    )


def test_promtool_check_rules() -> None:
    # Also proves this promtool knows keep_firing_for (Prometheus 2.42 and later).
    result = promtool("check", "rules", "podero.rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules()) + len(recording_rules())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", "podero.rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("config", ["prometheus.example.yml"])
def test_prometheus_example_config_passes_promtool(config: str) -> None:
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    used = compose()["services"]["prometheus"]["command"][0].split("/")[-1]
    assert used == config  # the compose stack uses the checked config


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("amtool")
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, check=False, cwd=ROOT / "alertmanager"
    )


def test_alertmanager_config_passes_amtool() -> None:
    result = amtool("check-config", "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 inhibit rules" in result.stdout
    assert "1 templates" in result.stdout


def test_alertmanager_routes_group_by_alert_and_instance() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    assert config["route"]["group_by"] == ["alertname", "instance"]
    receivers = {r["name"] for r in config["receivers"]}
    assert config["route"]["receiver"] in receivers
    assert {r.get("receiver", config["route"]["receiver"]) for r in config["route"]["routes"]} <= (
        receivers
    )


def test_inhibit_rules_name_shipped_alerts_and_scopes() -> None:
    names = {r["alert"] for r in rules()}
    for rule in yaml.safe_load(ALERTMANAGER.read_text())["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            match = re.fullmatch(r'(\w+)(?:=~|!=|=)"(.*)"', matcher)
            assert match, matcher
            label, alternatives = match.group(1), set(match.group(2).split("|"))
            if label == "alertname":
                assert alternatives <= names, matcher
            else:
                assert label == "scope" and alternatives <= SCOPES, matcher
        assert set(rule["equal"]) <= {"job", "instance", "device_id"}, rule


def test_the_template_turns_the_dashboard_path_into_a_grafana_link(tmp_path: Path) -> None:
    data = {
        "receiver": "operators",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "PoderoBatteryLow", "device_id": "a"},
                "annotations": {
                    "summary": "Battery of low is low (10%)",
                    "description": "The battery of inverter low (a) ...",
                    "runbook_url": "https://example.org/docs/runbooks/PoderoBatteryLow.md",
                    "dashboard": "/d/podero-inverter?var-device_id=a",
                },
            }
        ],
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    result = amtool(
        "template",
        "render",
        "--template.glob=templates/*.tmpl",
        '--template.text={{ template "podero.text" . }}',
        f"--template.data={tmp_path / 'data.json'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "[FIRING] Battery of low is low (10%)",
        "The battery of inverter low (a) ...",
        "Runbook: https://example.org/docs/runbooks/PoderoBatteryLow.md",
        "Dashboard: http://localhost:3000/d/podero-inverter?var-device_id=a",
    ]


def test_every_dashboard_link_names_a_shipped_dashboard_and_its_variables() -> None:
    boards = {
        board["uid"]: {v["name"] for v in board["templating"]["list"]}
        for board in (
            json.loads(p.read_text()) for p in (ROOT / "grafana/dashboards").glob("*.json")
        )
    }
    for rule in rules():
        link = rule["annotations"]["dashboard"]
        match = re.match(r"^/d/([\w-]+)(?:\?(.*))?$", link)
        assert match, (rule["alert"], link)
        uid, query = match.group(1), match.group(2) or ""
        assert uid in boards, (rule["alert"], uid)
        for variable in re.findall(r"var-(\w+)=", query):
            assert variable in boards[uid], (rule["alert"], variable)
