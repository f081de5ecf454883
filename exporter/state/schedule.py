"""When to poll each inverter next. Pure functions over a small per-inverter state.

Three ideas:
- spread: every inverter polls on its own stable phase inside the interval, so requests are
  spread evenly instead of arriving all at the top of each cycle;
- poll when due: after the newest point at time T, the next one (time T + resolution) cannot
  appear before T + resolution plus the publication lag this inverter has shown (the time
  between a point's own time and its first sighting), so polls before then are skipped;
- back off: an inverter that stays silent long after its next point was due is asked less
  and less often, up to once per resolution.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

# Each first-try hit shortens the learned lag by this share of the interval, so a lag that was
# over-estimated once drifts back towards the real one (at the price of a rare early miss).
LAG_DECAY_FRACTION = 0.02


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """One inverter's schedule: its phase, what it has seen, and when to poll next."""

    offset: float
    next_poll: float = 0.0
    newest: float | None = None  # time of the newest point seen
    lag: float | None = None  # learned seconds between a point's time and its first sighting
    misses: int = 0  # polls since the next point was due that found nothing new


def phase_offset(inverter_id: str, interval: float) -> float:
    """A stable offset in [0, interval) from the inverter id."""
    digest = hashlib.sha256(inverter_id.encode()).digest()
    return (int.from_bytes(digest[:8], "big") / 2**64) * interval


def aligned_at_or_after(t: float, interval: float, offset: float) -> float:
    """The first time >= t on this inverter's phase grid (offset + k * interval)."""
    k = math.ceil((t - offset) / interval - 1e-9)
    return offset + k * interval


def aligned_after(t: float, interval: float, offset: float) -> float:
    """The first time > t on this inverter's phase grid."""
    candidate = aligned_at_or_after(t, interval, offset)
    return candidate + interval if candidate <= t else candidate


def next_due(schedule: PollSchedule, resolution: float) -> float | None:
    """When the point after the newest one can first be expected, if anything was seen."""
    if schedule.newest is None:
        return None
    return schedule.newest + resolution + (schedule.lag or 0.0)


def after_poll(
    schedule: PollSchedule,
    *,
    now: float,
    ok: bool,
    newest: float | None,
    interval: float,
    resolution: float,
    skip_until_due: bool = True,
) -> PollSchedule:
    """The schedule after a poll at `now` that succeeded (`ok`) with newest point `newest`."""
    offset = schedule.offset
    if not ok or not skip_until_due:
        return _replace(schedule, next_poll=aligned_after(now, interval, offset))
    if newest is not None and (schedule.newest is None or newest > schedule.newest):
        lag = schedule.lag
        if schedule.newest is not None:
            # First sighting of a point that appeared since the last poll: a fresh lag sample.
            observed = min(max(0.0, now - newest), 2 * resolution)
            if lag is None or schedule.misses > 0:
                lag = observed
            else:
                lag = max(0.0, min(lag, observed) - LAG_DECAY_FRACTION * interval)
        updated = PollSchedule(offset=offset, newest=newest, lag=lag, misses=0)
        due = next_due(updated, resolution)
        assert due is not None
        next_poll = max(
            aligned_at_or_after(due, interval, offset), aligned_after(now, interval, offset)
        )
        return _replace(updated, next_poll=next_poll)
    # Nothing new: poll at the interval, backing off once a whole resolution has passed in vain.
    misses = schedule.misses + 1
    patience = math.ceil(resolution / interval)
    ceiling = max(interval, resolution)
    try:
        gap = min(interval * 2 ** max(0, misses - patience), ceiling)
    except OverflowError:  # silent for weeks: 2**misses is more than a float holds
        gap = ceiling
    return PollSchedule(
        offset=offset,
        newest=schedule.newest,
        lag=schedule.lag,
        misses=misses,
        next_poll=aligned_after(now + gap - interval, interval, offset),
    )


def _replace(schedule: PollSchedule, *, next_poll: float) -> PollSchedule:
    return PollSchedule(
        offset=schedule.offset,
        next_poll=next_poll,
        newest=schedule.newest,
        lag=schedule.lag,
        misses=schedule.misses,
    )
