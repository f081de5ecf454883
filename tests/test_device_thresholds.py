"""Thresholds of heat pumps and electric vehicles: from the config's defaults or a device's own
entry, published only for the kind they apply to, in base units; and the timezone offset the
rules add to time() to compare a configured time of day."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from exporter.app import Exporter
from exporter.config.model import parse_config
from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi, start_simulator
from tests.conftest import NOON, to_config
from tests.fakes import FakeClock
from tests.test_devices import series
from tests.test_discovery import discovery_config

HOT_WATER = "podero_heat_pump_hot_water_low_threshold_celsius"
EV_LEVEL = "podero_electric_vehicle_charged_threshold_ratio"
EV_BY = "podero_electric_vehicle_charged_by_seconds"
OFFSET = "podero_exporter_timezone_offset_seconds"
DEVICE_THRESHOLDS = {
    "hot_water_low_celsius": 41.5,
    "vehicle_charged_percent": 80,
    "vehicle_charged_by": "06:30",
}


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[RunningSimulator]:
    fleet = SimFleet(seed=5, inverters=12, second_every=0)
    running = start_simulator(SimulatedApi(fleet, clock, Faults()))
    yield running
    running.stop()


def _raw(sim: RunningSimulator, **extra: Any) -> dict[str, Any]:
    raw = discovery_config(sim)
    raw["thresholds"] = {"battery_low_percent": 20, **DEVICE_THRESHOLDS}
    raw.update(extra)
    return raw


def _page(raw: dict[str, Any], clock: FakeClock) -> tuple[Exporter, str]:
    exporter = Exporter(to_config(raw), clock)
    exporter.poll_once()
    return exporter, exporter.page.render().decode()


def test_defaults_apply_to_every_device_of_their_kind_only(
    sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter, text = _page(_raw(sim), clock)
    exporter.stop()
    devices = sim.api.fleet.devices
    pumps = {d.id for d in devices if d.kind == "heat_pump"}
    cars = {d.id for d in devices if d.kind == "electric_vehicle"}
    hot = series(text, HOT_WATER)
    assert set(hot) == pumps and {v for _, v in hot.values()} == {41.5}
    level = series(text, EV_LEVEL)
    assert set(level) == cars and {v for _, v in level.values()} == {0.8}
    by = series(text, EV_BY)
    assert set(by) == cars and {v for _, v in by.values()} == {6 * 3600 + 30 * 60}
    # The series join the device's readings: the same ids and name, no kind label.
    labels, _ = next(iter(hot.values()))
    assert set(labels) == {"device_id", "name", "user_id"}
    # Inverter thresholds stay on inverters (12 of them), and nothing else gets them.
    assert text.count("podero_inverter_battery_low_threshold_ratio{") == 12
    assert "podero_inverter_grid_export_high_threshold_watts{" not in text


def test_a_devices_own_entry_overrides_the_default(sim: RunningSimulator, clock: FakeClock) -> None:
    car = next(d for d in sim.api.fleet.devices if d.kind == "electric_vehicle")
    pump = next(d for d in sim.api.fleet.devices if d.kind == "heat_pump")
    entry = {"org_id": car.org_id, "user_id": car.user_id}
    raw = _raw(
        sim,
        inverters=[
            {**entry, "inverter_id": car.id, "kind": "electric_vehicle", "name": "van",
             "thresholds": {"vehicle_charged_by": "05:15"}},
            {"org_id": pump.org_id, "user_id": pump.user_id, "inverter_id": pump.id,
             "kind": "heat_pump", "thresholds": {"hot_water_low_celsius": 35}},
        ],
    )  # fmt: skip
    exporter, text = _page(raw, clock)
    exporter.stop()
    assert series(text, EV_BY)[car.id] == (
        {"device_id": car.id, "name": "van", "user_id": car.user_id},
        5 * 3600 + 15 * 60,
    )
    assert series(text, EV_LEVEL)[car.id][1] == 0.8  # not overridden: the default
    assert series(text, HOT_WATER)[pump.id][1] == 35.0


def test_without_thresholds_no_threshold_series(sim: RunningSimulator, clock: FakeClock) -> None:
    raw = discovery_config(sim)
    exporter, text = _page(raw, clock)
    exporter.stop()
    for name in (HOT_WATER, EV_LEVEL, EV_BY):
        assert f"{name}{{" not in text


def test_a_reload_changes_a_threshold_on_the_next_scrape(
    sim: RunningSimulator, clock: FakeClock
) -> None:
    raw = _raw(sim)
    exporter, _ = _page(raw, clock)
    raw["thresholds"]["hot_water_low_celsius"] = 38
    assert exporter.reload(lambda: to_config(raw)) is None
    text = exporter.page.render().decode()
    exporter.stop()
    assert {v for _, v in series(text, HOT_WATER).values()} == {38.0}


@pytest.mark.parametrize(
    ("zone", "at", "offset"),
    [
        ("UTC", NOON, 0.0),
        ("Europe/Vienna", NOON, 3600.0),  # November: CET
        ("Europe/Vienna", NOON - 150 * 86400, 7200.0),  # June: CEST
        ("America/New_York", NOON, -5 * 3600.0),
        ("Asia/Kolkata", NOON, 5.5 * 3600),
    ],
)
def test_the_timezone_offset_follows_the_clock_and_daylight_saving(
    zone: str, at: float, offset: float
) -> None:
    clock = FakeClock(at)
    raw = {
        "podero": {"base_url": "http://127.0.0.1:9",
                   "auth": {"client_id": "a", "client_secret": "b"}},
        "inverters": [
            {"org_id": "00000000-0000-4000-8000-000000000001",
             "user_id": "00000000-0000-4000-8000-000000000002",
             "inverter_id": "00000000-0000-4000-8000-000000000003"}
        ],
        "timezone": zone,
    }  # fmt: skip
    exporter = Exporter(parse_config(yaml.safe_dump(raw), {}), clock)
    try:
        assert exporter.telemetry.registry.get_sample_value(OFFSET) == offset
        # The offset is computed at each scrape: across the spring change it moves.
        if zone == "Europe/Vienna" and at == NOON:
            clock.advance(130 * 86400)  # into April: CEST
            assert exporter.telemetry.registry.get_sample_value(OFFSET) == 7200.0
        raw["timezone"] = "UTC"
        assert exporter.reload(lambda: to_config(raw)) is None
        assert exporter.telemetry.registry.get_sample_value(OFFSET) == 0.0
    finally:
        exporter.stop()


def test_time_zones_resolve_without_a_system_zone_database(tmp_path: Any) -> None:
    """Slim container images have no /usr/share/zoneinfo: the tzdata package serves then."""
    import subprocess
    import sys

    code = (
        "import zoneinfo; from datetime import datetime\n"
        "assert zoneinfo.TZPATH == (), zoneinfo.TZPATH\n"
        "tz = zoneinfo.ZoneInfo('Europe/Vienna')\n"
        "print(datetime(2026, 7, 1, tzinfo=tz).utcoffset().total_seconds())\n"
    )
    env = {"PYTHONTZPATH": "", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7200.0"
