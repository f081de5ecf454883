"""Fleet discovery and inventory against the simulator's list endpoints (fake clock)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.api.discovery import default_name, inventory_from, owner_of
from exporter.app import Exporter
from exporter.config.model import Config
from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi, start_simulator
from exporter.state.targets import TargetSet
from tests.conftest import to_config
from tests.fakes import FakeClock
from tests.test_exposition import samples_of

FLEET = 60
ORGS = 3


@pytest.fixture
def fleet_sim(clock: FakeClock) -> Iterator[RunningSimulator]:
    sim = start_simulator(SimulatedApi(SimFleet(seed=11, inverters=FLEET, orgs=ORGS), clock))
    yield sim
    sim.stop()


def discovery_config(sim: RunningSimulator, **discovery: Any) -> dict[str, Any]:
    info = sim.describe()
    return {
        "podero": {
            "base_url": info["base_url"],
            "auth": {"client_id": info["client_id"], "client_secret": info["client_secret"]},
            "retry": {"attempts": 1},
            "max_requests_per_second": 1000,
        },
        "discovery": {"org_ids": info["org_ids"], **discovery},
        "thresholds": {"battery_low_percent": 20},
    }


def exporter_for(raw: dict[str, Any], clock: FakeClock) -> Exporter:
    exporter = Exporter(to_config(raw), clock)
    exporter.refresh_inventory()
    return exporter


def by_id(exporter: Exporter, kind: str = "inverter") -> dict[str, Any]:
    """The exporter's targets of one kind (default: inverters), by id."""
    return {
        s.target.device_id: s.target for s in exporter.store.snapshot() if s.target.kind == kind
    }


def series(exporter: Exporter, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        labels: value
        for n, labels, value in samples_of(exporter.page.render().decode())
        if n == name
    }


