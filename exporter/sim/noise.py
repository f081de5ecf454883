"""What every simulated curve shares: the base bucket and deterministic noise."""

from __future__ import annotations

import hashlib
import math

STEP = 900  # the simulator's base bucket: 15 minutes


def _unit(*keys: object) -> float:
    """A deterministic number in [0, 1) for the given keys."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def local_hour(t: float) -> float:
    """The hour of day at t in the simulated homes' time (roughly UTC+1)."""
    return ((t / 3600.0) + 1.0) % 24


def price_at(t: float) -> float:
    """The simulated energy price (EUR/MWh) of the quarter-hour at t: dear in the evening."""
    hour = local_hour(t)
    return round(95 + 45 * math.sin(2 * math.pi * (hour - 10) / 24) + 12 * _unit("p", t), 2)
