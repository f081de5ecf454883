"""The pages of a backfill: one device's points for one day (an inverter's, a heat pump's or
an electric vehicle's data series), asked for in ranges the API accepts (a 400 for a long
range means "ask for less"), and the journal of finished pages that lets an interrupted
backfill go on where it stopped."""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import IO, Any

from exporter.api.client import PoderoClient, iso
from exporter.api.transport import ApiError
from exporter.base.logs import kv
from exporter.config.model import RESOLUTION_SECONDS
from exporter.state.readings import DataPoint
from exporter.state.targets import DeviceTarget

log = logging.getLogger(__name__)

JOURNAL_FORMAT = 1


class JournalMismatch(ValueError):
    """The journal next to the output belongs to another range or resolution."""


class PageFetcher:
    """One page of one device's points, halving the range while the API answers 400."""

    def __init__(self, client: PoderoClient, resolution: str) -> None:
        self._client = client
        self._resolution = resolution
        self._bucket = RESOLUTION_SECONDS[resolution]
        self._lock = threading.Lock()
        # Per kind (each has its own endpoint): the longest range the API has accepted right
        # after refusing a longer one.
        self._max_span: dict[str, float] = {}
        self.requests = 0

    def fetch(self, target: DeviceTarget, start: float, end: float) -> list[DataPoint]:
        """The measured points with start <= time < end (the API's bounds are not documented
        as exclusive, so the end bucket is cut here)."""
        points: list[DataPoint] = []
        with self._lock:
            span = max(float(self._bucket), self._max_span.get(target.kind, float("inf")))
        piece = start
        while piece < end:
            piece_end = min(end, piece + span)
            points.extend(self._fetch_range(target, piece, piece_end)[0])
            piece = piece_end
        return [p for p in points if start <= p.time < end and p.has_measurement(target.kind)]

    def _fetch_range(
        self, target: DeviceTarget, start: float, end: float
    ) -> tuple[list[DataPoint], bool]:
        """The points of [start, end), and whether the API accepted the range at once."""
        with self._lock:
            self.requests += 1
        try:
            points = self._client.device_data(
                target.kind,
                target.org_id,
                target.user_id,
                target.device_id,
                start=start,
                end=end,
                resolution=self._resolution,
            )
            return points, True
        except ApiError as exc:
            if exc.status != 400:
                raise
        buckets = int((end - start) // self._bucket)
        if buckets <= 1:
            return [], False  # one bucket refused: the API's way of saying "no data here"
        # A 400 for a longer range means "ask for less".
        middle = start + (buckets // 2) * self._bucket
        log.debug(
            "range refused, asking for halves",
            extra=kv(**target.log_fields(), start=iso(start), end=iso(end)),
        )
        points = []
        for half_start, half_end in ((start, middle), (middle, end)):
            half, accepted = self._fetch_range(target, half_start, half_end)
            if accepted and half:
                # Refused whole but accepted halved (with data, so the refusal was not "no
                # data"): the API's limit lies in between; later pages start at this size.
                with self._lock:
                    known = self._max_span.get(target.kind, float("inf"))
                    self._max_span[target.kind] = min(known, half_end - half_start)
            points.extend(half)
        return points, False


class PageJournal:
    """`OUTPUT.pages`: a header line naming the range, then one JSON line per finished page
    with its points. A torn last line (a killed run) is cut off when it is opened again.
    Pages are keyed by the device's id (unique over all kinds, as in the targets), under the
    key `inverter_id` whatever the kind, so journals of earlier versions go on."""

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self._identity = {"backfill_journal": JOURNAL_FORMAT, **identity}
        self.done: dict[tuple[str, int], tuple[int, int]] = {}  # page -> (offset, length)
        self._index: dict[str, list[tuple[tuple[str, int], tuple[int, int]]]] | None = None
        self._file: IO[bytes] = self._open()

    def _open(self) -> IO[bytes]:
        if not self.path.exists():
            self.path.write_bytes(json.dumps(self._identity).encode() + b"\n")
        handle = self.path.open("r+b")
        first = handle.readline()
        try:
            found = json.loads(first)
        except ValueError:
            found = None
        if found != self._identity and not handle.readline():
            # Only a header (a run that fetched nothing): start this range afresh.
            handle.close()
            self.path.write_bytes(json.dumps(self._identity).encode() + b"\n")
            return self._open()
        if found != self._identity:
            handle.close()
            raise JournalMismatch(
                f"--output: {self.path} belongs to another backfill (range or resolution "
                f"differ); delete it to start over, or choose another --output"
            )
        good = handle.tell()
        while line := handle.readline():
            try:
                page = json.loads(line)
                key = (str(page["inverter_id"]), int(page["day"]))
                _page_points(page)  # a line that will not read back is not a finished page
            except (ValueError, KeyError, TypeError, OverflowError):
                break
            if not line.endswith(b"\n"):
                break
            self.done[key] = (good, len(line))
            good += len(line)
        handle.truncate(good)
        handle.seek(good)
        return handle

    def record(self, device_id: str, day: int, points: list[DataPoint]) -> None:
        """Append one finished page; it counts as done once its line is written whole."""
        line = (
            json.dumps(
                {
                    "inverter_id": device_id,
                    "day": day,
                    "points": [[p.time, dict(p.values)] for p in points],
                },
                separators=(",", ":"),
            ).encode()
            + b"\n"
        )
        offset = self._file.tell()
        self._file.write(line)
        self._file.flush()
        self.done[(device_id, day)] = (offset, len(line))
        self._index = None

    def points(self, device_id: str) -> list[DataPoint]:
        """Every recorded point of one device, oldest first."""
        pages = sorted(
            (day, offset, length) for (_device, day), (offset, length) in self._pages_of(device_id)
        )
        found: dict[float, DataPoint] = {}
        with self.path.open("rb") as reader:
            for _day, offset, length in pages:
                reader.seek(offset)
                for point in _page_points(json.loads(reader.read(length))):
                    found[point.time] = point
        return [found[t] for t in sorted(found)]

    def _pages_of(self, device_id: str) -> list[tuple[tuple[str, int], tuple[int, int]]]:
        if self._index is None:
            self._index = {}
            for key, where in self.done.items():
                self._index.setdefault(key[0], []).append((key, where))
        return self._index.get(device_id, [])

    def close(self) -> None:
        self._file.close()


def _page_points(page: dict[str, Any]) -> list[DataPoint]:
    """A journal line's points; ValueError (or KeyError, TypeError) if it is not what
    `PageJournal.record` writes: finite times and values, named by strings."""
    points = []
    for time_, values in page["points"]:
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in values.items()
        ):
            raise ValueError("not a page's values")
        numbers = [float(time_), *map(float, values.values())]
        if not all(math.isfinite(n) for n in numbers):
            raise ValueError("not finite")
        points.append(DataPoint(float(time_), {k: float(v) for k, v in values.items()}))
    return points