def test_discovers_every_live_inverter_of_several_orgs(
    fleet_sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter = exporter_for(discovery_config(fleet_sim), clock)
    fleet = fleet_sim.api.fleet
    live = {i.id for i in fleet.inverters if not i.deleted}
    assert set(by_id(exporter)) == live
    assert len({t.org_id for t in by_id(exporter).values()}) == ORGS
    assert len(live) < FLEET  # the simulated fleet has deleted inverters, and they are left out
    text = exporter.page.render().decode()
    for org in fleet.org_ids:
        count = sum(1 for i in fleet.inverters if i.org_id == org and not i.deleted)
        assert f'podero_discovery_devices{{kind="inverter",org_id="{org}"}} {float(count)}' in text
        assert f'podero_discovery_last_success_timestamp_seconds{{org_id="{org}"}}' in text
    assert "podero_discovery_duration_seconds " in text
    exporter.stop()


def test_inventory_metrics_describe_each_device(
    fleet_sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter = exporter_for(
        {**discovery_config(fleet_sim), "metrics": {"enable": ["inventory", "status"]}}, clock
    )
    fleet = {i.id: i for i in fleet_sim.api.fleet.inverters}
    auth = {
        dict(k)["device_id"]: v
        for k, v in series(exporter, "podero_device_authenticated").items()
        if dict(k)["kind"] == "inverter"
    }
    action = {
        dict(k)["device_id"]: v
        for k, v in series(exporter, "podero_device_action_needed").items()
        if dict(k)["kind"] == "inverter"
    }
    joules = {
        dict(k)["device_id"]: v
        for k, v in series(exporter, "podero_inverter_battery_capacity_joules").items()
    }
    rating = {
        dict(k)["device_id"]: v
        for k, v in series(exporter, "podero_inverter_solar_power_rating_watts").items()
    }
    assert 0.0 in auth.values() and 1.0 in action.values()  # the fleet is varied
    for inverter_id, value in auth.items():
        sim = fleet[inverter_id]
        assert value == (1.0 if sim.is_authenticated else 0.0)
        assert action[inverter_id] == (1.0 if sim.action_needed else 0.0)
        assert rating[inverter_id] == pytest.approx(sim.solar_rating_w, abs=10)
        if sim.battery_capacity_wh:
            assert joules[inverter_id] == pytest.approx(sim.battery_capacity_wh * 3600, rel=1e-3)
        else:
            assert inverter_id not in joules
    states = series(exporter, "podero_inverter_connection_status")
    one = next(iter(auth))
    mine = {dict(k)["status"]: v for k, v in states.items() if dict(k)["device_id"] == one}
    assert sum(mine.values()) == 1.0 and set(mine) >= {"connected", "disconnected"}
    info = next(
        dict(k) for k in series(exporter, "podero_device_info") if dict(k)["device_id"] == one
    )
    assert info["manufacturer"] == fleet[one].manufacturer
    assert info["model"] == fleet[one].model and info["price_zone"] == fleet[one].price_zone
    assert info["lifecycle_state"] == fleet[one].lifecycle_state
    exporter.stop()


def test_static_entry_wins_for_name_labels_and_thresholds(
    fleet_sim: RunningSimulator, clock: FakeClock
) -> None:
    chosen = next(i for i in fleet_sim.api.fleet.inverters if not i.deleted)
    raw = discovery_config(fleet_sim)
    raw["inverters"] = [
        {
            "org_id": chosen.org_id,
            "user_id": chosen.user_id,
            "inverter_id": chosen.id,
            "name": "my-roof",
            "labels": {"site": "vienna"},
            "thresholds": {"battery_low_percent": 40},
        }
    ]
    exporter = exporter_for(raw, clock)
    target = by_id(exporter)[chosen.id]
    assert target.name == "my-roof" and target.labels == (("site", "vienna"),)
    assert target.threshold("battery_low_percent") == 40
    assert target.inventory is not None and target.inventory.model == chosen.model
    assert len(by_id(exporter)) == sum(1 for i in fleet_sim.api.fleet.inverters if not i.deleted)
    others = [t for t in by_id(exporter).values() if t.device_id != chosen.id]
    assert all(
        t.threshold("battery_low_percent") == 20 for t in others if t.kind == "inverter"
    )  # defaults for discovered ones
    exporter.stop()


def test_default_names_are_readable_and_stable(
    fleet_sim: RunningSimulator, clock: FakeClock
) -> None:
    first = {k: t.name for k, t in by_id(exporter_for(discovery_config(fleet_sim), clock)).items()}
    second = {k: t.name for k, t in by_id(exporter_for(discovery_config(fleet_sim), clock)).items()}
    assert first == second  # a restart gives the same names
    users = fleet_sim.api.fleet.users_by_id
    for inverter in fleet_sim.api.fleet.inverters:
        if inverter.id in first:
            owner = users[inverter.user_id].external_user_id
            assert first[inverter.id] == f"{owner}-{inverter.id[:6]}"
    assert len(set(first.values())) == len(first)
    assert default_name(None, "abcdef12-0000") == "inverter-abcdef"
    assert default_name("x" * 500, "abcdef12-0000") == "x" * 120 + "-abcdef"  # fits a name


@pytest.mark.parametrize("endpoint", ["users", "inverters"])
def test_a_failed_listing_keeps_the_last_known_inventory(
    fleet_sim: RunningSimulator, clock: FakeClock, endpoint: str
) -> None:
    exporter = exporter_for(discovery_config(fleet_sim), clock)
    before = set(by_id(exporter))
    stamp = series(exporter, "podero_discovery_last_success_timestamp_seconds")
    fleet_sim.api.faults = Faults(failing_endpoints=(endpoint,))
    clock.advance(3600)
    exporter.refresh_inventory()
    assert set(by_id(exporter)) == before
    assert series(exporter, "podero_discovery_last_success_timestamp_seconds") == stamp
    exporter.stop()


def test_inverters_that_disappear_are_dropped_with_their_series(
    fleet_sim: RunningSimulator, clock: FakeClock
) -> None:
    exporter = exporter_for(discovery_config(fleet_sim), clock)
    exporter.poller.poll_all()
    fleet = fleet_sim.api.fleet
    gone = next(i for i in fleet.inverters if not i.deleted)
    assert gone.id in exporter.page.render().decode()
    fleet.inverters = [i for i in fleet.inverters if i.id != gone.id]
    fleet.by_id.pop(gone.id)
    exporter.refresh_inventory()
    assert gone.id not in by_id(exporter)
    assert gone.id not in exporter.page.render().decode()
    exporter.stop()


def test_filters(fleet_sim: RunningSimulator, clock: FakeClock) -> None:
    fleet = fleet_sim.api.fleet.inverters
    excluded = next(i.id for i in fleet if not i.deleted)
    authenticated = exporter_for(
        discovery_config(
            fleet_sim, lifecycle_states=["authenticated"], exclude_inverter_ids=[excluded]
        ),
        clock,
    )
    expected = {
        i.id
        for i in fleet
        if not i.deleted and i.lifecycle_state == "authenticated" and i.id != excluded
    }
    assert set(by_id(authenticated)) == expected
    with_deleted = exporter_for(discovery_config(fleet_sim, include_deleted=True), clock)
    assert set(by_id(with_deleted)) == {i.id for i in fleet}
    authenticated.stop()
    with_deleted.stop()


def test_static_only_inverters_get_inventory_from_the_detail_endpoint(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock
) -> None:
    exporter = Exporter(sim_config, clock)
    exporter.refresh_inventory()
    fleet = {i.id: i for i in sim.api.fleet.inverters}
    for target in by_id(exporter).values():
        assert target.inventory is not None
        assert target.inventory.manufacturer == fleet[target.device_id].manufacturer
    # A failed refresh keeps what was known.
    sim.api.faults = Faults(failing_endpoints=("inverter",))
    exporter.refresh_inventory()
    assert all(t.inventory is not None for t in by_id(exporter).values())
    assert sim.api.stats()["responses"]["inverter"]["503"] == 2 * len(fleet)  # 2 attempts each
    exporter.stop()


def test_shards_split_the_discovered_fleet(fleet_sim: RunningSimulator, clock: FakeClock) -> None:
    seen: list[str] = []
    for index in range(3):
        raw = discovery_config(fleet_sim)
        raw["shard"] = {"count": 3, "index": index}
        seen += list(by_id(exporter_for(raw, clock)))
    assert sorted(seen) == sorted(i.id for i in fleet_sim.api.fleet.inverters if not i.deleted)


def test_merge_without_discovery_is_the_configured_list(sim_config: Config) -> None:
    assert [t.device_id for t in TargetSet(sim_config).current()] == [
        i.device_id for i in sim_config.inverters
    ]


def test_the_strings_thousands_of_devices_share_are_one_string_each() -> None:
    """Every listing decodes its JSON anew; the inventory keeps one copy of a manufacturer,
    zone, state or action code however many devices (and rounds) repeat it."""
    body = (
        '{"device_model": {"manufacturer": "Fronius", "model": "Symo GEN24"}, "price_zone":'
        ' "DE-LU", "lifecycle_state": "authenticated", "connection_status": "connected",'
        ' "monitoring_status": "ok", "actions": [{"code": "connect_battery"}]}'
    )
    user = '{"email": "cust-00001@example.com"}'
    a, b = (inventory_from(json.loads(body), owner_of(json.loads(user))) for _ in range(2))
    assert a == b and a.manufacturer == "Fronius" and a.owner == "cust-00001"
    for field in ("manufacturer", "model", "price_zone", "lifecycle_state"):
        assert getattr(a, field) is getattr(b, field), field
    assert a.actions is not None and b.actions is not None
    assert a.actions[0] is b.actions[0]
