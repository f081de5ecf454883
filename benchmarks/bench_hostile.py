"""Benchmark 7: what a hostile API costs the exporter (issue 11). Prints

- peak resident memory of a real `podero-exporter --once` process polling an inverter whose
  data body never ends (chunked), and one whose 1 MiB gzip body inflates to 1 GiB (goal:
  under 300 MB), beside a run against a healthy API;
- how long after its deadline a body trickling in one byte a second is abandoned (the
  transport in-process, deadlines of 1 and 2 s; goal: within a few seconds), and what
  `--once` costs with it.

The simulator runs in its own process (its hostile modes); the exporter too, so that its
peak RSS is its own. `--root` runs another checkout's exporter against the same attacks
(e.g. `--root /work/baseline`, the code before issue 11): its runs are capped at
`--cap-mb` of address space and `--timeout` seconds, so the old behaviour shows without
taking the machine down.

    python -m benchmarks.bench_hostile [--root PATH] [--cap-mb 1500] [--timeout 60]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import machine, verdict
from exporter.api.auth import TokenProvider
from exporter.api.client import PoderoClient
from exporter.api.connections import new_session
from exporter.api.transport import ApiError, RetryPolicy, Transport
from exporter.config.model import AuthConfig
from exporter.sim import SimFleet, spawn
from tests.fakes import FakeClock

ROOT = Path(__file__).resolve().parent.parent
PEAK_GOAL_MB = 300.0


def config_for(sim: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Two inverters: the first is the hostile one. Keys every version of the config knows."""
    return {
        "podero": {
            "base_url": sim["base_url"],
            "auth": {"client_id": sim["client_id"], "client_secret": sim["client_secret"]},
            "timeout_seconds": timeout,
            "retry": {"attempts": 1, "max_wait_seconds": 1},
        },
        "inverters": [{**inv, "name": f"inv-{n}"} for n, inv in enumerate(sim["inverters"])],
    }


def run_once(root: Path, config: dict[str, Any], cap_mb: int, timeout: float) -> dict[str, Any]:
    """`python -m exporter --once` from `root`: wall time, peak RSS (MB) and how it ended."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        cap = cap_mb * 1024 * 1024

        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

        env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
        log = Path(tmp) / "exporter.log"
        started = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "exporter", "--config.file", str(path), "--once"],
                cwd=root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=out,
                preexec_fn=limits,
            )
            ended = "exited"
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() - started > timeout:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    ended = f"killed after {timeout:g} s"
                    break
                time.sleep(0.02)
        text = log.read_text(errors="replace")
        if "MemoryError" in text:
            ended += f", hit the {cap_mb} MB address-space cap (MemoryError)"
        return {
            "seconds": time.monotonic() - started,
            "peak_mb": usage.ru_maxrss / 1024,
            "ended": ended,
            "status": os.waitstatus_to_exitcode(status),
        }


SEED = 3
# The simulated fleet is the same for a seed in every process: its first inverter is hostile.
FIRST = SimFleet(seed=SEED, inverters=2).inverters[0]


def attack(faults: dict[str, Any]) -> list[str]:
    return ["--inverters", "2", "--seed", str(SEED), "--faults", json.dumps(faults)]


def memory_runs(root: Path, cap_mb: int, timeout: float) -> list[tuple[str, dict[str, Any]]]:
    results = []
    for label, faults in (
        ("healthy API", {}),
        ("endless chunked body", {"endless_inverters": [FIRST.id]}),
        (
            "1 MiB gzip inflating to 1 GiB",
            {"gzip_bomb_inverters": [FIRST.id], "gzip_bomb_mib": 1024},
        ),
    ):
        with spawn(*attack(faults)) as sim:
            results.append((label, run_once(root, config_for(sim, 10), cap_mb, timeout)))
    return results


def trickle_in_process(deadline: float) -> float:
    """Seconds until the transport gives up on a body trickling one byte a second."""
    faults = {"trickle_inverters": [FIRST.id], "trickle_interval_s": 1.0}
    with spawn(*attack(faults)) as sim:
        clock = FakeClock(time.time())

        class Quiet:
            def request_done(self, endpoint: str, code: str, seconds: float) -> None: ...

            def invalid_response(self, endpoint: str) -> None: ...

            def token_result(self, ok: bool, expires_at: float | None) -> None: ...

        transport = Transport(
            new_session(2), timeout=deadline, policy=RetryPolicy(1), clock=clock, observer=Quiet()
        )
        auth = AuthConfig(client_id=sim["client_id"], client_secret=sim["client_secret"])
        tokens = TokenProvider(auth, sim["base_url"] + "/oauth2/token/", transport, clock)
        client = PoderoClient(sim["base_url"], transport, tokens)
        tokens.token()
        started = time.monotonic()
        try:
            client.device_data(
                "inverter",
                FIRST.org_id,
                FIRST.user_id,
                FIRST.id,
                start=clock.time() - 3600,
                end=clock.time(),
                resolution="15MIN",
            )
        except ApiError as exc:
            assert "no complete answer" in exc.reason, exc.reason
        return time.monotonic() - started


# Parses (or refuses) a JSON body of N nested objects in a fresh process; prints the outcome,
# the body's size and the process's peak RSS in MB.
_JSON_PROBE = """
import resource, sys
from exporter.api.transport import InvalidResponse, Reply, decode_json
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
item = b'{"a":{"b":{"c":{}}}}'
body = b"[" + (item + b",") * (int(sys.argv[1]) - 1) + item + b"]"
try:
    decode_json("x", Reply(200, {"Content-Type": "application/json"}, body, ""))
    outcome = "parsed"
