"""Turning an inverter-data response into the one data point worth exporting.

Pure functions: no HTTP, no threads, no clock of their own.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter.base.text import clean_text
from exporter.kinds import registry
from exporter.kinds.kind import Field, InvalidData, shown

__all__ = ["DataPoint", "InvalidData", "latest_reading", "parse_data_response"]

INVERTER = "inverter"


def fields_of(kind: str) -> tuple[Field, ...]:
    """The data point fields a device of `kind` reports: measured values, then the rest."""
    return registry.get(kind).fields


def field_names(kind: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields_of(kind))


@dataclass(frozen=True, slots=True)
class DataPoint:
    """One time bucket of one inverter: its start time (epoch seconds) and non-null values."""

    time: float
    values: Mapping[str, float]

    def has_measurement(self, kind: str) -> bool:
        """Whether the point holds a value a device of `kind` measured (not only a price or
        a forecast)."""
        found = registry.find(kind)
        return found is not None and any(f.name in self.values for f in found.measured)


def parse_time(value: Any) -> float:
    """An ISO 8601 date-time with a zone (`Z` or an offset) as epoch seconds."""
    if not isinstance(value, str):
        raise InvalidData(f"time {shown(value)} is not a string")
    text = value.strip()
    if text.endswith("z"):
        text = text[:-1] + "Z"  # fromisoformat reads "Z" (Python 3.11), not "z"
    try:
        parsed = datetime.fromisoformat(text[:64])
    except ValueError:
        raise InvalidData(f"time {shown(value)} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise InvalidData(f"time {shown(value)} has no time zone")
    # Years 1 to 9999 at any offset fromisoformat takes: timestamp() cannot fail.
    return parsed.timestamp()


def parse_point(
    raw: Any, index: int, until: float | None = None, fields: tuple[Field, ...] | None = None
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
            f.name: f.parse(raw[f.name])
            for f in (fields_of(INVERTER) if fields is None else fields)
            if raw.get(f.name) is not None
        }
    except InvalidData as exc:
        raise InvalidData(f"data[{index}]: {exc}") from None
    return DataPoint(time=time, values=values)


def parse_data_response(
    body: Any, until: float | None = None, fields: tuple[Field, ...] | None = None
) -> list[DataPoint]:
    """The points of a 200 response up to `until` (all if None), sorted by time, with these
    fields (default: an inverter's); raises InvalidData for a broken body."""
    if not isinstance(body, dict):
        raise InvalidData(f"body is a {type(body).__name__}, not an object")
    if "data" not in body:
        if "error" in body:
            raise InvalidData(f"body is an error: {clean_text(str(body['error']))}")
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


def latest_reading(points: list[DataPoint], now: float, kind: str = INVERTER) -> DataPoint | None:
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
