"""What the optimisation saved: the savings parser (every field may be null or missing, hostile
bodies), the client's calls (HTTP mocked by responses), the units of prices, the config's
`savings:` and `units:`, and the simulator's savings consistent with its curves."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import responses

from exporter.api.transport import InvalidResponse
from exporter.config.model import ConfigError
from exporter.config.savings import UnitsConfig
from exporter.kinds.kind import InvalidData
from exporter.kinds.table import by_name
from exporter.sim import SimFleet, SimulatedApi
from exporter.sim.devices import DEVICE_PUBLISH_LAG_S, consumption, day_prices, device_day
from exporter.state.savings import Answer, PriceUnits, parse_savings_response, price_units
from tests.conftest import NOON, minimal_config, to_config
from tests.fakes import FakeClock
from tests.test_api import client
from tests.test_auth import BASE, TOKEN_URL, token_body

DAY_START = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
NO_UNITS = UnitsConfig()
UNITS = {"savings": "EUR", "consumption": "kWh"}


def body(*points: dict[str, Any], metadata: Any = None) -> dict[str, Any]:
    meta = {"currency": "EUR", "units": UNITS} if metadata is None else metadata
    return {"metadata": meta, "data": list(points)}


def parse(raw: Any, resolution: str = "1DAY", fallback: UnitsConfig = NO_UNITS) -> Answer:
    return parse_savings_response(
        raw, now=NOON, resolution=resolution, fallback=fallback, stale_at=NOON + 3 * 3600
    )


# --- the parser --------------------------------------------------------------------------------


def test_the_bucket_that_holds_now_with_its_currency_and_joules() -> None:
    answer = parse(
        body(
            {"time": "2026-11-22T00:00:00Z", "savings": 9.0, "consumption": 99.0},
            {"time": "2026-11-23T00:00:00Z", "savings": 0.4211, "consumption": 12.345},
            # A forecast of tomorrow, broken: never looked at.
            {"time": "2026-11-24T00:00:00Z", "savings": "soon", "consumption": None},
        )
    )
    assert answer.currency == "EUR" and answer.energy_unit == "kWh"
    period = answer.period
    assert period is not None
    assert period.start == DAY_START
    assert period.savings == 0.4211
    assert period.consumption_joules == 44442000.0  # 12.345 kWh, to the millijoule
    # Shown until three intervals from now: before the day ends.
    assert period.expires == NOON + 3 * 3600 < DAY_START + 86400


def test_a_period_is_shown_until_its_end_at_most() -> None:
    late = parse_savings_response(
        body({"time": "2026-11-23T00:00:00Z", "savings": 1.0}),
        now=DAY_START + 86000,
        resolution="1DAY",
        fallback=NO_UNITS,
        stale_at=DAY_START + 86000 + 3 * 3600,
    )
    assert late.period is not None and late.period.expires == DAY_START + 86400


@pytest.mark.parametrize(
    ("time", "end"),
    [
        ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00+00:00"),
        ("2026-11-01T00:00:00+01:00", "2026-12-01T00:00:00+01:00"),  # the API's own zone
        ("2025-12-01T00:00:00Z", None),  # December: ends in January, long before now
    ],
)
def test_a_month_ends_on_the_first_of_the_next_in_its_own_zone(time: str, end: str | None) -> None:
    answer = parse(body({"time": time, "savings": 3.0}), "1MONTH")
    if end is None:
        assert answer.period is None  # the newest bucket is of an earlier month: none for this
    else:
        assert answer.period is not None
        assert answer.period.expires == min(
            datetime.fromisoformat(end).timestamp(), NOON + 3 * 3600
        )
    december = parse_savings_response(
        body({"time": "2026-12-01T00:00:00Z", "savings": 3.0}),
        now=datetime(2026, 12, 31, 23, tzinfo=UTC).timestamp(),
        resolution="1MONTH",
        fallback=NO_UNITS,
        stale_at=float("inf"),
    )
    assert december.period is not None
    assert december.period.expires == datetime(2027, 1, 1, tzinfo=UTC).timestamp()


def test_a_day_that_has_ended_is_not_today() -> None:
    assert parse(body({"time": "2026-11-22T00:00:00Z", "savings": 1.0})).period is None


@pytest.mark.parametrize(
    "raw",
    [
        {"data": []},
        {"metadata": None, "data": []},
        {"metadata": {"units": None}, "data": [{"time": None, "savings": 1}]},
        {"metadata": "nonsense", "data": [{}]},
    ],
)
def test_nothing_given_is_no_figures_and_no_units(raw: dict[str, Any]) -> None:
    assert parse(raw) == Answer(None, None, None)


def test_null_and_missing_fields_stay_unknown_never_zero() -> None:
    answer = parse(body({"time": "2026-11-23T00:00:00Z", "savings": None}, metadata={}))
    assert answer.period is not None
    assert answer.period.savings is None and answer.period.consumption_joules is None
    assert (answer.currency, answer.energy_unit) == (None, None)


def test_the_config_fills_in_what_the_metadata_does_not_name() -> None:
    fallback = UnitsConfig(currency="CHF", energy="Wh")
    point = {"time": "2026-11-23T00:00:00Z", "savings": 2.5, "consumption": 1000}
    answer = parse(body(point, metadata={}), fallback=fallback)
    assert (answer.currency, answer.energy_unit) == ("CHF", "Wh")
    assert answer.period is not None and answer.period.consumption_joules == 3.6e6
    # The metadata wins where it says something; units.savings names the currency too.
    named = parse(
        body(point, metadata={"units": {"savings": "GBP", "consumption": "MWh"}}), "1DAY", fallback
    )
    assert (named.currency, named.energy_unit) == ("GBP", "MWh")
    assert named.period is not None and named.period.consumption_joules == 3.6e12


@pytest.mark.parametrize(
    ("unit", "joules"),
    [("kWh", 3.6e6), ("KWH", 3.6e6), ("Wh", 3600.0), ("MWh", 3.6e9), ("J", 1.0), ("therm", None)],
)
def test_energy_units_convert_to_joules_and_unknown_ones_drop_the_value(
    unit: str, joules: float | None
) -> None:
    point = {"time": "2026-11-23T00:00:00Z", "savings": 1.0, "consumption": 1}
    answer = parse(body(point, metadata={"units": {"consumption": unit}}))
    assert answer.energy_unit == unit  # the info series says what came, even if unknown
    assert answer.period is not None and answer.period.consumption_joules == joules
    assert answer.period.savings == 1.0  # the money is still there


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([], "body is a list"),
        ("savings", "body is a str"),
        ({"error": "No data for this range\x1b[2J"}, "body is an error: No data for this range"),
        ({"metadata": {}}, "no 'data'"),
        ({"data": {"time": "x"}}, "'data' is a dict"),
        ({"data": ["2026-11-23"]}, r"data\[0\] is not an object"),
        ({"data": [{"time": 1795435650}]}, r"data\[0\]: time 1795435650 is not a string"),
        ({"data": [{"time": "yesterday"}]}, "is not an ISO 8601"),
        ({"data": [{"time": "2026-11-23T00:00:00"}]}, "has no time zone"),
        ({"data": [{"time": "2026-11-23T00:00:00Z", "savings": "1.5"}]}, "savings '1.5' is not"),
        ({"data": [{"time": "2026-11-23T00:00:00Z", "savings": True}]}, "savings True is not"),
        ({"data": [{"time": "2026-11-23T00:00:00Z", "savings": float("nan")}]}, "out of range"),
        ({"data": [{"time": "2026-11-23T00:00:00Z", "savings": float("inf")}]}, "out of range"),
        ({"data": [{"time": "2026-11-23T00:00:00Z", "consumption": 10**400}]}, "out of range"),
        ({"data": [{"time": "2026-11-23T00:00:00Z", "consumption": 1e12}]}, "out of range"),
        ({"data": [{"time": "2026-11-23T00:00:00Z", "savings": [1]}]}, "is not a number"),
    ],
)
def test_a_broken_body_is_invalid_data_naming_what(raw: Any, reason: str) -> None:
    with pytest.raises(InvalidData, match=reason):
        parse(raw)


def test_hostile_units_are_cleaned_and_cut_for_a_label() -> None:
    hostile = {
        "currency": "EU\x00R\u202e\udc80" + "€" * 100_000,
        "units": {"consumption": "kWh\r\nSet-Cookie: x=1"},
    }
    answer = parse(body({"time": "2026-11-23T00:00:00Z", "savings": 1.0}, metadata=hostile))
    assert answer.currency is not None and len(answer.currency) <= 32
    assert answer.currency.startswith("EUR\ufffd")
    assert answer.energy_unit == "kWhSet-Cookie: x=1"  # unknown: no consumption, no crash
    assert answer.period is not None and answer.period.consumption_joules is None
    # Not strings: as if absent.
    odd = parse(body(metadata={"currency": 978, "units": {"consumption": ["kWh"]}}))
    assert (odd.currency, odd.energy_unit) == (None, None)


# --- what prices are counted in ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "fallback", "expected"),
    [
        ({"units": {"price": "EUR/MWh"}}, NO_UNITS, PriceUnits("EUR", "EUR/MWh")),
        ({"currency": "CHF", "units": {"price": "ct/kWh"}}, NO_UNITS, PriceUnits("CHF", "ct/kWh")),
        ({}, UnitsConfig(price="EUR/kWh"), PriceUnits("EUR", "EUR/kWh")),
        ({}, UnitsConfig(currency="GBP"), PriceUnits("GBP", None)),
        ({"units": {"price": 52.1}}, NO_UNITS, None),
        (  # hostile: cleaned and cut to a label's worth
            {"units": {"price": "EUR\x00/\u202eMWh\udc80" + "h" * 10_000}},
            NO_UNITS,
            PriceUnits("EUR", "EUR/MWh\ufffd" + "h" * 23 + "…"),
        ),
        ({"units": "EUR/MWh"}, NO_UNITS, None),
        (None, NO_UNITS, None),
    ],
)
def test_price_units_from_the_metadata_else_the_config(
    metadata: Any, fallback: UnitsConfig, expected: PriceUnits | None
) -> None:
    assert price_units({"metadata": metadata, "data": []}, fallback) == expected


def test_the_price_families_say_their_unit_and_where_the_currency_is() -> None:
    for kind in ("inverter", "heat_pump", "electric_vehicle"):
        family = by_name(f"podero_{kind}_price")
        assert "in currency per MWh" in family.help
        assert "podero_device_price_info" in family.help
    info = by_name("podero_device_price_info")
    assert info.label_names == ("device_id", "name", "user_id", "kind", "currency", "unit")


# --- the client ----------------------------------------------------------------------------------

SAVINGS_URL = f"{BASE}/api/partners/v2.0/org/o/users/u/heat-pumps/h/savings"
ORG_URL = f"{BASE}/api/partners/v2.0/org/o/devices/savings"


def mocked(url: str, payload: Any) -> None:
    responses.add(responses.POST, TOKEN_URL, json=token_body(1))
    if isinstance(payload, bytes):
        responses.add(responses.GET, url, body=payload, content_type="application/json")
    else:
        responses.add(responses.GET, url, json=payload)


@responses.activate
def test_the_client_asks_for_the_period_that_holds_now() -> None:
    api, _, _ = client()
    mocked(SAVINGS_URL, body({"time": "2026-11-23T00:00:00Z", "savings": 0.5, "consumption": 2}))
    answer = api.device_savings(
        "heat_pump", "o", "u", "h", now=NOON, resolution="1DAY", units=NO_UNITS, stale_at=NOON + 1
    )
    assert answer.period is not None and answer.period.savings == 0.5
    asked = responses.calls[-1].request
    assert asked.params == {  # type: ignore[attr-defined]
        "from_datetime": "2026-11-22T12:07:30Z",
        "to_datetime": "2026-11-23T12:07:30Z",
        "resolution": "1DAY",
    }
    assert asked.headers["Authorization"] == "Bearer tok-1"
    mocked(ORG_URL, body({"time": "2026-11-01T00:00:00Z", "savings": 99.5}))
    month = api.organization_savings(
        "o", now=NOON, resolution="1MONTH", units=NO_UNITS, stale_at=NOON + 1
    )
    assert month.period is not None and month.period.start == MONTH_START
    assert responses.calls[-1].request.params["from_datetime"] == "2026-10-23T12:07:30Z"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"[1, 2, 3]",
        json.dumps({"data": [{"time": "2026-11-23T00:00:00Z", "savings": "NaN"}]}).encode(),
        b'{"data": [{"time": "2026-11-23T00:00:00Z", "savings": NaN}]}',
        b'{"data": [{"time": "2026-11-23T00:00:00Z", "savings": 1e999}]}',
    ],
)
@responses.activate
def test_a_hostile_body_is_an_invalid_response_counted_once(payload: bytes) -> None:
    api, _, recorder = client()
    mocked(SAVINGS_URL, payload)
    with pytest.raises(InvalidResponse) as failed:
        api.device_savings(
            "heat_pump", "o", "u", "h", now=NOON, resolution="1DAY", units=NO_UNITS, stale_at=NOON
        )
    assert failed.value.endpoint == "heat_pump_savings"
    assert recorder.invalid == ["heat_pump_savings"]


# --- the config ----------------------------------------------------------------------


def test_savings_and_units_have_defaults_and_take_settings() -> None:
    default = to_config(minimal_config())
    assert default.savings.enabled and default.savings.interval_seconds == 3600
    assert default.units == UnitsConfig()
    config = to_config(
        minimal_config(
            savings={"interval_seconds": 900, "organizations": False},
            units={"currency": "EUR", "energy": "kWh", "price": "EUR/MWh"},
        )
    )
    assert config.savings.interval_seconds == 900 and not config.savings.organizations
    assert config.units == UnitsConfig(currency="EUR", energy="kWh", price="EUR/MWh")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"savings": {"interval_seconds": 10}}, "savings.interval_seconds"),
        ({"savings": {"cadence": 60}}, "savings.cadence"),
        ({"units": {"currency": "euro"}}, "units.currency: .*'euro' is not an ISO 4217"),
        ({"units": {"energy": "therm"}}, "units.energy: .*'therm' is not an energy unit"),
        ({"units": {"price": "EUR per MWh"}}, "units.price: .*is not a price unit"),
    ],
)
def test_bad_savings_settings_are_refused_naming_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        to_config(minimal_config(**raw))


# --- the simulator -------------------------------------------------------------------


def quarters_of(device: Any, start: float, end: float, now: float) -> list[dict[str, Any]]:
    """The device's quarter-hours in [start, end) whose measured values are published."""
    published = now - DEVICE_PUBLISH_LAG_S
    steps = []
    t = start
    while t < end and t < published:
        steps.append(device_day(device, int(t // 86400))[int(t % 86400) // 900])
        t += 900
    return steps


def expected_savings(device: Any, start: float, end: float, now: float) -> dict[str, float]:
    """The simulator's documented model: kWh = W x 0.25 h / 1000, EUR = kWh / 1000 x EUR/MWh."""
    used = unused = cost = unoptimized_cost = 0.0
    for q in quarters_of(device, start, end, now):
        kwh, unopt = q["estimated_consumption"] / 4000, q["unoptimized_consumption"] / 4000
        used, unused = used + kwh, unused + unopt
        cost += kwh / 1000 * q["price"]
        unoptimized_cost += unopt / 1000 * q["price"]
    return {
        "savings": round(unoptimized_cost - cost, 4),
        "cost": round(cost, 4),
        "consumption": round(used, 3),
        "unoptimized_consumption": round(unused, 3),
    }


def test_the_simulators_savings_follow_its_curves() -> None:
    api = SimulatedApi(SimFleet(seed=7, inverters=5), FakeClock(NOON))
    pump = next(d for d in api.fleet.devices if d.kind == "heat_pump")
    args = (pump.org_id, pump.user_id, "heat_pump", pump.id)
    day = api.device_savings(*args, {"resolution": "1DAY"})
    assert day["metadata"]["currency"] == "EUR"
    assert day["metadata"]["units"]["consumption"] == "kWh"
    (today,) = day["data"]
    assert today["time"] == "2026-11-23T00:00:00Z"
    expected = expected_savings(pump, DAY_START, DAY_START + 86400, NOON)
    for key, value in expected.items():
        assert today[key] == pytest.approx(value, abs=1e-4), key
    assert today["savings"] > 0  # the optimisation saves
    query = {"resolution": "1MONTH", "from_datetime": "2026-11-23T12:00:00Z"}
    (month,) = api.device_savings(*args, query)["data"]
    month_expected = expected_savings(pump, MONTH_START, NOON, NOON)
    assert month["savings"] == pytest.approx(month_expected["savings"], abs=1e-4)
    assert month["consumption"] > today["consumption"]
    # The statistics say the same consumption, with the average price paid.
    (stats,) = api.device_statistics(*args, {"resolution": "1DAY"})["data"]
    assert stats["consumption"] == today["consumption"]
    assert stats["average_price"] == pytest.approx(
        today["cost"] / today["consumption"] * 1000, rel=1e-3
    )


def test_the_organizations_savings_are_the_sum_of_its_devices() -> None:
    api = SimulatedApi(SimFleet(seed=7, inverters=5), FakeClock(NOON))
    org = api.fleet.org_ids[0]
    devices = [d for d in api.fleet.devices if d.kind in ("heat_pump", "electric_vehicle")]
    assert len(devices) >= 3
    (total,) = api.organization_savings(org, {})["data"]
    parts = [api.device_savings(d.org_id, d.user_id, d.kind, d.id, {})["data"][0] for d in devices]
    for key in ("savings", "consumption"):
        assert total[key] == pytest.approx(sum(p[key] for p in parts), abs=len(parts) * 1e-3)


def test_the_simulator_refuses_what_the_api_would() -> None:
    from exporter.sim.api import ApiError

    api = SimulatedApi(SimFleet(seed=7, inverters=5), FakeClock(NOON))
    pump = next(d for d in api.fleet.devices if d.kind == "heat_pump")
    car = next(d for d in api.fleet.devices if d.kind == "electric_vehicle")
    wallbox = next(d for d in api.fleet.devices if d.kind == "wallbox")
    with pytest.raises(ApiError, match="Invalid resolution '15MIN'"):
        api.device_savings(pump.org_id, pump.user_id, "heat_pump", pump.id, {"resolution": "15MIN"})
    for device, call in ((wallbox, api.device_savings), (car, api.device_statistics)):
        with pytest.raises(ApiError) as missing:
            call(device.org_id, device.user_id, device.kind, device.id, {})
        assert missing.value.status == 404
    with pytest.raises(ApiError):
        api.organization_savings("00000000-0000-4000-8000-000000000000", {})


def test_the_simulator_serves_the_routes(sim: Any) -> None:
    info = sim.describe()
    token = requests.post(
        f"{info['base_url']}/oauth2/token/",
        json={"grant_type": "client_credentials"},
        auth=(info["client_id"], info["client_secret"]),
        timeout=5,
    ).json()["access_token"]
    pump = next(d for d in info["devices"] if d["kind"] == "heat_pump")
    base = f"{info['base_url']}/api/partners/v2.0/org/{pump['org_id']}"
    headers = {"Authorization": f"Bearer {token}"}
    device = f"{base}/users/{pump['user_id']}/heat-pumps/{pump['device_id']}"
    for url in (f"{device}/savings", f"{device}/statistics", f"{base}/devices/savings"):
        r = requests.get(url, params={"resolution": "1MONTH"}, headers=headers, timeout=5)
        assert r.status_code == 200, url
        assert r.json()["data"][0]["time"] == "2026-11-01T00:00:00Z"
    assert requests.get(f"{device}/savings", timeout=5).status_code == 401


def test_the_savings_read_the_same_consumption_and_prices_as_the_data_curves() -> None:
    """The savings sum `consumption` and `day_prices` (cheap, without the rest of the curve):
    they are the curves' own values, quarter-hour by quarter-hour."""
    fleet = SimFleet(seed=3, inverters=20)
    day = int(NOON // 86400)
    checked = 0
    for device in fleet.devices:
        if device.kind == "wallbox":
            continue
        for d in (day - 17, day):
            for k, q in enumerate(device_day(device, d)):
                t = d * 86400 + k * 900
                used = (q["estimated_consumption"], q["unoptimized_consumption"])
                assert consumption(device, t, d) == used
                assert day_prices(d)[k] == q["price"]
                checked += 1
    assert checked > 2000
