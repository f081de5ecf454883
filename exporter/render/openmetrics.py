"""History as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`: every bucket
of every device, stamped at the bucket's start, with the live exporter's names and labels.

The samples of one bucket are `collector.polled_samples` of a state holding that bucket's
point (and, for an inverter, the energy totals up to it), plus the device's descriptive
`target_samples`: the same functions that build /metrics for every kind (inverters, heat
pumps, electric vehicles, wallboxes), so names and labels cannot drift from the live exporter,
and a new row of the metrics table comes along unless `in_history` says it is live-only.
A wallbox has no data series: it carries its description at every bucket of the range.

OpenMetrics wants each family's samples together and each series' timestamps ascending, so
`write_history` renders one device at a time into one spool file per family, then joins the
spool files family by family. Memory is bounded by one device's history.

Example (one bucket of two devices, without `--label`s; the value, then the bucket's start):
    podero_inverter_solar_production_watts{device_id="6f1",name="a",user_id="u"} 2310.0 1795435200
    podero_inverter_solar_energy_joules_total{device_id="6f1",name="a",user_id="u"} 1.2e7 1795435200
    podero_heat_pump_inlet_temperature_celsius{device_id="9c2",name="b",user_id="u"} 41.5 1795435200
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from exporter.kinds import common, registry, table
from exporter.kinds.family import Family, Source
from exporter.render.collector import (
    Labels,
    Samples,
    escape,
    float_text,
    label_text,
    polled_samples,
    target_samples,
)
from exporter.state.energy import EnergyTotals, add_completed_buckets
from exporter.state.readings import DataPoint
from exporter.state.store import DeviceState
from exporter.state.targets import DeviceTarget


# Today's state of a device's manufacturer link and of its optimisation (authenticated, open
# actions, smart optimisation on, its score, state sets such as an inverter's connection
# status) says nothing about last month; the description and the configured thresholds hold
# over the whole range (the dashboards join on the info series and draw the thresholds).
def is_live_state(family: Family) -> bool:
    return bool(family.states) or (family in common.DESCRIBED and family is not common.INFO)


def in_history(family: Family) -> bool:
    """Whether a device family belongs in backfilled history: the values of a data point, its
    time, the energy counters and the description do; poll outcomes (up, last success, next
    poll: a daemon that was not running then) and live state (`is_live_state`) do not."""
    if family.source is Source.POLL:
        return family.field == "time"  # the data point's timestamp, of any kind
    if family.source is Source.TARGET:
        return not is_live_state(family)
    return family.source in (Source.READING, Source.ENERGY)


def history_families() -> tuple[Family, ...]:
    """Every device family of the table that history holds, in the order /metrics serves them."""
    return tuple(f for f in table.device_families() if in_history(f))


EOF = b"# EOF\n"


def family_name(family: Family) -> str:
    """The OpenMetrics family name: a counter's samples carry `_total`, its family does not."""
    return family.name.removesuffix("_total") if family.type == "counter" else family.name


def header(family: Family) -> bytes:
    """The family's HELP, TYPE and (where its name ends in a base unit) UNIT lines."""
    name = family_name(family)
    unit = f"# UNIT {name} {family.unit}\n" if family.unit else ""
    return f"# HELP {name} {escape(family.help)}\n# TYPE {name} {family.type}\n{unit}".encode()


def descriptive_samples(target: DeviceTarget) -> Samples:
    """The device's description and thresholds, as every bucket of its history carries them."""
    return {f: s for f, s in target_samples(target).items() if in_history(f)}


def bucket_samples(target: DeviceTarget, point: DataPoint, energy: EnergyTotals | None) -> Samples:
    """The history samples of one bucket: its values, its time and (inverters) the energy
    counters of the buckets completed before it; `descriptive_samples` adds the device's
    description."""
    samples = polled_samples(DeviceState(target=target, reading=point, energy=energy))
    return {f: s for f, s in samples.items() if in_history(f)}


