"""The shipped rules loaded by a real Prometheus scraping a demo exporter: every rule is healthy,
and a drained battery makes PoderoBatteryLow go pending for that inverter only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import yaml

from tests.e2e.processes import wait_for
from tests.e2e.stack import RULES, Stack, demo_stack, query

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from demo_stack(tmp_path_factory)


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
