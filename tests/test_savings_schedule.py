"""The savings on the one scheduler, with a fake clock: fetched once per interval on their own
phase, handed out only when no poll is due and never on the last free worker, their requests
yielding every budget slot a poll wants; a slow savings call does not delay a due poll. And
what the page shows: exact figures of one home, hidden when the day ends, kept when a fetch
fails, gone when switched off."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.api.budget import RequestBudget
from exporter.app import Exporter
from exporter.poller import Background
from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi, start_simulator
from exporter.sim.devices import SimDevice
from exporter.state.targets import DeviceTarget
from tests.conftest import NOON, to_config
from tests.e2e.processes import wait_for
from tests.fakes import FakeClock
from tests.savings_model import figures
from tests.test_discovery import discovery_config
from tests.test_scheduler import running

DAY_START = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


@pytest.fixture
def homes(clock: FakeClock) -> Iterator[RunningSimulator]:
    """Ten homes (twelve inverters): five heat pumps, four vehicles, four wallboxes."""
    sim = start_simulator(SimulatedApi(SimFleet(seed=5, inverters=12), clock, Faults()))
    yield sim
    sim.stop()


def devices_of(sim: RunningSimulator, kind: str) -> list[SimDevice]:
    return [d for d in sim.api.fleet.devices if d.kind == kind]


def one_device_config(sim: RunningSimulator, *devices: SimDevice, **extra: Any) -> dict[str, Any]:
    """A config of these devices (configured, no discovery), without the organization."""
    raw = discovery_config(sim)
    del raw["discovery"]
    raw["inverters"] = [
        {
            "org_id": device.org_id,
            "user_id": device.user_id,
            "inverter_id": device.id,
            "kind": device.kind,
            "name": f"pump-{n}",
        }
        for n, device in enumerate(devices)
    ]
    raw["savings"] = {"organizations": False, **extra}
    return raw


def page_values(exporter: Exporter) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = exporter.page.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def named(exporter: Exporter, name: str) -> dict[str, float]:
    """The samples of one family by device_id (or org_id)."""
    return {
        dict(labels).get("device_id", dict(labels).get("org_id", "")): value
        for (n, labels), value in page_values(exporter).items()
        if n == name
    }


# --- priorities -----------------------------------------------------------------------------------


def handed_out(exporter: Exporter, now: float) -> list[str]:
    """What the scheduler hands out at `now`, in order, as if every worker took its item
    (none finishing): "poll" or "savings"."""
    poller = exporter.poller
    order: list[str] = []
    with poller._lock:
        while (item := poller._next_item(now)) is not None:
            poller._running += 1
            if isinstance(item, Background):
                poller._background_running += 1
                order.append("savings")
            else:
                assert isinstance(item, DeviceTarget)
                order.append("poll")
    return order


def test_due_polls_go_before_due_savings_and_one_worker_stays_free(
    homes: RunningSimulator, clock: FakeClock
) -> None:
    raw = discovery_config(homes)
    raw["podero"]["max_concurrency"] = 4
    exporter = Exporter(to_config(raw), clock)
    exporter.discover()
    exporter.poller.poll_all()
    exporter.poller.set_background(exporter.savings)
    polled = len(exporter.store.snapshot()) - len(devices_of(homes, "wallbox"))
    clock.advance(3 * 3600)  # every device's poll is due again, and every savings fetch
    order = handed_out(exporter, clock.time())
    # Every due poll first (workers are not counted here: the loop stops at 4); then
    # savings, at most 3 at once on 4 workers: one stays for the next poll to come due.
    assert order == ["poll"] * polled + ["savings"] * 3
    exporter.stop()


@pytest.mark.parametrize(("workers", "at_once"), [(1, 1), (2, 1), (8, 7)])
def test_savings_never_take_the_last_free_worker(
    homes: RunningSimulator, clock: FakeClock, workers: int, at_once: int
) -> None:
    raw = discovery_config(homes)
    raw["podero"]["max_concurrency"] = workers
    exporter = Exporter(to_config(raw), clock)
    exporter.discover()
    exporter.poller.poll_all()  # no poll is due now
    exporter.poller.set_background(exporter.savings)
    # Ten fetches are due (nine devices, the organization): 1 worker may take one (else
    # they would never run), otherwise all workers but one.
    assert handed_out(exporter, clock.time()) == ["savings"] * at_once
    exporter.stop()


def test_a_slow_savings_fetch_does_not_delay_a_due_poll(
    homes: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = homes.api
    # Two heat pumps on two workers: both savings fetches are due, and would take both
    # workers if they could.
    pump, other = devices_of(homes, "heat_pump")[:2]
    raw = one_device_config(homes, pump, other)
    raw["podero"]["max_concurrency"] = 2
    # The hanging call must not time out (real seconds) before the test lets it go.
    raw["podero"]["timeout_seconds"] = 120
    raw["podero"]["call_timeout_seconds"] = 3600
    exporter = Exporter(to_config(raw), clock)
    exporter.poller.poll_all()
    first_poll = exporter.store.get(pump.id).last_success  # type: ignore[union-attr]
    entered, release = threading.Event(), threading.Event()
    savings = api.device_savings

    def hanging(*args: Any) -> dict[str, Any]:
        entered.set()
        release.wait(30)  # the savings call hangs until the test lets it go
        return savings(*args)

    monkeypatch.setattr(api, "device_savings", hanging)
    exporter.poller.set_background(exporter.savings)
    stop, thread = running(exporter)
    try:
        assert entered.wait(30), "the savings fetch never started"
        clock.advance(1800)  # the heat pump's next poll is due
        exporter.poller._wake.set()
        wait_for(
            lambda: exporter.store.get(pump.id).last_success != first_poll,  # type: ignore[union-attr]
            30,
            "the due poll while the savings call hangs",
        )
        assert not release.is_set() and exporter.store.get(pump.id).savings is None  # type: ignore[union-attr]
        release.set()
        wait_for(lambda: exporter.store.get(pump.id).savings, 30, "the savings after all")  # type: ignore[union-attr]
    finally:
        release.set()
        stop.set()
        exporter.stop()
        thread.join(10)


def test_a_savings_request_takes_no_budget_slot_a_poll_wants() -> None:
    """The budget at 10 per second: a poll's request arriving while a savings request waits
    for the next slot takes it; the savings request takes the one after."""
    clock = FakeClock(NOON)
    budget = RequestBudget(10, clock)
    budget.acquire()  # a poll's request: the slot at 0; the next is free at 0.102
    slots: list[tuple[str, float]] = []
    sleep = clock.sleep

    arrived: list[bool] = []

    def poll_arrives_while_waiting(seconds: float) -> None:
        if not arrived:
            arrived.append(True)
            budget.acquire()  # a poll's request comes in meanwhile
            slots.append(("poll", clock.monotonic()))
        sleep(seconds)

    clock.sleep = poll_arrives_while_waiting  # type: ignore[method-assign]
    with budget.yielding():
        budget.acquire()
    slots.append(("savings", clock.monotonic()))
    assert [name for name, _ in slots] == ["poll", "savings"]
    # The poll got the next slot; the savings request, which waited for it first, the one
    # after (without yielding it would have taken the poll's).
    assert slots[0][1] == pytest.approx(NOON + 0.102)
    assert slots[1][1] == pytest.approx(NOON + 2 * 0.102)
    # Outside the block, requests queue first come, first served as before.
    assert budget.acquire() == pytest.approx(0.102)


# --- the cadence ----------------------------------------------------------------------------------


def test_savings_are_fetched_once_per_interval_on_their_phase(
    homes: RunningSimulator, clock: FakeClock
) -> None:
    pump = devices_of(homes, "heat_pump")[0]
    exporter = Exporter(to_config(one_device_config(homes, pump, interval_seconds=600)), clock)
    fetcher = exporter.savings
    assert fetcher.next_wakeup() == NOON  # a new device: at once
    calls = homes.api.stats
    for job in fetcher.all_jobs():
        job()
    assert calls()["responses"]["heat_pump_savings"] == {"200": 2}  # today and this month
    due = fetcher.next_wakeup()
    assert due is not None and NOON < due <= clock.time() + 600
    assert fetcher.next_job(due - 0.001) is None
    job = fetcher.next_job(due)
    assert job is not None and fetcher.next_job(due) is None  # handed out once
    # Still running when its next turn comes (a call that hangs): that turn is skipped, and
    # the one after is kept.
    assert fetcher.next_job(due + 600) is None
    assert fetcher.next_wakeup() == pytest.approx(due + 1200)
    job()
    job = fetcher.next_job(due + 1200)
    assert job is not None
    job()
    assert calls()["responses"]["heat_pump_savings"] == {"200": 6}
    assert fetcher.next_wakeup() == pytest.approx(due + 1800)
    # A reload to another interval: on the new phase within it, once.
    raw = one_device_config(homes, pump, interval_seconds=1800)
    exporter.reload(lambda: to_config(raw))
    again = fetcher.next_wakeup()
    # Not later than the old plan or one new interval from now, then on the new phase.
    start = min(due + 1800, clock.time() + 1800)
    assert again is not None and start <= again < start + 1800
    exporter.stop()


def test_switched_off_savings_are_neither_fetched_nor_shown_until_switched_on(
    homes: RunningSimulator, clock: FakeClock
) -> None:
    pump = devices_of(homes, "heat_pump")[0]
    exporter = Exporter(to_config(one_device_config(homes, pump)), clock)
    exporter.fetch_savings()
    assert pump.id in named(exporter, "podero_device_savings_today")
    exporter.reload(lambda: to_config(one_device_config(homes, pump, enabled=False)))
    assert exporter.savings.next_wakeup() is None
    assert exporter.savings.next_job(float("inf")) is None
    assert named(exporter, "podero_device_savings_today") == {}
    assert named(exporter, "podero_device_savings_info") == {}
    # Switched on again: due at once, and shown after the fetch.
    exporter.reload(lambda: to_config(one_device_config(homes, pump)))
    assert exporter.savings.next_wakeup() == clock.time()
    exporter.fetch_savings()
    assert pump.id in named(exporter, "podero_device_savings_today")
    exporter.stop()


# --- what the page shows --------------------------------------------------------------------------


def test_one_homes_savings_are_exact_with_currency_and_units(
    homes: RunningSimulator, clock: FakeClock
) -> None:
    """--once fetches the savings of every device and of the organization after the polls."""
    raw = discovery_config(homes)
    raw["metrics"] = {"enable": ["schedule"]}  # the savings' last-success time too
    exporter = Exporter(to_config(raw), clock)
    exporter.poll_once()
    pump = devices_of(homes, "heat_pump")[0]
    car = next(d for d in devices_of(homes, "electric_vehicle") if d.user_id == pump.user_id)
    values = page_values(exporter)
    exporter.stop()
    fetched = {
        labels: value
        for (name, labels), value in values.items()
        if name == "podero_device_savings_last_success_timestamp_seconds"
    }
    assert len(fetched) == 9  # every heat pump and vehicle
    for device in (pump, car):
        ids = (("device_id", device.id),)

        def value(name: str, ids: tuple[tuple[str, str], ...] = ids) -> float:
            (found,) = [v for (n, labels), v in values.items() if n == name and ids[0] in labels]
            return found

        # The fake clock moved on by the budget's spacing: the savings were fetched then.
        now = next(v for labels, v in fetched.items() if ids[0] in labels)
        today = figures([device], DAY_START, DAY_START + 86400, now)
        month = figures([device], MONTH_START, now, now)
        assert value("podero_device_savings_today") == today["savings"]
        assert value("podero_device_savings_this_month") == month["savings"]
        assert value("podero_device_consumption_today_joules") == today["joules"]
        assert value("podero_device_consumption_this_month_joules") == month["joules"]
        (info,) = [
            dict(labels)
            for (n, labels), _ in values.items()
            if n == "podero_device_savings_info" and ids[0] in labels
        ]
        assert (info["currency"], info["energy_unit"], info["kind"]) == (
            "EUR",
            "kWh",
            device.kind,
        )
        (price,) = [
            dict(labels)
            for (n, labels), _ in values.items()
            if n == "podero_device_price_info" and ids[0] in labels
        ]
        assert (price["currency"], price["unit"]) == ("EUR", "EUR/MWh")
    org = homes.api.fleet.org_ids[0]
    (org_info,) = [
        dict(labels) for (n, labels), _ in values.items() if n == "podero_organization_savings_info"
    ]
    assert org_info == {"org_id": org, "currency": "EUR", "energy_unit": "kWh"}
    org_month = [v for (n, _), v in values.items() if n == "podero_organization_savings_this_month"]
    assert org_month and org_month[0] > 0


def test_the_days_figures_go_at_midnight_and_a_failed_fetch_keeps_the_last(
    homes: RunningSimulator, clock: FakeClock
) -> None:
    pump = devices_of(homes, "heat_pump")[0]
    clock.set(DAY_START + 86400 - 600)  # 23:50 UTC
    exporter = Exporter(to_config(one_device_config(homes, pump)), clock)
    exporter.fetch_savings()
    before = named(exporter, "podero_device_savings_today")[pump.id]
    month = named(exporter, "podero_device_savings_this_month")[pump.id]
    assert before > 0
    # The API fails from now on: the figures stay while their periods last.
    homes.api.faults = Faults(failing_endpoints=("heat_pump_savings",))
    clock.advance(300)
    exporter.fetch_savings()
    assert named(exporter, "podero_device_savings_today") == {pump.id: before}
    clock.advance(301)  # 00:00:01: a new day, whose figures nobody has fetched
    assert named(exporter, "podero_device_savings_today") == {}
    assert named(exporter, "podero_device_savings_this_month") == {pump.id: month}
    assert pump.id in named(exporter, "podero_device_savings_info")


def test_a_hostile_savings_body_costs_only_its_own_device(
    homes: RunningSimulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = homes.api
    bad, good = devices_of(homes, "heat_pump")[:2]
    savings = api.device_savings

    def hostile(org: str, user: str, kind: str, device_id: str, q: dict[str, str]) -> Any:
        if device_id == bad.id:
            return {
                "metadata": {"currency": "\udc80" * 10_000},
                "data": [{"time": 1, "savings": []}],
            }
        return savings(org, user, kind, device_id, q)

    monkeypatch.setattr(api, "device_savings", hostile)
    exporter = Exporter(to_config(discovery_config(homes)), clock)
    exporter.discover()
    exporter.fetch_savings()
    shown = named(exporter, "podero_device_savings_today")
    assert good.id in shown and bad.id not in shown
    assert len(shown) == 8  # every other heat pump and vehicle
    text = exporter.page.render().decode()
    exporter.stop()
    # Both of its calls (today, this month) counted as invalid answers.
    assert 'podero_api_invalid_responses_total{endpoint="heat_pump_savings"} 2.0' in text
