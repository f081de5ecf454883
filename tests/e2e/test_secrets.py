"""Canary secrets never leave the process: not in logs (debug included), /metrics, the
landing page, --config.check output, error messages or tracebacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi, demo_config
from exporter.sim import start_simulator as start_sim
from tests.conftest import run_cli
from tests.e2e.processes import exporter_process, wait_for

pytestmark = pytest.mark.e2e

SECRET = "CANARY-CLIENT-SECRET-7f3a"
PASSWORD = "CANARY-PASSWORD-91bc"
TOKEN = "CANARY-ACCESS-TOKEN-"
CANARIES = (SECRET, PASSWORD, TOKEN)


@pytest.fixture
def canary_sim() -> Iterator[RunningSimulator]:
    api = SimulatedApi(
        SimFleet(seed=4, inverters=3),
        client_secret=SECRET,
        password=PASSWORD,
        faults=Faults(token_prefix=TOKEN, token_lifetime_s=4),
    )
    sim = start_sim(api)
    yield sim
    sim.stop()


def config_for(sim: RunningSimulator, **auth: Any) -> dict[str, Any]:
    raw = demo_config(sim.describe())
    raw["podero"]["auth"].update(auth)
    raw["podero"]["auth"] = {k: v for k, v in raw["podero"]["auth"].items() if v is not None}
    raw["podero"]["retry"] = {"attempts": 2, "max_wait_seconds": 0.5}
    raw["poll"] = {"interval_seconds": 1, "skip_until_due": False}
    return raw


def run_and_collect(
    tmp_path: Path, raw: dict[str, Any], sim: RunningSimulator, faults: Faults, calls: int = 30
) -> str:
    """Run the exporter at debug level through some polls; everything it wrote and served."""
    served = []
    with exporter_process(
        tmp_path, raw, "--log.level", "debug", "--web.enable-lifecycle", wait="/-/healthy"
    ) as exporter:
        base, config, log = exporter.base, tmp_path / "config.yaml", exporter.log
        sim.api.faults = faults
        start = sim.api.stats()["requests"]
        wait_for(lambda: sim.api.stats()["requests"] >= start + calls, 30, f"{calls} API calls")
        for path in ("/metrics", "/", "/-/ready", "/-/healthy"):
            served.append(requests.get(base + path, timeout=5).text)
        served.append(requests.post(f"{base}/-/reload", timeout=5).text)
        config.write_text("podero: [broken\n")
        served.append(requests.post(f"{base}/-/reload", timeout=5).text)
    return log.read_text() + "\n".join(served)


def assert_clean(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text
    assert "Bearer " not in text and "Basic " not in text
    assert "authorization" not in text.lower()


def test_client_credentials_success_and_failure_paths(
    tmp_path: Path, canary_sim: RunningSimulator
) -> None:
    chaos = Faults(
        token_prefix=TOKEN,
        token_lifetime_s=4,
        error_5xx=0.2,
        revoke=0.2,
        rate_limit=0.1,
        retry_after_s=0,
        malformed=0.1,
        html=0.1,
    )
    output = run_and_collect(tmp_path, config_for(canary_sim), canary_sim, chaos)
    assert "podero_device_up" in output  # it did run and serve
    assert 'msg="token refused, renewing it and retrying"' in output  # the revoked-token path ran
    assert_clean(output)


def test_wrong_secret_path(tmp_path: Path, canary_sim: RunningSimulator) -> None:
    raw = config_for(canary_sim, client_secret=SECRET + "-WRONG")
    # A refused secret backs off (10 s, doubling): one more token request is all there is.
    output = run_and_collect(tmp_path, raw, canary_sim, Faults(token_prefix=TOKEN), calls=1)
    assert "invalid_client" in output
    assert_clean(output)


def test_password_grant_paths(tmp_path: Path, canary_sim: RunningSimulator) -> None:
    raw = config_for(
        canary_sim,
        grant_type="password",
        client_id=None,
        client_secret=None,
        username=canary_sim.api.username,
        password=PASSWORD,
    )
    output = run_and_collect(
        tmp_path, raw, canary_sim, Faults(token_prefix=TOKEN, token_lifetime_s=3, revoke=0.2)
    )
    assert "podero_device_up" in output
    assert_clean(output)


def test_config_check_and_config_errors(tmp_path: Path, canary_sim: RunningSimulator) -> None:
    outputs = []
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    variants = [
        config_for(canary_sim),
        config_for(canary_sim, client_secret=None, client_secret_file=str(secret_file)),
        {**config_for(canary_sim), "poll": {"interval_seconds": -1}},
        {**config_for(canary_sim), "unknown": SECRET},
        config_for(canary_sim, client_secret=[SECRET]),
        config_for(canary_sim, client_secret=SECRET, client_secret_file=str(secret_file)),
        config_for(canary_sim, grant_type="password", username="u", password={"x": PASSWORD}),
    ]
    for i, raw in enumerate(variants):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(yaml.safe_dump(raw))
        result = run_cli("--config.file", str(path), "--config.check")
        outputs.append(result.stdout + result.stderr)
        assert "Traceback" not in result.stderr
    assert outputs[0].startswith("config ok")
    assert all("config error" in o for o in outputs[2:])
    assert_clean("\n".join(outputs))
