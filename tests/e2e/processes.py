"""Starting the real exporter and simulator processes on loopback, and waiting for them."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml

from exporter.sim import stop_process

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds.

    This waits for an event (a process becoming ready), never for time to pass: a fast
    machine returns at once."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (requests.RequestException, OSError) as exc:
            last_error = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} ({last_error})")


def exporter_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "exporter", *args]


@contextmanager
def running(
    cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process for the duration of the block, output to `log`; always stopped after."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        try:
            yield proc
        finally:
            stop_process(proc)


@dataclass
class ExporterProcess:
    """A running `podero-exporter` process on a free loopback port."""

    proc: subprocess.Popen[bytes]
    base: str  # http://127.0.0.1:PORT
    port: int
    log: Path

    def get(self, path: str, timeout: float = 5) -> requests.Response:
        return requests.get(self.base + path, timeout=timeout)


@contextmanager
def exporter_process(
    tmp_path: Path,
    config: dict[str, Any] | None,
    *args: str,
    wait: str = "/-/ready",
    timeout: float = 20,
) -> Iterator[ExporterProcess]:
    """The real exporter with `config` (None: `--demo`) and `args`, on a free port, until the
    block ends (always stopped, output in `tmp_path/exporter.log`); waits for `wait` to
    answer 200 first (None: do not wait)."""
    port = free_port()
    flags = ["--web.listen-address", f"127.0.0.1:{port}", *args]
    if config is None:
        flags.insert(0, "--demo")
    else:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        flags[:0] = ["--config.file", str(path)]
    log = tmp_path / "exporter.log"
    with running(exporter_command(*flags), log) as proc:
        process = ExporterProcess(proc, f"http://127.0.0.1:{port}", port, log)
        if wait:
            wait_for(lambda: process.get(wait, timeout=1).ok, timeout, f"the exporter's {wait}")
        yield process


def demo_simulator_url(log: Path, timeout: float = 20) -> str:
    """The base URL of the simulator a `--demo` exporter started, read from its log."""

    def found() -> str | None:
        match = re.search(r"simulated Podero API\" base_url=(http://[\d.:]+)", log.read_text())
        return match.group(1) if match else None

    return wait_for(found, timeout, "the demo's simulator address")


def pin_values(simulator: str, device_id: str, values: dict[str, float]) -> None:
    """Make the simulator serve these values for a device (an inverter, heat pump or vehicle;
    booleans as 0 or 1) from now on."""
    requests.post(
        f"{simulator}/_sim/override",
        json={"inverter_id": device_id, "values": values},
        timeout=5,
    ).raise_for_status()


@contextmanager
def prometheus_server(
    tmp: Path, config: dict[str, Any], *flags: str, storage: Path | None = None
) -> Iterator[str]:
    """A real Prometheus with `config` on a free loopback port, ready, until the block ends;
    yields its base URL. `storage` defaults to a fresh directory under `tmp`."""
    from tests.conftest import require_tool

    binary = require_tool("prometheus")
    port = free_port()
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    cmd = [
        binary,
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={storage or tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *flags,
    ]
    with running(cmd, tmp / "prometheus.log"):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=2).ok, 60, "Prometheus")
        yield url
