"""The page kept up to date device by device equals a page rendered from scratch, through
random sequences of polls, failures, savings, renames (to text that cannot be rendered and
back), kind changes, additions, removals, a changed max_age and a changed selection; with
blocks of 1, 2, 3 and 128 devices, in both text formats, plain and gzip. (Written by a
review of the splicing page; every refresh compares, and the blocks' lengths are checked.)"""

from __future__ import annotations

import gzip
import random
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from exporter.kinds import selection
from exporter.kinds.family import Family
from exporter.render import exposition
from exporter.render.exposition import MetricsPage, described_lines, polled_lines
from exporter.state.readings import DataPoint
from exporter.state.savings import Period, PriceUnits, Savings
from exporter.state.store import DeviceState, ReadingStore
from exporter.state.targets import DeviceTarget, Inventory
from tests.conftest import NOON
from tests.fakes import FakeClock
from tests.reference import render_inverters
from tests.test_exposition import VALUES

BROKEN_PRICE = PriceUnits("E\udc80", "EUR/MWh")  # cannot be encoded: polled lines fail
KINDS = ["inverter", "inverter", "inverter", "heat_pump", "wallbox"]
SELECTIONS = [
    selection.DEFAULT,
    selection.Selection(enable=("status", "schedule", "inventory")),
    selection.Selection(disable=("readings",)),
]


def tgt(rng: random.Random, i: int, hostile: bool, kind: str | None = None) -> DeviceTarget:
    name = f"dev-{i}-{rng.randrange(1000)}" + ("\udc80" if hostile else "")
    inv = (
        Inventory(model="M" + ("\ud800" if hostile and rng.random() < 0.3 else ""))
        if rng.random() < 0.5
        else None
    )
    return DeviceTarget(
        device_id=f"{i:08x}-0000-4000-8000-000000000000",
        org_id="o",
        user_id="u",
        name=name,
        labels=(("site", f"s{i}"),) if i % 3 == 0 else (),
        inventory=inv,
        kind=kind or rng.choice(KINDS),
    )


def renderable(state: DeviceState, now: float, max_age: float, served: frozenset[Family]) -> bool:
    """Whether the page shows the device: all or nothing, its description and polled lines."""
    try:
        described_lines(state.target, served)
        polled_lines(state, now, max_age, served)
        return True
    except Exception:
        return False


def reference(store: ReadingStore, now: float, max_age: float, served: frozenset[Family]) -> bytes:
    states = [s for s in store.snapshot() if renderable(s, now, max_age, served)]
    return render_inverters(states, now, max_age, served)


def run(seed: int, steps: int = 60) -> None:
    rng = random.Random(seed)
    clock = FakeClock(NOON)
    conf = {"max_age": 3600.0, "sel": selection.DEFAULT}
    next_id = [0]

    def new_target(kind=None):
        i = next_id[0]
        next_id[0] += 1
        return tgt(rng, i, rng.random() < 0.15, kind)

    store = ReadingStore([new_target() for _ in range(rng.choice([0, 3, 9, 20]))])

    def new_page() -> MetricsPage:
        return MetricsPage(
            store,
            clock,
            lambda: conf["max_age"],
            CollectorRegistry(),
            served=lambda: conf["sel"].served(),
        )

    page = new_page()
    om_wanted = rng.random() < 0.5
    for step in range(steps):
        states = store.snapshot()
        for _ in range(rng.choice([0, 1, 2, 5, 12])):
            if not states:
                break
            s = rng.choice(states)
            t = s.target
            r = rng.random()
            now = clock.time()
            if r < 0.45:
                vals = {
                    k: v * rng.uniform(0.5, 1.5) for k, v in VALUES.items() if rng.random() < 0.8
                }
                reading = (
                    DataPoint(now - rng.choice([0, 30, 600, 3000, 5000]), vals) if vals else None
                )
                price = rng.choice([None, None, PriceUnits("EUR", "EUR/MWh"), BROKEN_PRICE])
                store.record_success(t.device_id, reading, now, now + 60, price=price)
            elif r < 0.65:
                store.record_failure(t.device_id, rng.choice(["HTTP 500", "timeout"]), now, None)
            elif r < 0.8:
                today = Period(
                    now - 3600, now + rng.choice([-1, 1, 5, 50]) + 0.5, rng.uniform(-1, 3), 1e7
                )
                month = Period(
                    now - 86400, now + rng.choice([30, 3600]) + 0.5, rng.uniform(0, 90), None
                )
                store.record_savings(
                    t.device_id, t.kind, Savings(today, month, "EUR", "kWh", now - 100)
                )
            elif r < 0.9:  # rename: to something hostile or back to clean text
                hostile = rng.random() < 0.4
                store.apply_targets(
                    [replace(t, name=f"ren-{step}" + ("\udc80" if hostile else ""))], []
                )
            else:  # kind change
                store.apply_targets([replace(t, kind=rng.choice(KINDS))], [])
        r = rng.random()
        if r < 0.25:
            store.apply_targets([new_target() for _ in range(rng.choice([1, 2, 3, 5, 9]))], [])
        elif r < 0.3 and states:
            keep = [s.target for s in states if rng.random() < 0.85]
            store.set_targets(keep)
        elif r < 0.33:
            conf["max_age"] = rng.choice([600.0, 3600.0, 7200.0])
        elif r < 0.36:
            conf["sel"] = rng.choice(SELECTIONS)
        clock.advance(rng.choice([0, 1, 20, 400, 2000]))
        if rng.random() < 0.2:
            continue  # several steps' changes in one refresh
        served = conf["sel"].served()
        got = b"".join(page.refresh())
        want = reference(store, clock.time(), conf["max_age"], served)
        assert got == want, (seed, step)
        # consistency of the internal lengths with the blocks
        for fam, blocks in page._blocks.items():
            for b, block in enumerate(blocks):
                assert sum(page._lengths[fam][b]) == len(block), (seed, step, fam.name, b)
        if om_wanted:
            fresh = new_page()
            assert b"".join(page.chunks(True)[:-3]) == b"".join(fresh.chunks(True)[:-3]), (
                seed,
                step,
            )
        if rng.random() < 0.3:
            page.update()
            plain = b"".join(page.chunks())
            assert gzip.decompress(b"".join(page.gzip_chunks())) == plain, (seed, step)
            if om_wanted:
                assert gzip.decompress(b"".join(page.gzip_chunks(True))) == b"".join(
                    page.chunks(True)
                ), (seed, step)


@pytest.mark.parametrize("block", [1, 2, 3, 128])
@pytest.mark.parametrize("seed", range(6))
def test_incremental_equals_full(seed: int, block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exposition, "BLOCK", block)
    run(seed * 7 + block)
