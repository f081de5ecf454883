"""What the optimisation saved, and what money is counted in: each heat pump's and vehicle's
savings and consumption today and this month (from `/{path}/{id}/savings`), the same for
the organization (`/devices/savings`), and the currency and units on info series, as
node_exporter puts what describes a thing on one `_info` series to join on.

Savings are money: their names end in no base unit, and the currency is a label of
`podero_device_savings_info` (from the response's metadata, else the config's `units`).
Consumption is energy in joules. A period is part of the name, not a label, so that summing
a family over every label stays meaningful (today is part of this month: a `period` label
would invite adding the two).

    podero_device_savings_today{device_id="..",name="..",user_id="..",kind="heat_pump"} 0.4211
    podero_device_savings_info{device_id="..",...,currency="EUR",energy_unit="kWh"} 1
    podero_organization_savings_this_month{org_id=".."} 1043.77
"""

from __future__ import annotations

from exporter.kinds.family import Family, Source

TODAY, THIS_MONTH = "today", "this_month"
PERIOD_HELP = {
    TODAY: "today (the API's daily bucket that holds now, resolution 1DAY)",
    THIS_MONTH: "this month (the API's monthly bucket that holds now, resolution 1MONTH)",
}
SAVINGS_HELP = (
    " Read on the savings cadence (savings.interval_seconds); hidden once the period ends or "
    "after three intervals without a successful fetch."
)


def _savings(owner: str, period: str, source: Source, labels: tuple[str, ...]) -> Family:
    return Family(
        f"podero_{owner}_savings_{period}",
        f"Money Podero's optimisation saved {PERIOD_HELP[period]}, API field savings, in the "
        f"currency of podero_{owner}_savings_info (no base unit: an amount of money)."
        + SAVINGS_HELP,
        source,
        field="savings",
        labels=labels,
        shared=source is Source.SAVINGS,
        period=period,
        group="savings",
    )


def _consumption(owner: str, period: str, source: Source, labels: tuple[str, ...]) -> Family:
    return Family(
        f"podero_{owner}_consumption_{period}_joules",
        f"Energy consumed {PERIOD_HELP[period]}, API field consumption of the savings endpoint "
        f"converted to joules from the energy_unit of podero_{owner}_savings_info (kWh x 3.6e6)."
        + SAVINGS_HELP,
        source,
        field="consumption",
        labels=labels,
        shared=source is Source.SAVINGS,
        period=period,
        group="savings",
    )


SAVINGS_TODAY = _savings("device", TODAY, Source.SAVINGS, ())
SAVINGS_THIS_MONTH = _savings("device", THIS_MONTH, Source.SAVINGS, ())
CONSUMPTION_TODAY = _consumption("device", TODAY, Source.SAVINGS, ())
CONSUMPTION_THIS_MONTH = _consumption("device", THIS_MONTH, Source.SAVINGS, ())
SAVINGS_INFO = Family(
    "podero_device_savings_info",
    "Always 1; the labels say what the device's savings and consumption are counted in: "
    "currency (of podero_device_savings_today and _this_month) and energy_unit (the unit the "
    "API gave consumption in, before conversion to joules), from the savings response's "
    "metadata, else the config's units.currency and units.energy. Join on device_id.",
    Source.SAVINGS,
    labels=("currency", "energy_unit"),
    shared=True,
    group="savings",
)
SAVINGS_LAST_SUCCESS = Family(
    "podero_device_savings_last_success_timestamp_seconds",
    "When the device's savings were last fetched successfully, Unix seconds.",
    Source.SAVINGS,
    shared=True,
    group="schedule",
    default=False,
)
PRICE_INFO = Family(
    "podero_device_price_info",
    "Always 1; the labels say what the device's price family (podero_<kind>_price) is counted "
    "in: unit (the API's metadata units.price, e.g. EUR/MWh, else the config's units.price) "
    "and currency (the metadata's currency, else the part of unit before '/', else the "
    "config's units.currency). Join on device_id.",
    Source.POLL,
    labels=("currency", "unit"),
    shared=True,
    group="price",
)
# Per device, in the order they are served.
DEVICE_FAMILIES = (
    SAVINGS_TODAY,
    SAVINGS_THIS_MONTH,
    CONSUMPTION_TODAY,
    CONSUMPTION_THIS_MONTH,
    SAVINGS_INFO,
    SAVINGS_LAST_SUCCESS,
    PRICE_INFO,
)

ORG = ("org_id",)
ORG_SAVINGS_TODAY = _savings("organization", TODAY, Source.ORGANIZATION, ORG)
ORG_SAVINGS_THIS_MONTH = _savings("organization", THIS_MONTH, Source.ORGANIZATION, ORG)
ORG_CONSUMPTION_TODAY = _consumption("organization", TODAY, Source.ORGANIZATION, ORG)
ORG_CONSUMPTION_THIS_MONTH = _consumption("organization", THIS_MONTH, Source.ORGANIZATION, ORG)
ORG_SAVINGS_INFO = Family(
    "podero_organization_savings_info",
    "Always 1; the labels say what the organization's savings (GET /org/{org_id}/devices/"
    "savings, all its devices) are counted in: currency and energy_unit, from the response's "
    "metadata, else the config's units.",
    Source.ORGANIZATION,
    labels=(*ORG, "currency", "energy_unit"),
)
ORGANIZATION_FAMILIES = (
    ORG_SAVINGS_TODAY,
    ORG_SAVINGS_THIS_MONTH,
    ORG_CONSUMPTION_TODAY,
    ORG_CONSUMPTION_THIS_MONTH,
    ORG_SAVINGS_INFO,
)
