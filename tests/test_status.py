"""The status API: pages from a snapshot updated per change, filters, the home view (one
user's devices of every kind, with each kind's values), and a bound on how many status
requests are built at once."""

from __future__ import annotations

import json
import threading

import pytest

from exporter.kinds import registry
from exporter.render import status
from exporter.render.status import MAX_CONCURRENT, BadQuery, Busy, Header, Query, StatusView
from exporter.state.readings import DataPoint
from exporter.state.store import ReadingStore
from exporter.state.targets import DeviceTarget, Inventory
from tests.conftest import NOON
from tests.fakes import FakeClock

HEADER = Header(started=NOON, token_expiry=None, last_inventory=None, discovery=False)


def target(i: int, **kw: object) -> DeviceTarget:
    return DeviceTarget(
        device_id=f"{i:08x}-0000-4000-8000-000000000000",
        org_id="o",
        user_id=f"user-{i}",
        name=f"inv-{i:04d}",
        **kw,  # type: ignore[arg-type]
    )


def view_of(n: int, clock: FakeClock) -> tuple[StatusView, ReadingStore]:
    store = ReadingStore([target(i) for i in range(n)])
    for i in range(n):
        if i % 10 == 3:
            store.record_failure(target(i).device_id, "HTTP 503", NOON, None)
        elif i % 10 != 7:  # every tenth stays without data
            point = DataPoint(NOON - 60 * (i % 50), {"solar_production_w": float(i)})
            store.record_success(target(i).device_id, point, NOON, NOON + 60)
    return StatusView(store, clock, lambda: 3600.0, lambda: HEADER), store


def page(view: StatusView, **params: str) -> dict:  # type: ignore[type-arg]
    return dict(json.loads(view.json(params)))


def test_pages_are_windows_of_one_order() -> None:
    view, _ = view_of(250, FakeClock(NOON))
    first = page(view, limit="100")
    second = page(view, limit="100", offset="100")
    third = page(view, limit="100", page="3")
    assert first["total"] == second["total"] == third["total"] == 250
    names = [r["name"] for p in (first, second, third) for r in p["inverters"]]
    assert names == sorted(f"inv-{i:04d}" for i in range(250))
    assert (first["offset"], second["offset"], third["offset"]) == (0, 100, 200)
    assert len(page(view)["inverters"]) == 100  # a default page, not the whole fleet
    assert len(page(view, limit="100000")["inverters"]) == 250  # capped at 1,000 a page
    assert page(view, limit="x", offset="-5")["offset"] == 0  # malformed: defaults


def test_only_problems() -> None:
    view, _ = view_of(100, FakeClock(NOON))
    problems = page(view, problems="1", limit="1000")
    ids = {int(r["device_id"][:8], 16) for r in problems["inverters"]}
    assert ids == {i for i in range(100) if i % 10 in (3, 7)}
    assert problems["total"] == 20


def test_sorting_by_age_and_by_a_value_follows_what_the_rows_show() -> None:
    clock = FakeClock(NOON)
    view, _ = view_of(60, clock)
    by_age = page(view, sort="data_age_seconds", limit="1000")["inverters"]
    ages = [r["data_age_seconds"] for r in by_age if r["data_age_seconds"] is not None]
    assert ages == sorted(ages) and len(ages) == 48
    clock.advance(3600 - 30 * 60)  # the older half turns stale: their values are hidden
    by_solar = page(view, sort="solar_w", order="desc", limit="1000")["inverters"]
    shown = [r["solar_w"] for r in by_solar if r["solar_w"] is not None]
    assert shown == sorted(shown, reverse=True)
    assert all(r["data_fresh"] for r in by_solar if r["solar_w"] is not None)
    assert all(r["solar_w"] is None for r in by_solar[len(shown) :])


def test_the_snapshot_follows_changes_without_rebuilding() -> None:
    view, store = view_of(50, FakeClock(NOON))
    before = {r["device_id"]: r for r in view.snapshot()}
    changed = target(5).device_id
    store.record_failure(changed, "HTTP 500", NOON + 1, None)
    after = {r["device_id"]: r for r in view.snapshot()}
    assert after[changed]["status"] == "failed" and after[changed]["last_error"] == "HTTP 500"
    assert all(after[i] is before[i] for i in before if i != changed)  # untouched rows reused
    store.apply_targets([target(999, inventory=Inventory(model="X"))], [])
    assert len(view.snapshot()) == 51


def test_requests_beyond_the_bound_are_refused_not_queued() -> None:
    view, _ = view_of(10, FakeClock(NOON))
    held = [view._slots.acquire(timeout=1) for _ in range(MAX_CONCURRENT)]
    assert all(held)
    with pytest.raises(Busy):
        view.json({})
    with pytest.raises(Busy):
        view.html({})
    view._slots.release()
    assert page(view)["total"] == 10  # a slot free again: served
    view._slots.release()


