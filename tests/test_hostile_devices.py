"""Hostile input through the new device kinds (heat pumps, electric vehicles, wallboxes) and
their surfaces: absurd values in a device's data, hostile strings in its listing, ids that
collide or are spelt differently, a home with thousands of devices, hostile `user_id`
parameters on the home view, hostile config values for the device thresholds, and a
simulator control fed the wrong types.

Each attack is run against the in-process simulator on loopback with a real exporter on the
fake clock; the simulator's answers are tampered with per device by wrapping its API
methods. Each test checks that the attack is contained (counted, logged or refused) AND
that every other device, of every kind, keeps its correct data. The six bugs these attacks
found when written (a device taken over by another home's listing, ids spelt differently
making two devices, a temperature below absolute zero exported, a timezone naming a
directory or too long a name crashing the config check, a time of day with a trailing
newline accepted, the simulator crashing on a fault of the wrong type) are fixed.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter import backfill
from exporter.api.client import iso
from exporter.api.discovery import MAX_ACTIONS
from exporter.app import Exporter
from exporter.config.model import ConfigError, parse_config
from exporter.render.status import MAX_CONCURRENT
from exporter.serve.web import WebApp, start_web
from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi, start_simulator
from exporter.sim.api import SimulatedApi as Api
from exporter.sim.devices import SimDevice
from exporter.state.readings import fields_of, latest_reading, parse_data_response
from tests.conftest import NOON, minimal_config, require_tool, to_config
from tests.fakes import FakeClock
from tests.test_discovery import discovery_config
from tests.test_exposition import samples_of
from tests.test_hostile_api import true_solar
from tests.test_status import HOME, home_view

HOMES = 12
Body = dict[str, Any]
Labels = dict[str, str]
# Markup, a quote of each kind and an entity: shown as text wherever it goes.
EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>'\"&"


@pytest.fixture
def homes(clock: FakeClock) -> Iterator[RunningSimulator]:
    """Twelve homes with one inverter each; heat pumps at even homes, EVs (and wallboxes) at
    every third (six heat pumps, four EVs, four wallboxes)."""
    sim = start_simulator(
        SimulatedApi(SimFleet(seed=5, inverters=HOMES, second_every=0), clock, Faults())
    )
    yield sim
    sim.stop()


def of_kind(sim: RunningSimulator, kind: str) -> list[SimDevice]:
    return [d for d in sim.api.fleet.devices if d.kind == kind and not d.deleted]


def tamper_data(
    sim: RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    device_id: str,
    change: Callable[[Body], Any],
) -> None:
    """The data answers of one device go through `change` (which returns the new body)."""
    original = sim.api.device_data

    def device_data(org: str, user: str, kind: str, device: str, query: dict[str, str]) -> Any:
        body = original(org, user, kind, device, query)
        return change(body) if device == device_id else body

    monkeypatch.setattr(sim.api, "device_data", device_data)


def tamper_listing(
    sim: RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[str, str, list[Body]], list[Body]],
) -> None:
    """Every heat pump, EV and wallbox listing goes through `change(user_id, kind, items)`."""
    original = sim.api.user_devices

    def user_devices(org: str | None, user: str, kind: str, deleted: bool) -> list[Body]:
        return change(user, kind, original(org, user, kind, deleted))

    monkeypatch.setattr(sim.api, "user_devices", user_devices)


def polled(sim: RunningSimulator, clock: FakeClock, raw: dict[str, Any] | None = None) -> Exporter:
    exporter = Exporter(to_config(raw or discovery_config(sim)), clock)
    exporter.refresh_inventory()
    exporter.poller.poll_all()
    return exporter


def page_of(exporter: Exporter) -> str:
    return exporter.page.render().decode("utf-8")  # strict: the page must be valid UTF-8


def series(text: str, name: str, key: str = "device_id") -> dict[str, tuple[Labels, float]]:
    return {
        dict(labels)[key]: (dict(labels), value)
        for n, labels, value in samples_of(text)
        if n == name
    }


def promtool_accepts(text: str) -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def expected(sim: RunningSimulator, device: SimDevice) -> dict[str, float]:
    """The newest measured values of a device as the untampered simulator serves them."""
    query = {"from_datetime": iso(NOON - 6 * 3600), "to_datetime": iso(NOON)}
    body = Api.device_data(sim.api, device.org_id, device.user_id, device.kind, device.id, query)
    points = parse_data_response(body, NOON, fields_of(device.kind))
    point = latest_reading(points, NOON, device.kind)
    assert point is not None
    return dict(point.values)


def assert_others_correct(
    exporter: Exporter, sim: RunningSimulator, text: str, spared: set[str]
) -> None:
    """Every device but `spared`, of every kind, is up with the simulator's values."""
    up = series(text, "podero_device_up")
    water = series(text, "podero_heat_pump_hot_water_temperature_celsius")
    level = series(text, "podero_electric_vehicle_battery_level_ratio")
    for pump in of_kind(sim, "heat_pump"):
        if pump.id not in spared:
            assert up[pump.id][1] == 1.0, pump.id
            assert water[pump.id][1] == expected(sim, pump)["hot_water_temp"], pump.id
    for ev in of_kind(sim, "electric_vehicle"):
        if ev.id not in spared:
            assert up[ev.id][1] == 1.0, ev.id
            ratio = expected(sim, ev)["battery_level"] / 100
            assert level[ev.id][1] == pytest.approx(ratio), ev.id
    inverter_up = series(text, "podero_device_up", "device_id")
    solar = series(text, "podero_inverter_solar_production_watts", "device_id")
    for inv in sim.api.fleet.inverters:
        if inv.id not in spared and not inv.deleted:
            assert inverter_up[inv.id][1] == 1.0, inv.id
            assert solar[inv.id][1] == true_solar(sim, inv.id, NOON), inv.id
    assert "podero_render_errors_total 0.0" in text


