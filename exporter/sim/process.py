"""`podero-simulator` as a process: its command line, and starting and stopping it (or any
child process) from the demo, the tests and the benchmarks."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from exporter.sim.api import Faults, SimulatedApi
from exporter.sim.clock import ManualClock
from exporter.sim.fleet import SimFleet
from exporter.sim.server import start_simulator


def _listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or "127.0.0.1", int(port))


def main(argv: list[str] | None = None) -> int:
    """`podero-simulator`: serve the simulated API until interrupted."""
    parser = argparse.ArgumentParser(
        prog="podero-simulator",
        description="A simulated Podero Partner API on loopback, for demos, tests and benchmarks.",
    )
    parser.add_argument("--listen", default="127.0.0.1:8089", help="HOST:PORT to serve on")
    parser.add_argument("--inverters", type=int, default=3, help="how many inverters to simulate")
    parser.add_argument("--orgs", type=int, default=1, help="how many organizations")
    parser.add_argument(
        "--one-inverter-per-home",
        action="store_true",
        help="every simulated home has exactly one inverter (and no other device)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for ids, data and faults")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API call")
    parser.add_argument("--token-lifetime", type=int, default=36000, help="token expires_in")
    parser.add_argument(
        "--faults",
        type=json.loads,
        default={},
        metavar="JSON",
        help='faults to inject, e.g. {"error_5xx": 0.1, "rate_limit": 0.05}',
    )
    parser.add_argument(
        "--fake-clock",
        type=float,
        default=None,
        metavar="EPOCH",
        help="run on a clock that starts at EPOCH and moves only by "
        "POST /_sim/clock (for simulated days in benchmarks)",
    )
    parser.add_argument(
        "--describe-json",
        action="store_true",
        help="print the credentials and ids as one JSON line",
    )
    args = parser.parse_args(argv)
    host, port = _listen_address(args.listen)
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the simulator only serves on loopback addresses")
    api = SimulatedApi(
        SimFleet(
            seed=args.seed,
            inverters=args.inverters,
            orgs=args.orgs,
            second_every=0 if args.one_inverter_per_home else 7,
            other_devices=not args.one_inverter_per_home,
        ),
        clock=None if args.fake_clock is None else ManualClock(args.fake_clock),
        faults=Faults(
            **{"latency_ms": args.latency_ms, "token_lifetime_s": args.token_lifetime} | args.faults
        ),
    )
    sim = start_simulator(api, host, port)
    info = sim.describe()
    if args.describe_json:
        print(json.dumps(info), flush=True)
    else:
        print(f"podero-simulator serving {info['base_url']}")
        print(f"client_id: {info['client_id']}")
        print(f"client_secret: {info['client_secret']}")
        print(f"username: {info['username']}  password: {info['password']}")
        for inv in info["inverters"]:
            print(
                f"inverter org_id={inv['org_id']} user_id={inv['user_id']} "
                f"inverter_id={inv['inverter_id']}"
            )
        print("", flush=True)
    try:
        sim.thread.join()
    except KeyboardInterrupt:
        sim.stop()
    return 0


@contextlib.contextmanager
def spawn(*args: str, log_path: str | None = None) -> Iterator[dict[str, Any]]:
    """Run `podero-simulator` in a child process on an ephemeral loopback port for the
    duration of the block; yields its description (base_url, credentials, ids) and its
    process id (`pid`)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "exporter.sim",
        "--listen",
        f"127.0.0.1:{port}",
        "--describe-json",
        *args,
    ]
    log = open(log_path or os.devnull, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"podero-simulator exited with {proc.wait()}")
        yield dict(json.loads(line)) | {"pid": proc.pid}
    finally:
        stop_process(proc)
        log.close()


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if the process has not ended after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
