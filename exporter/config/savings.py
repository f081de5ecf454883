"""The config's `savings:` (how often what the optimisation saved is fetched) and `units:` (what
to assume where the API's metadata names no currency or unit)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The energy units consumption may be given in, with their factor to joules. Lower case: the
# API's spelling is not documented (kWh, KWH and kwh are one unit).
JOULES_PER = {
    "j": 1.0,
    "kj": 1e3,
    "mj": 1e6,
    "gj": 1e9,
    "wh": 3600.0,
    "kwh": 3.6e6,
    "mwh": 3.6e9,
    "gwh": 3.6e12,
}
_CURRENCY = re.compile(r"[A-Z]{3}")
_PRICE_UNIT = re.compile(r"[A-Z]{3}/(k|M)?Wh")


class SavingsConfig(BaseModel):
    """What the optimisation saved (`/savings` of heat pumps and vehicles, `/devices/savings`
    of the organization), fetched on a slow cadence through the poll scheduler's spare room."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # Daily and monthly figures: hourly is plenty. Each device costs two calls per interval.
    interval_seconds: float = Field(default=3600.0, ge=60, le=86400)
    # The organization's savings too (only shard index 0 fetches them, once for all replicas).
    organizations: bool = True


class UnitsConfig(BaseModel):
    """Fallbacks for the units the API's metadata does not name (none by default: then the
    info series go without the label)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str | None = None  # ISO 4217, e.g. EUR: savings and prices
    energy: str | None = None  # the unit of the savings endpoints' consumption, e.g. kWh
    price: str | None = None  # the unit of the data endpoints' price, e.g. EUR/MWh

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str | None) -> str | None:
        if value is not None and not _CURRENCY.fullmatch(value):
            raise ValueError(f"{value[:40]!r} is not an ISO 4217 currency code like 'EUR'")
        return value

    @field_validator("energy")
    @classmethod
    def _energy_unit(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in JOULES_PER:
            raise ValueError(
                f"{value[:40]!r} is not an energy unit: one of J, kJ, MJ, GJ, Wh, kWh, MWh, GWh"
            )
        return value

    @field_validator("price")
    @classmethod
    def _price_unit(cls, value: str | None) -> str | None:
        if value is not None and not _PRICE_UNIT.fullmatch(value):
            raise ValueError(f"{value[:40]!r} is not a price unit like 'EUR/MWh' or 'EUR/kWh'")
        return value