except InvalidResponse as exc:
    outcome = "refused unparsed"
print(outcome, len(body), imported, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def json_probe(objects: int) -> tuple[str, float, float, float]:
    """(outcome, body MB, RSS after imports, peak MB) of decoding `objects` nested objects."""
    out = subprocess.run(
        [sys.executable, "-c", _JSON_PROBE, str(objects)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return " ".join(out[:-3]), int(out[-3]) / 2**20, float(out[-2]), float(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose exporter runs")
    parser.add_argument("--cap-mb", type=int, default=1500, help="address-space cap per run")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per --once run")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"exporter from {args.root}")
    print("peak resident memory of `podero-exporter --once` (2 inverters, the first hostile):")
    peaks = []
    for label, r in memory_runs(args.root, args.cap_mb, args.timeout):
        print(
            f"  {label:32s} peak {r['peak_mb']:7.1f} MB in {r['seconds']:5.1f} s "
            f"({r['ended']}, exit {r['status']})"
        )
        if label != "healthy API":
            peaks.append(r["peak_mb"])
    print(
        f"  largest peak under attack: {max(peaks):.1f} MB "
        f"(goal < {PEAK_GOAL_MB:.0f} MB: {verdict(max(peaks) < PEAK_GOAL_MB)})"
    )
    if args.root == ROOT:
        # Each object is 4 containers and a comma: 199,999 of them are just under the limit.
        for objects in (199_999, 800_000):
            outcome, body_mb, imported, peak = json_probe(objects)
            print(
                f"JSON body of {objects:,} nested objects ({body_mb:.1f} MB, {5 * objects:,} "
                f"items): {outcome}, process peak {peak:.1f} MB ({imported:.1f} MB after "
                f"imports: {peak - imported:+.1f} MB for body and parse)"
            )
        for deadline in (1.0, 2.0):
            seconds = trickle_in_process(deadline)
            print(
                f"trickle, one byte a second, deadline {deadline:g} s: abandoned after "
                f"{seconds:.2f} s, {seconds - deadline:+.2f} s past the deadline "
                f"(goal within a few seconds: {verdict(seconds - deadline < 3)})"
            )
    with spawn(*attack({"trickle_inverters": [FIRST.id], "trickle_interval_s": 1.0})) as sim:
        r = run_once(args.root, config_for(sim, 2), args.cap_mb, args.timeout)
    print(
        f"`--once` with one trickling inverter, timeout_seconds 2: {r['seconds']:.1f} s "
        f"({r['ended']}, exit {r['status']})"
    )


if __name__ == "__main__":
    main()
