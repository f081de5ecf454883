"""Staleness, and the fast cached rendering against prometheus_client's reference rendering."""

from __future__ import annotations

import gzip
import random
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.kinds.table import device_families
from exporter.render import deflate, exposition
from exporter.render.collector import Sample, current_samples, is_fresh
from exporter.render.exposition import MetricsPage
from exporter.state.readings import DataPoint
from exporter.state.savings import Period, PriceUnits, Savings
from exporter.state.store import DeviceState, ReadingStore
from exporter.state.targets import DeviceTarget
from tests.conftest import NOON
from tests.fakes import FakeClock
from tests.reference import InverterCollector, render_inverters

VALUES = {
    "solar_production_w": 2310.5,
    "export_power_to_grid_w": -120.0,
    "household_consumption_w": 900.0,
    "battery_charge_level_percent": 64.0,
    "battery_charge_discharge_power_w": -1200.0,
    "estimated_consumption": 850.0,
    "unoptimized_consumption": 950.0,
    "price": 101.3,
}


def by_name(state: DeviceState, now: float, max_age: float) -> dict[str, list[Sample]]:
    """`current_samples` keyed by metric name."""
    return {f.name: s for f, s in current_samples(state, now, max_age).items()}


def target(i: int, **kw: object) -> DeviceTarget:
    return DeviceTarget(
        device_id=f"{i:08x}-0000-4000-8000-000000000000",
        org_id="o",
        user_id="u",
        name=f"inv-{i}",
        **kw,
    )  # type: ignore[arg-type]


