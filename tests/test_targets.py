"""TargetSet: which listing a discovered device belongs to when two homes name the same id."""

from __future__ import annotations

import logging

import pytest

from exporter.state.targets import DiscoveredDevice, Inventory, TargetSet
from tests.conftest import to_config

ORG = "00000000-0000-4000-8000-000000000001"
HOME_A = "00000000-0000-4000-8000-0000000000aa"
HOME_B = "00000000-0000-4000-8000-0000000000bb"
DEVICE = "00000000-0000-4000-8000-0000000000dd"


def _targets() -> TargetSet:
    auth = {"client_id": "a", "client_secret": "b"}
    podero = {"base_url": "http://127.0.0.1:9", "auth": auth}
    return TargetSet(to_config({"podero": podero, "discovery": {"org_ids": [ORG]}}))


def _device(user: str, kind: str, name: str) -> DiscoveredDevice:
    return DiscoveredDevice(ORG, user, DEVICE, name, Inventory(), kind=kind)


def _only(targets: TargetSet) -> tuple[str, str, str]:
    (target,) = targets.current()
    return target.user_id, target.kind, target.name


def test_the_first_home_to_list_a_device_keeps_it_until_it_stops_listing_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    targets = _targets()
    targets.set_home(ORG, HOME_A, [_device(HOME_A, "heat_pump", "a-pump")], "heat_pump")
    with caplog.at_level(logging.WARNING, logger="exporter.state.targets"):
        targets.set_home(ORG, HOME_B, [_device(HOME_B, "wallbox", "b-box")], "wallbox")
    assert _only(targets) == (HOME_A, "heat_pump", "a-pump")
    assert [r.getMessage() for r in caplog.records] == [
        "a device id is listed by two homes; the first keeps it"
    ]
    # A's next listings (the same device again, then renamed) keep it A's, whatever B lists.
    targets.set_home(ORG, HOME_A, [_device(HOME_A, "heat_pump", "a-pump")], "heat_pump")
    targets.set_home(ORG, HOME_B, [_device(HOME_B, "wallbox", "b-box")], "wallbox")
    targets.set_home(ORG, HOME_A, [_device(HOME_A, "heat_pump", "cellar")], "heat_pump")
    assert _only(targets) == (HOME_A, "heat_pump", "cellar")
    # B stops naming it: nothing changes for A.
    targets.set_home(ORG, HOME_B, [], "wallbox")
    assert _only(targets) == (HOME_A, "heat_pump", "cellar")


def test_a_device_that_moved_homes_follows_its_new_listing() -> None:
    targets = _targets()
    targets.set_home(ORG, HOME_A, [_device(HOME_A, "heat_pump", "a-pump")], "heat_pump")
    targets.set_home(ORG, HOME_B, [_device(HOME_B, "heat_pump", "b-pump")], "heat_pump")
    assert _only(targets) == (HOME_A, "heat_pump", "a-pump")
    targets.set_home(ORG, HOME_A, [], "heat_pump")  # gone from A: B's listing has it
    assert _only(targets) == (HOME_B, "heat_pump", "b-pump")
    targets.set_home(ORG, HOME_B, [], "heat_pump")
    assert targets.current() == []


def test_a_device_that_changes_kind_starts_without_the_old_kinds_data() -> None:
    from dataclasses import replace

    from exporter.state.readings import DataPoint
    from exporter.state.store import ReadingStore
    from exporter.state.targets import DeviceTarget

    pump = DeviceTarget(DEVICE, ORG, HOME_A, "cellar", kind="heat_pump")
    store = ReadingStore([pump])
    reading = DataPoint(time=1000.0, values={"hot_water_temp": 50.0, "price": 90.0})
    store.record_success(DEVICE, reading, now=1100.0, next_poll=2000.0)
    renamed = replace(pump, name="basement")
    store.apply_targets([renamed], [])
    assert store.get(DEVICE).reading == reading  # type: ignore[union-attr]  # same kind: kept
    store.apply_targets([replace(renamed, kind="electric_vehicle")], [])
    state = store.get(DEVICE)
    assert state is not None and state.target.kind == "electric_vehicle"
    assert state.reading is None and not state.polled  # a heat pump's price is no EV's


def test_a_poll_in_flight_when_the_kind_changes_leaves_the_new_kind_empty() -> None:
    from exporter.state.readings import DataPoint
    from exporter.state.store import ReadingStore
    from exporter.state.targets import DeviceTarget

    pump = DeviceTarget(DEVICE, ORG, HOME_A, "cellar", kind="heat_pump")
    store = ReadingStore([pump])
    store.apply_targets([DeviceTarget(DEVICE, ORG, HOME_A, "cellar", kind="wallbox")], [])
    reading = DataPoint(time=1000.0, values={"hot_water_temp": 50.0})
    store.record_success(DEVICE, reading, now=1100.0, next_poll=None, kind="heat_pump")
    store.record_failure(DEVICE, "late", now=1100.0, next_poll=None, kind="heat_pump")
    state = store.get(DEVICE)
    assert state is not None and state.reading is None and not state.polled
    store.record_success(DEVICE, reading, now=1100.0, next_poll=None, kind="wallbox")
    assert store.get(DEVICE).reading == reading  # type: ignore[union-attr]  # its own kind


def test_an_organization_no_longer_discovered_takes_its_devices_along() -> None:
    other = "00000000-0000-4000-8000-000000000002"
    auth = {"client_id": "a", "client_secret": "b"}
    podero = {"base_url": "http://127.0.0.1:9", "auth": auth}
    targets = TargetSet(to_config({"podero": podero, "discovery": {"org_ids": [ORG, other]}}))
    targets.set_home(ORG, HOME_A, [_device(HOME_A, "heat_pump", "a-pump")], "heat_pump")
    assert targets.discovered_count(ORG)["inverter"] == 0 and len(targets) == 1
    targets.set_config(to_config({"podero": podero, "discovery": {"org_ids": [other]}}))
    assert targets.current() == [] and targets.listed_homes(ORG) == set()
    # A listing of the dropped organization still in flight during the reload changes nothing.
    targets.set_home(ORG, HOME_A, [_device(HOME_A, "heat_pump", "a-pump")], "heat_pump")
    assert targets.current() == []
    # Discovery switched off: the same.
    configured = {"org_id": ORG, "user_id": HOME_A, "inverter_id": HOME_B}
    targets.set_config(to_config({"podero": podero, "inverters": [configured]}))
    targets.set_home(other, HOME_B, [_device(HOME_B, "wallbox", "b-box")], "wallbox")
    assert [t.device_id for t in targets.current()] == [HOME_B]  # the configured one only


def test_an_inverter_listed_by_two_homes_is_counted_once() -> None:
    targets = _targets()
    targets.set_home(ORG, HOME_A, [_device(HOME_A, "inverter", "roof")] * 2)
    targets.set_home(ORG, HOME_B, [_device(HOME_B, "inverter", "roof-b")])
    assert targets.discovered_count(ORG)["inverter"] == 1
