"""TargetSet: which listing a discovered device belongs to when two homes name the same id."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from exporter.config.model import Config
from exporter.state.targets import (
    DeviceTarget,
    DiscoveredDevice,
    Inventory,
    TargetSet,
    authenticated,
)
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


# --- what a mutation run found unpinned (issue 22) ----------------------------------------------
HOME_C = "00000000-0000-4000-8000-0000000000cc"  # shard 0 of 2; HOME_A and HOME_B are shard 1
OTHER_ORG = "00000000-0000-4000-8000-000000000002"
CONF_A = "00000000-0000-4000-8000-0000000000a1"
CONF_C = "00000000-0000-4000-8000-0000000000c1"
PODERO = {"base_url": "http://127.0.0.1:9", "auth": {"client_id": "a", "client_secret": "b"}}


def _config(**extra: Any) -> Config:
    return to_config({"podero": PODERO, "discovery": {"org_ids": [ORG, OTHER_ORG]}, **extra})


def _entry(user: str, device: str, **extra: Any) -> dict[str, Any]:
    return {"org_id": ORG, "user_id": user, "inverter_id": device, **extra}


def _pump(user: str, device: str = DEVICE, org: str = ORG, **inventory: Any) -> DiscoveredDevice:
    return DiscoveredDevice(org, user, device, "pump", Inventory(**inventory), kind="heat_pump")


class Follower:
    """A follower that keeps what it is told: (changed ids, removed ids) per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []
        self.changed: list[DeviceTarget] = []

    def apply_targets(self, changed: list[DeviceTarget], removed: list[str]) -> None:
        self.calls.append(([t.device_id for t in changed], list(removed)))
        self.changed += changed


@pytest.mark.parametrize(
    ("inventory", "expected"),
    [
        (Inventory(), None),
        (Inventory(is_authenticated=True, actions=("reauthenticate",)), True),  # the API's word
        (Inventory(is_authenticated=False, lifecycle_state="authenticated"), False),
        (Inventory(actions=("reauthenticate",), lifecycle_state="authenticated"), False),
        (Inventory(actions=("connect_battery",), lifecycle_state="authenticated"), True),
        (Inventory(actions=("connect_battery",)), None),
        (Inventory(actions=()), None),
        (Inventory(lifecycle_state="revoked"), False),
    ],
)
def test_authenticated_takes_the_flag_then_the_actions_then_the_lifecycle(
    inventory: Inventory, expected: bool | None
) -> None:
    assert authenticated(inventory) is expected


def test_a_configured_entry_becomes_a_target_with_the_defaults_it_leaves_unset() -> None:
    entry = _entry(HOME_A, CONF_A, name="roof", labels={"site": "vienna", "floor": "2"})
    entry["thresholds"] = {"battery_low_percent": 30}
    config = _config(inverters=[entry], thresholds={"hot_water_low_celsius": 40})
    (target,) = TargetSet(config).current()
    assert target == DeviceTarget(
        device_id=CONF_A,
        org_id=ORG,
        user_id=HOME_A,
        name="roof",
        labels=(("floor", "2"), ("site", "vienna")),
        thresholds=(("battery_low_percent", 30.0),),  # no grid limit set; the pump's not its
        kind="inverter",
    )
    assert target.threshold("battery_low_percent") == 30.0
    assert target.threshold("grid_export_high_watts") is None
    assert target.log_fields() == {
        "device_id": CONF_A,
        "name": "roof",
        "user_id": HOME_A,
        "kind": "inverter",
    }


def test_a_discovered_device_is_a_target_with_its_inventory_and_the_defaults() -> None:
    targets = TargetSet(_config(thresholds={"hot_water_low_celsius": 40}))
    targets.set_home(ORG, HOME_A, [_pump(HOME_A, model="X1")], "heat_pump")
    assert targets.current() == [
        DeviceTarget(
            device_id=DEVICE,
            org_id=ORG,
            user_id=HOME_A,
            name="pump",
            thresholds=(("hot_water_low_celsius", 40.0),),
            inventory=Inventory(model="X1"),
            discovered=True,
            kind="heat_pump",
        )
    ]


