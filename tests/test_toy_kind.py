"""A new device kind is one module declaring it: a toy kind registered here (in the tests only)
is listed, polled, exported, shown on the status page and backfilled, with no other module
of the exporter touched. HTTP is mocked with `responses`."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from exporter import backfill
from exporter.app import Exporter
from exporter.kinds import registry
from exporter.kinds.family import reading
from exporter.kinds.kind import Column, Field, Kind, percent
from tests.conftest import NOON, ORG, USER, minimal_config, to_config
from tests.fakes import FakeClock
from tests.test_backfill import series_of

BASE = "https://podero.invalid/api/partners/v2.0"
TOY = "55555555-5555-4555-8555-555555555555"
MOISTURE = reading(
    "podero_toy_meter_moisture_ratio",
    "moisture_percent",
    "Soil moisture, 0 to 1 (API field moisture_percent / 100).",
    scale=0.01,
)
TOY_KIND = Kind(
    name="toy_meter",
    path="toy-meters",
    listing="toy_meters",
    measured=(Field("moisture_percent", percent),),
    readings=(MOISTURE,),
    columns=(Column("moisture", "Moisture", "percent", MOISTURE),),
)
POINT_TIME = "2026-11-23T11:45:00Z"  # the newest bucket before NOON
HISTORY_TIME = "2026-11-20T06:00:00Z"  # inside the backfilled range


@pytest.fixture
def toy_kind() -> Iterator[Kind]:
    registry.register(TOY_KIND)
    yield TOY_KIND
    registry.unregister(TOY_KIND.name)


def mock_api() -> None:
    """A home whose only device is a toy meter: the users listing counts none of the other
    kinds, so only the toy meters are listed."""
    responses.post(
        "https://podero.invalid/oauth2/token/", json={"access_token": "t", "expires_in": 3600}
    )
    counts = {kind.count_key: 0 for kind in registry.kinds() if kind is not TOY_KIND}
    user = {"id": USER, "email": "toy@example.org", **counts, "num_toy_meters": 1}
    responses.get(f"{BASE}/org/{ORG}/users", json=[user])
    toy = {
        "id": TOY,
        "device_model": {"manufacturer": "Acme", "model": "T-1"},
        "lifecycle_state": "authenticated",
    }
    responses.get(f"{BASE}/org/{ORG}/users/{USER}/toy-meters", json=[toy])
    body = {
        "metadata": {},
        "data": [
            {"time": HISTORY_TIME, "moisture_percent": 30},
            {"time": POINT_TIME, "moisture_percent": 42},
        ],
    }
    responses.get(
        re.compile(rf"{re.escape(BASE)}/org/{ORG}/users/{USER}/toy-meters/{TOY}/data.*"), json=body
    )


def toy_config() -> dict[str, object]:
    return minimal_config(inverters=[], discovery={"org_ids": [ORG]})


@responses.activate
def test_a_registered_kind_is_listed_polled_exported_and_shown(toy_kind: Kind) -> None:
    mock_api()
    exporter = Exporter(to_config(toy_config()), FakeClock(NOON))
    exporter.refresh_inventory()
    [state] = exporter.store.snapshot()
    assert (state.target.device_id, state.target.kind) == (TOY, "toy_meter")  # listed
    assert exporter.poller.poll_all().succeeded == 1  # polled
    text = exporter.page.render().decode()
    ids = f'device_id="{TOY}",name="toy-toy-meter-{TOY[:6]}",user_id="{USER}"'
    assert f"podero_toy_meter_moisture_ratio{{{ids}}} 0.42\n" in text  # exported
    assert f'podero_device_up{{{ids},kind="toy_meter"}} 1.0\n' in text
    assert f'podero_device_info{{{ids},kind="toy_meter",org_id="{ORG}",manufacturer="Acme"' in text
    view = exporter.status_view()
    rows = json.loads(view.json({}, devices=True))["devices"]
    assert [(r["device_id"], r["kind"], r["moisture"]) for r in rows] == [(TOY, "toy_meter", 0.42)]
    html = view.html({}).decode()
    assert ">Moisture<" in html and ">42 %<" in html
    exporter.stop()


@responses.activate
def test_a_registered_kind_is_backfilled(toy_kind: Kind, tmp_path: Path) -> None:
    mock_api()
    args = backfill.parse_args(
        [
            "--from",
            "2026-11-20T00:00:00Z",
            "--to",
            "2026-11-21T00:00:00Z",
            "--output",
            str(tmp_path / "out.om"),
        ]
    )
    result = backfill.run(to_config(toy_config()), args, FakeClock(NOON), io.StringIO(), None)
    assert result.complete and result.kinds == {"toy_meter": 1}
    series = series_of((tmp_path / "out.om").read_text())
    moisture = [points for (name, labels), points in series.items() if name == MOISTURE.name]
    assert moisture and dict(moisture[0])[1795154400.0] == pytest.approx(0.30)
