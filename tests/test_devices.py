"""The other devices of a home (heat pumps, electric vehicles, wallboxes) against the
simulator: discovered beside the inverters, polled through their data endpoints, exported
in base units with device_id, user_id and name on every series."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.app import Exporter
from exporter.render.collector import current_samples
from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi, start_simulator
from exporter.sim.devices import SimDevice
from exporter.state.readings import DataPoint, fields_of, latest_reading, parse_data_response
from exporter.state.store import DeviceState
from exporter.state.targets import DeviceTarget, Inventory
from tests.conftest import NOON, require_tool, to_config
from tests.fakes import FakeClock
from tests.test_discovery import by_id, discovery_config
from tests.test_exposition import samples_of

HOMES = 12


@pytest.fixture
def home_sim(clock: FakeClock) -> Iterator[RunningSimulator]:
    # One inverter per home, so home n is user n: heat pumps at even n, EVs at n % 3 == 0.
    fleet = SimFleet(seed=5, inverters=HOMES, second_every=0)
    sim = start_simulator(SimulatedApi(fleet, clock, Faults()))
    yield sim
    sim.stop()


def polled(sim: RunningSimulator, clock: FakeClock) -> tuple[Exporter, str]:
    # The optimisation's state and score too (opt-in: config `metrics:`).
    raw = {**discovery_config(sim), "metrics": {"enable": ["optimization"]}}
    exporter = Exporter(to_config(raw), clock)
    exporter.poll_once()
    text = exporter.page.render().decode()
    return exporter, text


def series(text: str, name: str) -> dict[str, tuple[dict[str, str], float]]:
    """A family's samples by device_id (labels, value)."""
    return {
        dict(labels)["device_id"]: (dict(labels), value)
        for n, labels, value in samples_of(text)
        if n == name
    }


def expected_point(sim: RunningSimulator, device: SimDevice, now: float) -> DataPoint:
    """The newest measured point of the device as the API serves it for the poll's window."""
    body = sim.api.device_data(
        device.org_id,
        device.user_id,
        device.kind,
        device.id,
        {"from_datetime": _iso(now - 6 * 3600), "to_datetime": _iso(now)},
    )
    kind_fields = tuple(f for f in fields_of(device.kind) if f.name in body["data"][0])
    point = latest_reading(parse_data_response(body, now, kind_fields), now, device.kind)
    assert point is not None
    return point


def _iso(epoch: float) -> str:
    from exporter.api.client import iso

    return iso(epoch)


