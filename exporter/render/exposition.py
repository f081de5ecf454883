"""The /metrics body, rendered when data changes rather than on every scrape.

The page keeps, for every family, the joined lines of each block of inverters; a refresh
re-renders only the blocks whose inverters changed (or whose readings turned stale). The
samples are those of `collector.current_samples`, so the output equals a plain
prometheus_client rendering of them (tests/reference.py; a test holds the two together).

The same blocks serve both text formats: the classic one (text/plain 0.0.4) and OpenMetrics
1.0, whose sample lines are the same bytes; only the families' headers (a counter's family
named without `_total`, `# UNIT`), the exporter's own metrics and the closing `# EOF` differ.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import groupby
from typing import TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.base.clock import Clock
from exporter.base.logs import kv
from exporter.base.memory import release_free_memory
from exporter.base.text import clean_text
from exporter.kinds import common, selection, table
from exporter.kinds.family import Family, Source
from exporter.kinds.own import RENDER_ERRORS
from exporter.kinds.savings import ORGANIZATION_FAMILIES
from exporter.render import deflate
from exporter.render.collector import (
    Labels,
    Samples,
    float_text,
    is_fresh,
    label_text,
    organization_samples,
    polled_samples,
    savings_expired,
    target_samples,
    visible,
)
from exporter.render.openmetrics import family_name as openmetrics_name
from exporter.render.openmetrics import header as openmetrics_header
from exporter.state.savings import Savings
from exporter.state.store import DeviceState, ReadingStore
from exporter.state.targets import DeviceTarget

log = logging.getLogger(__name__)
T = TypeVar("T")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# The families every kind shares are always served (with HELP and TYPE even before a
# sample); a kind's own only once some device has a sample of them.
ALWAYS_SERVED = frozenset(common.FAMILIES)


def header(family: Family) -> bytes:
    return f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.type}\n".encode()


# Sample suffixes prometheus_client adds to these types for the creation time.
CREATED_TYPES = ("counter", "histogram", "summary")


class OwnMetrics:
    """The exporter's own registry as each text format wants it: the classic one without
    prometheus_client's `_created` samples (which it writes as gauges of their own beside
    the counters), OpenMetrics with them and with `# UNIT` where the table's name ends in a
    base unit."""

    def __init__(self, registry: CollectorRegistry, openmetrics: bool) -> None:
        self._registry = registry
        self._openmetrics = openmetrics

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            if self._openmetrics:
                family = OWN_BY_NAME.get(metric.name)
                if family is not None and family.unit:
                    metric.unit = family.unit
            elif metric.type in CREATED_TYPES:
                metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric

    def text(self) -> bytes:
        if self._openmetrics:
            return generate_openmetrics(self)  # type: ignore[no-untyped-call,no-any-return]
        return generate_latest(self)


# The exporter's own families by the name prometheus_client gives them (a counter's without
# `_total`).
OWN_BY_NAME = {openmetrics_name(f): f for f in table.families() if not f.per_device}


def lines_of(samples: Samples, served: frozenset[Family] | None = None) -> dict[Family, bytes]:
    """Exposition lines by family (only the `served` families, if given)."""
    # A device's samples share a few label sets: each is escaped once here. (A cache across
    # devices held two entries per device: 30 MB at 30,000 devices, for little gain.)
    texts: dict[Labels, str] = {}

    def braces(labels: Labels) -> str:
        text = texts.get(labels)
        if text is None:
            text = texts[labels] = label_text(labels)
        return text

    return {
        family: "".join(
            f"{family.name}{{{braces(labels)}}} {float_text(value)}\n" for labels, value in found
        ).encode()
        for family, found in samples.items()
        if served is None or family in served
    }


def described_lines(target: DeviceTarget, served: frozenset[Family]) -> dict[Family, bytes]:
    """The lines of the served families that describe a target (config and inventory)."""
    return lines_of(target_samples(target), served)


def polled_lines(
    state: DeviceState, now: float, max_age: float, served: frozenset[Family]
) -> dict[Family, bytes]:
    """This state's polled families' lines; reading families only while the data is fresh."""
    return lines_of(visible(polled_samples(state), state, now, max_age), served)


class RenderGuard:
    """Renders one device at a time, so that a device whose data cannot be rendered (text
    that is not valid Unicode, a bug) is left out instead of failing the whole output; counts
    such devices (`podero_render_errors_total`) and logs each one once."""

    def __init__(self, created: float | None = None) -> None:
        self._lock = threading.Lock()
        self._logged: set[str] = set()
        self.errors = 0
        self.created = created  # when counting began, for OpenMetrics' `_created`

    def render(self, target: DeviceTarget, render: Callable[[], T]) -> T | None:
        """`render()`, or None (counted, logged once per device) if it fails."""
        try:
            return render()
        except Exception as exc:  # whatever it is, it must not take the other devices along
            with self._lock:
                self.errors += 1
                first = target.device_id not in self._logged
                self._logged.add(target.device_id)
            if first:
                log.warning(
                    "device left out of the output: its data cannot be rendered",
                    extra=kv(
                        device_id=clean_text(target.device_id),
                        name=clean_text(target.name),
                        reason=clean_text(f"{type(exc).__name__}: {exc}"),
                    ),
                )
            return None

    def exposition(self, openmetrics: bool = False) -> bytes:
        """The counter's lines for /metrics, in OpenMetrics with its `_created` if known."""
        name = RENDER_ERRORS.name
        value = f"{name} {float_text(float(self.errors))}\n".encode()
        if not openmetrics:
            return header(RENDER_ERRORS) + value
        created = b""
        if self.created is not None:
            stem = openmetrics_name(RENDER_ERRORS)
            created = f"{stem}_created {float_text(self.created)}\n".encode()
        return openmetrics_header(RENDER_ERRORS) + value + created