def device_history(
    target: DeviceTarget,
    points: Iterable[DataPoint],
    *,
    bucket_seconds: int,
    since: float,
    until: float,
    energy: bool = True,
) -> Iterator[tuple[float, Samples]]:
    """(bucket start, samples) for every point with a measured value, oldest first. An
    inverter's counters start at 0 at `since` and, as live, add each bucket once it has
    ended. A device without a data series (a wallbox), which the live exporter describes at
    every scrape, is described at every bucket from `since` to `until`."""
    described = descriptive_samples(target)
    if not target.polled:
        start = since
        while start < until:
            yield start, described
            start += bucket_seconds
        return
    totals = EnergyTotals(since=since) if energy and registry.get(target.kind).energy else None
    previous: DataPoint | None = None
    for point in sorted(points, key=lambda p: p.time):
        if totals is not None and previous is not None:
            # Only `previous` is passed, so a horizon reaching just back to it suffices.
            totals = add_completed_buckets(
                totals,
                [previous],
                now=point.time,
                bucket_seconds=bucket_seconds,
                horizon=point.time - previous.time + bucket_seconds,
            )
        previous = point
        if point.has_measurement(target.kind):
            yield point.time, {**bucket_samples(target, point, totals), **described}


@dataclass
class HistoryStats:
    """What `write_history` wrote."""

    devices: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # devices by kind
    buckets: int = 0  # buckets with a measured value, over all devices with a data series


class _Spool:
    """One temporary file per family, holding its lines device by device."""

    def __init__(self, directory: str) -> None:
        self._dir = directory
        self._files: dict[Family, IO[str]] = {}

    def write(self, family: Family, text: str) -> None:
        spool = self._files.get(family)
        if spool is None:
            path = os.path.join(self._dir, f"{len(self._files):02d}.om")
            spool = self._files[family] = open(path, "w+", encoding="utf-8")  # noqa: SIM115
        spool.write(text)

    def join_into(self, out: IO[bytes]) -> None:
        # The table's order; a family the table does not list (yet) goes last.
        ordered = history_families()
        for family in (*ordered, *(f for f in self._files if f not in ordered)):
            spool = self._files.get(family)
            if spool is None:
                continue  # no sample at all: no header either
            out.write(header(family))
            spool.flush()
            with open(spool.name, "rb") as lines:
                shutil.copyfileobj(lines, out, 1 << 20)

    def close(self) -> None:
        for spool in self._files.values():
            spool.close()


def write_history(
    path: Path,
    devices: Iterable[tuple[DeviceTarget, list[DataPoint]]],
    *,
    extra_labels: Labels,
    bucket_seconds: int,
    since: float,
    until: float,
    complete: bool,
    energy: bool = True,
    served: frozenset[Family] | None = None,
) -> HistoryStats:
    """Write the OpenMetrics text of these devices' histories to `path` (replaced at the end,
    so it is never half-written); `# EOF` closes it only if the history is `complete`. Only
    the `served` families (the config's `metrics:` selection), if given."""
    stats = HistoryStats()
    tmp = path.with_name(path.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix=".backfill-", dir=path.parent) as spool_dir:
        spool = _Spool(spool_dir)
        try:
            for target, points in devices:
                stats.devices += 1
                stats.kinds[target.kind] += 1
                lines: dict[Family, list[str]] = {}
                # A device's series keep their labels from bucket to bucket.
                series: dict[tuple[Family, Labels], str] = {}
                for start, samples in device_history(
                    target,
                    points,
                    bucket_seconds=bucket_seconds,
                    since=since,
                    until=until,
                    energy=energy,
                ):
                    if target.polled:  # a wallbox's buckets hold no data
                        stats.buckets += 1
                    stamp = f" {start:.0f}\n"
                    for family, found in samples.items():
                        if served is not None and family not in served:
                            continue
                        family_lines = lines.setdefault(family, [])
                        for labels, value in found:
                            prefix = series.get((family, labels))
                            if prefix is None:
                                text = label_text(labels + extra_labels)
                                prefix = series[family, labels] = f"{family.name}{{{text}}} "
                            family_lines.append(prefix + float_text(value) + stamp)
                for family, family_lines in lines.items():
                    spool.write(family, "".join(family_lines))
            with open(tmp, "wb") as out:
                spool.join_into(out)
                if complete:
                    out.write(EOF)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:  # Ctrl-C included: leave the previous output, not a torn one
            tmp.unlink(missing_ok=True)
            raise
        finally:
            spool.close()
    os.replace(tmp, path)
    return stats
