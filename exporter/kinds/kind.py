"""What a device kind declares: its API paths, measured fields with their checks, metric
families, thresholds and status-page columns. Pure data and pure checks; no I/O."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.kinds.family import Family, Source

# Far beyond any household device; larger numbers are a broken response, not a reading.
MAX_ABS_VALUE = 1e9
ABSOLUTE_ZERO_CELSIUS = -273.15


class InvalidData(ValueError):
    """The response body does not have the documented shape; the message says where."""


def shown(value: Any) -> str:
    """A value from the response as an error message shows it: repr, and short."""
    text = repr(value[:60] if isinstance(value, str) else value)
    return text if len(text) <= 80 else text[:79] + "…"


def number(field: str, value: Any) -> float:
    """A finite JSON number of sane size."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidData(f"{field} {shown(value)} is not a number")
    try:
        result = float(value)
    except OverflowError:  # an integer with hundreds of digits
        raise InvalidData(f"{field} is out of range") from None
    if not math.isfinite(result) or abs(result) > MAX_ABS_VALUE:
        raise InvalidData(f"{field} {shown(value)} is out of range")
    return result


def boolean(field: str, value: Any) -> float:
    """A JSON boolean as 1.0 / 0.0."""
    if not isinstance(value, bool):
        raise InvalidData(f"{field} {shown(value)} is not a boolean")
    return 1.0 if value else 0.0


def percent(field: str, value: Any) -> float:
    """A number from 0 to 100."""
    result = number(field, value)
    if not 0 <= result <= 100:
        raise InvalidData(f"{field} {shown(value)} is not a percentage")
    return result


def celsius(field: str, value: Any) -> float:
    """A temperature: nothing is colder than absolute zero."""
    result = number(field, value)
    if result < ABSOLUTE_ZERO_CELSIUS:
        raise InvalidData(f"{field} {shown(value)} is below absolute zero")
    return result


@dataclass(frozen=True, slots=True)
class Field:
    """A value of a data point: its API name and the check that turns it into a float."""

    name: str
    check: Callable[[str, Any], float] = number

    def parse(self, value: Any) -> float:
        return self.check(self.name, value)


@dataclass(frozen=True, slots=True)
class Column:
    """A value the status page shows (JSON key, heading, how to show it) and its family."""

    key: str
    heading: str
    show: str  # watts, percent, celsius, plug, number
    family: Family


@dataclass(frozen=True, slots=True, eq=False)
class Kind:
    """Everything about one kind of device. `path` is the API's segment below a user
    (`/org/{org}/users/{user}/{path}`, and `/{path}/{id}/data` where it has data); `listing`
    names its listing endpoint and the users listing's count (`num_{listing}`); `savings`
    says whether it has `/{path}/{id}/savings` (what the optimisation saved)."""

    name: str
    path: str
    listing: str
    measured: tuple[Field, ...] = ()  # none: inventory only, never polled (a wallbox)
    other: tuple[Field, ...] = ()  # prices and forecasts: shown beside a measurement only
    readings: tuple[Family, ...] = ()
    energy: tuple[Family, ...] = ()
    inventory: tuple[Family, ...] = ()
    thresholds: tuple[Family, ...] = ()
    columns: tuple[Column, ...] = ()
    info: tuple[str, ...] = ("manufacturer", "model", "lifecycle_state")
    savings: bool = False

    def __post_init__(self) -> None:
        fields = {f.name for f in self.fields}
        for family in (*self.readings, *self.energy):
            if family.field not in fields:
                raise ValueError(
                    f"{family.name}: field {family.field} is not a field of {self.name}"
                )
        if any(f.source is not Source.TARGET for f in (*self.inventory, *self.thresholds)):
            raise ValueError(f"{self.name}: inventory and thresholds are target families")

    @property
    def polled(self) -> bool:
        """Whether the kind has a data series the poller reads."""
        return bool(self.measured)

    @property
    def fields(self) -> tuple[Field, ...]:
        return (*self.measured, *self.other)

    @property
    def measured_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.measured)

    @property
    def count_key(self) -> str:
        """The users listing's count of this kind's devices."""
        return f"num_{self.listing}"

    @property
    def data_endpoint(self) -> str:
        """The endpoint name of its data series in the exporter's own metrics."""
        return f"{self.name}_data"

    @property
    def savings_endpoint(self) -> str:
        """The endpoint name of its savings in the exporter's own metrics."""
        return f"{self.name}_savings"

    @property
    def families(self) -> tuple[Family, ...]:
        """The kind's own families, in the order they are served."""
        return (*self.readings, *self.energy, *self.thresholds, *self.inventory)
