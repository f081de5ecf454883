"""What every simulated curve shares: the base bucket and deterministic noise."""

from __future__ import annotations

import hashlib

STEP = 900  # the simulator's base bucket: 15 minutes


def _unit(*keys: object) -> float:
    """A deterministic number in [0, 1) for the given keys."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