# --- numbers: absurd values in a heat pump's or an EV's data ----------------------------------
def set_field(field: str, value: Any) -> Callable[[Body], Body]:
    """Every point that has a value of `field` gets `value` instead."""

    def change(body: Body) -> Body:
        for point in body["data"]:
            if point.get(field) is not None:
                point[field] = value
        return body

    return change


def _same_time_twice(body: Body) -> Body:
    body["data"].append(dict(body["data"][0]))
    return body


ABSURD: list[tuple[str, str, Callable[[Body], Any], str]] = [
    (
        "heat_pump",
        "nan",
        set_field("hot_water_temp", float("nan")),
        "hot_water_temp nan is out of range",
    ),
    (
        "heat_pump",
        "inf",
        set_field("hot_water_temp", float("inf")),
        "hot_water_temp inf is out of range",
    ),
    (
        "heat_pump",
        "-inf",
        set_field("inlet_temp_act", float("-inf")),
        "inlet_temp_act -inf is out of range",
    ),
    (
        "heat_pump",
        "1e308",
        set_field("hot_water_temp", 1e308),
        "hot_water_temp 1e+308 is out of range",
    ),
    (
        "heat_pump",
        "400-digit-int",
        set_field("hot_water_temp", 10**400),
        "hot_water_temp is out of range",
    ),
    (
        "heat_pump",
        "string-number",
        set_field("hot_water_temp", "52.1"),
        "hot_water_temp '52.1' is not a number",
    ),
    (
        "heat_pump",
        "bool-number",
        set_field("inlet_temp_act", True),
        "inlet_temp_act True is not a number",
    ),
    ("heat_pump", "list", set_field("hot_water_temp", [52.1] * 1000), "is not a number"),
    ("heat_pump", "object", set_field("price", {"value": 1}), "price {'value': 1} is not a number"),
    (
        "electric_vehicle",
        "negative-percent",
        set_field("battery_level", -5),
        "battery_level -5 is not a percentage",
    ),
    (
        "electric_vehicle",
        "percent-1e6",
        set_field("battery_level", 1e6),
        "battery_level 1000000.0 is not a percentage",
    ),
    (
        "electric_vehicle",
        "percent-100.5",
        set_field("battery_level", 100.5),
        "battery_level 100.5 is not a percentage",
    ),
    (
        "electric_vehicle",
        "bool-as-string",
        set_field("is_charging", "false"),
        "is_charging 'false' is not a boolean",
    ),
    (
        "electric_vehicle",
        "bool-as-number",
        set_field("is_plugged_in", 0),
        "is_plugged_in 0 is not a boolean",
    ),
    (
        "electric_vehicle",
        "data-object",
        (lambda b: {**b, "data": {"0": b["data"]}}),
        "'data' is a dict, not a list",
    ),
    ("electric_vehicle", "data-null", (lambda b: {**b, "data": None}), "'data' is a NoneType"),
    ("heat_pump", "body-list", (lambda b: b["data"]), "body is a list, not an object"),
    (
        "heat_pump",
        "point-string",
        (lambda b: {**b, "data": ["x", *b["data"]]}),
        "data[0] is not an object",
    ),
    (
        "heat_pump",
        "time-number",
        (lambda b: {**b, "data": [{**b["data"][0], "time": 1.7e9}]}),
        "time 1700000000.0 is not a string",
    ),
    (
        "electric_vehicle",
        "time-garbage",
        set_field("time", "yesterday at noon" * 10_000),
        "is not an ISO 8601 date-time",
    ),
    ("heat_pump", "same-time-twice", _same_time_twice, "two points share the time"),
]


