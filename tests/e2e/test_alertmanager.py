"""Real Prometheus and Alertmanager with the shipped rules and Alertmanager config: an alert
from the demo exporter reaches a webhook receiver, and the shipped inhibitions hold, both when
the exporter dies under a firing per-device alert and for each inhibit rule on its own."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import require_tool
from tests.e2e.processes import (
    demo_simulator_url,
    exporter_command,
    free_port,
    pin_values,
    prometheus_server,
    running,
    wait_for,
)
from tests.e2e.stack import RULES
from tests.project import ROOT

pytestmark = pytest.mark.e2e

ALERTMANAGER_CONFIG = ROOT / "alertmanager/alertmanager.yml"
# The alerts the exporter-death scenario needs at once; every other `for:` stays as shipped.
FAST = ("PoderoBatteryLow", "PoderoExporterDown")

Alert = dict[str, Any]


def alertmanager_binary() -> str:
    # Debian installs it as prometheus-alertmanager, upstream releases as alertmanager.
    return shutil.which("alertmanager") or require_tool("prometheus-alertmanager")


class WebhookReceiver:
    """A webhook endpoint on loopback that keeps every notification posted to it."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        lock = threading.Lock()
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/podero-alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def alerts(self, alertname: str, status: str = "firing") -> list[tuple[dict[str, Any], Alert]]:
        """(notification, alert) pairs received so far for this alert name and status."""
        return [
            (n, a)
            for n in list(self.notifications)
            for a in n["alerts"]
            if a["labels"]["alertname"] == alertname and a["status"] == status
        ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def config_for(receiver_url: str) -> dict[str, Any]:
    """The shipped Alertmanager config, sending to `receiver_url` at once: short group timings,
    the receiver's URL, absolute template paths. Routes and inhibitions stay as shipped."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = receiver_url
    config["templates"] = [str(ALERTMANAGER_CONFIG.parent / t) for t in config["templates"]]
    return dict(config)


@contextmanager
def alertmanager(tmp: Path, receiver_url: str) -> Iterator[str]:
    """A real Alertmanager on a free loopback port with the test config; yields its URL."""
    port = free_port()
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config_for(receiver_url)))
    cmd = [
        alertmanager_binary(),
        f"--config.file={tmp / 'alertmanager.yml'}",
        f"--storage.path={tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with running(cmd, tmp / "alertmanager.log"):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=2).ok, 30, "Alertmanager ready")
        yield url


def fast_rules() -> dict[str, Any]:
    """The shipped rules with `for:` dropped from the FAST alerts; expressions unchanged."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in FAST:
                rule["for"] = "0s"
    return dict(rules)


def am_alerts(url: str, **filters: str) -> list[Alert]:
    """Alertmanager's alerts (active, silenced and inhibited) matching label equalities."""
    params = {"filter": [f'{k}="{v}"' for k, v in filters.items()]}
    r = requests.get(f"{url}/api/v2/alerts", params=params, timeout=5)
    r.raise_for_status()
    return list(r.json())


@dataclass
class AlertingStack:
    prometheus: str
    alertmanager: str
    receiver: WebhookReceiver
    simulator: str
    exporter_instance: str
    exporter: subprocess.Popen[bytes]  # to kill it


@pytest.fixture
def alerting_stack(tmp_path: Path) -> Iterator[AlertingStack]:
    receiver = WebhookReceiver()
    port = free_port()
    with ExitStack() as stack:
        stack.callback(receiver.close)
        am_url = stack.enter_context(alertmanager(tmp_path, receiver.url))
        (tmp_path / "rules.yml").write_text(yaml.safe_dump(fast_rules()))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yml")],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [am_url.split("//")[1]]}]}]
            },
            "scrape_configs": [
                {"job_name": "podero", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            ],
        }
        log = tmp_path / "exporter.log"
        exporter = stack.enter_context(
            running(exporter_command("--demo", "--web.listen-address", f"127.0.0.1:{port}"), log)
        )
        prometheus = stack.enter_context(prometheus_server(tmp_path, config))
        simulator = demo_simulator_url(log)
        yield AlertingStack(prometheus, am_url, receiver, simulator, f"127.0.0.1:{port}", exporter)


