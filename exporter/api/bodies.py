"""Response bodies: read in chunks within a size limit (decompression included), and the
process-wide budget of body bytes held and parsed at once.

The size limit bounds one body; the byte budget bounds them all. Parsed JSON costs many
times its text, so a process with 32 workers each parsing a body at the limit would need
32 times the memory of one: instead every body takes its share of one `ByteBudget` before
it is kept (`SMALL_BODY_BYTES` first, its whole limit once it grows past that, or its
declared length at once) and gives it back once the caller has parsed it. A body waits for
its share holding at most `SMALL_BODY_BYTES`, so a budget of one full body plus a small share
for every other worker (`budget_for`) always lets one body through: no deadlock.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from exporter.base.text import clean_text

CHUNK_BYTES = 64 * 1024
# Inflated at most this much at a time (a 64 KiB chunk of a bomb holds 64 MiB).
_PIECE_BYTES = 1024 * 1024
# Every body takes this much of the byte budget first; beyond it, its whole size limit.
SMALL_BODY_BYTES = 64 * 1024

# A header's whole number: ASCII digits only (str.isdigit() also takes '²' and '٣', which
# int() refuses), and few enough of them for int().
_WHOLE_NUMBER = re.compile(r"[0-9]{1,30}")


def whole_number(value: str) -> int | None:
    value = value.strip()
    return int(value) if _WHOLE_NUMBER.fullmatch(value) else None


def budget_for(max_body_bytes: int, max_concurrency: int) -> int:
    """The byte budget of a process: one body at the size limit, and a small share for each
    other worker (the least that never deadlocks, see the module's docstring), with two to
    spare: a token answer kept inside the call that needed it, and a thread of the caller's
    own (`--once` lists inventory beside the workers). A wait for room ends at the exchange's
    deadline in any case."""
    return max_body_bytes + (max_concurrency + 1) * SMALL_BODY_BYTES


class ByteBudget:
    """Bytes of response bodies held and parsed at once, for the whole process."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._held = 0
        self.peak = 0  # the most held at once (for tests and benchmarks)
        self.waiting = 0  # takers waiting for room
        self._changed = threading.Condition()

    @property
    def total(self) -> int:
        return self._total

    @property
    def held(self) -> int:
        return self._held

    def resize(self, total: int) -> None:
        """A new total (a reload changed the size limit or the concurrency)."""
        with self._changed:
            self._total = total
            self._changed.notify_all()

    def take(self, size: int, deadline: float | None = None) -> None:
        """Wait until `size` more bytes fit, and hold them; TimeoutError at `deadline`
        (time.monotonic()). A size over the whole budget waits for every other holder."""
        with self._changed:
            while self._held > 0 and self._held + size > self._total:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("no room in the response byte budget before the deadline")
                self.waiting += 1
                try:
                    self._changed.wait(left)
                finally:
                    self.waiting -= 1
            self._held += size
            self.peak = max(self.peak, self._held)

    def give(self, size: int) -> None:
        with self._changed:
            self._held -= size
            self._changed.notify_all()


class BodyShare:
    """What one body holds of the byte budget: grown by `cover`, given back by `release`."""

    def __init__(self, budget: ByteBudget, limit: int, deadline: float | None = None) -> None:
        self._budget = budget
        self._limit = limit
        self._deadline = deadline
        self.held = 0

    def cover(self, size: int, *, known: bool = False) -> None:
        """Hold at least `size` bytes: exactly that when it is the body's `known` length,
        else SMALL_BODY_BYTES for a small body and the whole limit beyond."""
        if size <= self.held:
            return
        if known:
            target = size
        elif self.held == 0 and size <= SMALL_BODY_BYTES:
            target = SMALL_BODY_BYTES
        else:
            target = max(size, self._limit)
        self._budget.take(target - self.held, self._deadline)
        self.held = target

    def release(self) -> None:
        held, self.held = self.held, 0
        if held:
            self._budget.give(held)


class BadBody(Exception):
    """A body that cannot be had: too large, or in an encoding that cannot be decoded."""


class BodyTooLarge(BadBody):
    """The body (on the wire or decoded) would exceed the size limit."""


class _Decoder:
    """Content-Encoding gzip or deflate, inflated at most `room` bytes at a time, so that a
    small body that inflates to gigabytes costs no more than the size limit."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # 32 + MAX_WBITS: a gzip or a zlib header, detected. ("deflate" means zlib in HTTP.)
        self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS) if encoding else None

    def feed(self, data: bytes, room: int) -> Iterator[bytes]:
        """The decoded bytes of `data`, in pieces, stopping once more than `room` came out."""
        if self._zlib is None:
            yield data
            return
        produced = 0
        while data and produced <= room and not self._zlib.eof:
            try:
                piece = self._zlib.decompress(data, min(room - produced + 1, _PIECE_BYTES))
            except zlib.error:
                raise BadBody(f"the {self.encoding} body does not decode") from None
            produced += len(piece)
            yield piece
            data = self._zlib.unconsumed_tail

    def finished(self) -> bool:
        return self._zlib is None or self._zlib.eof


def _content_encoding(headers: Mapping[str, str]) -> str:
    value = headers.get("Content-Encoding", "").strip().lower()
    if value in ("", "identity"):
        return ""
    if value in ("gzip", "x-gzip", "deflate"):
        return value
    raise BadBody(f"content encoding {clean_text(value, 40)!r} is not supported")


def read_body(
    raw: Any, headers: Mapping[str, str], limit: int, share: BodyShare | None = None
) -> bytes:
    """The whole decoded body from urllib3's raw response, read in chunks; raises
    BodyTooLarge beyond `limit` bytes (on the wire or decoded) and BadBody for a body that
    cannot be decoded. Timeouts surface from the socket as they happen. With a `share`, the
    bytes are covered by the byte budget before they are kept."""
    encoding = _content_encoding(headers)
    decoder = _Decoder(encoding)
    declared = whole_number(headers.get("Content-Length", ""))
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"declares {declared} bytes")
    if share is not None and declared is not None and not encoding:
        share.cover(declared, known=True)
    parts: list[bytes] = []
    size = raw_size = 0
    while True:
        chunk = raw.read(CHUNK_BYTES, decode_content=False)
        if not chunk:
            break
        raw_size += len(chunk)
        if raw_size > limit:
            raise BodyTooLarge(f"more than {limit} bytes on the wire")
        for piece in decoder.feed(chunk, limit - size):
            size += len(piece)
            if size > limit:
                raise BodyTooLarge(f"more than {limit} bytes ({decoder.encoding or 'plain'})")
            if share is not None:
                share.cover(size)
            parts.append(piece)
    if not decoder.finished():
        raise BadBody(f"the {decoder.encoding} body is cut short")
    return b"".join(parts)
