"""What the exporter knows about each inverter. The poller writes; the HTTP side reads snapshots."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from exporter.config import Config, InverterConfig
from exporter.readings import DataPoint


@dataclass(frozen=True)
class InverterTarget:
    """One inverter to poll and how it is labelled; thresholds already merged with defaults."""

    inverter_id: str
    org_id: str
    user_id: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    battery_low_ratio: float | None = None
    grid_export_high_watts: float | None = None

    @classmethod
    def from_config(cls, inverter: InverterConfig, config: Config) -> InverterTarget:
        thresholds = inverter.thresholds.over(config.thresholds)
        low = thresholds.battery_low_percent
        return cls(
            inverter_id=inverter.inverter_id,
            org_id=inverter.org_id,
            user_id=inverter.user_id,
            name=inverter.display_name,
            labels=tuple(sorted(inverter.labels.items())),
            battery_low_ratio=None if low is None else low / 100.0,
            grid_export_high_watts=thresholds.grid_export_high_watts,
        )


def targets_from_config(config: Config) -> list[InverterTarget]:
    """The inverters this replica polls: the configured ones in its shard."""
    return [
        InverterTarget.from_config(inverter, config)
        for inverter in config.inverters
        if config.shard.owns(inverter.inverter_id)
    ]


@dataclass(frozen=True)
class InverterState:
    """The latest knowledge about one inverter; replaced, never mutated."""

    target: InverterTarget
    reading: DataPoint | None = None
    polled: bool = False
    up: bool = False
    last_poll: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    next_poll: float | None = None
    # Filled lazily by the exposition, once per state object (states are immutable).
    _render_cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class ReadingStore:
    """Thread-safe map of inverter id to its latest InverterState."""

    def __init__(self, targets: Iterable[InverterTarget] = ()) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, InverterState] = {}
        self._version = 0
        self.set_targets(targets)

    def set_targets(self, targets: Iterable[InverterTarget]) -> None:
        """Track exactly these inverters: new ones start empty, removed ones disappear."""
        with self._lock:
            states: dict[str, InverterState] = {}
            for target in targets:
                old = self._states.get(target.inverter_id)
                if old is None:
                    states[target.inverter_id] = InverterState(target=target)
                elif old.target != target:
                    states[target.inverter_id] = replace(old, target=target, _render_cache={})
                else:
                    states[target.inverter_id] = old
            self._states = states
            self._version += 1

    def get(self, inverter_id: str) -> InverterState | None:
        with self._lock:
            return self._states.get(inverter_id)

    def record_success(
        self, inverter_id: str, reading: DataPoint | None, now: float, next_poll: float | None
    ) -> None:
        """A poll that answered; a newer reading replaces the old, no reading keeps it."""
        with self._lock:
            old = self._states.get(inverter_id)
            if old is None:  # removed by a reload while the poll was in flight
                return
            keep = old.reading
            if reading is not None and (keep is None or reading.time >= keep.time):
                keep = reading
            self._version += 1
            self._states[inverter_id] = InverterState(
                target=old.target,
                reading=keep,
                polled=True,
                up=True,
                last_poll=now,
                last_success=now,
                last_error=None,
                next_poll=next_poll,
            )

    def record_failure(
        self, inverter_id: str, error: str, now: float, next_poll: float | None
    ) -> None:
        """A poll that failed: the old reading stays (staleness ages it out), `up` drops."""
        with self._lock:
            old = self._states.get(inverter_id)
            if old is None:
                return
            self._version += 1
            self._states[inverter_id] = InverterState(
                target=old.target,
                reading=old.reading,
                polled=True,
                up=False,
                last_poll=now,
                last_success=old.last_success,
                last_error=error,
                next_poll=next_poll,
            )

    def snapshot(self) -> list[InverterState]:
        """Every inverter's current state, in a stable order."""
        with self._lock:
            return list(self._states.values())

    def versioned_snapshot(self) -> tuple[int, list[InverterState]]:
        """The snapshot and a number that changes whenever any state changes."""
        with self._lock:
            return self._version, list(self._states.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)
