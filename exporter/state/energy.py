"""Energy from power: every completed data bucket adds its mean power times its duration,
once, to running totals that start at zero when an inverter is first polled.

Pure functions over a small immutable state, so tests drive them with hand-made points. The
totals keep the positive and the negative part of each power field apart; which part is which
metric (export vs import, charge vs discharge) is the metrics table's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.state.readings import DataPoint

POWER_FIELDS = (
    "solar_production_w",
    "export_power_to_grid_w",
    "household_consumption_w",
    "battery_charge_discharge_power_w",
)
_ZERO = (0.0,) * len(POWER_FIELDS)


@dataclass(frozen=True, slots=True)
class EnergyTotals:
    """Joules so far of the positive and negative part of each power field (in the order of
    POWER_FIELDS), counting buckets that end after `since`; `counted` holds the starts of the
    recent buckets already added, so that none is added twice."""

    since: float
    positive: tuple[float, ...] = _ZERO
    negative: tuple[float, ...] = _ZERO
    counted: frozenset[float] = frozenset()

    def joules(self, field: str, part: str) -> float:
        """The total of one field's `positive` or `negative` part (as a positive number)."""
        parts = self.positive if part == "positive" else self.negative
        return parts[POWER_FIELDS.index(field)]


def add_completed_buckets(
    totals: EnergyTotals,
    points: list[DataPoint],
    *,
    now: float,
    bucket_seconds: float,
    horizon: float,
) -> EnergyTotals:
    """`totals` plus every bucket in `points` that has ended by `now`, ended after
    `totals.since`, and was not counted before. A null field adds nothing; a bucket counted
    once is never counted again (a later revision of its values is not seen). Starts older
    than `horizon` seconds are forgotten: the API is not asked that far back again."""
    positive = list(totals.positive)
    negative = list(totals.negative)
    counted = set(totals.counted)
    oldest = now - horizon - bucket_seconds
    for point in points:
        end = point.time + bucket_seconds
        # Older than the horizon: its start may have been forgotten, so it might count twice.
        if end > now or end <= totals.since or point.time < oldest or point.time in counted:
            continue
        counted.add(point.time)
        for i, field in enumerate(POWER_FIELDS):
            watts = point.values.get(field)
            if watts is None:
                continue
            if watts > 0:
                positive[i] += watts * bucket_seconds
            elif watts < 0:
                negative[i] -= watts * bucket_seconds
    if len(counted) == len(totals.counted):
        return totals  # nothing new: most polls
    return EnergyTotals(
        since=totals.since,
        positive=tuple(positive),
        negative=tuple(negative),
        counted=frozenset(t for t in counted if t >= oldest),
    )
