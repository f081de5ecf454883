"""What the optimisation saved: a savings response turned into the figures of the period that
holds now, and the currency and units money and energy are counted in. Pure functions over
frozen values; the fetching is `api/savings.py`'s.

The shape of the savings endpoints is not documented beyond "daily and coarser resolutions,
with units in the metadata". Read liberally: every field may be null or missing, `metadata`
too; units and currency come from the metadata (`currency`, `units.savings`,
`units.consumption`), else the config's `units`. A value of the wrong type is a broken body
(`InvalidData`), as in the data endpoints.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from exporter.base.text import clean_text
from exporter.config.savings import JOULES_PER, UnitsConfig
from exporter.kinds.kind import InvalidData, number, shown
from exporter.state.readings import parse_time

# A unit or currency as a label value: short (the longest real one is a few characters).
UNIT_LIMIT = 32
DAY, MONTH = "1DAY", "1MONTH"
# After this many intervals without a successful fetch a figure is no longer shown.
STALE_INTERVALS = 3


@dataclass(frozen=True, slots=True)
class Period:
    """The figures of one period (a day, a month): money saved and energy consumed (joules),
    None where the API gave none, shown until `expires`."""

    start: float
    expires: float
    savings: float | None = None
    consumption_joules: float | None = None

    def value(self, field: str) -> float | None:
        return self.savings if field == "savings" else self.consumption_joules


@dataclass(frozen=True, slots=True)
class Savings:
    """What a device (or an organization) saved today and this month, and the currency and
    energy unit of the figures; replaced, never mutated."""

    today: Period | None = None
    this_month: Period | None = None
    currency: str | None = None
    energy_unit: str | None = None
    last_success: float | None = None

    def period(self, name: str) -> Period | None:
        return self.today if name == "today" else self.this_month

    def expired(self, now: float) -> frozenset[str]:
        """The periods whose figures are no longer to be shown at `now`."""
        return frozenset(
            name
            for name, p in (("today", self.today), ("this_month", self.this_month))
            if p is not None and p.expires <= now
        )

    def expiries(self) -> tuple[float, ...]:
        return tuple(p.expires for p in (self.today, self.this_month) if p is not None)


@dataclass(frozen=True, slots=True)
class Answer:
    """One savings response: the period that holds now (None if the API has no bucket for
    it), and the currency and energy unit it is counted in (the fallback's where it names
    none)."""

    period: Period | None
    currency: str | None
    energy_unit: str | None


@dataclass(frozen=True, slots=True)
class PriceUnits:
    """What a device's price is counted in: its unit (EUR/MWh) and currency (EUR)."""

    currency: str | None
    unit: str | None


def _text(value: Any) -> str | None:
    """A unit or currency from the API, fit for a label; None if absent or not a string."""
    if not isinstance(value, str):
        return None
    return clean_text(value, UNIT_LIMIT).strip() or None


def metadata_units(body: Any) -> tuple[str | None, Mapping[str, Any]]:
    """The metadata's `currency` and `units` of a response (None and {} where absent)."""
    metadata = body.get("metadata") if isinstance(body, dict) else None
    if not isinstance(metadata, dict):
        return None, {}
    units = metadata.get("units")
    return _text(metadata.get("currency")), units if isinstance(units, dict) else {}


def price_units(body: Any, fallback: UnitsConfig) -> PriceUnits | None:
    """What a data response's prices are counted in: the metadata's `units.price`, else the
    fallback's; the currency from the metadata's `currency`, else the unit's part before '/',
    else the fallback's. None when nothing says."""
    currency, units = metadata_units(body)
    unit = _text(units.get("price")) or fallback.price
    if currency is None and unit is not None and "/" in unit:
        currency = unit.partition("/")[0].strip() or None
    currency = currency or fallback.currency
    if currency is None and unit is None:
        return None
    return _interned(PriceUnits(currency, unit))


_INTERNED: dict[Any, Any] = {}
_INTERN_LOCK = threading.Lock()
_INTERN_LIMIT = 1024


def _interned(value: PriceUnits) -> PriceUnits:
    """One object per distinct value (10,000 devices share a handful), while few."""
    with _INTERN_LOCK:
        found: PriceUnits = _INTERNED.get(value, value)
        if found is value and len(_INTERNED) < _INTERN_LIMIT:
            _INTERNED[value] = value
        return found