def test_concurrent_requests_all_get_whole_pages() -> None:
    view, store = view_of(300, FakeClock(NOON))
    results: list[int] = []
    lock = threading.Lock()

    def reader() -> None:
        for _ in range(20):
            try:
                total = page(view, limit="50")["total"]
            except Busy:
                continue
            with lock:
                results.append(total)

    def writer() -> None:
        for k in range(200):
            store.record_failure(target(k % 300).device_id, "x", NOON, None)

    threads = [threading.Thread(target=reader) for _ in range(4)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results and set(results) == {300}


def test_query_parsing_is_bounded() -> None:
    query = Query.parse({"q": "x" * 5000, "sort": "bogus", "limit": "0", "page": "999999999"})
    assert len(query.q) == 200 and query.sort == "name" and query.limit == 1
    assert query.offset <= 10_000_000


def test_a_hostile_kind_filter_matches_nothing_and_breaks_nothing() -> None:
    view, _ = view_of(20, FakeClock(NOON))
    for kind in ("<script>x</script>" * 500, "\udc80", "inverter\x00", ""):
        answer = json.loads(view.json({"kind": kind}, devices=True))
        assert answer["total"] == (20 if kind == "" else 0)
    assert page(view)["total"] == 20


# --- the home view ------------------------------------------------------------------------
HOME = "6f1c0000-0000-4000-8000-00000000000a"
NEIGHBOUR = "6f1c0000-0000-4000-8000-00000000000b"
ORG = "0a000000-0000-4000-8000-000000000000"


def device(
    n: int, kind: str, user_id: str = HOME, owner: str | None = "cust-00042"
) -> DeviceTarget:
    return DeviceTarget(
        device_id=f"{n:08x}-0000-4000-8000-0000000000{n:02x}",
        org_id=ORG,
        user_id=user_id,
        name=f"dev-{n}-{kind}",
        inventory=Inventory(manufacturer="M", model="X", owner=owner),
        kind=kind,
    )


# What each device of the home read, in the API's fields and units.
READ = {
    1: {"solar_production_w": 3210.0, "battery_charge_level_percent": 64.0,
        "export_power_to_grid_w": -450.0, "household_consumption_w": 800.0, "price": 91.5},
    2: {"hot_water_temp": 48.5, "inlet_temp_act": 31.25, "price": 88.0,
        "estimated_consumption": 1200.0},
    3: {"battery_level": 80.0, "is_plugged_in": 1.0, "is_charging": 0.0},
}  # fmt: skip
HOME_DEVICES = {1: "inverter", 2: "heat_pump", 3: "electric_vehicle", 4: "wallbox"}


def home_view(clock: FakeClock) -> tuple[StatusView, ReadingStore]:
    """A home with one device of each kind (data 5 minutes old), beside other homes."""
    targets = [device(n, kind) for n, kind in HOME_DEVICES.items()] + [
        device(10, "inverter", NEIGHBOUR, "cust-00043"),
        device(11, "heat_pump", NEIGHBOUR, "cust-00043"),
        *(target(i) for i in range(20)),
    ]
    store = ReadingStore(targets)
    for t in targets:
        n = int(t.device_id[:8], 16)
        values = READ.get(n, {"solar_production_w": 5.0, "hot_water_temp": 40.0})
        if t.kind != "wallbox":
            store.record_success(t.device_id, DataPoint(NOON - 300, values), NOON, NOON + 60)
    return StatusView(store, clock, lambda: 3600.0, lambda: HEADER), store


def devices(view: StatusView, **params: str) -> dict:  # type: ignore[type-arg]
    return dict(json.loads(view.json(params, devices=True)))


def test_the_home_filter_gives_exactly_the_homes_devices_of_every_kind() -> None:
    view, _ = home_view(FakeClock(NOON))
    home = devices(view, user_id=HOME)
    assert home["total"] == 4
    assert {(r["name"], r["kind"]) for r in home["devices"]} == {
        (f"dev-{n}-{kind}", kind) for n, kind in HOME_DEVICES.items()
    }
    assert home["home"] == {
        "user_id": HOME,
        "org_ids": [ORG],
        "owner": "cust-00042",
        "devices": 4,
        "kinds": {"inverter": 1, "heat_pump": 1, "electric_vehicle": 1, "wallbox": 1},
        "reporting": 3,
        "polled": 3,
    }
    # The same home, spelled in capitals: the id is read as a UUID.
    assert devices(view, user_id=HOME.upper())["total"] == 4
    # Other filters narrow the home; the inverters API gives the home's inverters.
    assert [r["kind"] for r in devices(view, user_id=HOME, kind="heat_pump")["devices"]] == [
        "heat_pump"
    ]
    inverters = json.loads(view.json({"user_id": NEIGHBOUR}))["inverters"]
    assert [r["name"] for r in inverters] == ["dev-10-inverter"]
    assert "home" not in devices(view) and devices(view)["total"] == 26


def test_each_kind_shows_its_own_values_exactly() -> None:
    view, _ = home_view(FakeClock(NOON))
    rows = {r["kind"]: r for r in devices(view, user_id=HOME)["devices"]}
    shown = {
        kind: {k: row[k] for k in status.value_keys() if row[k] is not None}
        for kind, row in rows.items()
    }
    assert shown == {
        "inverter": {"solar_w": 3210.0, "battery_ratio": 0.64, "grid_w": -450.0,
                     "household_w": 800.0, "price": 91.5},
        "heat_pump": {"hot_water_celsius": 48.5, "inlet_celsius": 31.25, "price": 88.0},
        "electric_vehicle": {"battery_ratio": 0.8, "plugged_in": 1.0, "charging": 0.0},
        "wallbox": {},
    }  # fmt: skip
    page = view.html({"user_id": HOME}).decode()
    for text in ("3,210 W", "-450 W", "64 %", "48.5 °C", "31.2 °C", "80 %"):
        assert text in page
    assert ">plugged in</td>" in page


def test_the_values_come_from_each_kinds_reading_families() -> None:
    for kind in registry.kinds():
        assert all(c.family in kind.readings for c in kind.columns), kind.name
    shown = {key for key, _, _ in status.columns()}
    assert set(status.value_keys()) - shown == {"charging"}  # shown with plugged_in


@pytest.mark.parametrize(
    ("plugged_in", "charging", "shown"),
    [
        (1.0, 1.0, "charging"),
        (1.0, 0.0, "plugged in"),
        (0.0, 0.0, "unplugged"),
        (None, 1.0, "charging"),
        (None, 0.0, "not charging"),
        (1.0, None, "plugged in"),
        (None, None, "<span class=muted>-</span>"),
    ],
)
def test_an_evs_plug_column_says_plugged_in_and_charging_in_one_word(
    plugged_in: float | None, charging: float | None, shown: str
) -> None:
    row = {"plugged_in": plugged_in, "charging": charging}
    assert status._cell("plug", row, "plugged_in") == shown


def test_stale_values_are_not_shown_as_current() -> None:
    clock = FakeClock(NOON)
    view, _ = home_view(clock)
    clock.advance(3600 - 300 + 1)  # the home's data is now older than max_data_age
    rows = devices(view, user_id=HOME)["devices"]
    assert all(r[k] is None for r in rows for k in status.value_keys())
    assert not any(r["data_fresh"] for r in rows)
    assert [r["data_age_seconds"] for r in rows if r["kind"] != "wallbox"] == [3601.0] * 3
    page = view.html({"user_id": HOME}).decode()
    assert "48.5 °C" not in page and "3,210 W" not in page and "plugged in" not in page


def test_a_malformed_user_id_is_refused_and_an_unknown_one_is_an_empty_home() -> None:
    view, _ = home_view(FakeClock(NOON))
    for bad in ("nope", "<script>alert(1)</script>", HOME + "x", "\udc80", "1" * 5000):
        with pytest.raises(BadQuery) as refused:
            view.json({"user_id": bad}, devices=True)
        assert "user_id is not a UUID" in str(refused.value) and bad not in str(refused.value)
        with pytest.raises(BadQuery):
            view.html({"user_id": bad})
    free = [view._slots.acquire(blocking=False) for _ in range(MAX_CONCURRENT)]
    assert all(free)  # every refused request gave its slot back
    for _ in free:
        view._slots.release()
    unknown = "6f1c0000-0000-4000-8000-0000000000ff"
    empty = devices(view, user_id=unknown)
    assert empty["total"] == 0 and empty["devices"] == [] and empty["home"]["devices"] == 0
    page = view.html({"user_id": unknown}).decode()
    assert "No device of this home is known." in page and "0 of 0 devices in this home" in page
    assert devices(view, user_id="")["total"] == 26  # empty: every home


def test_the_table_links_each_user_to_their_home_and_the_home_view_keeps_its_filter() -> None:
    view, _ = home_view(FakeClock(NOON))
    page = view.html({}).decode()
    assert f"<a class=home href='?user_id={HOME}'>" in page
    assert f"<a class=home href='?user_id={NEIGHBOUR}'>" in page
    home = view.html({"user_id": HOME}).decode()
    assert home.count("<tr data-device-id=") == 4
    assert f"<input type=hidden name=user_id value='{HOME}'>" in home  # filtering stays home
    assert f"href='?user_id={HOME}&amp;sort=solar_w&amp;order=asc'" in home  # so does sorting
    assert "<title>Home cust-00042 · Podero exporter</title>" in home
    assert "4 of 4 devices in this home" in home


def test_the_home_view_finishes_only_its_page_and_keeps_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    view, _ = home_view(FakeClock(NOON))
    finished: list[str] = []
    original = status.finished_row

    def counting(row: dict, now: float, max_age: float) -> dict:  # type: ignore[type-arg]
        finished.append(row["device_id"])
        return original(row, now, max_age)

    monkeypatch.setattr(status, "finished_row", counting)
    assert len(devices(view, user_id=HOME, limit="2")["devices"]) == 2
    view.html({"user_id": HOME, "limit": "3"})
    assert len(finished) == 5
    held = [view._slots.acquire(timeout=1) for _ in range(MAX_CONCURRENT)]
    assert all(held)
    with pytest.raises(Busy):
        view.html({"user_id": HOME})
    with pytest.raises(Busy):
        view.json({"user_id": HOME}, devices=True)
    for _ in held:
        view._slots.release()
