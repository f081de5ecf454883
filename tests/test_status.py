"""The status API: pages from a snapshot updated per change, filters, and a bound on how many
status requests are built at once."""

from __future__ import annotations

import json
import threading

import pytest

from exporter.readings import DataPoint
from exporter.status import MAX_CONCURRENT, Busy, Header, Query, StatusView
from exporter.store import ReadingStore
from exporter.targets import Inventory, InverterTarget
from tests.conftest import NOON
from tests.fakes import FakeClock

HEADER = Header(started=NOON, token_expiry=None, last_inventory=None, discovery=False)


def target(i: int, **kw: object) -> InverterTarget:
    return InverterTarget(
        inverter_id=f"{i:08x}-0000-4000-8000-000000000000",
        org_id="o",
        user_id=f"user-{i}",
        name=f"inv-{i:04d}",
        **kw,  # type: ignore[arg-type]
    )


def view_of(n: int, clock: FakeClock) -> tuple[StatusView, ReadingStore]:
    store = ReadingStore([target(i) for i in range(n)])
    for i in range(n):
        if i % 10 == 3:
            store.record_failure(target(i).inverter_id, "HTTP 503", NOON, None)
        elif i % 10 != 7:  # every tenth stays without data
            point = DataPoint(NOON - 60 * (i % 50), {"solar_production_w": float(i)})
            store.record_success(target(i).inverter_id, point, NOON, NOON + 60)
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
    ids = {int(r["inverter_id"][:8], 16) for r in problems["inverters"]}
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
    before = {r["inverter_id"]: r for r in view.snapshot()}
    changed = target(5).inverter_id
    store.record_failure(changed, "HTTP 500", NOON + 1, None)
    after = {r["inverter_id"]: r for r in view.snapshot()}
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
            store.record_failure(target(k % 300).inverter_id, "x", NOON, None)

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
