"""History as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`: every bucket
of every device, stamped at the bucket's start, with the live exporter's names and labels.

The samples of one bucket are `collector.polled_samples` of a state holding that bucket's
point (and the energy totals up to it), plus the device's descriptive `target_samples`: the
same functions that build /metrics, so names and labels cannot drift from the live exporter.

OpenMetrics wants each family's samples together and each series' timestamps ascending, so
`write_history` renders one device at a time into one spool file per family, then joins the
spool files family by family. Memory is bounded by one device's history.

Example (one bucket of one device, `--label job=x`; the value, then the bucket's start):
    podero_inverter_solar_production_watts{inverter_id="6f1",name="a",job="x"} 2310.0 1795435200
    podero_inverter_solar_energy_joules_total{inverter_id="6f1",name="a",job="x"} 1.2e+07 1795435200
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from prometheus_client.utils import floatToGoString

from exporter import metrics as m
from exporter.collector import Labels, Samples, polled_samples, target_samples
from exporter.energy import EnergyTotals, add_completed_buckets
from exporter.metrics import Family, Source
from exporter.readings import DataPoint
from exporter.store import InverterState
from exporter.targets import InverterTarget

# The device's description and its configured thresholds hold over the whole range (and the
# dashboards join on the info series and draw the thresholds); the link's status today
# (authenticated, action needed, connection and monitoring state) says nothing about the past.
DESCRIPTIVE_FAMILIES = frozenset(
    {
        m.INFO,
        m.BATTERY_LOW_THRESHOLD,
        m.GRID_EXPORT_HIGH_THRESHOLD,
        m.SOLAR_POWER_RATING,
        m.BATTERY_CAPACITY,
        m.BATTERY_CONNECTED,
    }
)
# Poll outcomes (up, last success, next poll) describe a daemon that was not running then.
HISTORY_FAMILIES: tuple[Family, ...] = tuple(
    f
    for f in m.INVERTER_FAMILIES
    if f.source in (Source.READING, Source.ENERGY)
    or f is m.DATA_TIMESTAMP
    or f in DESCRIPTIVE_FAMILIES
)
# Every label a device's samples can carry besides its configured labels (collector.py);
# a --label of one of these names would clash.
DEVICE_LABELS = frozenset(
    {
        "inverter_id",
        "name",
        "org_id",
        "user_id",
        "manufacturer",
        "model",
        "price_zone",
        "lifecycle_state",
        "status",
    }
)
EOF = b"# EOF\n"


def family_name(family: Family) -> str:
    """The OpenMetrics family name: a counter's samples carry `_total`, its family does not."""
    return family.name.removesuffix("_total") if family.type == "counter" else family.name


def _escape(value: str) -> str:
    """OpenMetrics escapes backslash, newline and double quote in label values and HELP."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def header(family: Family) -> bytes:
    name = family_name(family)
    return f"# HELP {name} {_escape(family.help)}\n# TYPE {name} {family.type}\n".encode()


def label_text(labels: Labels) -> str:
    return ",".join(f'{key}="{_escape(value)}"' for key, value in labels)


def _float(value: float) -> str:
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def descriptive_samples(target: InverterTarget) -> Samples:
    """The device's description and thresholds, as every bucket of its history carries them."""
    return {f: s for f, s in target_samples(target).items() if f in DESCRIPTIVE_FAMILIES}


def bucket_samples(
    target: InverterTarget, point: DataPoint, energy: EnergyTotals | None
) -> Samples:
    """The history samples of one bucket: its values, its time and the energy counters (the
    buckets completed before it); `descriptive_samples` adds the device's description."""
    samples = polled_samples(InverterState(target=target, reading=point, energy=energy))
    return {f: s for f, s in samples.items() if f in HISTORY_FAMILIES}


def device_history(
    target: InverterTarget,
    points: Iterable[DataPoint],
    *,
    bucket_seconds: int,
    since: float,
    energy: bool = True,
) -> Iterator[tuple[float, Samples]]:
    """(bucket start, samples) for every point with a measured value, oldest first. The
    counters start at 0 at `since` and, as live, add each bucket once it has ended."""
    described = descriptive_samples(target)
    totals = EnergyTotals(since=since) if energy else None
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
        if point.has_measurement:
            yield point.time, {**bucket_samples(target, point, totals), **described}


@dataclass
class HistoryStats:
    """What `write_history` wrote."""

    devices: int = 0
    buckets: int = 0  # buckets with a measured value, over all devices
    samples: int = 0


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
        for family in HISTORY_FAMILIES:
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
    devices: Iterable[tuple[InverterTarget, list[DataPoint]]],
    *,
    extra_labels: Labels,
    bucket_seconds: int,
    since: float,
    complete: bool,
    energy: bool = True,
) -> HistoryStats:
    """Write the OpenMetrics text of these devices' histories to `path` (replaced at the end,
    so it is never half-written); `# EOF` closes it only if the history is `complete`."""
    stats = HistoryStats()
    tmp = path.with_name(path.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix=".backfill-", dir=path.parent) as spool_dir:
        spool = _Spool(spool_dir)
        try:
            for target, points in devices:
                stats.devices += 1
                lines: dict[Family, list[str]] = {}
                # A device's series keep their labels from bucket to bucket.
                series: dict[tuple[Family, Labels], str] = {}
                for start, samples in device_history(
                    target, points, bucket_seconds=bucket_seconds, since=since, energy=energy
                ):
                    stats.buckets += 1
                    stamp = f" {start:.0f}\n"
                    for family, found in samples.items():
                        family_lines = lines.setdefault(family, [])
                        for labels, value in found:
                            prefix = series.get((family, labels))
                            if prefix is None:
                                text = label_text(labels + extra_labels)
                                prefix = series[family, labels] = f"{family.name}{{{text}}} "
                            family_lines.append(prefix + _float(value) + stamp)
                for family, family_lines in lines.items():
                    stats.samples += len(family_lines)
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
