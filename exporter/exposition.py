"""The /metrics body, rendered when data changes rather than on every scrape.

The page keeps, for every family, one slot per inverter (rendered when that inverter's state
changes); a scrape updates only the slots of inverters that
changed since the previous scrape (or whose reading turned stale) and joins the slots.
The samples are those of `collector.current_samples`, so the output equals the reference
prometheus_client rendering of `InverterCollector` (a test holds them together).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Collection
from functools import lru_cache

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.utils import floatToGoString

from exporter.clock import Clock
from exporter.collector import FAMILIES, TARGET_FAMILIES, Labels, inverter_samples, is_fresh
from exporter.memory import release_free_memory
from exporter.store import InverterState, ReadingStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HEADERS = {f.name: f"# HELP {f.name} {f.help}\n# TYPE {f.name} gauge\n".encode() for f in FAMILIES}
_VALUE_FAMILIES = frozenset(f.name for f in FAMILIES if f.is_value)
# Families that polls change; the others (TARGET_FAMILIES) change only with the targets.
_POLLED_FAMILIES = tuple(f.name for f in FAMILIES if f.name not in TARGET_FAMILIES)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _float(value: float) -> str:
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


@lru_cache(maxsize=65536)
def _label_text(labels: Labels) -> str:
    return ",".join(f'{key}="{_escape(value)}"' for key, value in labels)


def state_lines(state: InverterState, families: Collection[str] | None = None) -> dict[str, bytes]:
    """This state's exposition lines by family name (only `families`, if given)."""
    return {
        name: "".join(
            f"{name}{{{_label_text(labels)}}} {_float(value)}\n" for labels, value in samples
        ).encode()
        for name, samples in inverter_samples(state).items()
        if families is None or name in families
    }


def _visible(
    state: InverterState, now: float, max_age: float, families: Collection[str] | None = None
) -> dict[str, bytes]:
    lines = state_lines(state, families)
    if is_fresh(state, now, max_age):
        return lines
    return {name: text for name, text in lines.items() if name not in _VALUE_FAMILIES}


def render_inverters(states: list[InverterState], now: float, max_age: float) -> bytes:
    """The per-inverter families as text format 0.0.4, value series only where fresh."""
    per_family: dict[str, list[bytes]] = {f.name: [_HEADERS[f.name]] for f in FAMILIES}
    for state in states:
        for name, text in _visible(state, now, max_age).items():
            per_family[name].append(text)
    return b"".join(b"".join(parts) for parts in per_family.values())


# Inverters per cached block: a change re-joins one block per family, not the whole family.
BLOCK = 256


class MetricsPage:
    """Builds the /metrics body: inverter families (incrementally) plus telemetry.

    Each polled family's lines are kept as one slot per inverter, grouped in blocks whose
    joined bytes are cached; an update re-renders only changed inverters and re-joins only
    their blocks. Families that describe the targets are kept as joined blocks only: they
    change only with the set of targets, which rebuilds everything. `refresh()` can run in
    the background so that scrapes find everything ready.
    """

    def __init__(
        self,
        store: ReadingStore,
        clock: Clock,
        max_age: Callable[[], float],
        telemetry: CollectorRegistry,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_age = max_age
        self._telemetry = telemetry
        self._lock = threading.Lock()
        self._epoch = -1
        self._seq = -1
        self._rendered_max_age = -1.0
        self._slot: dict[str, int] = {}
        self._slots: dict[str, list[bytes]] = {}
        self._blocks: dict[str, list[bytes | None]] = {}
        self._states: list[InverterState] = []
        self._stale_at: list[tuple[float, int]] = []  # heap of (moment, slot)
        self._chunks: list[bytes] | None = None

    def _rebuild(self, states: list[InverterState], now: float, max_age: float) -> None:
        # Let go of the old page first, so the new one reuses its memory instead of doubling it.
        self._slots, self._blocks, self._chunks = {}, {}, None
        n, blocks = len(states), (len(states) + BLOCK - 1) // BLOCK
        self._states = list(states)
        self._slot = {s.target.inverter_id: i for i, s in enumerate(states)}
        self._slots = {name: [b""] * n for name in _POLLED_FAMILIES}
        self._blocks = {f.name: [None] * blocks for f in FAMILIES}
        self._stale_at = []
        described: dict[str, list[list[bytes]]] = {
            n: [[] for _ in range(blocks)] for n in TARGET_FAMILIES
        }
        for i, state in enumerate(states):
            self._fill(i, state, now, max_age)
            for name, text in state_lines(state, TARGET_FAMILIES).items():
                described[name][i // BLOCK].append(text)
        for name, parts in described.items():
            self._blocks[name] = [b"".join(p) for p in parts]
        del described
        release_free_memory()

    def _set(self, name: str, i: int, text: bytes) -> None:
        slots = self._slots[name]
        if slots[i] != text:
            slots[i] = text
            self._blocks[name][i // BLOCK] = None
            self._chunks = None

    def _fill(self, i: int, state: InverterState, now: float, max_age: float) -> None:
        previous = self._states[i]
        self._states[i] = state
        visible = _visible(state, now, max_age, _POLLED_FAMILIES)
        for name in _POLLED_FAMILIES:
            self._set(name, i, visible.get(name, b""))
        reading = state.reading
        known = previous.reading.time if previous is not state and previous.reading else None
        # One expiry entry per reading (not per poll): polls that bring nothing new add none.
        if reading is not None and reading.time != known and is_fresh(state, now, max_age):
            heapq.heappush(self._stale_at, (reading.time + max_age, i))

    def refresh(self) -> list[bytes]:
        """Bring the per-inverter part up to date; returns it as chunks of the body."""
        now = self._clock.time()
        max_age = self._max_age()
        with self._lock:
            epoch, seq, changed = self._store.changes_since(self._epoch, self._seq)
            if changed is None or max_age != self._rendered_max_age:
                epoch, seq, states = self._store.epoch_snapshot()
                self._rebuild(states, now, max_age)
                self._rendered_max_age = max_age
                self._chunks = None
            else:
                for state in changed:
                    self._fill(self._slot[state.target.inverter_id], state, now, max_age)
            while self._stale_at and self._stale_at[0][0] < now:
                _, i = heapq.heappop(self._stale_at)
                # The entry may belong to a reading that a newer one has since replaced.
                if not is_fresh(self._states[i], now, max_age):
                    for name in _VALUE_FAMILIES:
                        self._set(name, i, b"")
            self._epoch, self._seq = epoch, seq
            if self._chunks is None:
                self._chunks = self._join()
            return self._chunks

    def _join(self) -> list[bytes]:
        chunks: list[bytes] = []
        for name, blocks in self._blocks.items():
            chunks.append(_HEADERS[name])
            for b, blob in enumerate(blocks):
                if blob is None:  # only polled families' blocks are ever invalidated
                    blob = blocks[b] = b"".join(self._slots[name][b * BLOCK : (b + 1) * BLOCK])
                if blob:
                    chunks.append(blob)
        return chunks

    def inverter_bytes(self) -> bytes:
        """The per-inverter part as one bytes object."""
        return b"".join(self.refresh())

    def chunks(self) -> list[bytes]:
        """The whole exposition body as chunks, ready to be written one after another."""
        return [*self.refresh(), generate_latest(self._telemetry)]

    def render(self) -> bytes:
        """The whole exposition body."""
        return b"".join(self.chunks())

    def run_refresher(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Refresh every `interval` seconds until `stop`, so scrapes find the body ready."""
        while not stop.wait(interval):
            self.refresh()
