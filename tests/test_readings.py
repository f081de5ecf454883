"""Picking the latest point, and refusing broken response bodies."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.state.readings import (
    DataPoint,
    InvalidData,
    field_names,
    fields_of,
    latest_reading,
    parse_data_response,
    parse_time,
)
from tests.conftest import NOON


def body(*points: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {}, "data": list(points)}


def test_latest_measured_point_wins_and_future_points_are_ignored() -> None:
    points = parse_data_response(
        body(
            {"time": "2026-11-23T11:30:00Z", "solar_production_w": 1},
            {"time": "2026-11-23T11:45:00Z", "solar_production_w": 2, "price": 80},
            # a forecast point after now: price only, and a measured value in the future
            {"time": "2026-11-23T12:15:00Z", "price": 90, "estimated_consumption": 400},
            {"time": "2026-11-23T12:30:00Z", "solar_production_w": 99},
        )
    )
    latest = latest_reading(points, NOON)
    assert latest is not None
    assert latest.values == {"solar_production_w": 2.0, "price": 80.0}


def test_points_without_measurements_are_skipped() -> None:
    points = parse_data_response(
        body(
            {"time": "2026-11-23T11:00:00Z", "battery_charge_level_percent": 40},
            {"time": "2026-11-23T11:15:00Z", "price": 80, "solar_production_w": None},
        )
    )
    latest = latest_reading(points, NOON)
    assert latest is not None and latest.values == {"battery_charge_level_percent": 40.0}


def test_nulls_never_become_zero() -> None:
    points = parse_data_response(
        body(
            {
                "time": "2026-11-23T11:00:00Z",
                "solar_production_w": 0,
                "export_power_to_grid_w": None,
                "battery_charge_level_percent": None,
            },
        )
    )
    latest = latest_reading(points, NOON)
    assert latest is not None
    assert latest.values == {"solar_production_w": 0.0}
    assert "export_power_to_grid_w" not in latest.values


def test_unsorted_points_and_offsets() -> None:
    points = parse_data_response(
        body(
            {"time": "2026-11-23T12:45:00+01:00", "solar_production_w": 3},  # 11:45Z
            {"time": "2026-11-23T11:00:00Z", "solar_production_w": 1},
            {"time": "2026-11-23T06:30:00-05:00", "solar_production_w": 2},  # 11:30Z
        )
    )
    assert [p.values["solar_production_w"] for p in points] == [1, 2, 3]
    latest = latest_reading(points, NOON)
    assert latest is not None and latest.values["solar_production_w"] == 3
    assert latest.time == parse_time("2026-11-23T11:45:00Z")


def test_empty_data_has_no_reading() -> None:
    assert latest_reading(parse_data_response(body()), NOON) is None
    assert latest_reading([], NOON) is None


def test_point_exactly_at_now_counts() -> None:
    assert latest_reading([DataPoint(NOON, {"solar_production_w": 1})], NOON) is not None
    assert latest_reading([DataPoint(NOON + 1, {"solar_production_w": 1})], NOON) is None


def test_points_without_time_are_ignored() -> None:
    assert parse_data_response(body({"time": None, "solar_production_w": 1})) == []


BROKEN: list[tuple[str, Any, str]] = [
    ("body-not-object", [1, 2], "body is a list, not an object"),
    ("data-missing", {"metadata": {}}, "body has no 'data'"),
    ("error-body", {"error": "No data in range"}, "body is an error: No data in range"),
    ("data-not-list", {"metadata": {}, "data": {"time": 1}}, "'data' is a dict, not a list"),
    ("data-null", {"metadata": {}, "data": None}, "'data' is a NoneType, not a list"),
    ("point-not-object", body("x"), "data[0] is not an object"),  # type: ignore[arg-type]
    (
        "time-not-string",
        body({"time": 1700000000, "solar_production_w": 1}),
        "data[0]: time 1700000000 is not a string",
    ),
    (
        "time-unparsable",
        body({"time": "yesterday", "solar_production_w": 1}),
        "data[0]: time 'yesterday' is not an ISO 8601 date-time",
    ),
    (
        "time-without-zone",
        body({"time": "2026-11-23T11:00:00", "solar_production_w": 1}),
        "data[0]: time '2026-11-23T11:00:00' has no time zone",
    ),
    (
        "value-string",
        body({"time": "2026-11-23T11:00:00Z", "solar_production_w": "5"}),
        "data[0]: solar_production_w '5' is not a number",
    ),
    (
        "value-nan-string",
        body({"time": "2026-11-23T11:00:00Z", "price": "NaN"}),
        "data[0]: price 'NaN' is not a number",
    ),
    (
        "value-infinity-string",
        body({"time": "2026-11-23T11:00:00Z", "household_consumption_w": "Infinity"}),
        "data[0]: household_consumption_w 'Infinity' is not a number",
    ),
    (
        "value-nan-literal",
        body({"time": "2026-11-23T11:00:00Z", "export_power_to_grid_w": float("nan")}),
        "data[0]: export_power_to_grid_w nan is out of range",
    ),
    (
        "value-huge",
        body({"time": "2026-11-23T11:00:00Z", "solar_production_w": 1e300}),
        "data[0]: solar_production_w 1e+300 is out of range",
    ),
    (
        "value-bool",
        body({"time": "2026-11-23T11:00:00Z", "battery_charge_discharge_power_w": True}),
        "data[0]: battery_charge_discharge_power_w True is not a number",
    ),
    (
        "value-list",
        body({"time": "2026-11-23T11:00:00Z", "estimated_consumption": [1]}),
        "data[0]: estimated_consumption [1] is not a number",
    ),
    (
        "percent-over-100",
        body({"time": "2026-11-23T11:00:00Z", "battery_charge_level_percent": 180}),
        "data[0]: battery_charge_level_percent 180 is not a percentage",
    ),
    (
        "time-huge-string",
        body({"time": "2026-11-23T11:00:00Z" * 100_000, "price": 1}),
        "is not an ISO 8601 date-time",
    ),
    (
        "time-year-0",
        body({"time": "0000-01-01T00:00:00Z", "price": 1}),
        "is not an ISO 8601 date-time",
    ),
    (
        "value-huge-int",
        body({"time": "2026-11-23T11:00:00Z", "price": 10**400}),
        "data[0]: price is out of range",
    ),
    (
        "duplicate-times",
        body(
            {"time": "2026-11-23T11:00:00Z", "solar_production_w": 1},
            {"time": "2026-11-23T12:00:00+01:00", "solar_production_w": 2},
        ),
        "two points share the time 1795431600",
    ),
]


@pytest.mark.parametrize(("case", "raw", "reason"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_body_is_refused_with_a_reason(case: str, raw: Any, reason: str) -> None:
    with pytest.raises(InvalidData) as info:
        parse_data_response(raw)
    # The reason is the whole message, or its end where the message shows a long value.
    assert str(info.value).endswith(reason)


def test_error_messages_stay_short_whatever_the_value() -> None:
    huge = "x" * 1_000_000
    for raw in (
        body({"time": huge}),
        body({"time": "2026-11-23T11:00:00Z", "price": huge}),
        {"error": huge},
    ):
        with pytest.raises(InvalidData) as info:
            parse_data_response(raw)
        assert len(str(info.value)) < 300


def test_future_points_are_dropped_before_their_values_are_checked() -> None:
    raw = body(
        {"time": "2026-11-23T12:00:00Z", "solar_production_w": 2310, "price": 80},
        # A forecast an hour ahead whose numbers are broken: not the current point's problem.
        {"time": "2026-11-23T13:00:00Z", "price": float("nan"), "estimated_consumption": 1e300},
        {"time": "2026-11-23T13:15:00Z", "battery_charge_level_percent": 180},
    )
    with pytest.raises(InvalidData):
        parse_data_response(raw)  # without a bound: the broken future point is seen
    points = parse_data_response(raw, until=NOON)
    assert [p.values for p in points] == [{"solar_production_w": 2310.0, "price": 80.0}]
    latest = latest_reading(points, NOON)
    assert latest is not None and latest.values["solar_production_w"] == 2310.0


def test_a_point_at_the_bound_is_kept_and_broken_past_points_still_count() -> None:
    at_bound = body({"time": "2026-11-23T12:07:30Z", "solar_production_w": 1})
    assert len(parse_data_response(at_bound, until=NOON)) == 1
    past = body({"time": "2026-11-23T11:00:00Z", "price": float("nan")})
    with pytest.raises(InvalidData, match="price nan is out of range"):
        parse_data_response(past, until=NOON)


def test_field_names_are_the_kinds_fields_measured_ones_first() -> None:
    assert field_names("inverter") == (
        "solar_production_w",
        "export_power_to_grid_w",
        "household_consumption_w",
        "battery_charge_level_percent",
        "battery_charge_discharge_power_w",
        "price",
        "estimated_consumption",
        "unoptimized_consumption",
    )
    assert field_names("heat_pump") == tuple(f.name for f in fields_of("heat_pump"))
    assert field_names("heat_pump")[:2] == ("inlet_temp_act", "hot_water_temp")


def test_a_body_is_read_with_the_fields_it_is_given() -> None:
    raw = body({"time": "2026-11-23T11:00:00Z", "inlet_temp_act": 41.5, "solar_production_w": 7})
    heat_pump = parse_data_response(raw, fields=fields_of("heat_pump"))
    assert [p.values for p in heat_pump] == [{"inlet_temp_act": 41.5}]
    assert [p.values for p in parse_data_response(raw)] == [{"solar_production_w": 7.0}]


def test_a_zone_of_z_is_utc_in_either_case() -> None:
    utc = 1_795_431_600.0  # 2026-11-23T11:00:00Z
    assert parse_time("2026-11-23T11:00:00Z") == utc
    assert parse_time("2026-11-23T11:00:00z") == utc
    assert parse_time(" 2026-11-23T11:00:00z\n") == utc
    assert parse_time("2026-11-23T12:00:00+01:00") == utc
    with pytest.raises(InvalidData, match="is not an ISO 8601 date-time"):
        parse_time("2026-11-23T12:00:00+01:00z")  # two zones


def test_only_the_first_64_characters_of_a_time_are_read() -> None:
    # Fractions of a second may run long; a time of 64 characters is read whole.
    at_limit = "2026-11-23T11:00:00." + "0" * 38 + "+00:00"
    assert len(at_limit) == 64 and parse_time(at_limit) == 1_795_431_600.0
    past_limit = "2026-11-23T11:00:00." + "0" * 39 + "+00:00"
    with pytest.raises(InvalidData, match="is not an ISO 8601 date-time"):
        parse_time(past_limit)  # cut to "...+00:0"


def test_the_extremes_of_the_calendar_and_of_offsets_are_times() -> None:
    assert parse_time("9999-12-31T23:59:59-23:59") == 253_402_387_139.0
    assert parse_time("0001-01-01T00:00:00+23:59") == -62_135_683_140.0
