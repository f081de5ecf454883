"""The /metrics body, rendered when data changes rather than on every scrape.

Each inverter state renders its own lines once (states are immutable); the page joins them
per family and keeps the result until the store changes or a reading turns stale. The
samples are those of `collector.current_samples`, so the output equals the reference
prometheus_client rendering of `InverterCollector`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.utils import floatToGoString

from exporter.clock import Clock
from exporter.collector import FAMILIES, FAMILY_BY_NAME, inverter_samples, is_fresh
from exporter.store import InverterState, ReadingStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HEADERS = {f.name: f"# HELP {f.name} {f.help}\n# TYPE {f.name} gauge\n" for f in FAMILIES}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _float(value: float) -> str:
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _label_text(labels: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f'{key}="{_escape(value)}"' for key, value in labels)


def state_lines(state: InverterState) -> dict[str, str]:
    """This state's exposition lines by family name, rendered once per state object."""
    lines: dict[str, str] | None = state._render_cache.get("lines")
    if lines is None:
        lines = {}
        for name, samples in inverter_samples(state).items():
            lines[name] = "".join(
                f"{name}{{{_label_text(labels)}}} {_float(value)}\n" for labels, value in samples
            )
        state._render_cache["lines"] = lines
    return lines


def render_inverters(states: list[InverterState], now: float, max_age: float) -> str:
    """The per-inverter families as text format 0.0.4, value series only where fresh."""
    per_family: dict[str, list[str]] = {f.name: [_HEADERS[f.name]] for f in FAMILIES}
    for state in states:
        fresh = is_fresh(state, now, max_age)
        for name, text in state_lines(state).items():
            if fresh or not FAMILY_BY_NAME[name].is_value:
                per_family[name].append(text)
    return "".join("".join(parts) for parts in per_family.values())


def _stale_at(states: list[InverterState], now: float, max_age: float) -> float:
    """The next moment at which a fresh reading turns stale (the cached body expires)."""
    soonest = float("inf")
    for state in states:
        if state.reading is not None and is_fresh(state, now, max_age):
            soonest = min(soonest, state.reading.time + max_age)
    return soonest


class MetricsPage:
    """Builds and caches the full /metrics body: inverter families plus process telemetry."""

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
        self._key: tuple[int, float] | None = None
        self._valid_until = float("-inf")
        self._body = ""

    def inverter_text(self) -> str:
        """The per-inverter part, rebuilt only when something it shows has changed."""
        now = self._clock.time()
        with self._lock:
            version, states = self._store.versioned_snapshot()
            max_age = self._max_age()
            key = (version, max_age)
            if key != self._key or now >= self._valid_until:
                self._body = render_inverters(states, now, max_age)
                self._key = key
                self._valid_until = _stale_at(states, now, max_age)
            return self._body

    def render(self) -> bytes:
        """The whole exposition body."""
        return self.inverter_text().encode() + generate_latest(self._telemetry)
