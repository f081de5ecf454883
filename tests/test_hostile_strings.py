"""Strings from outside (issue 11): the listing helpers that apply the one sanitising
function (its own tests: tests/test_text.py), the per-device rendering guard that keeps one
bad device from failing the page of all the others, and the home view showing a hostile
owner and name inert."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import CollectorRegistry

from exporter.api.discovery import default_name, inventory_from, owner_of
from exporter.render.exposition import MetricsPage
from exporter.render.status import Header, StatusView
from exporter.state.readings import DataPoint
from exporter.state.store import ReadingStore
from exporter.state.targets import DeviceTarget, Inventory
from tests.conftest import NOON
from tests.fakes import FakeClock
from tests.test_exposition import samples_of


def test_listing_helpers_clean_every_string() -> None:
    item = {
        "id": "6f1c0000-0000-4000-8000-000000000000",
        "device_model": {"manufacturer": "Evil\u202eCorp\x00", "model": "X\udc80"},
        "price_zone": "Z" * 100_000,
        "lifecycle_state": "  ",
        "connection_status": "ok\r\nSet-Cookie: x",
        "monitoring_status": 42,
    }
    inventory = inventory_from(item, owner="cust-1")
    assert inventory.manufacturer == "EvilCorp"
    assert inventory.model == "X\ufffd"
    assert inventory.price_zone == "Z" * 199 + "…"
    assert inventory.lifecycle_state is None  # blank after cleaning: says nothing
    assert inventory.connection_status == "okSet-Cookie: x"
    assert inventory.monitoring_status is None
    assert inventory_from({"device_model": "not an object"}).manufacturer is None


def test_owner_and_default_name_are_clean_and_stable() -> None:
    assert owner_of({"external_user_id": "cust\udc80\n00042"}) == "cust\ufffd00042"
    assert owner_of({"email": "anna.berger\x00@example.com"}) == "anna.berger"
    assert owner_of({"email": "@example.com"}) is None
    assert owner_of({"external_user_id": ["x"], "email": None}) is None
    long_owner = owner_of({"external_user_id": "c" * 5000})
    name = default_name(long_owner, "6f1c0000-0000-4000-8000-000000000000")
    assert name == "c" * 120 + "-6f1c00"  # as before: cut at 120, no ellipsis in the label
    assert default_name("a\ud800b", "\x00\x00abcdefgh") == "a\ufffdb-abcdef"


def target(i: int, name: str, inventory: Inventory | None = None) -> DeviceTarget:
    return DeviceTarget(f"{i:08x}-0000-4000-8000-000000000000", "o", "u", name, inventory=inventory)


def page_with(*states: tuple[int, str]) -> MetricsPage:
    """A page over inverters numbered i with the given names, each with a fresh reading."""
    store = ReadingStore([target(i, name) for i, name in states])
    for i, _ in states:
        store.record_success(
            f"{i:08x}-0000-4000-8000-000000000000",
            DataPoint(NOON - 300, {"solar_production_w": 100.0 * i}),
            NOON,
            NOON + 60,
        )
    return MetricsPage(store, FakeClock(NOON), lambda: 3600.0, CollectorRegistry())


def test_a_device_that_cannot_be_rendered_is_left_out_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A name that bypassed the boundary (a lone surrogate cannot be encoded as UTF-8): the
    # old renderer failed /metrics for every inverter.
    page = page_with((1, "roof"), (2, "bad\udc80name"), (3, "barn"))
    with caplog.at_level(logging.WARNING, logger="exporter.render.exposition"):
        text = page.render().decode("utf-8")
        page.render()
    solar = {
        dict(labels)["name"]: value
        for name, labels, value in samples_of(text)
        if name == "podero_inverter_solar_production_watts"
    }
    assert solar == {"roof": 100.0, "barn": 300.0}
    assert "00000002-0000" not in text  # all or nothing per device: not even its up
    assert "podero_render_errors_total 1.0" in text
    assert page.guard.errors == 1
    left_out = [r for r in caplog.records if "cannot be rendered" in r.getMessage()]
    assert len(left_out) == 1
    assert left_out[0].__dict__["kv"]["name"] == "bad\ufffdname"


def test_every_device_rendered_means_zero_errors() -> None:
    text = page_with((1, "roof"), (2, "barn")).render().decode()
    assert "# TYPE podero_render_errors_total counter\npodero_render_errors_total 0.0\n" in text


def test_inventory_that_bypassed_the_boundary_fails_only_its_device() -> None:
    store = ReadingStore(
        [
            target(1, "roof"),
            target(2, "barn", Inventory(model="X\ud800")),
        ]
    )
    page = MetricsPage(store, FakeClock(NOON), lambda: 3600.0, CollectorRegistry())
    text = page.render().decode("utf-8")
    info = [labels for name, labels, _ in samples_of(text) if name == "podero_device_info"]
    assert [dict(labels)["name"] for labels in info] == ["roof"]
    assert page.guard.errors == 1


def test_the_home_view_shows_a_hostile_owner_and_name_as_text() -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>'\"&"
    user = "6f1c0000-0000-4000-8000-00000000000a"
    inventory = Inventory(manufacturer=evil, model=evil, owner=evil)
    devices = [
        DeviceTarget(f"{i:08x}-0000-4000-8000-000000000000", "o", user, evil + kind,
                       inventory=inventory, kind=kind)
        for i, kind in enumerate(("inverter", "heat_pump", "electric_vehicle", "wallbox"))
    ]  # fmt: skip
    store = ReadingStore(devices)
    store.record_failure(devices[1].device_id, evil, NOON, None)
    header = Header(started=NOON, token_expiry=None, last_inventory=None, discovery=False)
    view = StatusView(store, FakeClock(NOON), lambda: 3600.0, lambda: header)
    page = view.html({"user_id": user, "q": evil}).decode()
    assert "<script>" not in page.replace("<script>\nconst box", "")  # only the page's own
    assert "<img" not in page and "onerror=alert(2)>" not in page
    shown = (
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&#x27;&quot;&amp;"
    )
    assert f"<b id=owner>{shown}</b>" in page  # the owner, in the home's header
    assert f"<title>Home {shown} · Podero exporter</title>" in page
    assert page.count(shown) >= 4 * 2 + 3  # names and models of all four; owner, title, q
    home = json.loads(view.json({"user_id": user}, devices=True))
    assert home["home"]["owner"] == evil and home["total"] == 4
