"""`--once` runs on the daemon's scheduler: inventory detail calls share the workers (and the
budget) with the data polls, and it ends once every device has been polled once."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from exporter.app import Exporter
from exporter.config.model import Config
from tests.fakes import FakeClock

# How long a call holds its worker waiting for a call of the other sort to start. Run one
# after another (detail calls before any poll), the first detail call waits this long in vain.
OTHER_SORT_TIMEOUT = 5.0


class CallLog:
    """Every API call's start and end in order, each held until a call of the other sort
    (detail call or data poll) has started as well: possible only if they run side by side."""

    def __init__(self, *, hold: bool = True) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []  # ("start" or "end", "data" or "detail")
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = {"data": threading.Event(), "detail": threading.Event()}
        self.met_the_other_sort: list[bool] = []
        if not hold:
            for started in self.started.values():
                started.set()

    def around(self, sort: str, call: Any) -> Any:
        with self.lock:
            self.events.append(("start", sort))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started[sort].set()
        other = "detail" if sort == "data" else "data"
        met = self.started[other].wait(OTHER_SORT_TIMEOUT)
        try:
            return call()
        finally:
            with self.lock:
                self.met_the_other_sort.append(met)
                self.events.append(("end", sort))
                self.in_flight -= 1


def recording(exporter: Exporter, log: CallLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Route the exporter's API calls (token requests aside) through `log`."""
    client = exporter.client
    get_parsed = client.get_parsed  # every call's body is parsed here (get_json too)

    def logged_parsed(
        endpoint: str, path: str, params: Mapping[str, str] | None, parse: Any, **kw: Any
    ) -> Any:
        sort = "data" if path.endswith("/data") else "detail"
        return log.around(sort, lambda: get_parsed(endpoint, path, params, parse, **kw))

    monkeypatch.setattr(client, "get_parsed", logged_parsed)


def with_concurrency(config: Config, workers: int) -> Config:
    """The config on this many workers, without the savings (whose calls --once makes after
    the first cycle: tests/test_savings.py)."""
    podero = config.podero.model_copy(update={"max_concurrency": workers})
    savings = config.savings.model_copy(update={"enabled": False})
    return config.model_copy(update={"podero": podero, "savings": savings})


def test_once_runs_detail_calls_beside_the_polls(
    sim_config: Config, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five configured inverters: five detail calls and five polls on eight workers.
    exporter = Exporter(with_concurrency(sim_config, 8), clock)
    log = CallLog()
    recording(exporter, log, monkeypatch)
    result = exporter.poll_once()
    exporter.stop()
    assert (result.succeeded, result.failed) == (5, 0)
    starts = [sort for edge, sort in log.events if edge == "start"]
    assert sorted(starts) == ["data"] * 5 + ["detail"] * 5
    # Every call saw the other sort start while it waited: none ran alone.
    assert log.met_the_other_sort == [True] * 10
    assert log.max_in_flight > 1
    last_detail_end = max(i for i, e in enumerate(log.events) if e == ("end", "detail"))
    first_data_start = log.events.index(("start", "data"))
    assert first_data_start < last_detail_end


def test_once_ends_after_every_first_poll_and_every_detail_call(
    sim_config: Config, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = Exporter(with_concurrency(sim_config, 2), clock)
    log = CallLog(hold=False)  # two workers: one call at a time is fine here
    recording(exporter, log, monkeypatch)
    exporter.poll_once()
    # Nothing in flight, nothing left: each device polled once, its detail call made.
    assert log.in_flight == 0
    assert log.events.count(("end", "data")) == 5
    assert log.events.count(("end", "detail")) == 5
    states = exporter.store.snapshot()
    assert len(states) == 5
    assert all(s.polled and s.up and s.target.inventory is not None for s in states)
    assert exporter.ready
    exporter.stop()


def test_once_on_no_devices_ends_at_once(sim_config: Config, clock: FakeClock) -> None:
    exporter = Exporter(sim_config.model_copy(update={"inverters": []}), clock)
    result = exporter.poll_once()
    exporter.stop()
    assert (result.succeeded, result.failed) == (0, 0)


def test_once_polls_no_device_twice_even_when_due_again(
    sim_config: Config, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inventory that takes long (an hour of fake time per detail call here) does not make
    --once poll the devices whose next poll came due meanwhile: once each is what it is for."""
    exporter = Exporter(with_concurrency(sim_config, 2), clock)
    log = CallLog(hold=False)
    recording(exporter, log, monkeypatch)
    client = exporter.client
    logged = client.get_json

    def slow_inventory(endpoint: str, path: str, *args: Any, **kw: Any) -> Any:
        if not path.endswith("/data"):
            clock.advance(3600)
        return logged(endpoint, path, *args, **kw)

    monkeypatch.setattr(client, "get_json", slow_inventory)
    result = exporter.poll_once()
    exporter.stop()
    assert (result.succeeded, result.failed) == (5, 0)
    assert log.events.count(("end", "data")) == 5
    assert log.events.count(("end", "detail")) == 5
