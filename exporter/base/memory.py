"""Keeping resident memory close to what the data needs (glibc's allocator, Linux)."""

from __future__ import annotations

import contextlib
import ctypes

M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas: many worker threads otherwise each keep an
    arena of freed memory, and resident memory grows with the thread count, not the data."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, arenas)


def release_free_memory() -> None:
    """Hand memory freed after a big burst (the first poll cycle) back to the system."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
