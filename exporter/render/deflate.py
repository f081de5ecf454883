"""The gzip side of the page: one gzip stream built from pieces compressed at different
times, so that a scrape compresses nothing but the few lines that change per scrape."""

from __future__ import annotations

import struct
import zlib

# A gzip stream built from pieces compressed at different times: the 10-byte header (no
# name, mtime 0), raw deflate segments each ended by a sync flush (so they concatenate into
# one deflate stream), an empty final block, and CRC-32 and size of the whole. One member,
# because some clients (urllib3 reading in chunks) stop after the first of several.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
FINAL_BLOCK = b"\x03\x00"


def segment(data: bytes) -> bytes:
    """A raw deflate segment of `data` that another segment may follow (sync flush).
    Level 6 (zlib's default): a block changes a few times a minute at most, a scrape ships
    every block."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def trailer(crc: int, size: int) -> bytes:
    return FINAL_BLOCK + struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


PIECE = 1 << 20


def pieces(chunks: list[bytes]) -> list[bytes]:
    """Chunks joined into pieces of about PIECE bytes (whole chunks, in order)."""
    joined: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for chunk in chunks:
        group.append(chunk)
        size += len(chunk)
        if size >= PIECE:
            joined.append(b"".join(group))
            group, size = [], 0
    if group:
        joined.append(b"".join(group))
    return joined
