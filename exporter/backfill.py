"""`podero-exporter backfill`: the history of every configured or discovered device (inverters,
heat pumps, electric vehicles, wallboxes) as an OpenMetrics file for
`promtool tsdb create-blocks-from openmetrics`.

The range of each device with a data series is cut into pages of one UTC day; a page the API
refuses with a 400 is halved until it is accepted. Pages run on the daemon's client (same
request budget, same concurrency) and each finished page is appended with its points to a
journal next to the output (`OUTPUT.pages`), so an interrupted run can be rerun to fetch only
what is missing. The output is rendered from the journal at the end, family by family
(`exporter.openmetrics`); it ends with `# EOF` only when every page is in.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

from exporter.api.client import PoderoClient, iso
from exporter.api.discovery import FleetDiscovery, inventory_job
from exporter.api.pages import JournalMismatch, PageFetcher, PageJournal
from exporter.api.transport import ApiError
from exporter.app import build_client
from exporter.base.clock import Clock, Stopped, SystemClock
from exporter.base.logs import LEVELS, kv, setup_logging
from exporter.config.model import (
    RESOLUTION_SECONDS,
    Config,
    ConfigError,
    is_label_name,
    is_unicode,
    load_config,
)
from exporter.kinds import registry
from exporter.kinds.table import device_labels
from exporter.render.openmetrics import write_history
from exporter.render.telemetry import Telemetry
from exporter.state.readings import DataPoint
from exporter.state.targets import DeviceTarget, TargetSet

log = logging.getLogger(__name__)

DAY = 86400
# A longer range is a typo (0026 for 2026) more likely than a wish: its page list alone would
# not fit in memory for a fleet.
MAX_DAYS = 5 * 366
# Resolutions whose buckets tile a UTC day, so that day pages never split a bucket.
RESOLUTIONS = ("15MIN", "1HOUR", "1DAY")


class UsageError(ValueError):
    """Bad command-line input; the message names the flag and the reason."""


class NothingToBackfill(Exception):
    """No device could be found to backfill (discovery failed, or an empty shard)."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="podero-exporter backfill",
        description="Write the history of every device as OpenMetrics for "
        "`promtool tsdb create-blocks-from openmetrics`.",
    )
    parser.add_argument("--config.file", dest="config_file", default="config.yaml")
    parser.add_argument(
        "--from", dest="start", required=True, help="ISO 8601 start, e.g. 2026-11-01T00:00:00Z"
    )
    parser.add_argument(
        "--to", dest="end", required=True, help="ISO 8601 end (exclusive), not in the future"
    )
    parser.add_argument("--output", required=True, help="the OpenMetrics file to write")
    parser.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a label for every sample, e.g. job=podero and instance=HOST:PORT (repeatable)",
    )
    parser.add_argument(
        "--no-energy",
        dest="energy",
        action="store_false",
        help="leave out the energy counters (for a range the live exporter already covers)",
    )
    parser.add_argument("--log.level", dest="log_level", default="info", choices=LEVELS)
    parser.add_argument(
        "--log.format", dest="log_format", default="logfmt", choices=("logfmt", "json")
    )
    return parser.parse_args(argv)


