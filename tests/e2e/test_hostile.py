"""Hostile input against the real exporter process (issue 11): one simulated fleet where some
inverters trickle, send endless or inflating bodies, carry hostile strings or a broken
forecast, and the token endpoint sends an absurd lifetime. The process must become ready,
serve every page as valid UTF-8, give the healthy inverters their data, and stay small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.sim import Faults, SimFleet, SimulatedApi, start_simulator
from tests.e2e.processes import exporter_process, wait_for

pytestmark = pytest.mark.e2e

INVERTERS = 8
PEAK_RSS_LIMIT_KB = 300 * 1024


def peak_rss_kb(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def test_hostile_api_leaves_the_healthy_inverters_served(tmp_path: Path) -> None:
    fleet = SimFleet(seed=5, inverters=INVERTERS)
    ids = [inv.id for inv in fleet.inverters]
    trickle, endless, bomb, strings, forecast = ids[:5]
    healthy = ids[3:]  # the strings and forecast inverters' data is fine: they count too
    api = SimulatedApi(
        fleet,
        faults=Faults(
            trickle_inverters=(trickle,),
            trickle_interval_s=0.2,
            endless_inverters=(endless,),
            gzip_bomb_inverters=(bomb,),
            gzip_bomb_mib=256,
            hostile_inverters=(strings,),
            future_nan_inverters=(forecast,),
            token_expires_in_raw="1e999",
        ),
    )
    sim = start_simulator(api)
    info = sim.describe()
    config = {
        "podero": {
            "base_url": info["base_url"],
            "auth": {"client_id": info["client_id"], "client_secret": info["client_secret"]},
            # Short for the trickle, long enough that decompressing the bomb's first 16 MiB
            # finishes first on a loaded machine (it takes ~0.1 s on an idle one).
            "timeout_seconds": 6,
            "retry": {"attempts": 1},
            "max_concurrency": 2,
        },
        "discovery": {"org_ids": info["org_ids"]},
        "metrics": {"enable": ["schedule"]},  # the last-success times, compared below
    }
    try:
        with exporter_process(tmp_path, config, timeout=30) as exporter:
            # Ready: the first cycle ended although a trickle held a worker for its deadline.
            def polled() -> dict[str, dict[str, float]] | None:
                text = exporter.get("/metrics").content.decode("utf-8")
                found: dict[str, dict[str, float]] = {}
                for family in text_string_to_metric_families(text):
                    for s in family.samples:
                        if s.labels.get("kind", "inverter") == "inverter":
                            found.setdefault(s.name, {})[s.labels.get("device_id", "")] = s.value
                ups = found.get("podero_device_up", {})
                return found if len(ups) == INVERTERS else None

            found = wait_for(polled, 30, "a poll of every inverter")
            up = found["podero_device_up"]
            assert {i: up[i] for i in healthy} == dict.fromkeys(healthy, 1.0)
            assert {up[trickle], up[endless], up[bomb]} == {0.0}
            solar = found["podero_inverter_solar_production_watts"]
            assert set(solar) == set(healthy)
            assert found["podero_render_errors_total"] == {"": 0.0}
            expiry = found["podero_oauth_token_expiry_timestamp_seconds"][""]
            assert expiry - found["podero_device_last_success_timestamp_seconds"][healthy[0]] < (
                86400 + 60
            )

            page = exporter.get("/").content.decode("utf-8")
            assert "&lt;script&gt;" in page and "<script>alert" not in page
            rows = json.loads(exporter.get("/api/v1/inverters").content)["inverters"]
            errors = {r["device_id"]: r["last_error"] for r in rows}
            assert errors[trickle] == "no complete answer within 6s"
            assert errors[endless].startswith("body too large: more than 16777216 bytes")
            assert errors[bomb].startswith("body too large: more than 16777216 bytes (gzip")
            assert exporter.get("/-/ready").status_code == 200
            assert peak_rss_kb(exporter.proc.pid) < PEAK_RSS_LIMIT_KB
    finally:
        sim.stop()
