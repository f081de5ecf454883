"""Turning an inverter-data response into the one data point worth exporting.

Pure functions: no HTTP, no threads, no clock of their own.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter.base.text import clean_text

# Values the device measures; a point counts as a reading only if one of them is present.
MEASURED_FIELDS = (
    "solar_production_w",
    "export_power_to_grid_w",
    "household_consumption_w",
    "battery_charge_level_percent",
    "battery_charge_discharge_power_w",
)
# Forecasts and prices: exported alongside a measured point, never on their own.
OTHER_FIELDS = ("price", "estimated_consumption", "unoptimized_consumption")
VALUE_FIELDS = MEASURED_FIELDS + OTHER_FIELDS
# The other kinds' data points (the same response shape): measured values, then the rest.
HEAT_PUMP_MEASURED = ("inlet_temp_act", "hot_water_temp")
EV_MEASURED = ("battery_level", "is_charging", "is_plugged_in", "is_at_optimized_location")
DEVICE_OTHER = ("estimated_consumption", "unoptimized_consumption", "price")
MEASURED_BY_KIND = {
    "inverter": MEASURED_FIELDS,
    "heat_pump": HEAT_PUMP_MEASURED,
    "electric_vehicle": EV_MEASURED,
}
FIELDS_BY_KIND = {
    "inverter": VALUE_FIELDS,
    "heat_pump": HEAT_PUMP_MEASURED + DEVICE_OTHER,
    "electric_vehicle": EV_MEASURED + DEVICE_OTHER,
}
# Booleans of a data point, kept as 1.0 / 0.0.
BOOLEAN_FIELDS = frozenset({"is_charging", "is_plugged_in", "is_at_optimized_location"})
PERCENT_FIELDS = frozenset({"battery_charge_level_percent", "battery_level"})
# Temperatures in degrees Celsius: nothing is colder than absolute zero.
CELSIUS_FIELDS = frozenset({"inlet_temp_act", "hot_water_temp"})
ABSOLUTE_ZERO_CELSIUS = -273.15
# Far beyond any household device; larger numbers are a broken response, not a reading.
MAX_ABS_VALUE = 1e9


class InvalidData(ValueError):
    """The response body does not have the documented shape; the message says where."""


@dataclass(frozen=True, slots=True)
class DataPoint:
    """One time bucket of one inverter: its start time (epoch seconds) and non-null values."""

    time: float
    values: Mapping[str, float]

    def has_measurement(self, kind: str) -> bool:
        """Whether the point holds a value a device of `kind` measured (not only a price or
        a forecast)."""
        return any(field in self.values for field in MEASURED_BY_KIND.get(kind, ()))


def _shown(value: Any) -> str:
    """A value from the response as an error message shows it: repr, and short."""
    text = repr(value[:60] if isinstance(value, str) else value)
    return text if len(text) <= 80 else text[:79] + "…"


def parse_time(value: Any) -> float:
    """An ISO 8601 date-time with a zone (`Z` or an offset) as epoch seconds."""
    if not isinstance(value, str):
        raise InvalidData(f"time {_shown(value)} is not a string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text[:64])
    except ValueError:
        raise InvalidData(f"time {_shown(value)} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise InvalidData(f"time {_shown(value)} has no time zone")
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        raise InvalidData(f"time {_shown(value)} is out of range") from None


def _number(field: str, value: Any) -> float:
    if field in BOOLEAN_FIELDS:
        if not isinstance(value, bool):
            raise InvalidData(f"{field} {_shown(value)} is not a boolean")
        return 1.0 if value else 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidData(f"{field} {_shown(value)} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer with hundreds of digits
        raise InvalidData(f"{field} is out of range") from None
    if not math.isfinite(number) or abs(number) > MAX_ABS_VALUE:
        raise InvalidData(f"{field} {_shown(value)} is out of range")
    if field in PERCENT_FIELDS and not 0 <= number <= 100:
        raise InvalidData(f"{field} {_shown(value)} is not a percentage")
    if field in CELSIUS_FIELDS and number < ABSOLUTE_ZERO_CELSIUS:
        raise InvalidData(f"{field} {_shown(value)} is below absolute zero")
    return number


def parse_point(
    raw: Any, index: int, until: float | None = None, fields: tuple[str, ...] = VALUE_FIELDS
) -> DataPoint | None:
    """One element of `data`; None for a point without a time (nothing to place it at) or,
    given `until`, one that starts after it (not looked at further: a broken forecast must
    not cost the current reading)."""
    if not isinstance(raw, dict):
        raise InvalidData(f"data[{index}] is not an object")
    if raw.get("time") is None:
        return None
    try:
        time = parse_time(raw["time"])
        if until is not None and time > until:
            return None
        values = {
            field: _number(field, raw[field]) for field in fields if raw.get(field) is not None
        }
    except InvalidData as exc:
        raise InvalidData(f"data[{index}]: {exc}") from None
    return DataPoint(time=time, values=values)


def parse_data_response(
    body: Any, until: float | None = None, fields: tuple[str, ...] = VALUE_FIELDS
) -> list[DataPoint]:
    """The points of a 200 response up to `until` (all if None), sorted by time, with these
    fields (default: an inverter's); raises InvalidData for a broken body."""
    if not isinstance(body, dict):
        raise InvalidData(f"body is a {type(body).__name__}, not an object")
    if "data" not in body:
        if "error" in body:
            raise InvalidData(f"body is an error: {clean_text(str(body['error'])[:1000])}")
        raise InvalidData("body has no 'data'")
    data = body["data"]
    if not isinstance(data, list):
        raise InvalidData(f"'data' is a {type(data).__name__}, not a list")
    points = [
        p for i, raw in enumerate(data) if (p := parse_point(raw, i, until, fields)) is not None
    ]
    points.sort(key=lambda p: p.time)
    for before, after in itertools.pairwise(points):
        if before.time == after.time:
            raise InvalidData(f"two points share the time {after.time:.0f}")
    return points


def latest_reading(points: list[DataPoint], now: float, kind: str = "inverter") -> DataPoint | None:
    """The newest point at or before `now` that has at least one value a device of `kind`
    measured."""
    newest: DataPoint | None = None
    for point in points:
        if (
            point.time <= now
            and point.has_measurement(kind)
            and (newest is None or point.time > newest.time)
        ):
            newest = point
    return newest