def parse_instant(flag: str, text: str) -> float:
    """An ISO 8601 date-time with a zone, or a date (midnight UTC), as epoch seconds."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not an ISO 8601 date or date-time") from None
    if len(value) == 10:  # a date alone: that day's start in UTC
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.tzinfo is None:
        raise UsageError(f"{flag}: {text!r} has no time zone (add Z or an offset like +01:00)")
    return parsed.timestamp()


def parse_labels(values: Sequence[str], config: Config) -> tuple[tuple[str, str], ...]:
    """`NAME=VALUE` pairs, refusing invalid names, repeats, and names the devices' own
    samples carry (ids, inventory, state sets, configured labels)."""
    taken = set(device_labels())
    for inverter in config.inverters:
        taken.update(inverter.labels)
    labels: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--label {item!r}: expected NAME=VALUE")
        if not is_label_name(name):
            raise UsageError(f"--label {name!r}: not a valid Prometheus label name")
        if name in taken:
            raise UsageError(f"--label {name!r}: the exporter sets this label on devices itself")
        if name in labels:
            raise UsageError(f"--label {name!r}: given twice")
        if not value:
            raise UsageError(f"--label {name!r}: empty value (Prometheus drops empty labels)")
        if not is_unicode(value):
            raise UsageError(f"--label {name!r}: the value is not valid UTF-8")
        labels[name] = value
    return tuple(labels.items())


@dataclass(frozen=True)
class BackfillRange:
    """The buckets to fetch: those starting at or after `start` and ending by `end`."""

    start: float
    end: float
    resolution: str

    @property
    def bucket_seconds(self) -> int:
        return RESOLUTION_SECONDS[self.resolution]

    @classmethod
    def of(cls, start: float, end: float, resolution: str, now: float) -> BackfillRange:
        if resolution not in RESOLUTIONS:
            raise UsageError(
                f"poll.resolution {resolution}: backfill pages by day and supports "
                f"{', '.join(RESOLUTIONS)}"
            )
        if end > now:
            raise UsageError(
                f"--to: {iso(end)} is in the future; backfill writes completed buckets only"
            )
        size = RESOLUTION_SECONDS[resolution]
        aligned = cls(math.ceil(start / size) * size, math.floor(end / size) * size, resolution)
        if aligned.end <= aligned.start:
            raise UsageError(
                f"--from/--to: {iso(start)} to {iso(end)} holds no whole {resolution} bucket"
            )
        if aligned.end - aligned.start > MAX_DAYS * DAY:
            raise UsageError(
                f"--from/--to: {iso(start)} to {iso(end)} is over {MAX_DAYS} days; "
                "backfill at most five years in one run (a year at a time suits promtool)"
            )
        return aligned

    @property
    def buckets(self) -> int:
        return int((self.end - self.start) // self.bucket_seconds)

    def pages(self) -> Iterator[tuple[int, float, float]]:
        """(day, page start, page end) for every UTC day the range touches."""
        day = int(self.start // DAY * DAY)
        while day < self.end:
            yield day, max(float(day), self.start), min(float(day + DAY), self.end)
            day += DAY


class Progress:
    """A one-line progress report on stderr, redrawn at most five times a second; silent
    when stderr is not a terminal."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._total = total
        self._started = time.monotonic()
        self._drawn = 0.0

    def update(self, done: int, failed: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self._enabled or (not force and now - self._drawn < 0.2):
            return
        self._drawn = now
        rate = done / max(now - self._started, 1e-9)
        left = (self._total - done - failed) / rate if rate > 0 else float("inf")
        eta = f"{left:.0f}s" if math.isfinite(left) else "?"
        percent = 100 * (done + failed) / max(self._total, 1)
        self._stream.write(
            f"\rbackfill: {done}/{self._total} pages ({percent:.0f}%), {failed} failed, "
            f"{rate:.1f} pages/s, {eta} left \x1b[K"
        )
        self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


@dataclass
class BackfillResult:
    """How a run went (also the figures of the summary line)."""

    devices: int
    pages: int
    fetched: int
    resumed: int
    failed: int
    buckets: int
    expected_buckets: int
    requests: int
    seconds: float
    kinds: dict[str, int] = field(default_factory=dict)  # devices by kind
    interrupted: bool = False
    fetch_seconds: float = 0.0  # from the first page request to the last answer
    write_seconds: float = 0.0  # rendering the output from the journal

    @property
    def complete(self) -> bool:
        return self.fetched + self.resumed == self.pages

    def summary(self, output: Path) -> str:
        order = {kind: i for i, kind in enumerate(registry.names())}
        kinds = ", ".join(
            f"{self.kinds[kind]} {_plural(kind, self.kinds[kind])}"
            for kind in sorted(self.kinds, key=lambda kind: (order.get(kind, len(order)), kind))
        )
        head = (
            f"{self.devices} devices ({kinds}), {self.pages} pages ({self.fetched} fetched, "
            f"{self.resumed} from an earlier run, {self.failed} failed), {self.buckets} of "
            f"{self.expected_buckets} buckets with data, {self.requests} data requests in "
            f"{self.seconds:.1f}s"
        )
        if self.complete:
            return f"backfill complete: {head}; wrote {output}"
        missing = self.pages - self.fetched - self.resumed
        why = "interrupted" if self.interrupted else "incomplete"
        return (
            f"backfill {why}: {head}; wrote {output} without # EOF ({missing} pages "
            f"missing); run the same command again to fetch only those"
        )


def _plural(kind: str, n: int) -> str:
    """A kind as the summary names it: "1 heat pump", "2 heat pumps", "2 wallboxes"."""
    name = kind.replace("_", " ")
    if n == 1:
        return name
    return name + ("es" if name.endswith("x") else "s")


def resolve_targets(client: PoderoClient, config: Config, clock: Clock) -> TargetSet:
    """The daemon's targets: configured and discovered devices of this shard (inventory
    of configured-only ones is added later, alongside the pages). Homes are listed
    concurrently, as the daemon does."""
    targets = TargetSet(config)
    if config.discovery is not None:
        discovery = FleetDiscovery(
            client, config.discovery, config.shard, targets, Telemetry(), clock
        )
        with ThreadPoolExecutor(config.podero.max_concurrency) as pool:

            def submit(job: Callable[[], None]) -> None:
                pool.submit(job)

            discovery.start_round(submit)
            discovery.round_done.wait()
        if discovery.last_success is None:
            # Backfilling the configured ones alone would look complete but miss the fleet.
            raise NothingToBackfill("discovery failed for every organization (see the log)")
    if not len(targets):
        raise NothingToBackfill("no device to backfill in this config and shard")
    return targets


def run(
    config: Config,
    args: argparse.Namespace,
    clock: Clock,
    stderr: TextIO | None = None,
    stop: threading.Event | None = None,
) -> BackfillResult:
    """Fetch the missing pages and write the output; raises UsageError for bad input.
    Progress goes to `stderr` (default: sys.stderr) if it is a terminal; `stop` ends the
    run early as Ctrl-C does."""
    started = time.monotonic()
    stop = stop or threading.Event()
    labels = parse_labels(args.labels, config)
    span = BackfillRange.of(
        parse_instant("--from", args.start),
        parse_instant("--to", args.end),
        config.poll.resolution,
        clock.time(),
    )
    output = Path(args.output)
    journal_path = output.with_name(output.name + ".pages")
    if not output.parent.is_dir():
        raise UsageError(f"--output: directory {output.parent} does not exist")
    if output.exists() and not journal_path.exists():
        raise UsageError(
            f"--output: {output} exists without its journal {journal_path.name}; "
            "remove it or choose another --output"
        )
    journal = PageJournal(
        journal_path,
        {"from": iso(span.start), "to": iso(span.end), "resolution": span.resolution},
    )
    try:
        client = build_client(config, clock, Telemetry())
        targets = resolve_targets(client, config, clock)
        # Pages for the devices with a data series; a wallbox is described from its target.
        polled = [t for t in targets.current() if t.polled]
        pages = [(target, day, start, end) for day, start, end in span.pages() for target in polled]
        missing = [p for p in pages if (p[0].device_id, p[1]) not in journal.done]
        fetcher = PageFetcher(client, span.resolution)
        progress = Progress(stderr or sys.stderr, len(missing))
        fetch_started = time.monotonic()
        fetched, failed, interrupted = 0, 0, False
        concurrency = config.podero.max_concurrency
        with ThreadPoolExecutor(concurrency, thread_name_prefix="backfill") as pool:
            inventory = [
                pool.submit(inventory_job(client, t, targets)) for t in targets.configured_only()
            ]
            in_flight: dict[Future[list[DataPoint]], tuple[DeviceTarget, int]] = {}
            queue = iter(missing)
            try:
                while True:
                    while len(in_flight) < 2 * concurrency and not stop.is_set():
                        page = next(queue, None)
                        if page is None:
                            break
                        target, day, start, end = page
                        in_flight[pool.submit(fetcher.fetch, target, start, end)] = (target, day)
                    if not in_flight:
                        break
                    done, _ = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        ok = _record(journal, future, *in_flight.pop(future))
                        fetched, failed = fetched + ok, failed + (not ok)
                    progress.update(fetched, failed)
                    if stop.is_set():
                        interrupted = True
                        # Pages not started yet stay missing; running ones finish.
                        for queued in [f for f in in_flight if f.cancel()]:
                            del in_flight[queued]
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                if isinstance(clock, SystemClock):
                    clock.stop()  # retry and budget waits end at once
                for running in in_flight:
                    running.cancel()
                for details in inventory:
                    details.cancel()
                for future, (target, day) in in_flight.items():
                    if not future.cancelled():
                        fetched += _record(journal, future, target, day)
            finally:
                progress.close()
            for details in inventory:  # each job adds its inventory to the targets itself
                if not details.cancelled():
                    details.exception()
        fetch_seconds = time.monotonic() - fetch_started
        result = BackfillResult(
            devices=0,
            pages=len(pages),
            fetched=fetched,
            resumed=len(pages) - len(missing),
            failed=failed,
            buckets=0,
            expected_buckets=len(polled) * span.buckets,
            requests=fetcher.requests,
            seconds=0.0,
            interrupted=interrupted,
            fetch_seconds=fetch_seconds,
        )
        write_started = time.monotonic()
        stats = write_history(
            output,
            ((t, journal.points(t.device_id) if t.polled else []) for t in targets.current()),
            extra_labels=labels,
            bucket_seconds=span.bucket_seconds,
            since=span.start,
            until=span.end,
            complete=result.complete,
            energy=args.energy,
            served=config.metrics.selection.served(),
        )
    finally:
        journal.close()
    result.devices = stats.devices
    result.kinds = dict(stats.kinds)
    result.buckets = stats.buckets
    result.write_seconds = time.monotonic() - write_started
    result.seconds = time.monotonic() - started
    return result


def _record(
    journal: PageJournal, future: Future[list[DataPoint]], target: DeviceTarget, day: int
) -> bool:
    """Journal a finished page; False (and a warning) if it failed."""
    try:
        points = future.result()
    except (ApiError, Stopped) as exc:
        log.warning(
            "page failed",
            extra=kv(
                **target.log_fields(),
                day=iso(day),
                reason=getattr(exc, "reason", "stopped"),
            ),
        )
        return False
    journal.record(target.device_id, day, points)
    return True


def main(argv: Sequence[str]) -> int:
    """`podero-exporter backfill ...`: 0 when complete, 1 when pages are missing, 2 for bad
    input, 130 when interrupted."""
    args = parse_args(argv)
    setup_logging(args.log_level, args.log_format)

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        config = load_config(args.config_file)
        result = run(config, args, SystemClock())
    except (ConfigError, UsageError, JournalMismatch) as exc:
        for line in str(exc).splitlines():
            print(f"podero-exporter backfill: {line}", file=sys.stderr)
        return 2
    except NothingToBackfill as exc:
        print(f"podero-exporter backfill: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the pages or while writing: the journal is intact
        print("podero-exporter backfill: interrupted; run it again to go on", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(result.summary(Path(args.output)), file=sys.stderr)
    if result.complete:
        return 0
    return 130 if result.interrupted else 1
