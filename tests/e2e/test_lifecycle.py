"""Signals and reloads of the real exporter process."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi, demo_config
from exporter.sim import start_simulator as start_sim
from tests.e2e.processes import exporter_process, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_sim() -> Iterator[RunningSimulator]:
    sim = start_sim(SimulatedApi(SimFleet(seed=3, inverters=4), faults=Faults()))
    yield sim
    sim.stop()


def config_for(sim: RunningSimulator, inverters: int, **poll: Any) -> dict[str, Any]:
    raw = demo_config(sim.describe(), inverters)
    raw["poll"] = {"interval_seconds": 1, "skip_until_due": False, **poll}
    return raw


def write_config(path: Path, sim: RunningSimulator, inverters: int, **poll: Any) -> None:
    path.write_text(yaml.safe_dump(config_for(sim, inverters, **poll)))


def metric(base: str, name: str) -> dict[str, float]:
    out = {}
    for line in requests.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_within_5s_with_calls_in_flight(
    tmp_path: Path, live_sim: RunningSimulator, sig: signal.Signals
) -> None:
    live_sim.api.faults = Faults(latency_ms=4000)  # every API call hangs for 4 s
    with exporter_process(tmp_path, config_for(live_sim, 4), wait="/-/healthy") as exporter:
        wait_for(lambda: live_sim.api.stats()["requests"] > 0, 15, "calls in flight")
        assert exporter.get("/-/ready", timeout=2).status_code == 503
        exporter.proc.send_signal(sig)
        assert exporter.proc.wait(timeout=5) == 0
    assert "stopped" in exporter.log.read_text()


def test_reload_by_sighup_and_post(tmp_path: Path, live_sim: RunningSimulator) -> None:
    config = tmp_path / "config.yaml"
    with exporter_process(tmp_path, config_for(live_sim, 2), "--web.enable-lifecycle") as exporter:
        proc, base = exporter.proc, exporter.base
        assert len(metric(base, "podero_device_up")) == 2
        tokens = live_sim.api.stats()["responses"]["token"]["200"]

        # SIGHUP with two more inverters: they are polled, the token is kept.
        write_config(config, live_sim, 4)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(metric(base, "podero_device_up")) == 4, 15, "4 inverters")
        assert live_sim.api.stats()["responses"]["token"]["200"] == tokens
        assert metric(base, "podero_config_last_reload_successful") == {
            "podero_config_last_reload_successful": 1.0
        }

        # POST /-/reload with one inverter removed: its series go away.
        write_config(config, live_sim, 3)
        r = requests.post(f"{base}/-/reload", timeout=10)
        assert r.status_code == 200
        assert len(metric(base, "podero_device_info")) == 3

        # An invalid config is refused; the old one keeps running.
        config.write_text(config.read_text().replace("interval_seconds: 1", "interval_seconds: 0"))
        r = requests.post(f"{base}/-/reload", timeout=10)
        assert r.status_code == 500
        assert "poll.interval_seconds: must be at least 1, got 0" in r.text
        assert metric(base, "podero_config_last_reload_successful") == {
            "podero_config_last_reload_successful": 0.0
        }
        assert len(metric(base, "podero_device_info")) == 3
        before = sum(metric(base, "podero_polls_total").values())
        wait_for(
            lambda: sum(metric(base, "podero_polls_total").values()) > before + 3,
            15,
            "polling to go on",
        )
        assert proc.poll() is None
        # Reload time is reported like Prometheus does.
        assert (
            next(iter(metric(base, "podero_config_last_reload_success_timestamp_seconds").values()))
            <= time.time()
        )