def period_end(start: str, resolution: str) -> float:
    """The end of the bucket that starts at `start` (its own time zone offset): the next day
    or the first of the next month, same time of day."""
    text = start.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    begins = datetime.fromisoformat(text[:64])
    if resolution == MONTH:
        year, month = (
            (begins.year + 1, 1) if begins.month == 12 else (begins.year, begins.month + 1)
        )
        return begins.replace(year=year, month=month, day=1).timestamp()
    days = 7 if resolution == "1WEEK" else 1
    return (begins + timedelta(days=days)).timestamp()


def parse_savings_response(
    body: Any, *, now: float, resolution: str, fallback: UnitsConfig, stale_at: float
) -> Answer:
    """The bucket of a 200 savings response that holds `now` (the newest one starting at or
    before it, if it has not ended), shown until its end or `stale_at`, whichever is first;
    raises InvalidData for a broken body."""
    if not isinstance(body, dict):
        raise InvalidData(f"body is a {type(body).__name__}, not an object")
    if "data" not in body:
        if "error" in body:
            raise InvalidData(f"body is an error: {clean_text(str(body['error'])[:1000])}")
        raise InvalidData("body has no 'data'")
    data = body["data"]
    if not isinstance(data, list):
        raise InvalidData(f"'data' is a {type(data).__name__}, not a list")
    currency, units = metadata_units(body)
    currency = currency or _text(units.get("savings")) or fallback.currency
    energy_unit = _text(units.get("consumption")) or fallback.energy
    newest: tuple[float, int] | None = None
    for index, raw in enumerate(data):
        if not isinstance(raw, dict):
            raise InvalidData(f"data[{index}] is not an object")
        if raw.get("time") is None:
            continue
        try:
            start = parse_time(raw["time"])
        except InvalidData as exc:
            raise InvalidData(f"data[{index}]: {exc}") from None
        if start <= now and (newest is None or start > newest[0]):
            newest = (start, index)
    if newest is None:
        return Answer(None, currency, energy_unit)
    start, index = newest
    raw = data[index]
    try:
        end = period_end(raw["time"], resolution)
    except (ValueError, OverflowError, OSError):
        raise InvalidData(f"data[{index}]: time {shown(raw['time'])} is out of range") from None
    if end <= now:  # the newest bucket is of an earlier period: none for this one yet
        return Answer(None, currency, energy_unit)
    try:
        saved = _number(raw, "savings")
        consumed = _number(raw, "consumption")
    except InvalidData as exc:
        raise InvalidData(f"data[{index}]: {exc}") from None
    factor = JOULES_PER.get(energy_unit.lower()) if energy_unit else None
    # To the millijoule: kWh x 3.6e6 in floating point adds noise below it (33.956 kWh is
    # 122241600.00000001 J otherwise).
    joules = None if consumed is None or factor is None else round(consumed * factor, 3)
    period = Period(
        start=start, expires=min(end, stale_at), savings=saved, consumption_joules=joules
    )
    return Answer(period, currency, energy_unit)


def _number(raw: dict[str, Any], key: str) -> float | None:
    value = raw.get(key)
    return None if value is None else number(key, value)


def merged(
    old: Savings | None, today: Answer | None, this_month: Answer | None, now: float
) -> Savings:
    """The device's savings after a fetch: each period that answered replaces its figures
    (an answer without a bucket for the period drops them); one that failed (None) keeps
    the old ones until they expire. The currency and unit of the newest answer win."""
    old = old or Savings()
    answers = [a for a in (this_month, today) if a is not None]
    newest = answers[-1] if answers else None
    return Savings(
        today=today.period if today is not None else old.today,
        this_month=this_month.period if this_month is not None else old.this_month,
        currency=newest.currency if newest is not None else old.currency,
        energy_unit=newest.energy_unit if newest is not None else old.energy_unit,
        last_success=now if answers else old.last_success,
    )


class OrganizationSavings:
    """Thread-safe map of organization id to its Savings: the fetcher writes, the page reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orgs: dict[str, Savings] = {}

    def get(self, org_id: str) -> Savings | None:
        with self._lock:
            return self._orgs.get(org_id)

    def put(self, org_id: str, savings: Savings) -> None:
        with self._lock:
            self._orgs[org_id] = savings

    def keep_only(self, org_ids: frozenset[str] | set[str]) -> None:
        """Forget the organizations no longer fetched (a reload)."""
        with self._lock:
            self._orgs = {o: s for o, s in self._orgs.items() if o in org_ids}

    def snapshot(self) -> dict[str, Savings]:
        with self._lock:
            return dict(self._orgs)
