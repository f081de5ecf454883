"""Command-line details: log formats, listen addresses, connection reuse of the poll loop."""

from __future__ import annotations

import json
import logging
import platform
import re
import zoneinfo

import pytest

from exporter import __version__
from exporter.app import Exporter
from exporter.base.logs import JsonFormatter, LogfmtFormatter, setup_logging
from exporter.config.model import Config
from exporter.render.telemetry import build_revision
from exporter.serve.web import parse_listen_address
from exporter.sim import RunningSimulator
from tests.conftest import run_cli
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


def test_build_info_names_version_revision_and_python(
    sim_config: Config, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODERO_EXPORTER_REVISION", "0123abc")
    exporter = Exporter(sim_config, clock)
    text = exporter.page.render().decode()
    exporter.stop()
    expected = (
        f'podero_exporter_build_info{{python_version="{platform.python_version()}",'
        f'revision="0123abc",version="{__version__}"}} 1.0'
    )
    assert expected in text


def test_revision_from_the_checkout_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODERO_EXPORTER_REVISION", raising=False)
    revision = build_revision()
    assert revision == "unknown" or (len(revision) == 40 and int(revision, 16) >= 0)


@pytest.mark.parametrize("level", ["debug", "info", "warn", "warning", "error"])
def test_log_levels_other_exporters_use(level: str) -> None:
    result = run_cli("--log.level", level, "--config.file", "/nonexistent.yaml", "--config.check")
    assert "invalid choice" not in result.stderr
    assert result.returncode == 2 and "config error" in result.stderr


def test_warn_means_warning(restore_root_logger: None) -> None:
    setup_logging("warn", "logfmt")
    assert logging.getLogger().level == logging.WARNING


def test_the_demo_fires_nothing_unless_a_scenario_asks(clock: FakeClock) -> None:
    from exporter.cli import _demo_config
    from exporter.sim.fleet import BATTERY_RESERVE, SOLAR_RATINGS

    config, _ = _demo_config(3, None)
    thresholds = config.thresholds
    assert thresholds.grid_export_high_watts is not None
    assert thresholds.battery_low_percent is not None
    # Export never exceeds the largest simulated solar rating; the battery keeps a reserve.
    assert thresholds.grid_export_high_watts > max(SOLAR_RATINGS)
    assert thresholds.battery_low_percent < BATTERY_RESERVE


def test_the_battery_low_scenario_drains_one_battery(clock: FakeClock) -> None:
    from exporter.cli import _demo_config

    config, _ = _demo_config(3, "battery-low")
    exporter = Exporter(config, clock)
    exporter.poll_once()
    text = exporter.page.render().decode()
    exporter.stop()
    ratios = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("podero_inverter_battery_charge_ratio{")
    ]
    assert 0.05 in ratios and sum(1 for r in ratios if r < 0.15) == 1


def _demo_page(scenario: str, clock: FakeClock) -> str:
    from exporter.cli import _demo_config

    config, _ = _demo_config(6, scenario)
    exporter = Exporter(config, clock)
    exporter.refresh_inventory()
    exporter.poll_once()
    text = exporter.page.render().decode()
    exporter.stop()
    return text


def _values(text: str, name: str) -> dict[str, float]:
    """A family's values by device_id."""
    return {
        re.search(r'device_id="([^"]+)"', line).group(1): float(line.rsplit(" ", 1)[1])  # type: ignore[union-attr]
        for line in text.splitlines()
        if line.startswith(name + "{")
    }


def test_the_hot_water_low_scenario_cools_one_heat_pump(clock: FakeClock) -> None:
    water = _values(
        _demo_page("hot-water-low", clock), "podero_heat_pump_hot_water_temperature_celsius"
    )
    assert len(water) >= 2 and sorted(water.values())[0] == 31.5
    assert sum(1 for t in water.values() if t < 40) == 1  # below the demo's 40 °C: one pump


def test_the_vehicle_late_scenario_leaves_one_vehicle_plugged_in_low_after_its_time(
    clock: FakeClock,
) -> None:
    from datetime import datetime

    from exporter.cli import DEMO_TIMEZONE

    text = _demo_page("vehicle-late", clock)
    level = _values(text, "podero_electric_vehicle_battery_level_ratio")
    late = [d for d, v in level.items() if v == 0.5]
    assert len(late) == 1
    assert _values(text, "podero_electric_vehicle_plugged_in")[late[0]] == 1.0
    assert _values(text, "podero_electric_vehicle_at_optimized_location")[late[0]] == 1.0
    # Its charged-by time passed about five minutes ago, in the demo's timezone.
    now = datetime.now(zoneinfo.ZoneInfo(DEMO_TIMEZONE))
    seconds = now.hour * 3600 + now.minute * 60 + now.second
    by = _values(text, "podero_electric_vehicle_charged_by_seconds")[late[0]]
    assert 4 * 60 <= (seconds - by) % 86400 <= 7 * 60