@dataclass(eq=False)
class Format:
    """One text format's side of the page: its family headers (plain and as deflate
    segments), the exporter's own metrics as it wants them, and the body assembled from the
    shared blocks, plain and gzip, as last built and as last handed out."""

    headers: dict[Family, bytes]
    own: OwnMetrics
    org_headers: dict[Family, bytes] = field(default_factory=dict)
    deflated_headers: dict[Family, bytes] = field(default_factory=dict)
    wanted: bool = False  # assembled only once someone asked for this format
    gzip_wanted: bool = False
    chunks: list[bytes] | None = None
    served: list[bytes] | None = None
    gz_chunks: tuple[list[bytes], int, int] | None = None  # pieces, CRC-32, size
    gz_served: tuple[list[bytes], int, int] | None = None
    # The exporter's own metrics as of the last refresh: rendering them (prometheus_client,
    # a few ms) once a second instead of once per scrape.
    own_text: bytes | None = None

    def __post_init__(self) -> None:
        self.deflated_headers = {f: deflate.segment(text) for f, text in self.headers.items()}


# Devices per cached block: a change re-joins one block (and compresses it again for gzip),
# not the whole page.
BLOCK = 128


class MetricsPage:
    """Builds the /metrics body: the devices' families (incrementally) plus telemetry.

    The devices are cut into blocks, and for every family the joined lines of each block
    are kept, with each device's length in them. A poll marks its device; the next refresh
    renders the polled families of the marked devices only (the describing families too
    where a target changed) and splices their lines into their blocks, so a poll costs one
    device's rendering, not a block's. New devices take new slots at the end; only a removal
    rebuilds everything. Besides the body, the page keeps 4 bytes per device and family.
    `refresh()` can run in the background so that scrapes find everything ready.
    """

    def __init__(
        self,
        store: ReadingStore,
        clock: Clock,
        max_age: Callable[[], float],
        telemetry: CollectorRegistry,
        served: Callable[[], frozenset[Family]] = selection.DEFAULT.served,
        organizations: Callable[[], dict[str, Savings]] = dict,
    ) -> None:
        self._store = store
        self._organizations = organizations  # their savings, served after the devices
        self._clock = clock
        self._max_age = max_age
        self._served = served  # the config's selection of families (reloadable)
        self._telemetry = telemetry
        self.guard = RenderGuard(created=clock.time())
        self._unrenderable: set[str] = set()  # devices whose description failed to render
        self._blanked: set[str] = set()  # devices left out whole for their polled lines
        self._lock = threading.Lock()
        self._epoch = -1
        self._seq = -1
        self._rendered_max_age = -1.0
        self._slot: dict[str, int] = {}
        self._blocks: dict[Family, list[bytes]] = {}
        # Per family and block, the byte length of each device's lines in the block, in slot
        # order: where to splice a device's new lines without rendering its neighbours.
        self._lengths: dict[Family, list[array[int]]] = {}
        self._states: list[DeviceState] = []
        self._dirty: set[int] = set()  # slots whose polled families need rendering
        self._described: set[int] = set()  # slots whose targets changed too
        self._stale_at: list[tuple[float, int]] = []  # heap of (moment, slot)
        # Each non-empty block also as a raw deflate segment, compressed once per change of the
        # block; a gzip scrape writes a header, the segments and one trailer (one gzip member).
        self._gz: dict[Family, list[bytes | None]] = {}
        # The page's families: the registry's kinds' when the page is made, as selected.
        every = table.device_families()
        self._classic = Format(
            {f: header(f) for f in every},
            OwnMetrics(telemetry, openmetrics=False),
            {f: header(f) for f in ORGANIZATION_FAMILIES},
            wanted=True,
        )
        self._openmetrics = Format(
            {f: openmetrics_header(f) for f in every},
            OwnMetrics(telemetry, openmetrics=True),
            {f: openmetrics_header(f) for f in ORGANIZATION_FAMILIES},
        )
        self._formats = (self._classic, self._openmetrics)
        self._select(served())

    def _select(self, served: frozenset[Family]) -> None:
        """Serve these families (of the page's): rendered from scratch by the next rebuild."""
        self._selected = served
        self._families = tuple(f for f in self._formats[0].headers if f in served)
        # Families that polls change; the others change only with the targets.
        self._target_families = tuple(f for f in self._families if f.source is Source.TARGET)
        self._polled_families = tuple(f for f in self._families if f.source is not Source.TARGET)

    def _rebuild(self, states: list[DeviceState], now: float, max_age: float) -> None:
        # Let go of the old page first, so the new one reuses its memory instead of doubling it.
        self._blocks, self._gz, self._lengths = {}, {}, {}
        self._changed()
        self._states = []
        self._slot = {}
        self._blocks = {f: [] for f in self._families}
        self._lengths = {f: [] for f in self._families}
        self._gz = {f: [] for f in self._families}
        self._stale_at = []
        self._unrenderable = set()
        self._blanked = set()
        self._dirty.clear()
        self._described.clear()
        self._append(states, now, max_age)
        self._render_marked(now, max_age)
        release_free_memory()

    def _append(self, states: list[DeviceState], now: float, max_age: float) -> None:
        """New inverters take the next slots; their blocks are rendered whole."""
        for state in states:
            i = len(self._states)
            self._states.append(state)
            self._slot[state.target.device_id] = i
            if i % BLOCK == 0:
                for family, blocks in self._blocks.items():
                    blocks.append(b"")
                    self._lengths[family].append(array("I"))
                    self._gz[family].append(None)
                self._changed()
            self._expire_later(i, None, state, now, max_age)
            self._described.add(i)
            self._dirty.add(i)

    def _render_marked(self, now: float, max_age: float) -> None:
        """Render the marked devices' lines and splice them into their blocks: the describing
        families first, then the polled ones. All or nothing per device: one whose
        description fails is left out whole until its target changes; one whose polled lines
        fail loses its description too, until its polled lines render again."""
        self._described |= {
            i for i in self._dirty if self._states[i].target.device_id in self._blanked
        }
        if self._described:
            self._render(self._described, self._target_families, self._describe)
        if self._dirty:
            failed: set[int] = set()
            self._render(
                self._dirty, self._polled_families, partial(self._poll, now, max_age, failed)
            )
            if failed:
                self._render(failed, self._target_families, lambda state: {})
        self._described.clear()
        self._dirty.clear()

    def _render(
        self,
        slots: set[int],
        families: tuple[Family, ...],
        render: Callable[[DeviceState], dict[Family, bytes]],
    ) -> None:
        # Block by block, so that only one block's new lines are held apart from the page.
        for b, group in groupby(sorted(slots), key=lambda i: i // BLOCK):
            rendered = {i % BLOCK: render(self._states[i]) for i in group}
            for family in families:
                texts = {j: lines.get(family, b"") for j, lines in rendered.items()}
                self._splice(family, b, texts)

    def _describe(self, state: DeviceState) -> dict[Family, bytes]:
        target = state.target
        rendered = self.guard.render(target, partial(described_lines, target, self._selected))
        if rendered is None:
            self._unrenderable.add(target.device_id)
            return {}
        self._unrenderable.discard(target.device_id)
        return rendered

    def _poll(
        self, now: float, max_age: float, failed: set[int], state: DeviceState
    ) -> dict[Family, bytes]:
        device_id = state.target.device_id
        if device_id in self._unrenderable:
            return {}  # counted when its description failed
        rendered = self.guard.render(
            state.target, partial(polled_lines, state, now, max_age, self._selected)
        )
        if rendered is None:
            failed.add(self._slot[device_id])
            self._blanked.add(device_id)
            return {}
        self._blanked.discard(device_id)
        return rendered

    def _splice(self, family: Family, b: int, texts: dict[int, bytes]) -> None:
        """Block `b` of `family` with the lines of the devices at these positions (in
        ascending order) replaced, or appended after the block's last device. The block and
        its lengths change together, or not at all."""
        old = memoryview(self._blocks[family][b])
        lengths = array("I", self._lengths[family][b])
        known = len(lengths)
        pieces: list[bytes | memoryview] = []
        offset = index = 0  # in the old block: bytes and devices passed
        for j, text in texts.items():
            if j < known:
                start = offset + sum(lengths[index:j])
                pieces += (old[offset:start], text)
                offset, index = start + lengths[j], j + 1
                lengths[j] = len(text)
        pieces.append(old[offset:])
        for j, text in texts.items():
            if j >= known:  # new devices: the next slots, in order
                if j != len(lengths):
                    raise RuntimeError(f"device {j} of block {b} rendered before {len(lengths)}")
                lengths.append(len(text))
                pieces.append(text)
        data = b"".join(pieces)
        self._lengths[family][b] = lengths
        self._set_block(family, b, data)

    def _set_block(self, family: Family, b: int, data: bytes) -> None:
        if self._blocks[family][b] != data:
            self._blocks[family][b] = data
            self._gz[family][b] = None  # compressed again when a gzip scrape asks
            self._changed()

    def _changed(self) -> None:
        """The blocks changed: each format's body is assembled again at the next refresh."""
        for fmt in self._formats:
            fmt.chunks = fmt.gz_chunks = None

    def _expire_later(
        self,
        i: int,
        previous: DeviceState | None,
        state: DeviceState,
        now: float,
        max_age: float,
    ) -> None:
        # One expiry entry per reading (not per poll): polls that bring nothing new add none.
        reading = state.reading
        known = previous.reading.time if previous is not None and previous.reading else None
        if reading is not None and reading.time != known and is_fresh(state, now, max_age):
            heapq.heappush(self._stale_at, (reading.time + max_age, i))
        # And one per savings period, when its figures are shown no longer: from the moment
        # it expires on (the readings' entries are due once past theirs), so entered just
        # below it for the heap's `< now`.
        figures = state.savings
        if figures is not None and (previous is None or previous.savings is not figures):
            for moment in figures.expiries():
                if moment > now:
                    heapq.heappush(self._stale_at, (math.nextafter(moment, -math.inf), i))

    def refresh(self) -> list[bytes]:
        """Bring the per-inverter part up to date; returns it as chunks of the body."""
        now = self._clock.time()
        max_age = self._max_age()
        with self._lock:
            epoch, seq, changed = self._store.changes_since(self._epoch, self._seq)
            served = self._served()
            if served != self._selected:
                self._select(served)
                changed = None  # a reload chose other families: render everything again
            if changed is None or max_age != self._rendered_max_age:
                epoch, seq, states = self._store.epoch_snapshot()
                self._rebuild(states, now, max_age)
                self._rendered_max_age = max_age
            else:
                added = []
                for state in changed:
                    i = self._slot.get(state.target.device_id, -1)
                    if i < 0:
                        added.append(state)
                        continue
                    previous = self._states[i]
                    self._expire_later(i, previous, state, now, max_age)
                    self._states[i] = state
                    self._dirty.add(i)
                    if state.target is not previous.target:
                        self._described.add(i)
                self._append(added, now, max_age)
            while self._stale_at and self._stale_at[0][0] < now:
                _, i = heapq.heappop(self._stale_at)
                # The entry may belong to a reading that a newer one has since replaced.
                state = self._states[i]
                if not is_fresh(state, now, max_age) or savings_expired(state, now):
                    self._dirty.add(i)
            self._render_marked(now, max_age)
            self._epoch, self._seq = epoch, seq
            for fmt in self._formats:
                if fmt.wanted:
                    fmt.own_text = fmt.own.text()
                    if fmt.chunks is None:
                        fmt.chunks = [
                            chunk
                            for family, blocks in self._blocks.items()
                            if family in ALWAYS_SERVED or any(blocks)
                            for chunk in (fmt.headers[family], *blocks)
                            if chunk
                        ]
                    fmt.served = fmt.chunks
            assert self._classic.chunks is not None
            return self._classic.chunks

    def update(self) -> None:
        """What the background refresher does every second: bring the page up to date and,
        once anyone has asked for gzip, its gzip pieces too; scrapes then only write."""
        self.refresh()
        for fmt in self._formats:
            if fmt.gzip_wanted:
                with self._lock:
                    if fmt.gz_chunks is None:
                        segments, crc, size = self._gz_segments(fmt)
                        fmt.gz_chunks = (deflate.pieces(segments), crc, size)
                    fmt.gz_served = fmt.gz_chunks

    def _format(self, openmetrics: bool) -> Format:
        return self._openmetrics if openmetrics else self._classic

    def _rest(self, openmetrics: bool) -> list[bytes]:
        """What follows the per-device part: the organizations' savings, the render errors and
        the exporter's own metrics (in OpenMetrics, ending in `# EOF`)."""
        fmt = self._format(openmetrics)
        own = fmt.own_text if fmt.own_text is not None else fmt.own.text()
        return [self._organization_text(openmetrics), self.guard.exposition(openmetrics), own]

    def _organization_text(self, openmetrics: bool) -> bytes:
        """The organizations' families (a few lines: rendered at every scrape)."""
        headers = self._format(openmetrics).org_headers
        lines = lines_of(organization_samples(self._organizations(), self._clock.time()))
        return b"".join(headers[f] + text for f, text in lines.items() if text)

    def chunks(self, openmetrics: bool = False) -> list[bytes]:
        """The whole exposition body as chunks, ready to be written one after another: what
        the last update rendered (at most a second old in the daemon), so that a scrape
        never renders or waits behind rendering, however busy the process is. In OpenMetrics
        1.0 if `openmetrics`, else in the classic text format."""
        fmt = self._format(openmetrics)
        fmt.wanted = True
        if fmt.served is None:
            self.refresh()
        assert fmt.served is not None
        return [*fmt.served, *self._rest(openmetrics)]

    def gzip_chunks(self, openmetrics: bool = False) -> list[bytes]:
        """The same body as one gzip stream: the per-inverter part from deflate segments kept
        per block, joined into pieces of about 1 MiB (a few writes per scrape), the small rest
        compressed now, and the trailer."""
        fmt = self._format(openmetrics)
        fmt.wanted = fmt.gzip_wanted = True
        if fmt.gz_served is None:
            self.update()
        assert fmt.gz_served is not None
        served, crc, size = fmt.gz_served
        rest = b"".join(self._rest(openmetrics))
        tail = deflate.segment(rest) + deflate.trailer(zlib.crc32(rest, crc), size + len(rest))
        return [deflate.GZIP_HEADER, *served, tail]

    def _gz_segments(self, fmt: Format) -> tuple[list[bytes], int, int]:
        """Every family's header and blocks as deflate segments, with the CRC-32 and size of
        what they hold, in the order of the plain page (lock held)."""
        segments, crc, size = [], 0, 0
        for family, blocks in self._blocks.items():
            if family not in ALWAYS_SERVED and not any(blocks):
                continue
            compressed = self._gz[family]
            segments.append(fmt.deflated_headers[family])
            crc, size = zlib.crc32(fmt.headers[family], crc), size + len(fmt.headers[family])
            for b, block in enumerate(blocks):
                if block:
                    segment = compressed[b]
                    if segment is None:
                        segment = compressed[b] = deflate.segment(block)
                    segments.append(segment)
                    crc, size = zlib.crc32(block, crc), size + len(block)
        return segments, crc, size

    def render(self) -> bytes:
        """The whole exposition body, brought up to date first (for --once and tests)."""
        self.refresh()
        return b"".join(self.chunks())

    def run_refresher(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Refresh every `interval` seconds until `stop`, so scrapes find the body ready."""
        while not stop.wait(interval):
            self.update_or_rebuild()

    def update_or_rebuild(self) -> bool:
        """`update()`, and if it fails (a bug), a page rendered from scratch next time: the
        refresher must outlive it, or the last page (and readings turning stale in it) would
        be served for ever. Whether the update succeeded."""
        try:
            self.update()
        except Exception as exc:
            log.error(
                "page update failed: the next one renders the page from scratch",
                extra=kv(reason=clean_text(f"{type(exc).__name__}: {exc}")),
            )
            with self._lock:
                self._epoch = -1  # the store's changes are then none to go by: a rebuild
            return False
        return True
