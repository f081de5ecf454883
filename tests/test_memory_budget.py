"""Bounded memory whatever the API sends (issue 20): bodies held and parsed at once share one
process-wide byte budget, so concurrency x the size cap can never be held at once, and a
budget of one full body plus a small share per worker never deadlocks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from exporter.api.auth import TokenProvider
from exporter.api.bodies import SMALL_BODY_BYTES, ByteBudget, budget_for
from exporter.api.client import PoderoClient
from exporter.api.transport import RetryPolicy, Transport
from exporter.app import Exporter
from exporter.config.model import Config
from tests.conftest import to_config
from tests.fakes import FakeClock

DEADLINE = 10.0
CAP = 256 * 1024
WORKERS = 16


class _Raw:
    """urllib3's raw response as the transport reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def read(self, amt: int, decode_content: bool = True) -> bytes:
        piece, self._body = self._body[:amt], self._body[amt:]
        return piece


class _Response:
    def __init__(self, status: int, body: bytes, known_length: bool) -> None:
        self.status_code = status
        self.headers = {"Content-Type": "application/json"}
        if known_length:
            self.headers["Content-Length"] = str(len(body))
        self.raw = _Raw(body)

    def close(self) -> None:
        pass


class FakeSession:
    """Answers every GET with the next of `answers` (status, body) or the last one."""

    def __init__(self, answers: list[tuple[int, bytes]], known_length: bool) -> None:
        self._answers = answers
        self._known = known_length
        self._lock = threading.Lock()

    def request(self, method: str, url: str, **kwargs: Any) -> _Response:
        with self._lock:
            status, body = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        return _Response(status, body, self._known)


class Quiet:
    def request_done(self, endpoint: str, code: str, seconds: float) -> None: ...

    def invalid_response(self, endpoint: str) -> None: ...

    def token_result(self, ok: bool, expires_at: float | None) -> None: ...


class FixedToken(TokenProvider):
    def __init__(self) -> None:
        pass

    def authorized(self, endpoint: str, send: Callable[[str], Any]) -> Any:
        return send("t")


def client_for(session: FakeSession, budget: ByteBudget) -> PoderoClient:
    transport = Transport(
        session,  # type: ignore[arg-type]
        timeout=DEADLINE,
        policy=RetryPolicy(attempts=3, max_wait_seconds=0),
        clock=FakeClock(0.0),
        observer=Quiet(),
        max_body_bytes=CAP,
        call_timeout=DEADLINE,
        bodies=budget,
    )
    return PoderoClient("http://127.0.0.1:1", transport, FixedToken())


def body_of(size: int) -> bytes:
    """A JSON object of about `size` bytes."""
    return json.dumps({"data": "x" * (size - 20)}).encode()


@pytest.mark.parametrize("known_length", [True, False], ids=["content-length", "chunked"])
def test_bodies_parsed_at_once_never_exceed_the_budget(known_length: bool) -> None:
    budget = ByteBudget(budget_for(CAP, WORKERS))
    size = 200 * 1024
    client = client_for(FakeSession([(200, body_of(size))], known_length), budget)
    go = threading.Event()
    parsing: list[int] = []
    lock = threading.Lock()
    most = 0

    def parse(body: Any) -> int:
        nonlocal most
        with lock:
            parsing.append(len(body["data"]))
            most = max(most, len(parsing))
            assert budget.held <= budget.total
        go.wait(DEADLINE)
        with lock:
            parsing.pop()
        return len(body["data"])

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        calls = [pool.submit(client.get_parsed, "x", "/p", None, parse) for _ in range(WORKERS)]
        # Every worker is parsing or waiting for room: the budget decides how many parse.
        _until(lambda: len(parsing) > 0 and len(parsing) + budget.waiting == WORKERS)
        with lock:
            assert 1 <= len(parsing) <= budget.total // size < WORKERS
            assert budget.held <= budget.total
        go.set()
        assert all(c.result(DEADLINE) == size - 20 for c in calls)  # none is left waiting
    assert budget.peak <= budget.total
    assert most <= budget.total // size
    assert budget.held == 0


def test_a_failed_try_gives_its_share_back_before_the_next() -> None:
    budget = ByteBudget(budget_for(CAP, WORKERS))
    ok = body_of(1000)
    error = json.dumps({"error": "busy"}).encode()
    client = client_for(FakeSession([(503, error), (503, error), (200, ok)], True), budget)
    held: list[int] = []
    client.get_parsed("x", "/p", None, lambda body: held.append(budget.held))
    assert held == [len(ok)]  # the two error bodies' shares were given back
    assert budget.held == 0


def test_a_body_past_the_small_share_takes_the_whole_cap_while_parsed() -> None:
    budget = ByteBudget(budget_for(CAP, WORKERS))
    client = client_for(FakeSession([(200, body_of(100 * 1024))], False), budget)
    held: list[int] = []
    client.get_parsed("x", "/p", None, lambda body: held.append(budget.held))
    assert held == [CAP]
    small = client_for(FakeSession([(200, body_of(1000))], False), budget)
    small.get_parsed("x", "/p", None, lambda body: held.append(budget.held))
    assert held == [CAP, SMALL_BODY_BYTES]
    assert budget.held == 0


def test_the_budget_is_one_for_the_process_across_reloads(
    sim_config: Config, clock: FakeClock
) -> None:
    exporter = Exporter(sim_config, clock)
    bodies = exporter.bodies
    raw = sim_config.model_dump(mode="json")
    raw["podero"]["max_concurrency"] = 3
    raw["podero"]["auth"] = {"client_id": "c", "client_secret": "other"}
    assert exporter.reload(lambda: to_config(raw)) is None
    assert exporter.bodies is bodies
    podero = exporter.config.podero
    assert bodies.total == podero.max_response_bytes + 4 * SMALL_BODY_BYTES
    exporter.stop()


def test_a_take_larger_than_the_budget_still_runs_alone() -> None:
    budget = ByteBudget(100)
    budget.take(1000)  # nothing else held: it goes (a budget below the cap cannot hang)
    with pytest.raises(TimeoutError):
        budget.take(1, deadline=time.monotonic())
    budget.give(1000)
    assert budget.held == 0


def _until(condition: Callable[[], bool]) -> None:
    """Wait for a condition other threads make true, up to DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)  # yielding to the threads that make it true, not waiting for time