def prometheus_query(url: str, expr: str) -> list[dict[str, Any]]:
    body = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def test_exporter_death_under_a_firing_alert_is_inhibited_not_resolved(
    alerting_stack: AlertingStack,
) -> None:
    s = alerting_stack
    fleet = requests.get(f"{s.simulator}/_sim/fleet", timeout=5).json()
    drained = fleet["inverters"][1]["inverter_id"]
    pin_values(s.simulator, drained, {"battery_charge_level_percent": 5})

    # 1. The drained battery's alert reaches the webhook, with its runbook and dashboard.
    notification, alert = wait_for(
        lambda: next(iter(s.receiver.alerts("PoderoBatteryLow")), None),
        60,
        "PoderoBatteryLow at the webhook",
    )
    assert notification["receiver"] == "operators"
    assert notification["groupLabels"] == {
        "alertname": "PoderoBatteryLow",
        "instance": s.exporter_instance,
    }
    labels, annotations = alert["labels"], alert["annotations"]
    assert labels["device_id"] == drained
    assert (labels["severity"], labels["scope"], labels["job"]) == ("warning", "device", "podero")
    assert annotations["summary"].endswith("is low (5%)")
    assert annotations["runbook_url"].endswith("/docs/runbooks/PoderoBatteryLow.md")
    assert annotations["dashboard"] == f"/d/podero-inverter?var-device_id={drained}"
    assert [a["labels"]["device_id"] for _, a in s.receiver.alerts("PoderoBatteryLow")] == [drained]

    # 2. The exporter dies: its series go stale, the exporter-wide alert takes over.
    s.exporter.kill()
    s.exporter.wait()
    wait_for(
        lambda: s.receiver.alerts("PoderoExporterDown"), 30, "PoderoExporterDown at the webhook"
    )
    assert not prometheus_query(s.prometheus, "podero_inverter_battery_charge_ratio")
    # Prometheus keeps the inverter's alert firing (keep_firing_for) ...
    kept = prometheus_query(s.prometheus, 'ALERTS{alertname="PoderoBatteryLow"}')
    assert [(a["metric"]["device_id"], a["metric"]["alertstate"]) for a in kept] == [
        (drained, "firing")
    ]
    # ... and Alertmanager holds it back, inhibited by PoderoExporterDown of the same instance.
    down = am_alerts(s.alertmanager, alertname="PoderoExporterDown")
    assert [a["labels"]["instance"] for a in down] == [s.exporter_instance]

    def inhibited() -> list[Alert] | None:
        battery = am_alerts(s.alertmanager, alertname="PoderoBatteryLow")
        return battery if all(a["status"]["inhibitedBy"] for a in battery) else None

    battery = wait_for(inhibited, 30, "PoderoBatteryLow to be inhibited")
    assert [a["labels"]["device_id"] for a in battery] == [drained]
    assert battery[0]["status"]["state"] == "suppressed"
    assert battery[0]["status"]["inhibitedBy"] == [down[0]["fingerprint"]]
    assert down[0]["status"] == {"state": "active", "inhibitedBy": [], "silencedBy": []}
    r = requests.get(
        f"{s.alertmanager}/api/v2/alerts", params={"inhibited": "false"}, timeout=5
    ).json()
    assert "PoderoBatteryLow" not in {a["labels"]["alertname"] for a in r}


def posted(alertname: str, **labels: str) -> dict[str, str]:
    """An alert's labels as Prometheus posts them: `scope` follows from the device label."""
    scope = "device" if "device_id" in labels else "exporter"
    return {"alertname": alertname, "job": "podero", "scope": scope, **labels}


# Synthetic alerts posted straight to Alertmanager: the sources of the shipped inhibit rules,
# and for each rule alerts it mutes and similar ones it must leave alone.
SOURCES = [
    posted("PoderoExporterDown", instance="down:1"),
    posted("PoderoAuthFailing", instance="auth:1"),
    posted("PoderoExporterAbsent", job="gone"),  # no instance label
    posted("PoderoDevicePollFailing", instance="ok:1", device_id="polls", kind="inverter"),
]
MUTED = [
    posted("PoderoBatteryLow", instance="down:1", device_id="a"),  # its exporter is down
    posted("PoderoHotWaterLow", instance="down:1", device_id="h"),  # its exporter is down
    posted("PoderoVehicleNotCharged", job="gone", instance="g:1", device_id="v"),  # no target
    posted("PoderoDeviceDataStale", instance="auth:1", device_id="h", kind="heat_pump"),  # auth
    posted("PoderoAuthFailing", instance="down:1"),
    posted("PoderoDevicePollFailing", instance="auth:1", device_id="b", kind="inverter"),  # auth
    posted("PoderoDeviceActionNeeded", instance="auth:1", device_id="w", kind="wallbox"),  # auth
    posted("PoderoDiscoveryFailing", instance="auth:1", org_id="o"),
    # no target
    posted("PoderoDeviceNoData", job="gone", instance="g:1", device_id="c", kind="inverter"),
    # its polls fail
    posted("PoderoDeviceDataStale", instance="ok:1", device_id="polls", kind="inverter"),
    posted("PoderoDeviceNoData", instance="ok:1", device_id="polls", kind="inverter"),
]
NOT_MUTED = [
    posted("PoderoBatteryLow", instance="ok:1", device_id="a"),  # another instance
    posted("PoderoVehicleNotCharged", instance="ok:1", device_id="v"),  # another instance
    posted("PoderoDiscoveryFailing", instance="ok:1", org_id="o"),
    posted("PoderoDeviceNoData", instance="g:1", device_id="c", kind="inverter"),  # another job
    # another device
    posted("PoderoDeviceDataStale", instance="ok:1", device_id="fine", kind="electric_vehicle"),
    posted("PoderoDeviceNotAuthenticated", instance="ok:1", device_id="polls", kind="inverter"),
    posted("PoderoBatteryLow", instance="ok:1", device_id="polls"),  # not what failing polls mute
]


def test_each_inhibit_rule_mutes_its_targets_only(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    try:
        with alertmanager(tmp_path, receiver.url) as url:
            now = datetime.now(UTC)
            firing = [
                {
                    "labels": labels,
                    "startsAt": now.isoformat(),
                    "endsAt": (now + timedelta(hours=1)).isoformat(),
                }
                for labels in SOURCES + MUTED + NOT_MUTED
            ]
            r = requests.post(f"{url}/api/v2/alerts", json=firing, timeout=5)
            assert r.ok, r.text

            def key(labels: dict[str, str]) -> str:
                return json.dumps(labels, sort_keys=True)

            expected = {key(labels) for labels in MUTED}
            last: dict[str, set[str]] = {}

            def settled() -> bool:
                # Alertmanager takes in posted alerts asynchronously: wait for all of them.
                listed = requests.get(f"{url}/api/v2/alerts", timeout=5).json()
                last["listed"] = {key(a["labels"]) for a in listed}
                last["inhibited"] = {key(a["labels"]) for a in listed if a["status"]["inhibitedBy"]}
                return len(last["listed"]) == len(firing) and last["inhibited"] == expected

            try:
                wait_for(settled, 10, "the posted alerts with the expected ones inhibited")
            except AssertionError:
                assert last["inhibited"] == expected  # shows which differ
                raise
    finally:
        receiver.close()