def test_rules_label_by_home_owner_and_device_and_a_device_s_own_labels_win() -> None:
    rules = [
        {"match": {"user_id": HOME_A}, "labels": {"tier": "gold"}},
        {"match": {"owner": "cust-1"}, "labels": {"region": "north"}},
        {"match": {"device_id": DEVICE}, "labels": {"contract": "flex"}},
        {"match": {"device_id": CONF_A}, "labels": {"region": "east"}},
    ]
    config = _config(
        device_labels={"rules": rules},
        inverters=[_entry(HOME_A, CONF_A, labels={"region": "south"})],
    )
    targets = TargetSet(config)
    targets.set_home(ORG, HOME_A, [_pump(HOME_A, owner="cust-1")], "heat_pump")
    targets.set_home(ORG, HOME_B, [_pump(HOME_B, CONF_C)], "heat_pump")
    labels = {t.device_id: t.labels for t in targets.current()}
    assert labels == {
        CONF_A: (("region", "south"), ("tier", "gold")),
        DEVICE: (("contract", "flex"), ("region", "north"), ("tier", "gold")),
        CONF_C: (),  # no rule matches
    }


def test_followers_hear_of_each_real_change_once() -> None:
    targets = TargetSet(_config(inverters=[_entry(HOME_C, CONF_C)]))
    follower = Follower()
    targets.follow(follower)
    targets.set_home(ORG, HOME_A, [_pump(HOME_A)], "heat_pump")
    targets.set_home(ORG, HOME_A, [_pump(HOME_A)], "heat_pump")  # the same again: nothing
    targets.add_inventory({CONF_C: Inventory(model="S1")})
    targets.add_inventory({CONF_C: Inventory(model="S1")})
    targets.set_home(ORG, HOME_A, [], "heat_pump")
    assert follower.calls == [([DEVICE], []), ([CONF_C], []), ([], [DEVICE])]
    assert follower.changed[1].inventory == Inventory(model="S1")


def test_a_configured_device_takes_its_listing_s_inventory_else_the_detail_endpoint_s() -> None:
    targets = TargetSet(_config(inverters=[_entry(HOME_A, CONF_A), _entry(HOME_C, CONF_C)]))
    targets.add_inventory({CONF_A: Inventory(model="old"), CONF_C: Inventory(model="S1")})
    listed = DiscoveredDevice(ORG, HOME_A, CONF_A, "roof", Inventory(model="listed"))
    targets.set_home(ORG, HOME_A, [listed])
    inventory = {t.device_id: (t.inventory, t.discovered) for t in targets.current()}
    assert inventory == {
        CONF_A: (Inventory(model="listed"), False),  # configured, whatever lists it
        CONF_C: (Inventory(model="S1"), False),
    }
    assert [t.device_id for t in targets.configured_only()] == [CONF_C]


def test_a_shard_keeps_the_homes_it_owns_configured_or_discovered() -> None:
    config = _config(
        inverters=[_entry(HOME_A, CONF_A), _entry(HOME_C, CONF_C)], shard={"count": 2, "index": 0}
    )
    targets = TargetSet(config)
    targets.set_home(ORG, HOME_A, [_pump(HOME_A)], "heat_pump")
    targets.set_home(
        ORG, HOME_C, [_pump(HOME_C, "00000000-0000-4000-8000-0000000000c2")], "heat_pump"
    )
    assert sorted(t.device_id for t in targets.current()) == [
        CONF_C,
        "00000000-0000-4000-8000-0000000000c2",
    ]
    assert [t.device_id for t in targets.configured_only()] == [CONF_C]


def test_discovered_counts_and_listed_homes_are_per_organization() -> None:
    targets = _targets_of_two_orgs()
    assert targets.discovered_count(ORG) == {
        "inverter": 0,
        "heat_pump": 2,
        "electric_vehicle": 0,
        "wallbox": 0,
    }
    assert targets.discovered_count(OTHER_ORG)["heat_pump"] == 1
    assert targets.listed_homes(ORG) == {HOME_A, HOME_B}
    assert targets.listed_homes(OTHER_ORG) == {HOME_C}


def _targets_of_two_orgs() -> TargetSet:
    targets = TargetSet(_config())
    targets.set_home(ORG, HOME_A, [_pump(HOME_A)], "heat_pump")
    targets.set_home(ORG, HOME_B, [_pump(HOME_B, CONF_A)], "heat_pump")
    targets.set_home(OTHER_ORG, HOME_C, [_pump(HOME_C, CONF_C, OTHER_ORG)], "heat_pump")
    return targets


