"""Labels for discovered devices (`device_labels:`): rules by user_id, owner (the user's
external id) or device_id add labels to podero_device_info of the matched devices only, from
the config and a file it names; a reload re-labels without listing the fleet again; names the
exporter sets are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.app import Exporter
from exporter.config.labels import DeviceLabels
from exporter.config.model import ConfigError
from exporter.sim import RunningSimulator, SimFleet, SimulatedApi, start_simulator
from tests.conftest import minimal_config, to_config
from tests.fakes import FakeClock
from tests.test_discovery import discovery_config
from tests.test_exposition import samples_of

HOMES = 1000
INFO = "podero_device_info"


@pytest.fixture
def thousand_homes(clock: FakeClock) -> Iterator[RunningSimulator]:
    # One inverter per home (no second ones), no other kinds: 1,000 homes, 1,000 devices.
    fleet = SimFleet(seed=5, inverters=HOMES, second_every=0, other_devices=False)
    sim = start_simulator(SimulatedApi(fleet, clock))
    yield sim
    sim.stop()


def info_labels(exporter: Exporter) -> dict[str, dict[str, str]]:
    """device_id -> the labels of its info series."""
    return {
        dict(labels)["device_id"]: dict(labels)
        for name, labels, _ in samples_of(exporter.page.render().decode())
        if name == INFO
    }


CUSTOM = ("region", "installer", "contract")


def custom(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k in CUSTOM}


def test_a_thousand_discovered_homes_get_labels_from_rules_and_a_reload_changes_them(
    thousand_homes: RunningSimulator, clock: FakeClock, tmp_path: Path
) -> None:
    fleet = thousand_homes.api.fleet
    users = {u.id: u for u in fleet.users}
    live = [i for i in fleet.inverters if not i.deleted and not users[i.user_id].deleted]
    assert len({i.user_id for i in live}) > 900
    a, b, c = live[10], live[20], live[30]
    north = live[100:300]  # by owner, from the file
    rules_file = tmp_path / "device-labels.yaml"
    rules_file.write_text(
        yaml.safe_dump(
            [
                {
                    "match": {"owner": users[i.user_id].external_user_id},
                    "labels": {"region": "north"},
                }
                for i in north
            ]
        )
    )
    raw: dict[str, Any] = discovery_config(thousand_homes)
    raw["device_labels"] = {
        "rules": [
            {"match": {"user_id": a.user_id}, "labels": {"installer": "acme", "region": "south"}},
            {"match": {"device_id": a.id}, "labels": {"region": "east"}},  # later: wins
            {"match": {"device_id": b.id}, "labels": {"contract": "flex"}},
        ],
        "file": str(rules_file),
    }
    exporter = Exporter(to_config(raw), clock)
    exporter.refresh_inventory()
    try:
        info = info_labels(exporter)
        assert len(info) == len(live)
        expected = {a.id: {"installer": "acme", "region": "east"}, b.id: {"contract": "flex"}}
        expected.update({i.id: {"region": "north"} for i in north})
        labelled = {d: custom(labels) for d, labels in info.items() if custom(labels)}
        assert labelled == expected
        assert c.id in info and not custom(info[c.id])

        # A reload with other rules: the file changes, a config rule goes; no new listing.
        discovery = exporter.discovery
        rules_file.write_text(
            yaml.safe_dump([{"match": {"user_id": c.user_id}, "labels": {"region": "west"}}])
        )
        raw["device_labels"]["rules"] = raw["device_labels"]["rules"][2:]
        assert exporter.reload(lambda: to_config(raw)) is None
        assert exporter.discovery is discovery
        labelled = {d: custom(v) for d, v in info_labels(exporter).items() if custom(v)}
        assert labelled == {b.id: {"contract": "flex"}, c.id: {"region": "west"}}
    finally:
        exporter.stop()


def test_a_configured_devices_own_labels_win_over_the_rules(
    thousand_homes: RunningSimulator, clock: FakeClock
) -> None:
    chosen = next(i for i in thousand_homes.api.fleet.inverters if not i.deleted)
    raw: dict[str, Any] = discovery_config(thousand_homes)
    raw["inverters"] = [
        {
            "org_id": chosen.org_id,
            "user_id": chosen.user_id,
            "inverter_id": chosen.id,
            "labels": {"region": "mine"},
        }
    ]
    raw["device_labels"] = {
        "rules": [
            {"match": {"user_id": chosen.user_id}, "labels": {"region": "x", "installer": "y"}}
        ]
    }
    exporter = Exporter(to_config(raw), clock)
    exporter.refresh_inventory()
    try:
        assert custom(info_labels(exporter)[chosen.id]) == {"region": "mine", "installer": "y"}
    finally:
        exporter.stop()


USER = "0b5e3c1a-1111-4222-8333-944455556666"


@pytest.mark.parametrize(
    ("device_labels", "message"),
    [
        (
            {"rules": [{"match": {"user_id": USER}, "labels": {"device_id": "x"}}]},
            "'device_id' is set by the exporter on",
        ),
        (
            {"rules": [{"match": {"owner": "c1"}, "labels": {"manufacturer": "x"}}]},
            "'manufacturer' is set by the exporter on podero_device_info",
        ),
        ({"rules": [{"match": {"owner": "c1"}, "labels": {"job": "x"}}]}, "'job' is set"),
        ({"rules": [{"match": {"owner": "c1"}, "labels": {"__x": "x"}}]}, "not a valid"),
        ({"rules": [{"match": {"owner": "c1", "user_id": USER}, "labels": {"a": "b"}}]}, "one of"),
        ({"rules": [{"match": {"home": "c1"}, "labels": {"a": "b"}}]}, "exactly one of"),
        ({"rules": [{"match": {"user_id": "abc"}, "labels": {"a": "b"}}]}, "is not a UUID"),
        ({"rules": [{"match": {"owner": "c1"}, "labels": {}}]}, "device_labels.rules[0].labels: "),
        ({"rules": [{"match": {"owner": "c1"}, "labels": {"a": "b"}, "x": 1}]}, "x"),
        ({"file": "/nonexistent/labels.yaml"}, "/nonexistent/labels.yaml"),
    ],
)
def test_bad_rules_are_refused_naming_the_key(device_labels: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        to_config(minimal_config(device_labels=device_labels))
    assert str(info.value).startswith("device_labels")
    assert message in str(info.value)


def test_a_bad_rule_in_the_file_is_refused_naming_the_file_and_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump([{"match": {"owner": "c"}, "labels": {"kind": "x"}}]))
    with pytest.raises(ValueError, match=r"labels\.yaml.*\[0\]\.labels: 'kind' is set by"):
        DeviceLabels(file=str(path))
    path.write_text("region: north\n")
    with pytest.raises(ValueError, match="must hold a list of rules"):
        DeviceLabels(file=str(path))
    path.write_text("")
    assert len(DeviceLabels(file=str(path))) == 0
