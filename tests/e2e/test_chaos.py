"""A one-minute chaos soak: every fault at once, from a fixed seed, against the real process.

During the faults the process never exits, /metrics answers 200 within 1 s, and no value is
exported stale or from the future. After they stop, every inverter is back to up 1 within
two poll cycles, and per status code the exporter's counters match the simulator's own.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.kinds import inverter
from exporter.sim import Faults, SimFleet, SimulatedApi, demo_config
from exporter.sim import start_simulator as start_sim
from tests.e2e.processes import exporter_process, wait_for

pytestmark = pytest.mark.e2e

INVERTERS = 10
MAX_AGE = 3600.0
VALUE_METRICS = {f.name for f in inverter.INVERTER.readings}
CHAOS = Faults(
    error_5xx=0.08,
    rate_limit=0.05,
    retry_after_s=1,
    slow=0.03,
    slow_s=1.5,
    reset=0.04,
    truncated=0.03,
    malformed=0.03,
    html=0.03,
    revoke=0.03,
    token_lifetime_s=8,
)


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples
    ]


def check_invariants(text: str, now: float) -> None:
    """No value from the future, no value older than max_data_age_seconds."""
    found = samples(text)
    stamps = {
        s[1]["device_id"]: s[2] for s in found if s[0] == "podero_device_data_timestamp_seconds"
    }
    for name, labels, _ in found:
        if name in VALUE_METRICS:
            stamp = stamps[labels["device_id"]]
            assert stamp <= now, f"{name} of {labels['name']} is from the future"
            assert now - stamp <= MAX_AGE, f"{name} of {labels['name']} is stale"


def counters(text: str) -> dict[tuple[str, str], float]:
    return {
        (s[1]["endpoint"], s[1]["code"]): s[2]
        for s in samples(text)
        if s[0] == "podero_api_requests_total"
    }


def simulator_counts(api: SimulatedApi) -> dict[tuple[str, str], float]:
    rename = {"reset": "connection_error"}
    return {
        (endpoint, rename.get(code, code)): float(n)
        for endpoint, codes in api.stats()["responses"].items()
        for code, n in codes.items()
    }


def test_chaos_soak(tmp_path: Path) -> None:
    api = SimulatedApi(SimFleet(seed=42, inverters=INVERTERS), faults=Faults())
    sim = start_sim(api)
    raw = demo_config(sim.describe())
    raw["podero"].update(
        {
            "timeout_seconds": 1,
            "max_concurrency": 4,
            "retry": {"attempts": 3, "max_wait_seconds": 1},
        }
    )
    raw["poll"] = {"interval_seconds": 1, "skip_until_due": False, "max_data_age_seconds": MAX_AGE}
    try:
        with exporter_process(tmp_path, raw) as exporter:
            proc, base = exporter.proc, exporter.base
            api.faults = CHAOS
            scrapes = 0
            started = time.monotonic()
            while time.monotonic() - started < 45:
                elapsed = time.monotonic() - started
                # The token endpoint is down from 10 s to 20 s into the soak.
                token_down = 10 <= elapsed < 20
                if (api.faults.token_error == 1.0) != token_down:
                    api.faults = Faults(
                        **{**CHAOS.__dict__, "token_error": 1.0 if token_down else 0.0}
                    )
                r = requests.get(f"{base}/metrics", timeout=1)
                assert r.status_code == 200
                check_invariants(r.text, time.time())
                assert proc.poll() is None
                scrapes += 1
                time.sleep(0.2)  # pacing the scrape loop, not waiting for an outcome
            assert scrapes > 100
            text = requests.get(f"{base}/metrics", timeout=1).text
            assert any(code not in ("200",) for _, code in counters(text)), "no faults seen?"

            # Faults stop: after at least two poll cycles of every inverter, and within a
            # minute, all are up again. (Polls made while a token refusal's backoff still runs
            # fail at once and count as polls: two cycles alone could all be such polls.)
            api.faults = Faults()
            polls_at_stop = sum(s[2] for s in samples(text) if s[0] == "podero_polls_total")

            def recovered() -> bool:
                t = requests.get(f"{base}/metrics", timeout=1).text
                polls = sum(s[2] for s in samples(t) if s[0] == "podero_polls_total")
                ups = [s[2] for s in samples(t) if s[0] == "podero_device_up"]
                return polls >= polls_at_stop + 2 * INVERTERS and ups == [1.0] * INVERTERS

            wait_for(recovered, 60, "two clean poll cycles")
            up = {
                s[1]["name"]: s[2]
                for s in samples(requests.get(f"{base}/metrics", timeout=1).text)
                if s[0] == "podero_device_up"
            }
            assert up == {name: 1.0 for name in up} and len(up) == INVERTERS

            # Every HTTP exchange is accounted for, per endpoint and status code.
            def reconciled() -> bool:
                before = counters(requests.get(f"{base}/metrics", timeout=1).text)
                served = simulator_counts(api)
                after = counters(requests.get(f"{base}/metrics", timeout=1).text)
                return before == after == served

            wait_for(reconciled, 30, "the exporter's counters to match the simulator's")
            final = counters(requests.get(f"{base}/metrics", timeout=1).text)
            for code in ("200", "401", "429", "503", "timeout", "connection_error"):
                assert any(c == code for _, c in final), f"no {code} in the soak"
            assert proc.poll() is None
    finally:
        sim.stop()
