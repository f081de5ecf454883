"""Shared pieces of the benchmark scripts: configs for a simulator, clocks in lockstep,
and small statistics. Run the scripts from the repository root: `python -m benchmarks.NAME`."""

from __future__ import annotations

import gc
import logging
import os
import platform
import statistics
import time
from typing import Any

import requests
import yaml

from exporter.base.memory import release_free_memory
from exporter.config.model import Config, parse_config
from exporter.sim import demo_config
from tests.fakes import FakeClock, poll_due

# Benchmarks inject faults on purpose: keep the per-poll warnings out of their output.
logging.getLogger("exporter").setLevel(logging.ERROR)


def exporter_config(sim: dict[str, Any], **podero: Any) -> Config:
    """A config polling every inverter of a spawned simulator; `podero` keys override."""
    raw = demo_config(sim)
    raw["podero"].update(podero)
    raw["poll"] = raw.get("poll", {})
    return parse_config(yaml.dump(raw, Dumper=yaml.CSafeDumper), {})


def with_poll(config: Config, **poll: Any) -> Config:
    return config.model_copy(update={"poll": config.poll.model_copy(update=poll)})


class LockstepClock(FakeClock):
    """A fake clock for the exporter that also moves the spawned simulator's clock."""

    def __init__(self, start: float, sim_url: str) -> None:
        super().__init__(start, record_sleeps=False)
        self._url = sim_url
        self._session = requests.Session()
        self.set(start)

    def set(self, now: float) -> None:
        super().set(now)
        self._session.post(f"{self._url}/_sim/clock", json={"now": now}, timeout=10)


def wait_for_steady_state(exporter: Any) -> None:
    """Until the first poll cycle is behind a started exporter and every inventory arrived."""
    while not exporter.ready or any(s.target.inventory is None for s in exporter.store.snapshot()):
        time.sleep(0.5)  # sampling the exporter's progress, not waiting for an outcome


def sim_stats(sim: dict[str, Any]) -> dict[str, Any]:
    return dict(requests.get(f"{sim['base_url']}/_sim/stats", timeout=10).json())


def reset_sim_stats(sim: dict[str, Any]) -> None:
    requests.post(f"{sim['base_url']}/_sim/reset-stats", timeout=10)


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def load_average() -> str:
    """The machine's load average, to quote beside every timed figure (the cores are shared)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def rss_of(pid: int) -> float:
    """Resident memory of another process in MB (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) another process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def settled_rss() -> float:
    """Resident memory (MB) once garbage is collected and freed memory handed back."""
    gc.collect()
    release_free_memory()
    return rss_mb()


def poll_for_hours(exporter: Any, clock: LockstepClock, start: float, hours: float) -> int:
    """Polling when due, in one-second ticks of the lockstep clock from `start` for `hours`,
    the page refreshed every tick, as the daemon's loops do; how many polls ran."""
    polls, now, end = 0, start, start + hours * 3600
    while now < end:
        now += 1.0
        clock.set(now)
        result = poll_due(exporter.poller, exporter.clock.time())
        polls += result.succeeded + result.failed
        exporter.page.refresh()
    return polls