def samples_of(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_fresh_reading_exports_every_value_with_base_units() -> None:
    state = DeviceState(
        target(1),
        reading=DataPoint(NOON - 600, VALUES),
        polled=True,
        up=True,
        last_success=NOON - 5,
    )
    samples = by_name(state, NOON, 3600)
    assert samples["podero_inverter_battery_charge_ratio"][0][1] == 0.64
    assert samples["podero_inverter_grid_export_watts"][0][1] == -120.0
    assert samples["podero_device_data_timestamp_seconds"][0][1] == NOON - 600
    assert samples["podero_device_up"][0][1] == 1.0


def test_stale_reading_keeps_up_info_and_timestamp_but_no_values() -> None:
    state = DeviceState(
        target(1),
        reading=DataPoint(NOON - 3601, VALUES),
        polled=True,
        up=False,
        last_success=NOON - 3000,
    )
    assert not is_fresh(state, NOON, 3600)
    names = set(by_name(state, NOON, 3600))
    assert names == {
        "podero_device_data_timestamp_seconds",
        "podero_device_up",
        "podero_device_last_success_timestamp_seconds",
        "podero_device_info",
    }


def test_never_polled_inverter_has_info_only() -> None:
    assert set(by_name(DeviceState(target(1)), NOON, 3600)) == {"podero_device_info"}


def test_thresholds_only_where_configured() -> None:
    with_threshold = DeviceState(target(1, thresholds=(("battery_low_percent", 30.0),)))
    without = DeviceState(target(2))
    assert (
        by_name(with_threshold, NOON, 3600)["podero_inverter_battery_low_threshold_ratio"][0][1]
        == 0.3
    )
    assert "podero_inverter_battery_low_threshold_ratio" not in by_name(without, NOON, 60)


def random_store(n: int, seed: int) -> ReadingStore:
    rng = random.Random(seed)
    targets = [
        target(
            i,
            labels=(("site", f's"\\{i}\n'),) if i % 3 == 0 else (),
            thresholds=(("grid_export_high_watts", 7000.0),) if i % 2 else (),
        )
        for i in range(n)
    ]
    store = ReadingStore(targets)
    for t in targets:
        roll = rng.random()
        if roll < 0.1:
            continue  # never polled
        values = {k: v * rng.uniform(0.5, 1.5) for k, v in VALUES.items() if rng.random() < 0.8}
        age = rng.choice([60, 600, 4000])
        reading = DataPoint(NOON - age, values) if values else None
        if roll < 0.2:
            store.record_failure(t.device_id, "HTTP 503", NOON - 10, NOON + 50)
        else:
            price = PriceUnits("EUR", "EUR/MWh") if roll < 0.6 else None
            store.record_success(t.device_id, reading, NOON - 10, NOON + 50, price=price)
        if roll > 0.5:  # savings: some of the periods over (hidden), a currency or none
            today = Period(NOON - 3600, NOON + rng.choice([-1, 1]) * 60, rng.uniform(-1, 3), 1e7)
            month = Period(NOON - 86400, NOON + 3600, rng.uniform(0, 90), rng.choice([None, 2e8]))
            currency = rng.choice(["EUR", None])
            store.record_savings(
                t.device_id, t.kind, Savings(today, month, currency, "kWh", NOON - 100)
            )
    return store


def test_fast_rendering_equals_the_reference_rendering() -> None:
    clock = FakeClock(NOON)
    store = random_store(500, seed=3)
    registry = CollectorRegistry()
    registry.register(InverterCollector(store, clock, lambda: 3600.0))
    reference = generate_latest(registry).decode()
    fast = render_inverters(store.snapshot(), NOON, 3600.0).decode()
    assert samples_of(fast) == samples_of(reference)
    assert len(samples_of(fast)) > 2000
    # Same families, same order, same HELP text.
    fast_families = [(f.name, f.documentation) for f in text_string_to_metric_families(fast)]
    ref_families = [(f.name, f.documentation) for f in text_string_to_metric_families(reference)]
    # (The parser names a counter family without its _total suffix.)
    # (The parser names a counter family without its _total suffix.) The shared families are
    # always served; a kind's own once a device has a sample of them, in the table's order.
    table = [
        (f.name.removesuffix("_total") if f.type == "counter" else f.name, f.help)
        for f in device_families()
    ]
    assert fast_families == ref_families == [f for f in table if f in fast_families]
    shared = {f.name for f in device_families() if f.shared and f.default}
    assert shared <= {name for name, _ in fast_families}


def test_page_is_cached_until_the_store_changes_or_data_turns_stale() -> None:
    clock = FakeClock(NOON)
    store = ReadingStore([target(1)])
    page = MetricsPage(store, clock, lambda: 3600.0, CollectorRegistry())
    store.record_success(target(1).device_id, DataPoint(NOON - 3500, VALUES), NOON, None)
    first = b"".join(page.refresh())
    assert b"podero_inverter_solar_production_watts{" in first
    chunks = page.refresh()
    assert page.refresh() is chunks  # nothing changed: the same chunks, not a re-render
    clock.advance(101)  # the reading is now older than max_data_age_seconds
    stale = b"".join(page.refresh())
    assert b"podero_inverter_solar_production_watts{" not in stale
    assert b"podero_device_data_timestamp_seconds{" in stale
    store.record_failure(target(1).device_id, "HTTP 500", clock.time(), None)
    assert (
        b'podero_device_up{device_id="00000001-0000-4000-8000-000000000000",name="inv-1",'
        b'user_id="u",kind="inverter"} 0.0' in b"".join(page.refresh())
    )


def test_removed_inverters_disappear() -> None:
    store = ReadingStore([target(1), target(2)])
    store.set_targets([target(2)])
    text = render_inverters(store.snapshot(), NOON, 3600)
    assert b"inv-1" not in text and b"inv-2" in text


def test_incremental_page_equals_a_full_render_through_changes_and_time() -> None:
    rng = random.Random(5)
    clock = FakeClock(NOON)
    store = random_store(300, seed=11)
    page = MetricsPage(store, clock, lambda: 3600.0, CollectorRegistry())
    targets = [s.target for s in store.snapshot()]
    for step in range(40):
        for t in rng.sample(targets, 15):
            if rng.random() < 0.3:
                store.record_failure(t.device_id, "HTTP 502", clock.time(), None)
            else:
                reading = DataPoint(clock.time() - rng.choice([0, 600, 3000]), dict(VALUES))
                store.record_success(t.device_id, reading, clock.time(), None)
        if step == 20:
            store.set_targets(targets[:200])
        if step in (10, 25, 30):  # a growing fleet: new inverters, one renamed
            extra = [target(1000 * step + k) for k in range(rng.choice([1, 7, 130]))]
            renamed = [replace(rng.choice(targets[:200]), name=f"renamed-{step}")]
            store.apply_targets([*extra, *renamed], [])
        clock.advance(rng.choice([1, 30, 400]))
        assert b"".join(page.refresh()) == render_inverters(store.snapshot(), clock.time(), 3600)
        if step % 5 == 0:  # the gzip stream inflates to exactly the plain page
            page.update()
            plain = b"".join(page.chunks())
            zipped = b"".join(page.gzip_chunks())
            assert gzip.decompress(zipped) == plain


def test_gzip_members_are_compressed_once_per_change_of_their_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(NOON)
    store = random_store(1000, seed=4)
    page = MetricsPage(store, clock, lambda: 3600.0, CollectorRegistry())
    calls: list[int] = []
    real = deflate.segment
    monkeypatch.setattr(deflate, "segment", lambda data: calls.append(len(data)) or real(data))
    page.gzip_chunks()
    first = len(calls)
    page.gzip_chunks()
    assert len(calls) == first + 1  # only the small telemetry part, not one block again
    one = store.snapshot()[0].target.device_id
    store.record_failure(one, "HTTP 500", NOON, None)
    before = len(calls)
    page.update()  # the refresher's step: the changed block is compressed again, once
    body = b"".join(page.gzip_chunks())
    assert 1 < len(calls) - before < 20  # a handful of that block's families, plus the rest
    assert gzip.decompress(body) == b"".join(page.chunks())


def test_scrapes_serve_the_last_update_and_never_render() -> None:
    clock = FakeClock(NOON)
    store = random_store(300, seed=9)
    page = MetricsPage(store, clock, lambda: 3600.0, CollectorRegistry())
    page.update()
    served = page.chunks()
    one = store.snapshot()[0].target.device_id
    store.record_failure(one, "HTTP 500", NOON, None)
    assert page.chunks()[:-2] == served[:-2]  # the change waits for the next update
    page.update()
    after = b"".join(page.chunks())
    assert after == b"".join([*page.refresh(), *page.chunks()[-2:]])
    assert after != b"".join(served)


def test_additions_and_target_changes_do_not_rebuild_the_page() -> None:
    clock = FakeClock(NOON)
    store = random_store(300, seed=2)
    page = MetricsPage(store, clock, lambda: 3600.0, CollectorRegistry())
    page.refresh()
    epoch = store.epoch_snapshot()[0]
    store.apply_targets([target(5000), replace(store.snapshot()[0].target, name="new-name")], [])
    assert store.epoch_snapshot()[0] == epoch  # no new epoch: the page extends itself
    text = b"".join(page.refresh())
    assert text == render_inverters(store.snapshot(), clock.time(), 3600)
    assert b'name="new-name"' in text and b"inv-5000" in text


def test_a_poll_renders_its_own_device_only(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(NOON)
    store = random_store(300, seed=6)
    page = MetricsPage(store, clock, lambda: 3600.0, CollectorRegistry())
    page.refresh()
    rendered: list[str] = []
    polled, described = exposition.polled_lines, exposition.described_lines

    def polled_spy(state: Any, *args: Any) -> Any:
        rendered.append(state.target.device_id)
        return polled(state, *args)

    def described_spy(target: Any, *args: Any) -> Any:
        rendered.append(target.device_id)
        return described(target, *args)

    monkeypatch.setattr(exposition, "polled_lines", polled_spy)
    monkeypatch.setattr(exposition, "described_lines", described_spy)
    targets = [s.target for s in store.snapshot()]
    # Two devices of one block and one of another; a neighbour of the first renamed.
    for t in (targets[3], targets[5], targets[200]):
        store.record_success(t.device_id, DataPoint(NOON - 60, dict(VALUES)), NOON, None)
    store.apply_targets([replace(targets[4], name="renamed")], [])
    text = b"".join(page.refresh())
    assert sorted(rendered) == sorted(
        [targets[3].device_id, targets[5].device_id, targets[200].device_id]
        + [targets[4].device_id] * 2  # its description and its polled lines
    )
    assert text == render_inverters(store.snapshot(), clock.time(), 3600)


def test_savings_are_hidden_from_the_moment_their_period_expires() -> None:
    clock = FakeClock(NOON)
    t = target(1)
    store = ReadingStore([t])
    today = Period(NOON - 3600, NOON + 10, 1.5, 1e7)
    store.record_savings(t.device_id, t.kind, Savings(today, None, "EUR", "kWh", NOON))
    page = MetricsPage(store, clock, lambda: 3600.0, CollectorRegistry())
    assert b"podero_device_savings_today{" in b"".join(page.refresh())
    clock.advance(10)  # exactly the end of the period: Savings.expired says it is over
    text = b"".join(page.refresh())
    assert b"podero_device_savings_today{" not in text
    assert text == render_inverters(store.snapshot(), clock.time(), 3600.0)


def test_a_device_whose_polled_lines_fail_is_left_out_whole_until_they_render() -> None:
    clock = FakeClock(NOON)
    good, bad = target(1), target(2)
    store = ReadingStore([good, bad])
    page = MetricsPage(store, clock, lambda: 3600.0, CollectorRegistry())
    page.refresh()
    broken = PriceUnits("E\udc80", "EUR/MWh")  # a string that cannot be encoded
    for t in (good, bad):
        price = broken if t is bad else None
        store.record_success(
            t.device_id, DataPoint(NOON - 60, dict(VALUES)), NOON, None, price=price
        )
    text = b"".join(page.refresh())
    assert page.guard.errors == 1
    assert bad.device_id.encode() not in text  # not even its podero_device_info
    assert text.count(good.device_id.encode()) > 5  # the other device keeps all it has
    fixed = PriceUnits("EUR", "EUR/MWh")
    store.record_success(bad.device_id, DataPoint(NOON, dict(VALUES)), NOON, None, price=fixed)
    text = b"".join(page.refresh())
    assert b'podero_device_info{device_id="' + bad.device_id.encode() in text
    assert text == render_inverters(store.snapshot(), clock.time(), 3600.0)


def test_a_failed_update_is_followed_by_a_page_rendered_from_scratch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(NOON)
    store = random_store(300, seed=8)
    page = MetricsPage(store, clock, lambda: 3600.0, CollectorRegistry())
    assert page.update_or_rebuild()
    one = store.snapshot()[0].target.device_id
    store.record_failure(one, "HTTP 500", NOON, None)

    def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(page, "_splice", broken)
    assert not page.update_or_rebuild()  # the refresher lives on ...
    monkeypatch.undo()
    clock.advance(4000)  # ... and the next update shows the change and the stale readings
    assert page.update_or_rebuild()
    text = b"".join(page.chunks()[:-2])
    assert text == render_inverters(store.snapshot(), clock.time(), 3600)
    assert b"podero_inverter_solar_production_watts{" not in text
