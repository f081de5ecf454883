"""The simulator's arrival counts: per whole second, the busiest sliding one-second window, and
per client (access token), which the request-budget benchmarks read from `/_sim/stats`."""

from __future__ import annotations

import base64
import io
import socket
import sys
import time

import pytest
import requests

from exporter.sim import Faults, SimFleet, SimulatedApi, start_simulator
from exporter.sim.arrivals import (
    MAX_SECONDS,
    NO_TOKEN,
    SETTLE_SECONDS,
    Arrivals,
    StampedSocketReader,
)
from tests.fakes import FakeClock


def arrivals_at(times: list[tuple[float, str]]) -> dict:  # type: ignore[type-arg]
    clock = FakeClock(1000.0)
    arrivals = Arrivals(clock.monotonic)
    for at, client in times:
        clock.set(1000.0 + at)
        arrivals.note(client)
    return arrivals.stats()


def test_counts_per_whole_second_since_the_reset() -> None:
    stats = arrivals_at([(0.1, "a"), (0.5, "a"), (0.9, "b"), (1.2, "a"), (3.5, "a")])
    assert stats["per_second"] == [3, 1, 0, 1]
    assert stats["elapsed_seconds"] == 3.5


def test_the_busiest_window_slides_across_whole_seconds() -> None:
    # Two in each whole second, but four within 0.6 s of each other.
    stats = arrivals_at([(0.6, "a"), (0.7, "a"), (1.1, "a"), (1.2, "a"), (2.5, "a")])
    assert stats["per_second"] == [2, 2, 1]
    assert stats["busiest_second"] == 4


def test_a_request_exactly_one_second_later_starts_a_new_window() -> None:
    stats = arrivals_at([(0.0, "a"), (1.0, "a"), (2.0, "a")])
    assert stats["busiest_second"] == 1


def test_arrivals_noted_out_of_order_count_where_they_arrived() -> None:
    # Threads note in their own order: 0.5 and 0.6 are noted after 0.9 and 1.4.
    stats = arrivals_at([(0.9, "a"), (0.5, "a"), (1.4, "a"), (0.6, "a")])
    assert stats["per_second"] == [3, 1]
    assert stats["busiest_second"] == 4  # 0.5, 0.6, 0.9 and 1.4 are within one second


def test_the_busiest_window_is_kept_when_its_seconds_are_long_past() -> None:
    clock = FakeClock(0.0)
    arrivals = Arrivals(clock.monotonic)
    times = sorted([s + k / 3 for s in range(40) for k in range(3)] + [7.95, 8.0, 8.05])
    for at in times:
        clock.set(at)
        arrivals.note("a")
    stats = arrivals.stats()
    # Against every window that starts at an arrival, counted the simple way.
    brute = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert stats["busiest_second"] == brute >= 6  # the burst across seconds 7 and 8
    assert stats["per_second"][7:9] == [4, 5]
    # Only the last few seconds' arrival times are kept, however long the run.
    assert len(arrivals._all._recent) <= SETTLE_SECONDS + 2


def test_an_arrival_noted_after_its_window_settled_counts_per_second_only() -> None:
    late = SETTLE_SECONDS + 3.0
    stats = arrivals_at([(0.1, "a"), (0.2, "a"), (late, "a"), (0.3, "a")])
    assert stats["per_second"][0] == 3
    assert stats["clients"]["a"]["requests"] == 4
    assert stats["busiest_second"] == 2  # 0.3 came after second 0 was settled


def test_each_client_counts_from_its_first_second() -> None:
    stats = arrivals_at(
        [(0.2, NO_TOKEN), (0.4, "token-1"), (2.1, "token-2"), (2.3, "token-2"), (4.0, "token-1")]
    )
    clients = stats["clients"]
    assert clients["token-1"] == {
        "first_second": 0,
        "first_arrival_seconds": pytest.approx(0.4),
        "per_second": [1, 0, 0, 0, 1],
        "busiest_second": 1,
        "requests": 2,
    }
    assert clients["token-2"] == {
        "first_second": 2,
        "first_arrival_seconds": pytest.approx(2.1),
        "per_second": [2],
        "busiest_second": 2,
        "requests": 2,
    }
    assert clients[NO_TOKEN]["requests"] == 1
    # The clients' counts add up to the whole, second by second.
    whole = [0] * len(stats["per_second"])
    for c in clients.values():
        for i, n in enumerate(c["per_second"]):
            whole[c["first_second"] + i] += n
    assert whole == stats["per_second"]


def test_reset_forgets_everything_and_restarts_the_seconds() -> None:
    clock = FakeClock(50.0)
    arrivals = Arrivals(clock.monotonic)
    for _ in range(5):
        arrivals.note("a")
    clock.advance(7.5)
    arrivals.reset()
    clock.advance(0.5)
    arrivals.note("b")
    stats = arrivals.stats()
    assert stats["per_second"] == [1]
    assert stats["busiest_second"] == 1
    assert set(stats["clients"]) == {"b"}


def test_per_second_counts_stop_after_a_day_but_requests_still_count() -> None:
    stats = arrivals_at([(0.5, "a"), (MAX_SECONDS + 5.0, "a")])
    assert stats["per_second"] == [1]  # no list of 86,405 entries for a long demo
    assert stats["clients"]["a"]["requests"] == 2


def test_the_simulator_counts_requests_by_the_token_they_carry() -> None:
    clock = FakeClock(1_795_435_650.0)
    sim = start_simulator(SimulatedApi(SimFleet(seed=3, inverters=2), clock, Faults()))
    try:
        info = sim.describe()
        basic = base64.b64encode(f"{info['client_id']}:{info['client_secret']}".encode()).decode()

        def new_token() -> str:
            r = requests.post(
                f"{sim.base_url}/oauth2/token/",
                json={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
                timeout=5,
            )
            return str(r.json()["access_token"])

        first, second = new_token(), new_token()
        org = info["org_ids"][0]
        users = f"{sim.base_url}/api/partners/v2.0/org/{org}/users"
        for bearer, times in ((first, 3), (second, 2), ("forged\x01token", 1)):
            for _ in range(times):
                requests.get(users, headers={"Authorization": f"Bearer {bearer}"}, timeout=5)
        requests.get(users, timeout=5)  # no Authorization at all
        stats = requests.get(f"{sim.base_url}/_sim/stats", timeout=5).json()
    finally:
        sim.stop()
    clients = {name: c["requests"] for name, c in stats["clients"].items()}
    assert clients == {NO_TOKEN: 3, "token-1": 3, "token-2": 2, "unknown-token": 1}
    assert sum(stats["per_second"]) == 9
    assert stats["busiest_second"] >= 1
    assert stats["responses"]["users"] == {"200": 5, "401": 2}


@pytest.mark.skipif(sys.platform != "linux", reason="kernel receive timestamps (SO_TIMESTAMP)")
def test_a_request_is_stamped_when_it_reached_the_host_not_when_it_was_read() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            reader = StampedSocketReader(server)
            buffered = io.BufferedReader(reader)
            # The kernel turns stamping on a moment after it is first asked: until then a
            # read has no stamp (None, so the request counts when it is read).
            for _ in range(10_000):
                before = time.monotonic()
                client.sendall(b"GET / HTTP/1.1\r\n")
                read_from = time.monotonic()  # the bytes are in the kernel's queue by now
                assert buffered.readline() == b"GET / HTTP/1.1\r\n"
                if reader.stamp is not None:
                    break
    assert reader.stamp is not None
    # The kernel's time (in microseconds): after the send began, before the read began.
    assert before - 1e-3 <= reader.stamp <= read_from + 1e-5