@pytest.mark.parametrize(
    ("kind", "change", "reason"),
    [(kind, change, reason) for kind, _, change, reason in ABSURD],
    ids=[f"{kind}-{case}" for kind, case, _, _ in ABSURD],
)
def test_absurd_device_data_costs_only_that_device(
    homes: RunningSimulator,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    change: Callable[[Body], Any],
    reason: str,
) -> None:
    victim = of_kind(homes, kind)[1]
    tamper_data(homes, monkeypatch, victim.id, change)
    exporter = polled(homes, clock)
    text = page_of(exporter)
    exporter.stop()
    assert series(text, "podero_device_up")[victim.id][1] == 0.0  # down, not a wrong value
    assert not [
        n
        for n, labels, _ in samples_of(text)
        if dict(labels).get("device_id") == victim.id and n.startswith(f"podero_{kind}_")
    ]
    error = next(s.last_error for s in exporter.store.snapshot() if s.target.device_id == victim.id)
    assert error is not None and reason in error and len(error) <= 300, error
    invalid = series(text, "podero_api_invalid_responses_total", "endpoint")
    assert invalid[f"{kind}_data"][1] == 1.0
    assert_others_correct(exporter, homes, text, {victim.id})
    promtool_accepts(text)


def test_garbage_in_fields_the_exporter_does_not_read_is_ignored(
    homes: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API documents more fields than the exporter reads ("also seen"); garbage in
    # them must not cost the device its reading.
    def change(body: Body) -> Body:
        for point in body["data"]:
            point.update(
                simulated_consumption=float("nan"),
                estimated_consumption_filtered="\udc80" * 1000,
                is_charging_session={"nested": [float("inf")]},
            )
        return body

    pump = of_kind(homes, "heat_pump")[0]
    tamper_data(homes, monkeypatch, pump.id, change)
    exporter = polled(homes, clock)
    text = page_of(exporter)
    exporter.stop()
    assert_others_correct(exporter, homes, text, set())  # the tampered pump included


def test_a_temperature_below_absolute_zero_is_not_exported(
    homes: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pump = of_kind(homes, "heat_pump")[0]
    tamper_data(homes, monkeypatch, pump.id, set_field("hot_water_temp", -1e9))
    exporter = polled(homes, clock)
    text = page_of(exporter)
    exporter.stop()
    assert_others_correct(exporter, homes, text, {pump.id})
    assert pump.id not in series(text, "podero_heat_pump_hot_water_temperature_celsius")


# --- strings: hostile device listings ---------------------------------------------------------
HOSTILE_DEVICE = {
    "device_model": {"manufacturer": "Evil\u202eCorp\x00\x1b[31m", "model": "X\udc80" + EVIL},
    "lifecycle_state": "authenticated\r\nSet-Cookie: x=1",
    "connection_status": "\ud800",
    "optimization_score": float("inf"),
    "is_smart_optimization_active": "yes",
    "actions": [
        {"code": EVIL, "resolution_link": "javascript:alert(1)"},
        {"code": "re\x00authenticate\n"},
        {"code": "\udc80" * 10},
        {"code": "z" * 100_000},
        {"code": 42},
        "reauthenticate",
        *({"code": f"code-{i}"} for i in range(1000)),
    ],
}


def hostile_home(sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """The first home with a device of every kind gets hostile listings and a hostile owner;
    its user id."""
    user = next(
        u.id
        for u in sim.api.fleet.users
        if {"heat_pump", "electric_vehicle"}
        <= {d.kind for d in sim.api.fleet.devices if d.user_id == u.id}
    )
    tamper_listing(
        sim,
        monkeypatch,
        lambda u, _kind, items: [{**i, **HOSTILE_DEVICE} for i in items] if u == user else items,
    )
    original = sim.api.users

    def users(org: str, deleted: bool) -> list[Body]:
        listed = original(org, deleted)
        return [
            {**u, "external_user_id": EVIL + "\x00\u2028" + "o" * 100_000} if u["id"] == user else u
            for u in listed
        ]

    monkeypatch.setattr(sim.api, "users", users)
    return user


def test_hostile_device_listings_break_no_page(
    homes: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = hostile_home(homes, monkeypatch)
    exporter = polled(homes, clock)
    text = page_of(exporter)
    mine = [d for d in homes.api.fleet.devices if d.user_id == user]
    assert len(mine) == 3  # a heat pump, an EV and a wallbox
    info = series(text, "podero_device_info")
    for device in mine:
        labels = info[device.id][0]
        assert labels["manufacturer"] == "EvilCorp[31m"
        assert labels["model"] == "X\ufffd" + EVIL  # the surrogate is U+FFFD, the rest text
        assert labels["lifecycle_state"] == "authenticatedSet-Cookie: x=1"
        assert labels["name"].startswith("<script>") and len(labels["name"]) <= 127
        actions = [
            dict(labels)["action"]
            for n, labels, _ in samples_of(text)
            if n == "podero_device_action_needed" and dict(labels)["device_id"] == device.id
        ]
        # At most MAX_ACTIONS listed actions, each code clean and at most 64 characters.
        assert 0 < len(actions) <= MAX_ACTIONS
        assert all(len(a) <= 64 and a.isprintable() for a in actions), actions
        assert "reauthenticate" in actions  # the NUL and newline around it are gone
    # Nothing non-finite: the infinite optimisation score and the "yes" flag are dropped.
    score = series(text, "podero_device_optimization_score")
    assert not {d.id for d in mine} & set(score)
    assert_others_correct(exporter, homes, text, set())  # the hostile home's too: values
    promtool_accepts(text)

    view = exporter.status_view()
    html = view.html({"user_id": user}).decode("utf-8")
    assert "<img" not in html and "<script>alert" not in html
    assert html.count("<tr data-device-id=") == 4  # its inverter beside the three
    body = view.json({"user_id": user}, devices=True)
    assert b"\\ud8" not in body and b"\\udc" not in body  # no lone surrogate, even escaped
    home = json.loads(body)
    assert home["total"] == 4 and home["home"]["owner"].startswith(EVIL)
    assert len(home["home"]["owner"]) <= 200
    for row in home["devices"]:
        assert all(len(a) <= 64 for a in row["actions"]) and len(row["actions"]) <= MAX_ACTIONS
    exporter.stop()


def test_hostile_device_listings_backfill_into_blocks_promtool_accepts(
    homes: RunningSimulator,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    promtool = require_tool("promtool")
    user = hostile_home(homes, monkeypatch)
    pump = next(d for d in of_kind(homes, "heat_pump") if d.user_id != user)
    # One device's history is refused (NaN): its pages fail, every other device's are in.
    tamper_data(homes, monkeypatch, pump.id, set_field("hot_water_temp", float("nan")))
    raw = discovery_config(homes)
    out = tmp_path / "history.om"
    args = backfill.parse_args(
        [
            "--from",
            "2026-11-22",
            "--to",
            "2026-11-23",
            "--output",
            str(out),
            "--label",
            'instance=x"\\y\n',
        ]
    )
    result = backfill.run(to_config(raw), args, clock)
    assert result.failed == 1 and result.devices == HOMES + 6 + 4 + 4
    text = out.read_text(encoding="utf-8")
    assert "\ufffd" in text and "\ud800" not in text and "<script>" in text  # text, escaped
    assert 'instance="x\\"\\\\y\\n"' in text
    mine = {d.id for d in homes.api.fleet.devices if d.user_id == user}
    assert any(f'device_id="{i}"' in text for i in mine)
    assert (
        f'device_id="{pump.id}",name'
        not in text.split("podero_heat_pump_inlet")[1].split("# HELP")[0]
    )
    # Without # EOF (a page failed) promtool refuses the file; the pages that are in, as a
    # complete file, make blocks.
    whole = tmp_path / "whole.om"
    whole.write_text(text + "# EOF\n", encoding="utf-8")
    created = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "-q",
            str(whole),
            str(tmp_path / "blocks"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr + created.stdout


# --- ids: collisions, other spellings, sheer numbers ------------------------------------------
def test_another_homes_listing_cannot_take_over_a_device(
    homes: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = of_kind(homes, "heat_pump")[0]
    thief = next(u.id for u in homes.api.fleet.users if u.id != victim.user_id)

    def change(user: str, kind: str, items: list[Body]) -> list[Body]:
        if user == thief and kind == "wallbox":
            return [*items, {"id": victim.id, "device_model": {"manufacturer": "Clone"}}]
        return items

    tamper_listing(homes, monkeypatch, change)
    exporter = polled(homes, clock)
    exporter.refresh_inventory()  # a second round: the claim stays, whatever the order
    exporter.poller.poll_all()
    text = page_of(exporter)
    exporter.stop()
    assert_others_correct(exporter, homes, text, set())  # the victim keeps its values
    info = series(text, "podero_device_info")[victim.id][0]
    assert (info["kind"], info["user_id"]) == ("heat_pump", victim.user_id)


def test_a_device_listed_twice_in_one_listing_is_one_device(
    homes: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ev = of_kind(homes, "electric_vehicle")[0]
    tamper_listing(
        homes,
        monkeypatch,
        lambda user, kind, items: items * 3 if (user, kind) == (ev.user_id, ev.kind) else items,
    )
    exporter = polled(homes, clock)
    text = page_of(exporter)
    exporter.stop()
    assert sum(t.device_id == ev.id for t in exporter.targets.current()) == 1
    assert homes.api.stats()["responses"]["electric_vehicle_data"] == {"200": 4}  # four EVs
    assert_others_correct(exporter, homes, text, set())
    promtool_accepts(text)  # no duplicate series


def test_a_configured_device_listed_in_upper_case_keeps_its_name_and_labels(
    homes: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pump = of_kind(homes, "heat_pump")[0]
    score = {"value": 0.9}
    tamper_listing(
        homes,
        monkeypatch,
        lambda _user, _kind, items: [
            {**i, "id": i["id"].upper(), "optimization_score": score["value"]} for i in items
        ],
    )
    original = homes.api.device_data
    monkeypatch.setattr(
        homes.api, "device_data", lambda o, u, k, d, q: original(o, u, k, d.lower(), q)
    )
    raw = discovery_config(homes)
    raw["inverters"] = [
        {
            "org_id": pump.org_id,
            "user_id": pump.user_id,
            "inverter_id": pump.id,
            "name": "cellar-pump",
            "kind": "heat_pump",
            "labels": {"site": "cellar"},
        },
    ]
    exporter = polled(homes, clock, raw)
    score["value"] = 0.5  # the listing changes: the discovered twin is published again
    exporter.refresh_inventory()
    text = page_of(exporter)
    exporter.stop()
    assert len(exporter.targets) == len(exporter.store)
    info = series(text, "podero_device_info")[pump.id][0]
    assert (info["name"], info.get("site")) == ("cellar-pump", "cellar")


def test_a_home_with_thousands_of_devices_costs_the_others_nothing(
    homes: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 3000
    crowded = of_kind(homes, "wallbox")[0].user_id
    template = {"device_model": {"manufacturer": "go-e", "model": "Gemini"}, "actions": []}

    def change(user: str, kind: str, items: list[Body]) -> list[Body]:
        if (user, kind) != (crowded, "wallbox"):
            return items
        return [{**template, "id": f"{i:08x}-0000-4000-8000-{i:012x}"} for i in range(n)]

    tamper_listing(homes, monkeypatch, change)
    exporter = polled(homes, clock)
    text = page_of(exporter)
    assert_others_correct(exporter, homes, text, set())
    infos = series(text, "podero_device_info").values()
    others = [labels for labels, _ in infos if labels["kind"] != "inverter"]
    assert len(others) == n + 6 + 4 + 3  # the other wallboxes
    promtool_accepts(text)
    view = exporter.status_view()
    html = view.html({"user_id": crowded}).decode()
    assert html.count("<tr data-device-id=") == 100  # one page, not 3,000 rows
    home = json.loads(view.json({"user_id": crowded, "limit": "999999"}, devices=True))
    assert home["total"] == n + 3 and len(home["devices"]) == 1000
    assert home["home"]["kinds"]["wallbox"] == n
    exporter.stop()


# --- the home view's user_id over HTTP --------------------------------------------------------
@pytest.fixture
def home_site() -> Iterator[str]:
    view, _ = home_view(FakeClock(NOON))
    server = start_web(
        "127.0.0.1:0", WebApp(lambda: [b"podero_up 1\n"], lambda: True, lambda: None, view)
    )
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


HOME_SPELLINGS = [
    HOME.upper(),
    "{" + HOME + "}",
    "urn:uuid:" + HOME,
    HOME.replace("-", ""),
    HOME.replace("a", "A"),
    HOME.replace("0", "%EF%BC%90", 1),  # a full-width 0: int() reads Unicode digits
]
REFUSED = [
    "%00" + HOME,
    HOME + "%00",
    "%FF%FE" + HOME[4:],
    HOME[:-1] + "%E2%80%AE",
    "x" * 30_000,
    "../" + HOME,
    HOME + "&user_id=nope",  # repeated: the last one counts
]


def test_hostile_user_ids_get_the_home_or_a_400_that_does_not_echo(home_site: str) -> None:
    for path in ("/", "/api/v1/devices"):
        for spelling in HOME_SPELLINGS:
            answer = requests.get(f"{home_site}{path}?user_id={spelling}", timeout=5)
            assert answer.status_code == 200, spelling
            if path == "/":
                assert answer.text.count("<tr data-device-id=") == 4
                assert f"value='{HOME}'" in answer.text  # the canonical id, not the spelling
            else:
                assert answer.json()["total"] == 4 and answer.json()["home"]["user_id"] == HOME
        for attack in REFUSED:
            answer = requests.get(f"{home_site}{path}?user_id={attack}", timeout=5)
            assert answer.status_code in (400, 414, 431), attack
            if answer.status_code == 400:
                assert answer.text.startswith("Bad request: user_id is not a UUID")
                assert "nope" not in answer.text and "%" not in answer.text
                assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
        first_wins_not = requests.get(f"{home_site}{path}?user_id=nope&user_id={HOME}", timeout=5)
        assert first_wins_not.status_code == 200
        unicode_digits = requests.get(
            f"{home_site}{path}", params={"user_id": "\u0661" * 32}, timeout=5
        )  # Arabic-Indic ones: int() reads them, so the home is 11111111-1111-...
        assert unicode_digits.status_code in (200, 400)
        assert "\u0661" not in unicode_digits.text


def test_a_storm_of_home_views_leaves_every_scrape_served(home_site: str) -> None:
    codes: list[int] = []
    scrapes: list[int] = []
    lock = threading.Lock()

    def storm() -> None:
        with requests.Session() as session:
            for _ in range(15):
                answer = session.get(
                    f"{home_site}/", params={"user_id": HOME, "q": "x" * 190}, timeout=10
                )
                if answer.status_code == 503:
                    assert answer.headers["Retry-After"] == "1"
                with lock:
                    codes.append(answer.status_code)

    def scrape() -> None:
        with requests.Session() as session:
            for _ in range(15):
                answer = session.get(f"{home_site}/metrics", timeout=10)
                with lock:
                    scrapes.append(answer.status_code)

    threads = [threading.Thread(target=storm) for _ in range(4 * MAX_CONCURRENT)]
    threads.append(threading.Thread(target=scrape))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(codes) == 15 * 4 * MAX_CONCURRENT and set(codes) <= {200, 503}
    assert 200 in codes
    assert scrapes == [200] * 15


# --- config: hostile timezone and time-of-day values ------------------------------------------
def _config_with(path: str, value: Any) -> str:
    raw = minimal_config()
    node = raw
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return yaml.safe_dump(raw)


@pytest.mark.parametrize(
    "zone",
    [
        "Europe",
        "Europe/" + "x" * 10_000,
        "Europe/Vienna/../../etc/passwd",
        "Europe/Vienna\x00",
        "localtime",
        "Factory",
    ],
    ids=["directory", "too-long", "dotdot", "nul", "host-localtime", "factory"],
)
def test_a_hostile_timezone_is_a_config_error(zone: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(_config_with("timezone", zone), {}, source="c.yaml")
    assert str(refused.value).startswith("c.yaml: timezone: ") or "timezone: " in str(refused.value)
    assert len(str(refused.value)) < 400  # the value is shown short


def test_a_time_of_day_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"thresholds\.vehicle_charged_by"):
        parse_config(_config_with("thresholds.vehicle_charged_by", "07:00\n"), {})


# --- the simulator's own controls -------------------------------------------------------------
def test_a_fault_of_the_wrong_type_is_refused_and_the_simulator_keeps_serving(
    homes: RunningSimulator,
) -> None:
    answer = requests.post(f"{homes.base_url}/_sim/faults", json={"error_5xx": "often"}, timeout=5)
    after = requests.get(f"{homes.base_url}/api/partners/v2.0/org/x/users", timeout=5)
    assert answer.status_code == 400 and "error_5xx" in answer.text
    assert after.status_code == 401


@pytest.mark.parametrize("values", [{"battery_level": "full"}, ["battery_level"], {"x": None}])
def test_an_override_of_the_wrong_type_is_refused(homes: RunningSimulator, values: Any) -> None:
    answer = requests.post(
        f"{homes.base_url}/_sim/override",
        json={"inverter_id": "x", "values": values},
        timeout=5,
    )
    assert answer.status_code == 400 and "numbers" in answer.text
    assert "x" not in homes.api.overrides
