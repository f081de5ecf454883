"""The simulator: valid against the published schema, strict like the real API, realistic."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml

from exporter.sim import Faults, RunningSimulator, SimFleet, SimulatedApi, start_simulator
from exporter.state.readings import latest_reading, parse_data_response
from tests.fakes import FakeClock
from tests.project import ROOT

SPEC = yaml.safe_load((Path(__file__).parent / "fixtures/inverter-data.openapi.yaml").read_text())
DATA_PATH = "/api/partners/v2.0/org/{org_id}/users/{user_id}/inverters/{inverter_id}/data"


def schema(name: str) -> dict[str, Any]:
    """A component schema with its $refs resolvable."""
    return {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}


def token(sim: RunningSimulator) -> str:
    info = sim.describe()
    basic = base64.b64encode(f"{info['client_id']}:{info['client_secret']}".encode()).decode()
    r = requests.post(
        f"{sim.base_url}/oauth2/token/",
        json={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=5,
    )
    assert r.status_code == 200
    return str(r.json()["access_token"])


def data_url(sim: RunningSimulator, i: int = 0) -> str:
    inv = sim.describe()["inverters"][i]
    return (
        f"{sim.base_url}/api/partners/v2.0/org/{inv['org_id']}/users/{inv['user_id']}"
        f"/inverters/{inv['inverter_id']}/data"
    )


def get(sim: RunningSimulator, url: str, **params: str) -> requests.Response:
    return requests.get(
        url, params=params, headers={"Authorization": f"Bearer {token(sim)}"}, timeout=5
    )


def test_the_fixture_is_the_published_spec() -> None:
    published = ROOT.parent / "shared/podero-api/inverter-data.openapi.yaml"
    if published.exists():
        assert yaml.safe_load(published.read_text()) == SPEC
    assert DATA_PATH in SPEC["paths"]


@pytest.mark.parametrize("resolution", ["15MIN", "1HOUR", "1DAY", "1WEEK", "1MONTH"])
def test_data_responses_validate_against_the_published_schema(
    sim: RunningSimulator, resolution: str
) -> None:
    r = get(
        sim,
        data_url(sim),
        resolution=resolution,
        from_datetime="2026-11-01T00:00:00Z",
        to_datetime="2026-11-24T00:00:00Z",
    )
    assert r.status_code == 200
    jsonschema.validate(r.json(), schema("InverterDataOutput"))
    assert r.json()["data"]


def test_errors_validate_against_the_error_schema(sim: RunningSimulator) -> None:
    r = get(sim, data_url(sim), resolution="5MIN")
    assert r.status_code == 400
    jsonschema.validate(r.json(), schema("InverterDataError"))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"resolution": "2HOURS"}, "Invalid resolution"),
        ({"from_datetime": "not-a-date"}, "Invalid from_datetime"),
        (
            {"from_datetime": "2026-11-23T12:00:00Z", "to_datetime": "2026-11-23T10:00:00Z"},
            "must not be after",
        ),
        ({"keywords": "solar_production_w,wind_w"}, "Unknown keywords: wind_w"),
    ],
)
def test_bad_queries_are_400_with_error(
    sim: RunningSimulator, params: dict[str, str], message: str
) -> None:
    r = get(sim, data_url(sim), **params)
    assert r.status_code == 400
    assert message in r.json()["error"]


def test_requests_without_a_valid_token_are_401(sim: RunningSimulator) -> None:
    assert requests.get(data_url(sim), timeout=5).status_code == 401
    r = requests.get(data_url(sim), headers={"Authorization": "Bearer forged"}, timeout=5)
    assert r.status_code == 401


def test_wrong_client_secret_is_refused(sim: RunningSimulator) -> None:
    basic = base64.b64encode(b"sim-client:wrong").decode()
    r = requests.post(
        f"{sim.base_url}/oauth2/token/",
        json={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=5,
    )
    assert r.status_code == 401


def test_unknown_ids_are_404(sim: RunningSimulator) -> None:
    url = data_url(sim).replace(
        sim.describe()["inverters"][0]["inverter_id"], "00000000-0000-4000-8000-000000000000"
    )
    assert get(sim, url).status_code == 404


def test_password_flow_and_refresh(sim: RunningSimulator) -> None:
    url = f"{sim.base_url}/api/partners/v2.0/auth/token"
    info = sim.describe()
    r = requests.post(
        url,
        json={"grant_type": "password", "username": info["username"], "password": info["password"]},
        timeout=5,
    )
    assert r.status_code == 200 and r.json()["refresh_token"]
    again = requests.post(
        url,
        json={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]},
        timeout=5,
    )
    assert again.status_code == 200
    reused = requests.post(
        url,
        json={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]},
        timeout=5,
    )
    assert reused.status_code == 401  # refresh tokens are single-use


def test_keywords_filter_fields(sim: RunningSimulator) -> None:
    r = get(sim, data_url(sim), keywords="solar_production_w,price")
    assert all(set(p) == {"time", "solar_production_w", "price"} for p in r.json()["data"])


def test_data_is_realistic(sim: RunningSimulator, clock: FakeClock) -> None:
    r = get(
        sim, data_url(sim), from_datetime="2026-11-23T00:00:00Z", to_datetime="2026-11-24T00:00:00Z"
    )
    points = r.json()["data"]
    assert len(points) == 96
    measured = [p for p in points if p["solar_production_w"] is not None]
    forecast = [p for p in points if p["solar_production_w"] is None]
    assert measured and forecast  # measured up to now, forecasts after
    assert all(p["price"] is not None and p["estimated_consumption"] is not None for p in forecast)
    night = [p["solar_production_w"] for p in measured if p["time"] < "2026-11-23T04:00"]
    noon = [p["solar_production_w"] for p in measured if p["time"] >= "2026-11-23T10:00"]
    assert max(night) == 0 and max(noon) > 500
    for p in measured:
        balance = (
            p["solar_production_w"]
            - p["household_consumption_w"]
            + p["battery_charge_discharge_power_w"]
        )
        assert p["export_power_to_grid_w"] == pytest.approx(balance, abs=0.3)
        assert 0 <= p["battery_charge_level_percent"] <= 100
    # the battery charges (negative power) while the sun shines and the level rises
    levels = [p["battery_charge_level_percent"] for p in measured]
    assert len(set(levels)) > 5
    latest = latest_reading(parse_data_response(r.json()), clock.time())
    assert latest is not None and latest.time <= clock.time()


def test_same_seed_same_data(clock: FakeClock) -> None:
    bodies = []
    for _ in range(2):
        running = start_simulator(SimulatedApi(SimFleet(seed=9, inverters=2), clock, Faults()))
        try:
            bodies.append(get(running, data_url(running, 1)).json()["data"])
        finally:
            running.stop()
    assert bodies[0] == bodies[1]


def test_faults_can_be_injected(sim: RunningSimulator) -> None:
    sim.api.faults = Faults(rate_limit=1.0, retry_after_s=3)
    r = get_raw(sim)
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    sim.api.faults = Faults(error_5xx=1.0)
    assert get_raw(sim).status_code == 503
    sim.api.faults = Faults()
    stats = requests.get(f"{sim.base_url}/_sim/stats", timeout=5).json()
    assert stats["responses"]["inverter_data"] == {"429": 1, "503": 1}


def get_raw(sim: RunningSimulator) -> requests.Response:
    faults = sim.api.faults
    sim.api.faults = Faults()
    bearer = token(sim)
    sim.api.faults = faults
    return requests.get(data_url(sim), headers={"Authorization": f"Bearer {bearer}"}, timeout=5)


def test_short_token_lifetime_expires(sim: RunningSimulator, clock: FakeClock) -> None:
    sim.api.faults = Faults(token_lifetime_s=30)
    bearer = token(sim)
    ok = requests.get(data_url(sim), headers={"Authorization": f"Bearer {bearer}"}, timeout=5)
    assert ok.status_code == 200
    clock.advance(31)
    late = requests.get(data_url(sim), headers={"Authorization": f"Bearer {bearer}"}, timeout=5)
    assert late.status_code == 401


def test_listing_endpoints(sim: RunningSimulator) -> None:
    info = sim.describe()
    org = info["org_ids"][0]
    bearer = {"Authorization": f"Bearer {token(sim)}"}
    users = requests.get(
        f"{sim.base_url}/api/partners/v2.0/org/{org}/users", headers=bearer, timeout=5
    ).json()
    assert users and {"id", "external_user_id", "email"} <= set(users[0])
    inverters = requests.get(
        f"{sim.base_url}/api/partners/v2.0/org/{org}/users/{users[0]['id']}/inverters",
        headers=bearer,
        timeout=5,
    ).json()
    assert inverters[0]["device_model"]["manufacturer"]
    detail = requests.get(
        f"{sim.base_url}/api/partners/v2.0/org/{org}/users/{users[0]['id']}/inverters/"
        f"{inverters[0]['id']}",
        headers=bearer,
        timeout=5,
    ).json()
    assert "current_solar_production_w" in detail
