"""One row of the metrics table: a family's exposition name, type, HELP, the labels it carries
and, for values from the API, the field it comes from and the factor to its base unit."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

JOULES_PER_KWH = 3.6e6
# Every per-device series carries these, whatever the kind (kube-state-metrics' namespace
# and pod): a home's devices join on user_id, a device's series on device_id.
IDENTITY = ("device_id", "name", "user_id")
# The base units a family name may end in (before a counter's `_total`): what OpenMetrics'
# `# UNIT` line says. A name ending in none of them has no unit (a price, a state, a count).
BASE_UNITS = ("seconds", "joules", "watts", "celsius", "ratio", "bytes", "volts", "amperes")


class Source(Enum):
    """Where a family's samples come from, which decides when they change."""

    READING = "reading"  # a field of the newest data point; hidden once the point is stale
    POLL = "poll"  # the outcome of polls (up, timestamps)
    ENERGY = "energy"  # counters summed from completed data buckets
    TARGET = "target"  # the device's config and inventory; changes only with the targets
    SAVINGS = "savings"  # the savings endpoints, on their own slow cadence; a period's figure
    # is hidden once the period ends
    ORGANIZATION = "organization"  # an organization's figures (label org_id), no device
    SELF = "self"  # the exporter's own health (telemetry registry)


# eq=False: families are singletons, compared and hashed by identity (cheap in the hot path).
@dataclass(frozen=True, slots=True, eq=False)
class Family:
    """One metric family: exposition name, type, HELP, and where its value comes from."""

    name: str
    help: str
    source: Source
    type: str = "gauge"
    field: str | None = None  # the API field (data point or inventory) it is read from
    scale: float = 1.0  # API value x scale = value in the base unit
    labels: tuple[str, ...] = ()  # labels beyond the device's identity (telemetry: all labels)
    part: str | None = None  # energy: the "positive" or "negative" part of the power field
    shared: bool = False  # one family for every kind, with a `kind` label
    states: tuple[str, ...] = ()  # a state set: the states that always have a series
    # What an operator selects (config `metrics:`): a group of families, and whether the
    # family is served when the config says nothing of it (kinds/selection.py).
    group: str = "readings"
    default: bool = True
    period: str | None = None  # savings: the period its figure is of ("today", "this_month")

    def convert(self, api_value: float) -> float:
        """The API's value in this family's base unit."""
        return api_value * self.scale

    @property
    def unit(self) -> str:
        """The base unit its name ends in (OpenMetrics' `# UNIT`), or "" for none."""
        stem = self.name.removesuffix("_total") if self.type == "counter" else self.name
        last = stem.rpartition("_")[2]
        return last if last in BASE_UNITS else ""

    @property
    def per_device(self) -> bool:
        return self.source not in (Source.SELF, Source.ORGANIZATION)

    @property
    def label_names(self) -> tuple[str, ...]:
        """Every label the exporter sets on this family's series (before custom labels)."""
        if not self.per_device:
            return self.labels
        return (*IDENTITY, *(("kind",) if self.shared else ()), *self.labels)


def reading(
    name: str,
    field: str,
    help_text: str,
    scale: float = 1.0,
    group: str = "readings",
    default: bool = True,
) -> Family:
    """A value of the newest data point."""
    return Family(
        name, help_text, Source.READING, field=field, scale=scale, group=group, default=default
    )


def inventory(name: str, field: str, help_text: str, scale: float = 1.0) -> Family:
    """A value of the device's listing or detail (its inventory): opt-in, since it changes
    rarely and no shipped dashboard or alert needs it."""
    return Family(
        name, help_text, Source.TARGET, field=field, scale=scale, group="inventory", default=False
    )


def state_set(name: str, field: str, help_text: str, states: tuple[str, ...]) -> Family:
    """A status of the inventory as a state set: 1 for the current status (label `status`),
    0 for the other known ones. Opt-in: a series per known state, mostly 0."""
    return Family(
        name,
        help_text,
        Source.TARGET,
        field=field,
        labels=("status",),
        states=states,
        group="status",
        default=False,
    )


def threshold(name: str, field: str, help_text: str, scale: float = 1.0) -> Family:
    """A configured alert threshold (`field`: the key of the config's thresholds)."""
    return Family(name, help_text, Source.TARGET, field=field, scale=scale, group="thresholds")


ENERGY_HELP = (
    " Each completed data bucket adds its mean power times its duration, once; null values "
    "add nothing; starts at 0 when the exporter starts (a restart is a counter reset, which "
    "increase() handles); a bucket revised after it was counted is not counted again. "
    "kWh per day: increase(...[1d]) / 3.6e6."
)


def energy(name: str, field: str, part: str, what: str) -> Family:
    """A counter of energy from the completed buckets of a power field."""
    return Family(
        name,
        what + ENERGY_HELP,
        Source.ENERGY,
        type="counter",
        field=field,
        part=part,
        group="energy",
    )


def price_help(of: str) -> str:
    return (
        f"Energy price of {of}exported data point, as delivered by the API field price, in "
        "currency per MWh (the API does not document it; its examples look like that): the "
        "unit and currency the API's metadata names, or the config's units fallback, are the "
        "labels unit and currency of podero_device_price_info."
    )
