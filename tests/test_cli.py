"""Command-line details: log formats, listen addresses, connection reuse of the poll loop."""

from __future__ import annotations

import json
import logging

import pytest

from exporter.app import Exporter
from exporter.config import Config
from exporter.logs import JsonFormatter, LogfmtFormatter
from exporter.sim import RunningSimulator
from exporter.web import parse_listen_address
from tests.fakes import FakeClock


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("exporter.poller", logging.WARNING, __file__, 1, message, (), None)


def test_logfmt_quotes_what_needs_quoting() -> None:
    line = LogfmtFormatter().format(record('poll failed: HTTP 503 "busy"'))
    assert " level=warning logger=exporter.poller " in line
    assert line.endswith('msg="poll failed: HTTP 503 \\"busy\\""')


def test_json_lines() -> None:
    fields = json.loads(JsonFormatter().format(record("hello")))
    assert fields["level"] == "warning" and fields["msg"] == "hello"
    assert fields["logger"] == "exporter.poller" and fields["ts"].endswith("+00:00")


@pytest.mark.parametrize(
    ("address", "expected"),
    [(":10042", ("", 10042)), ("127.0.0.1:9", ("127.0.0.1", 9)), ("[::1]:80", ("::1", 80))],
)
def test_listen_addresses(address: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize("address", ["10042", "host:port", ":99999"])
def test_bad_listen_addresses(address: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        parse_listen_address(address)


def test_polls_reuse_keep_alive_connections(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock
) -> None:
    config = sim_config.model_copy(
        update={"podero": sim_config.podero.model_copy(update={"max_concurrency": 2})}
    )
    exporter = Exporter(config, clock)
    for _ in range(10):
        exporter.poller.poll_all()
    stats = sim.api.stats()
    assert stats["requests"] == 51  # a token and 10 x 5 polls
    assert stats["connections"] <= 2  # one connection per worker, reused
    exporter.stop()
