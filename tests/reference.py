"""The reference rendering: the per-inverter samples through prometheus_client's own
collector machinery, against which the exporter's cached text renderer is checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.base.clock import Clock
from exporter.kinds import selection
from exporter.kinds.family import Family
from exporter.kinds.table import device_families
from exporter.render.collector import Sample, current_samples
from exporter.render.exposition import ALWAYS_SERVED, header, lines_of
from exporter.state.store import DeviceState, ReadingStore


class InverterCollector(Collector):
    """prometheus_client collector over a store snapshot."""

    def __init__(
        self,
        store: ReadingStore,
        clock: Clock,
        max_age: Callable[[], float],
        served: frozenset[Family] | None = None,
    ) -> None:
        self._served = served  # the families to serve (default: the default selection)
        self._store = store
        self._clock = clock
        self._max_age = max_age

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = self._clock.time()
        max_age = self._max_age()
        served = self._served if self._served is not None else selection.DEFAULT.served()
        families = [f for f in device_families() if f in served]
        by_family: dict[Family, list[Sample]] = {family: [] for family in families}
        for state in self._store.snapshot():
            for family, samples in current_samples(state, now, max_age).items():
                if family in served:
                    by_family[family].extend(samples)
        for family in families:
            if family not in ALWAYS_SERVED and not by_family[family]:
                continue  # a kind's own families are served once they have samples
            metric: GaugeMetricFamily | CounterMetricFamily
            if family.type == "counter":
                metric = CounterMetricFamily(family.name, family.help, labels=None)
            else:
                metric = GaugeMetricFamily(family.name, family.help, labels=None)
            for labels, value in by_family[family]:
                metric.add_sample(family.name, dict(labels), value)
            yield metric


def render_inverters(
    states: list[DeviceState],
    now: float,
    max_age: float,
    served: frozenset[Family] | None = None,
) -> bytes:
    """The per-inverter families as text, rendered whole (no blocks, no caching)."""
    served = served if served is not None else selection.DEFAULT.served()
    per_family = {f: [header(f)] for f in device_families() if f in served}
    for state in states:
        for family, text in lines_of(current_samples(state, now, max_age), served).items():
            per_family[family].append(text)
    return b"".join(
        b"".join(parts)
        for family, parts in per_family.items()
        if family in ALWAYS_SERVED or len(parts) > 1
    )
