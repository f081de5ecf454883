"""A backfill of 17 days of a simulated fleet (three inverters, a heat pump, an electric
vehicle and a wallbox), made into TSDB blocks by the real `promtool tsdb create-blocks-from
openmetrics` and served by a real Prometheus, answers queries for backfilled buckets of each
kind with exactly the values the simulator serves for them."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.api.client import iso
from exporter.sim import demo_config, spawn
from tests.conftest import require_tool
from tests.e2e.processes import prometheus_server

pytestmark = pytest.mark.e2e

DAY = 86400
DAYS = 17  # beyond the default retention of 15 days


SEGMENTS = {
    "inverter": "inverters",
    "heat_pump": "heat-pumps",
    "electric_vehicle": "electric-vehicles",
}


def served_points(sim: dict[str, Any], device: dict[str, str], start: float) -> list[Any]:
    """The simulator's own answer for one device's day, over HTTP with a token."""
    token = requests.post(
        f"{sim['base_url']}/oauth2/token/",
        json={"grant_type": "client_credentials"},
        auth=(sim["client_id"], sim["client_secret"]),
        timeout=10,
    ).json()["access_token"]
    path = (
        f"/api/partners/v2.0/org/{device['org_id']}/users/{device['user_id']}"
        f"/{SEGMENTS[device.get('kind', 'inverter')]}/{device['inverter_id']}/data"
    )
    response = requests.get(
        sim["base_url"] + path,
        params={"from_datetime": iso(start), "to_datetime": iso(start + DAY)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return list(response.json()["data"])


def instant(prometheus: str, query: str, at: float) -> list[dict[str, Any]]:
    response = requests.get(
        f"{prometheus}/api/v1/query", params={"query": query, "time": f"{at:.0f}"}, timeout=10
    )
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_promtool_blocks_of_a_backfill_answer_with_the_simulators_values(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    end = math.floor(time.time() / DAY) * DAY  # today's midnight UTC: every bucket complete
    start = end - DAYS * DAY
    with spawn("--inverters", "3", log_path=str(tmp_path / "sim.log")) as sim:
        raw = demo_config(sim)
        raw["podero"]["max_requests_per_second"] = 1000
        devices = {  # configured as `inverters:` entries with their kind
            d["kind"]: {
                "org_id": d["org_id"],
                "user_id": d["user_id"],
                "inverter_id": d["device_id"],
                "kind": d["kind"],
                "name": d["kind"],
            }
            for d in sim["devices"]
        }
        assert set(devices) == {"heat_pump", "electric_vehicle", "wallbox"}  # one home's
        raw["inverters"].extend(devices.values())
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
        output = tmp_path / "history.om"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "exporter",
                "backfill",
                "--config.file",
                str(tmp_path / "config.yaml"),
                "--from",
                iso(start),
                "--to",
                iso(end),
                "--output",
                str(output),
                "--label",
                "job=podero",
                "--label",
                "instance=backfill",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        # Not a terminal: no progress line, only the summary.
        assert "\r" not in result.stderr
        kinds = "3 inverters, 1 heat pump, 1 electric vehicle, 1 wallbox"
        pages = 5 * DAYS  # a page per day of each device with a data series
        assert f"backfill complete: 6 devices ({kinds}), {pages} pages ({pages} fetched" in (
            result.stderr
        )
        assert f"{pages * 96} of {pages * 96} buckets with data" in result.stderr
        responses = requests.get(f"{sim['base_url']}/_sim/stats", timeout=10).json()["responses"]
        assert responses["inverter_data"] == {"200": 3 * DAYS}
        assert responses["heat_pump_data"] == responses["electric_vehicle_data"] == {"200": DAYS}
        inverter = sim["inverters"][1]
        day = start + 10 * DAY
        points = served_points(sim, inverter, day)
        first_points = served_points(sim, inverter, start)
        pump_points = served_points(sim, devices["heat_pump"], day)
        ev_points = served_points(sim, devices["electric_vehicle"], day)

    blocks = tmp_path / "data"
    created = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(output), str(blocks)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr + created.stdout
    assert len(list(blocks.iterdir())) >= DAYS * 12  # promtool cuts 2-hour blocks

    # Blocks older than the retention (15 days by default) would be deleted at start.
    with prometheus_server(
        tmp_path, {"global": {}}, "--storage.tsdb.retention.time=10y", storage=blocks
    ) as prometheus:
        selector = f'{{device_id="{inverter["inverter_id"]}",job="podero",instance="backfill"}}'
        noon = next(p for p in points if p["time"].endswith("T12:00:00Z"))
        at = day + 12 * 3600
        assert noon["solar_production_w"] > 0
        for name, field, scale in (
            ("podero_inverter_solar_production_watts", "solar_production_w", 1.0),
            ("podero_inverter_battery_charge_ratio", "battery_charge_level_percent", 0.01),
            ("podero_inverter_price", "price", 1.0),
        ):
            found = instant(prometheus, name + selector, at)
            assert len(found) == 1, (name, found)
            assert float(found[0]["value"][1]) == noon[field] * scale, name
        # The energy counter one bucket into the range: the first bucket's energy.
        found = instant(
            prometheus, "podero_inverter_household_energy_joules_total" + selector, start + 900
        )
        assert float(found[0]["value"][1]) == first_points[0]["household_consumption_w"] * 900
        # The info series carries the inventory, as the live exporter's does.
        info = instant(prometheus, "podero_device_info" + selector, at)
        assert info[0]["metric"]["manufacturer"] and info[0]["metric"]["name"] == "garage-graz"
        # A heat pump's and an EV's bucket (the EV's at night, plugged in at home).
        for device, found_points, at_time, checks in (
            (
                devices["heat_pump"],
                pump_points,
                at,
                (
                    ("podero_heat_pump_hot_water_temperature_celsius", "hot_water_temp", 1.0),
                    ("podero_heat_pump_inlet_temperature_celsius", "inlet_temp_act", 1.0),
                ),
            ),
            (
                devices["electric_vehicle"],
                ev_points,
                day + 22 * 3600,
                (
                    ("podero_electric_vehicle_battery_level_ratio", "battery_level", 0.01),
                    ("podero_electric_vehicle_plugged_in", "is_plugged_in", 1.0),
                ),
            ),
        ):
            point = next(p for p in found_points if p["time"] == iso(at_time))
            device_selector = f'{{device_id="{device["inverter_id"]}",job="podero"}}'
            for name, field, scale in checks:
                found = instant(prometheus, name + device_selector, at_time)
                assert len(found) == 1, (name, found)
                assert float(found[0]["value"][1]) == float(point[field]) * scale, name
        assert ev_points[22 * 4]["is_plugged_in"] is True
        wallbox = instant(prometheus, 'podero_device_info{kind="wallbox"}', at)
        assert [w["metric"]["device_id"] for w in wallbox] == [devices["wallbox"]["inverter_id"]]