def test_a_reload_keeps_the_discovered_devices_and_tells_followers_nothing() -> None:
    targets = _targets_of_two_orgs()
    follower = Follower()
    targets.follow(follower)
    before = targets.current()
    targets.set_config(_config())
    assert targets.current() == before and len(before) == 3
    assert follower.calls == []


def test_two_organizations_removed_at_once_take_all_their_devices_along() -> None:
    targets = _targets_of_two_orgs()
    follower = Follower()
    targets.follow(follower)
    kept = "00000000-0000-4000-8000-0000000000c3"
    targets.set_config(to_config({"podero": PODERO, "inverters": [_entry(HOME_C, kept)]}))
    assert [t.device_id for t in targets.current()] == [kept] and len(targets) == 1
    assert follower.calls == [([kept], [DEVICE, CONF_A, CONF_C])]
    assert targets.listed_homes(ORG) == set() and targets.listed_homes(OTHER_ORG) == set()


def test_a_device_id_claimed_by_two_homes_is_logged_with_both_and_forgotten_once_unlisted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    targets = _targets()
    targets.set_home(ORG, HOME_A, [_device(HOME_A, "heat_pump", "a-pump")], "heat_pump")
    with caplog.at_level(logging.WARNING, logger="exporter.state.targets"):
        targets.set_home(ORG, HOME_B, [_device(HOME_B, "wallbox", "b-box")], "wallbox")
    assert [getattr(r, "kv", None) for r in caplog.records] == [
        {
            "device_id": DEVICE,
            "user_id": HOME_B,
            "kind": "wallbox",
            "owner_user_id": HOME_A,
            "owner_kind": "heat_pump",
        }
    ]
    targets.set_home(ORG, HOME_A, [], "heat_pump")
    targets.set_home(ORG, HOME_B, [], "wallbox")
    assert targets.current() == [] and targets._claims == {}  # nothing kept for a gone id


def test_an_unchanged_listing_round_keeps_its_objects_and_resolves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hourly round of an unchanged fleet copies nothing: memory stays as it was."""
    import exporter.state.targets as module

    targets = TargetSet(_config())
    first = [_pump(HOME_A, model="S1"), _pump(HOME_A, CONF_C, model="S2")]
    targets.set_home(ORG, HOME_A, first, "heat_pump")
    resolved: list[str] = []
    real = module._discovered_target
    monkeypatch.setattr(
        module, "_discovered_target", lambda d, c: resolved.append(d.device_id) or real(d, c)
    )
    again = [_pump(HOME_A, model="S1"), _pump(HOME_A, CONF_C, model="S3")]  # equal, changed
    targets.set_home(ORG, HOME_A, again, "heat_pump")
    assert resolved == [CONF_C]
    targets.set_config(_config(poll={"interval_seconds": 120}))  # everything resolved again
    by_id = {t.device_id: t for t in targets.current()}
    assert by_id[DEVICE].inventory is first[0].inventory  # the first round's, not a copy
    assert by_id[CONF_C].inventory is again[1].inventory
    assert by_id[CONF_C].inventory.model == "S3"


def test_a_discovered_device_s_ids_are_the_listing_s_strings_not_copies() -> None:
    org, user, device = (str(uuid.UUID(int=i)) for i in (1, 2, 3))
    targets = TargetSet(to_config({"podero": PODERO, "discovery": {"org_ids": [org]}}))
    targets.set_home(org, user, [DiscoveredDevice(org, user, device, "inv", Inventory())])
    (target,) = targets.current()
    assert (target.org_id, target.user_id, target.device_id) == (org, user, device)
    assert target.org_id is org and target.user_id is user and target.device_id is device


def test_a_listing_that_names_one_id_twice_keeps_the_first_and_the_others_intact() -> None:
    """A hostile listing repeats an id with other contents, round after round: the first
    entry is the device, and its neighbour in the same listing keeps its data."""
    targets = TargetSet(_config())
    for model in ("S1", "S2", "S1"):
        twice = [_pump(HOME_A, model=model), _pump(HOME_A, model="evil"), _pump(HOME_A, CONF_C)]
        targets.set_home(ORG, HOME_A, twice, "heat_pump")
        by_id = {t.device_id: t for t in targets.current()}
        assert set(by_id) == {DEVICE, CONF_C}
        assert by_id[DEVICE].inventory is not None and by_id[DEVICE].inventory.model == model
        assert by_id[CONF_C].inventory == Inventory()
