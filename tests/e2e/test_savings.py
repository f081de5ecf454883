"""What the optimisation saved, end to end: the real exporter process discovers a simulated
organization and serves, for one home, its heat pump's and vehicle's savings and consumption
today and this month with exactly the values of the simulator's model, the currency and the
energy unit from the API's metadata, and the organization's savings; OpenMetrics says the
unit of the consumption families."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.sim import SimFleet, demo_config, spawn
from tests.e2e.processes import exporter_process, wait_for
from tests.savings_model import figures

pytestmark = pytest.mark.e2e

Labels = tuple[tuple[str, str], ...]


def samples(text: str) -> dict[tuple[str, Labels], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_one_homes_savings_are_exact_with_currency_and_units(tmp_path: Path) -> None:
    # The simulator's clock stands still at the start (its published quarter-hours with it),
    # so the expected figures are the model's at that moment.
    now = time.time()
    with spawn("--inverters", "3", "--fake-clock", str(now)) as sim:
        raw = demo_config(sim)
        raw["inverters"] = []
        raw["discovery"] = {"org_ids": sim["org_ids"]}
        fleet = SimFleet(seed=1, inverters=3)  # the same seed: the same homes and curves
        pump = next(d for d in fleet.devices if d.kind == "heat_pump")
        car = next(
            d for d in fleet.devices if d.kind == "electric_vehicle" and d.user_id == pump.user_id
        )
        with exporter_process(tmp_path, raw, timeout=60) as exporter:

            def fetched() -> dict[tuple[str, Labels], float] | None:
                found = samples(exporter.get("/metrics").text)
                names = {name for name, _ in found}
                wanted = {"podero_device_savings_this_month", "podero_organization_savings_info"}
                return found if wanted <= names else None

            page = wait_for(fetched, 60, "the savings of the home and of the organization")
            openmetrics = requests.get(
                f"{exporter.base}/metrics",
                headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                timeout=5,
            ).text
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)

    def of(name: str, device_id: str) -> tuple[float, dict[str, str]]:
        (found,) = [
            (value, dict(labels))
            for (n, labels), value in page.items()
            if n == name and ("device_id", device_id) in labels
        ]
        return found

    for device in (pump, car):
        today = figures([device], day.timestamp(), day.timestamp() + 86400, now)
        so_far = figures([device], month.timestamp(), now, now)
        assert of("podero_device_savings_today", device.id)[0] == today["savings"]
        assert of("podero_device_savings_this_month", device.id)[0] == so_far["savings"]
        assert of("podero_device_consumption_today_joules", device.id)[0] == today["joules"]
        assert of("podero_device_consumption_this_month_joules", device.id)[0] == so_far["joules"]
        _, info = of("podero_device_savings_info", device.id)
        assert info == {
            "device_id": device.id,
            "name": info["name"],
            "user_id": pump.user_id,
            "kind": device.kind,
            "currency": "EUR",
            "energy_unit": "kWh",
        }
        _, price = of("podero_device_price_info", device.id)
        assert (price["currency"], price["unit"]) == ("EUR", "EUR/MWh")
    devices = [
        d for d in fleet.devices if d.kind in ("heat_pump", "electric_vehicle") and not d.deleted
    ]
    org = (("org_id", fleet.org_ids[0]),)
    expected = figures(devices, month.timestamp(), now, now)
    assert page[("podero_organization_savings_this_month", org)] == expected["savings"]
    assert page[("podero_organization_consumption_this_month_joules", org)] == expected["joules"]
    info = (*org, ("currency", "EUR"), ("energy_unit", "kWh"))
    assert page[("podero_organization_savings_info", tuple(sorted(info)))] == 1.0
    assert "# UNIT podero_device_consumption_today_joules joules\n" in openmetrics
    assert "# UNIT podero_device_savings_today" not in openmetrics  # money has no base unit