def test_heat_pumps_and_evs_export_the_api_values_in_base_units(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter, text = polled(home_sim, clock)
    exporter.stop()
    fleet = home_sim.api.fleet
    pumps = [d for d in fleet.devices if d.kind == "heat_pump"]
    evs = [d for d in fleet.devices if d.kind == "electric_vehicle"]
    assert len(pumps) == 6 and len(evs) == 4
    inlet = series(text, "podero_heat_pump_inlet_temperature_celsius")
    water = series(text, "podero_heat_pump_hot_water_temperature_celsius")
    consumption = series(text, "podero_heat_pump_estimated_consumption_watts")
    assert set(inlet) == {d.id for d in pumps}
    for pump in pumps:
        point = expected_point(home_sim, pump, NOON)
        labels, value = inlet[pump.id]
        assert value == point.values["inlet_temp_act"]
        assert labels["user_id"] == pump.user_id and labels["name"]
        assert water[pump.id][1] == point.values["hot_water_temp"]
        assert consumption[pump.id][1] == point.values["estimated_consumption"]
    level = series(text, "podero_electric_vehicle_battery_level_ratio")
    plugged = series(text, "podero_electric_vehicle_plugged_in")
    for ev in evs:
        point = expected_point(home_sim, ev, NOON)
        assert level[ev.id][1] == pytest.approx(point.values["battery_level"] / 100)
        assert 0 < level[ev.id][1] <= 1
        assert plugged[ev.id][1] == point.values["is_plugged_in"] in (0.0, 1.0)
    up = series(text, "podero_device_up")
    assert {
        i: (labels["kind"], v) for i, (labels, v) in up.items() if labels["kind"] != "inverter"
    } == {
        **{d.id: ("heat_pump", 1.0) for d in pumps},
        **{d.id: ("electric_vehicle", 1.0) for d in evs},
    }
    # One vocabulary: every kind's up is podero_device_up, with device_id and user_id.
    kinds = [dict(labels)["kind"] for labels in series_of(text, "podero_device_up")]
    assert kinds.count("inverter") == HOMES
    assert all(
        {"device_id", "user_id"} <= set(dict(labels))
        for labels in series_of(text, "podero_device_up")
    )


def series_of(text: str, name: str) -> list[tuple[tuple[str, str], ...]]:
    return [labels for n, labels, _ in samples_of(text) if n == name]


def test_wallboxes_get_inventory_only_and_every_kind_an_info(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter, text = polled(home_sim, clock)
    exporter.stop()
    fleet = home_sim.api.fleet
    boxes = {d.id for d in fleet.devices if d.kind == "wallbox"}
    info = series(text, "podero_device_info")
    assert {
        i: labels["kind"] for i, (labels, _) in info.items() if labels["kind"] != "inverter"
    } == {d.id: d.kind for d in fleet.devices}
    box = next(d for d in fleet.devices if d.kind == "wallbox")
    labels = info[box.id][0]
    assert (labels["manufacturer"], labels["model"], labels["user_id"]) == (
        box.manufacturer,
        box.model,
        box.user_id,
    )
    assert boxes.isdisjoint(series(text, "podero_device_up"))
    assert "wallbox_data" not in home_sim.api.stats()["responses"]
    smart = series(text, "podero_device_smart_optimization_active")
    score = series(text, "podero_device_optimization_score")
    for device in fleet.devices:
        assert smart[device.id][1] == (1.0 if device.smart_optimization else 0.0)
        assert score[device.id][1] == device.optimization_score


def test_an_open_action_is_a_series_with_its_code_and_lapses_authentication(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter, text = polled(home_sim, clock)
    exporter.stop()
    needing = {d.id for d in home_sim.api.fleet.devices if d.actions}
    assert needing, "the fleet has a heat pump that needs reauthentication"
    actions = [
        (dict(labels)["device_id"], dict(labels).get("action", ""), value)
        for n, labels, value in samples_of(text)
        if n == "podero_device_action_needed"
    ]
    for device in home_sim.api.fleet.devices:
        mine = [(a, v) for i, a, v in actions if i == device.id]
        assert mine == ([("reauthenticate", 1.0)] if device.id in needing else [("", 0.0)])
    authenticated = series(text, "podero_device_authenticated")
    for device in home_sim.api.fleet.devices:
        expected = device.id not in needing and device.lifecycle_state == "authenticated"
        assert authenticated[device.id][1] == (1.0 if expected else 0.0)


def test_discovery_lists_only_the_kinds_a_home_has(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    fleet = home_sim.api.fleet
    exporter = Exporter(to_config(discovery_config(home_sim)), clock)
    exporter.discover()
    responses = home_sim.api.stats()["responses"]
    homes_with = {k: len({d.user_id for d in fleet.devices if d.kind == k}) for k in KINDS}
    assert responses["inverters"] == {"200": HOMES}
    assert responses["heat_pumps"] == {"200": homes_with["heat_pump"]} == {"200": 6}
    assert responses["electric_vehicles"] == {"200": homes_with["electric_vehicle"]}
    assert responses["wallboxes"] == {"200": homes_with["wallbox"]} == {"200": 4}
    assert set(by_id(exporter, "heat_pump")) == {
        d.id for d in fleet.devices if d.kind == "heat_pump"
    }
    exporter.stop()


KINDS = ("heat_pump", "electric_vehicle", "wallbox")


def test_an_older_users_listing_without_counts_lists_every_kind(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    home_sim.api.faults = Faults(old_users_listing=True)
    exporter = Exporter(to_config(discovery_config(home_sim)), clock)
    exporter.discover()
    responses = home_sim.api.stats()["responses"]
    for endpoint in ("inverters", "heat_pumps", "electric_vehicles", "wallboxes"):
        assert responses[endpoint] == {"200": HOMES}
    assert len(by_id(exporter, "wallbox")) == 4
    exporter.stop()


def test_a_device_gone_from_a_home_leaves_the_targets(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter = Exporter(to_config(discovery_config(home_sim)), clock)
    exporter.discover()
    pump = next(d for d in home_sim.api.fleet.devices if d.kind == "heat_pump")
    assert pump.id in by_id(exporter, "heat_pump")
    del home_sim.api.fleet.devices_by_id[pump.id]  # its count drops to 0: no listing call
    home_sim.api.reset_stats()
    exporter.discover()
    assert pump.id not in by_id(exporter, "heat_pump")
    assert home_sim.api.stats()["responses"]["heat_pumps"] == {"200": 5}
    exporter.stop()


def test_a_configured_heat_pump_is_polled_and_described(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    pump = next(d for d in home_sim.api.fleet.devices if d.kind == "heat_pump")
    raw = discovery_config(home_sim)
    del raw["discovery"]
    raw["inverters"] = [
        {
            "org_id": pump.org_id,
            "user_id": pump.user_id,
            "inverter_id": pump.id,
            "kind": "heat_pump",
            "name": "cellar",
        }
    ]
    exporter = Exporter(to_config(raw), clock)
    exporter.poll_once()
    text = exporter.page.render().decode()
    exporter.stop()
    water = series(text, "podero_heat_pump_hot_water_temperature_celsius")
    assert water[pump.id][0]["name"] == "cellar"
    assert water[pump.id][1] == expected_point(home_sim, pump, NOON).values["hot_water_temp"]
    info = series(text, "podero_device_info")[pump.id][0]
    assert info["manufacturer"] == pump.manufacturer  # from the heat pump's detail call
    assert home_sim.api.stats()["responses"]["heat_pump"] == {"200": 1}


def test_an_unknown_kind_is_refused_naming_the_field() -> None:
    from exporter.config.model import ConfigError, parse_config

    text = """
podero: {base_url: "http://127.0.0.1:1", auth: {client_id: a, client_secret: b}}
inverters:
  - org_id: 00000000-0000-4000-8000-000000000001
    user_id: 00000000-0000-4000-8000-000000000002
    inverter_id: 00000000-0000-4000-8000-000000000003
    kind: toaster
"""
    with pytest.raises(ConfigError, match=r"inverters\[0\]\.kind"):
        parse_config(text, {}, source="test")


def test_null_values_are_absent_and_stale_readings_hidden() -> None:
    target = DeviceTarget(
        device_id="00000000-0000-4000-8000-000000000003",
        org_id="o",
        user_id="u",
        name="car",
        kind="electric_vehicle",
        inventory=Inventory(manufacturer="Tesla", model="Model 3", actions=()),
    )
    body = {
        "metadata": {},
        "data": [{"time": "2026-11-23T12:00:00Z", "battery_level": 50, "is_charging": None}],
    }
    point = parse_data_response(body, None, fields_of("electric_vehicle"))[0]
    state = DeviceState(target, reading=point, polled=True, up=True)
    names = {f.name: s for f, s in current_samples(state, point.time + 60, 3600).items()}
    assert names["podero_electric_vehicle_battery_level_ratio"][0][1] == 0.5
    assert "podero_electric_vehicle_charging" not in names
    assert "podero_electric_vehicle_price" not in names
    stale = {f.name for f in current_samples(state, point.time + 7200, 3600)}
    assert "podero_electric_vehicle_battery_level_ratio" not in stale
    assert "podero_device_up" in stale and "podero_device_info" in stale


def test_a_boolean_field_that_is_not_a_boolean_is_invalid_data() -> None:
    from exporter.state.readings import InvalidData

    body = {"data": [{"time": "2026-11-23T12:00:00Z", "is_plugged_in": 1}]}
    with pytest.raises(InvalidData, match="is_plugged_in 1 is not a boolean"):
        parse_data_response(body, None, fields_of("electric_vehicle"))


def test_the_page_with_every_kind_passes_promtool(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    promtool = require_tool("promtool")
    exporter, text = polled(home_sim, clock)
    exporter.stop()
    assert "podero_heat_pump_inlet_temperature_celsius{" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_json_apis_list_inverters_and_devices(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter, _ = polled(home_sim, clock)
    view = exporter.status_view()
    inverters = json.loads(view.json({}))
    assert inverters["total"] == HOMES
    assert {r["kind"] for r in inverters["inverters"]} == {"inverter"}
    devices: dict[str, Any] = json.loads(view.json({"limit": "1000"}, devices=True))
    assert devices["total"] == HOMES + len(home_sim.api.fleet.devices)
    pumps = json.loads(view.json({"kind": "heat_pump"}, devices=True))
    assert pumps["total"] == 6 and all(r["status"] == "ok" for r in pumps["devices"])
    html = view.html({"kind": "wallbox"}).decode()
    assert html.count("data-device-id=") == 4
    exporter.stop()


def test_the_demo_shows_every_kind(clock: FakeClock) -> None:
    from exporter.cli import _demo_config

    config, _ = _demo_config(6, None)
    exporter = Exporter(config, clock)
    exporter.poll_once()
    text = exporter.page.render().decode()
    exporter.stop()
    kinds = {dict(labels)["kind"] for labels in series_of(text, "podero_device_info")}
    assert kinds == {"inverter", *KINDS}
    assert series_of(text, "podero_heat_pump_hot_water_temperature_celsius")
    assert series_of(text, "podero_electric_vehicle_battery_level_ratio")


def test_the_page_with_devices_equals_the_reference_rendering(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from tests.reference import InverterCollector, render_inverters

    exporter, _ = polled(home_sim, clock)
    exporter.stop()
    cached = b"".join(exporter.page.refresh()).decode()
    registry = CollectorRegistry()
    max_age = exporter.config.poll.max_data_age_seconds
    served = exporter.config.metrics.selection.served()
    registry.register(InverterCollector(exporter.store, clock, lambda: max_age, served))
    reference = generate_latest(registry).decode()
    assert samples_of(cached) == samples_of(reference)
    states = exporter.store.snapshot()
    assert cached == render_inverters(states, clock.time(), max_age, served).decode()
    assert "podero_device_info{" in cached and "podero_electric_vehicle_charging{" in cached


def test_the_status_page_shows_each_kind_and_wallboxes_are_no_problem(
    home_sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter, _ = polled(home_sim, clock)
    view = exporter.status_view()
    boxes = json.loads(view.json({"kind": "wallbox"}, devices=True))["devices"]
    assert {r["status"] for r in boxes} == {"inventory only"}
    problems = json.loads(view.json({"problems": "1", "limit": "1000"}, devices=True))
    flagged = {r["device_id"] for r in problems["devices"]}
    assert flagged.isdisjoint(r["device_id"] for r in boxes)
    needing = {d.id for d in home_sim.api.fleet.devices if d.actions}
    assert needing <= flagged  # an open action is a problem
    html = view.html({}).decode()
    assert "<option>heat_pump</option>" in html and "<td>electric_vehicle</td>" in html
    assert f"{HOMES + len(home_sim.api.fleet.devices)} devices</span>" in html
    exporter.stop()


def test_a_failed_listing_of_one_kind_keeps_that_kind_and_a_failed_poll_drops_up(
    home_sim: RunningSimulator, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = Exporter(to_config(discovery_config(home_sim)), clock)
    exporter.discover()
    pumps = set(by_id(exporter, "heat_pump"))
    home_sim.api.faults = Faults(failing_endpoints=("heat_pumps", "heat_pump_data"))
    exporter.discover()
    assert set(by_id(exporter, "heat_pump")) == pumps and len(pumps) == 6
    with caplog.at_level("WARNING", logger="exporter.poller"):
        exporter.poller.poll_all()
    text = exporter.page.render().decode()
    exporter.stop()
    up = series(text, "podero_device_up")
    assert {i for i, (_, v) in up.items() if v == 0.0} == pumps
    failed = [r for r in caplog.records if r.getMessage() == "poll failed"]
    assert {r.kv["device_id"] for r in failed} == pumps  # type: ignore[attr-defined]
    assert {r.kv["kind"] for r in failed} == {"heat_pump"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("counts", "listed"),
    [
        ({}, ["inverter", "heat_pump", "electric_vehicle", "wallbox"]),
        (
            {"num_inverters": 1, "num_heat_pumps": 0, "num_electric_vehicles": 2},
            ["inverter", "electric_vehicle", "wallbox"],
        ),
        (
            {"num_inverters": 0, "num_wallboxes": False},
            ["heat_pump", "electric_vehicle", "wallbox"],
        ),
    ],
)
def test_kinds_worth_a_listing(counts: dict[str, Any], listed: list[str]) -> None:
    from exporter.api.discovery import kinds_to_list

    assert kinds_to_list({"id": "u", **counts}) == listed
