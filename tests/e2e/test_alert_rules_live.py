"""The shipped rules loaded by a real Prometheus scraping a demo exporter: every rule is healthy,
the PoderoDevice* alerts' series arrive from every kind, a drained battery makes
PoderoBatteryLow go pending for that inverter only, cold hot water makes PoderoHotWaterLow go
pending for that heat pump only, and the vehicle rule's time-of-day join finds every
vehicle's charged-by time in UTC."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
import requests
import yaml

from tests.e2e.processes import pin_values, wait_for
from tests.e2e.stack import RULES, Stack, demo_stack, query

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from demo_stack(tmp_path_factory)


def test_every_rule_is_loaded_and_healthy(stack: Stack) -> None:
    expected = {
        r.get("alert", r.get("record"))
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
    }

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


POLLED = {"inverter", "heat_pump", "electric_vehicle"}


def epoch(stamp: str) -> float:
    """Prometheus' RFC 3339 time (nanoseconds, `Z`) as seconds since the epoch."""
    match = re.fullmatch(r"([\d-]+T[\d:]+)(\.\d+)?(Z|[+-][\d:]+)", stamp)
    assert match, stamp
    seconds = dt.datetime.fromisoformat(match[1] + ("+00:00" if match[3] == "Z" else match[3]))
    return seconds.timestamp() + float(match[2] or 0)


def test_the_demo_as_it_starts_has_one_alert_the_readme_names(stack: Stack) -> None:
    """README, "Two commands": no threshold alert fires in the demo; its third inverter needs
    its owner's action, so PoderoDeviceActionNeeded goes pending at once (for that one)."""

    def everything_polled() -> float | None:
        # 3 inverters, a heat pump and a vehicle up, and the exporter's target known.
        up = query(stack, 'count(podero_device_up == 1) + count(up{job="podero"} == 1)')
        return float(up[0]["value"][0]) if up and float(up[0]["value"][1]) == 6 else None  # type: ignore[index]

    since = wait_for(everything_polled, 30, "every demo device to be polled and scraped")

    def evaluated_after() -> bool:
        groups = requests.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()["data"]
        stamps = [epoch(g["lastEvaluation"]) for g in groups["groups"]]
        return bool(stamps) and min(stamps) > since

    wait_for(evaluated_after, 30, "the rules to be evaluated on the polled fleet")
    fleet = requests.get(f"{stack.simulator}/_sim/fleet", timeout=5).json()
    third = fleet["inverters"][2]["inverter_id"]
    found = query(stack, "ALERTS")
    alerts = {
        tuple(a["metric"].get(k) for k in ("alertname", "device_id", "alertstate"))  # type: ignore[attr-defined]
        for a in found
    }
    assert alerts == {("PoderoDeviceActionNeeded", third, "pending")}  # firing after 30 minutes
    name = found[0]["metric"]["name"]  # type: ignore[index]
    readme = " ".join((RULES.parents[1] / "README.md").read_text().split())
    assert f"the third simulated inverter (`{name}`) needs its owner's action" in readme


def test_the_device_alerts_series_arrive_from_every_kind(stack: Stack) -> None:
    """What the PoderoDevice* alerts read, per kind: the polled kinds' up and data timestamps
    (PoderoDeviceDataStale, NoData, PollFailing), every kind's authentication and actions
    (PoderoDeviceNotAuthenticated, ActionNeeded; wallboxes too, never polled)."""

    def kinds(expr: str) -> set[str]:
        return {s["metric"]["kind"] for s in query(stack, f"count by (kind) ({expr})")}  # type: ignore[index]

    wanted = {
        "podero_device_up": POLLED,
        "podero_device_data_timestamp_seconds": POLLED,
        "podero_device_authenticated": POLLED | {"wallbox"},
        "max without (action) (podero_device_action_needed)": POLLED | {"wallbox"},
    }

    def arrived() -> dict[str, set[str]] | None:
        got = {expr: kinds(expr) for expr in wanted}
        return got if got == wanted else None

    wait_for(arrived, 30, "the shared device series of every kind")


def test_draining_one_battery_makes_only_that_inverter_pending(stack: Stack) -> None:
    fleet = requests.get(f"{stack.simulator}/_sim/fleet", timeout=5).json()
    drained = fleet["inverters"][1]["inverter_id"]
    pin_values(stack.simulator, drained, {"battery_charge_level_percent": 5})

    def pending() -> list[dict[str, object]] | None:
        result = query(stack, 'ALERTS{alertname="PoderoBatteryLow"}')
        return result or None

    alerts = wait_for(pending, 60, "PoderoBatteryLow to go pending")
    assert [a["metric"]["device_id"] for a in alerts] == [drained]  # type: ignore[index]
    assert alerts[0]["metric"]["alertstate"] == "pending"  # type: ignore[index]
    listed = requests.get(f"{stack.exporter}/api/v1/inverters", timeout=5).json()["inverters"]
    name = next(i["name"] for i in listed if i["device_id"] == drained)
    assert alerts[0]["metric"]["name"] == name  # type: ignore[index]
    ratio = query(stack, f'podero_inverter_battery_charge_ratio{{device_id="{drained}"}}')
    assert float(ratio[0]["value"][1]) == 0.05  # type: ignore[index]


def devices(stack: Stack, kind: str) -> list[dict[str, str]]:
    """The exporter's devices of a kind, once discovery has found them."""

    def listed() -> list[dict[str, str]] | None:
        url = f"{stack.exporter}/api/v1/devices?kind={kind}"
        rows = requests.get(url, timeout=5).json()["devices"]
        return list(rows) or None

    return wait_for(listed, 30, f"{kind} devices to be discovered")


def test_cold_hot_water_makes_only_that_heat_pump_pending(stack: Stack) -> None:
    pump = devices(stack, "heat_pump")[0]
    pin_values(stack.simulator, pump["device_id"], {"hot_water_temp": 31.5})

    def pending() -> list[dict[str, object]] | None:
        return query(stack, 'ALERTS{alertname="PoderoHotWaterLow"}') or None

    alerts = wait_for(pending, 60, "PoderoHotWaterLow to go pending")
    assert [a["metric"]["device_id"] for a in alerts] == [pump["device_id"]]  # type: ignore[index]
    assert alerts[0]["metric"]["alertstate"] == "pending"  # type: ignore[index]
    assert alerts[0]["metric"]["user_id"] == pump["user_id"]  # type: ignore[index]
    water = query(
        stack, f'podero_heat_pump_hot_water_temperature_celsius{{device_id="{pump["device_id"]}"}}'
    )
    assert float(water[0]["value"][1]) == 31.5  # type: ignore[index]


def test_every_vehicles_charged_by_time_joins_the_exporters_timezone(stack: Stack) -> None:
    """The demo's vehicles are to be charged by 06:30 Europe/Vienna: 05:30 UTC in winter,
    04:30 UTC in summer, for every vehicle the exporter serves."""
    expr = (
        "podero_electric_vehicle_charged_by_seconds"
        " - on (job, instance) group_left () podero_exporter_timezone_offset_seconds"
    )
    ids = {d["device_id"] for d in devices(stack, "electric_vehicle")}

    def joined() -> list[dict[str, object]] | None:
        result = query(stack, expr)
        return result if len(result) == len(ids) else None

    result = wait_for(joined, 30, "every vehicle's charged-by time")
    assert {s["metric"]["device_id"] for s in result} == ids  # type: ignore[index]
    assert {float(s["value"][1]) for s in result} <= {5.5 * 3600, 4.5 * 3600}  # type: ignore[index]
    assert len({float(s["value"][1]) for s in result}) == 1  # type: ignore[index]
