"""One scheduler for all API work: polling starts before listings end, one home's failed
listing touches only that home, and each replica lists only its own homes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from exporter.app import Exporter
from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi, start_simulator
from exporter.sim.api import ApiError as SimApiError
from tests.conftest import to_config
from tests.e2e.processes import wait_for
from tests.fakes import FakeClock
from tests.test_discovery import by_id, discovery_config

HOMES = 24


@pytest.fixture
def homes_sim(clock: FakeClock) -> Iterator[RunningSimulator]:
    sim = start_simulator(SimulatedApi(SimFleet(seed=5, inverters=HOMES), clock, Faults()))
    yield sim
    sim.stop()


def running(exporter: Exporter) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=exporter.poller.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_polling_begins_before_a_listing_completes(
    homes_sim: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = homes_sim.api
    slow_home = api.fleet.users[-1].id
    release = threading.Event()
    listing = api.user_inverters

    def held(org_id: str, user_id: str, include_deleted: bool) -> list[dict[str, Any]]:
        if user_id == slow_home:
            release.wait(30)  # this home's listing hangs until the test lets it go
        return listing(org_id, user_id, include_deleted)

    monkeypatch.setattr(api, "user_inverters", held)
    raw = discovery_config(homes_sim)
    raw["podero"]["max_concurrency"] = 4
    exporter = Exporter(to_config(raw), clock)
    stop, thread = running(exporter)
    try:
        exporter.discover(exporter.poller.submit)
        polled = wait_for(
            lambda: [s for s in exporter.store.snapshot() if s.up] or None,
            30,
            "a first inverter's data while one listing still hangs",
        )
        assert exporter.discovery is not None and not exporter.discovery.round_done.is_set()
        assert not exporter.ready
        assert all(s.target.user_id != slow_home for s in polled)
        release.set()
        wait_for(lambda: exporter.ready, 30, "the round and every first poll")
        homes = {s.target.user_id for s in exporter.store.snapshot() if s.up}
        assert slow_home in homes
    finally:
        release.set()
        stop.set()
        exporter.stop()
        thread.join(10)


def test_a_homes_failed_listing_touches_only_that_home(
    homes_sim: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = homes_sim.api
    exporter = Exporter(to_config(discovery_config(homes_sim)), clock)
    exporter.discover()
    before = by_id(exporter)
    failing_home, changed_home = api.fleet.users[0].id, api.fleet.users[1].id
    kept = {i for i, t in before.items() if t.user_id == failing_home}
    gone = {i for i, t in before.items() if t.user_id == changed_home}
    assert kept and gone
    listing = api.user_inverters

    def failing(org_id: str, user_id: str, include_deleted: bool) -> list[dict[str, Any]]:
        if user_id == failing_home:
            raise SimApiError(503, "Service temporarily unavailable.")
        return listing(org_id, user_id, include_deleted)

    monkeypatch.setattr(api, "user_inverters", failing)
    for inverter_id in gone:  # the other home's inverter really went away
        api.fleet.by_id.pop(inverter_id)
    exporter.discover()
    after = by_id(exporter)
    assert kept <= set(after)  # the failed home keeps its inverters
    assert not gone & set(after)  # the other home's listing still took effect
    assert set(after) == set(before) - gone
    exporter.stop()


def test_each_replica_lists_only_its_own_homes(
    homes_sim: RunningSimulator, clock: FakeClock
) -> None:
    api = homes_sim.api
    replicas = 3
    owned: list[set[str]] = []
    listings: list[int] = []
    for index in range(replicas):
        raw = discovery_config(homes_sim)
        raw["shard"] = {"count": replicas, "index": index}
        api.reset_stats()
        exporter = Exporter(to_config(raw), clock)
        exporter.discover()
        listings.append(api.stats()["responses"]["inverters"]["200"])
        owned.append(set(by_id(exporter)))
        homes = {t.user_id for t in by_id(exporter).values()}
        assert all(t.user_id in homes for t in by_id(exporter).values())
        exporter.stop()
    assert sum(listings) == len(api.fleet.users)  # each home listed by exactly one replica
    assert all(n < len(api.fleet.users) for n in listings)
    assert set().union(*owned) == {i.id for i in api.fleet.inverters if not i.deleted}
    assert sum(len(o) for o in owned) == len(set().union(*owned))  # disjoint


def test_first_polls_go_first_then_due_polls_and_jobs_take_turns(
    homes_sim: RunningSimulator, clock: FakeClock
) -> None:
    raw = discovery_config(homes_sim)
    raw["discovery"] = None
    raw["inverters"] = [
        {"org_id": i["org_id"], "user_id": i["user_id"], "inverter_id": i["inverter_id"]}
        for i in homes_sim.describe()["inverters"][:4]
    ]
    exporter = Exporter(to_config(raw), clock)
    poller = exporter.poller
    known = [t.device_id for t in exporter.targets.current()]
    poller.poll_all()  # every known inverter has been polled once
    clock.advance(3 * 3600)  # and is due again
    jobs = [lambda: None for _ in range(3)]
    for job in jobs:
        poller.submit(job)
    newcomer = next(
        t for t in exporter.targets.current() if t.device_id == known[0]
    )  # a copy stands in for a newly listed inverter
    newcomer_id = "ffffffff-0000-4000-8000-000000000000"
    poller.apply_targets([replace(newcomer, device_id=newcomer_id)], [])
    order = []
    for _ in range(8):
        item = poller._next_item(clock.time())
        if item is None:
            break
        order.append("job" if callable(item) and item in jobs else item.device_id)  # type: ignore[union-attr]
    assert order[0] == newcomer_id  # its first poll before anything else
    kinds = ["job" if o == "job" else "poll" for o in order[1:]]
    assert kinds[:6] == ["job", "poll", "job", "poll", "job", "poll"]
    exporter.stop()
