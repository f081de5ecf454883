"""What the exporter knows about each inverter. The poller writes; the HTTP side reads snapshots."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

from exporter.energy import EnergyTotals
from exporter.readings import DataPoint
from exporter.targets import InverterTarget


@dataclass(frozen=True, slots=True)
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
    energy: EnergyTotals | None = None  # from the first poll on


class ReadingStore:
    """Thread-safe map of inverter id to its latest InverterState."""

    def __init__(self, targets: Iterable[InverterTarget] = ()) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, InverterState] = {}
        # Change tracking for readers that update incrementally: `epoch` moves when the set
        # of inverters changes; `_changed` maps inverter id to the sequence number of its last
        # change, kept in change order (oldest first).
        self._epoch = 0
        self._seq = 0
        self._changed: dict[str, int] = {}
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
                    states[target.inverter_id] = replace(old, target=target)
                else:
                    states[target.inverter_id] = old
            self._states = states
            self._epoch += 1
            self._changed.clear()

    def get(self, inverter_id: str) -> InverterState | None:
        with self._lock:
            return self._states.get(inverter_id)

    def record_success(
        self,
        inverter_id: str,
        reading: DataPoint | None,
        now: float,
        next_poll: float | None,
        energy: EnergyTotals | None = None,
    ) -> None:
        """A poll that answered; a newer reading replaces the old, no reading keeps it."""
        with self._lock:
            old = self._states.get(inverter_id)
            if old is None:  # removed by a reload while the poll was in flight
                return
            keep = old.reading
            if reading is not None and (keep is None or reading.time >= keep.time):
                keep = reading
            self._states[inverter_id] = InverterState(
                target=old.target,
                reading=keep,
                polled=True,
                up=True,
                last_poll=now,
                last_success=now,
                last_error=None,
                next_poll=next_poll,
                energy=energy or old.energy,
            )
            self._mark_changed(inverter_id)

    def record_failure(
        self,
        inverter_id: str,
        error: str,
        now: float,
        next_poll: float | None,
        energy: EnergyTotals | None = None,
    ) -> None:
        """A poll that failed: the old reading stays (staleness ages it out), `up` drops."""
        with self._lock:
            old = self._states.get(inverter_id)
            if old is None:
                return
            self._states[inverter_id] = InverterState(
                target=old.target,
                reading=old.reading,
                polled=True,
                up=False,
                last_poll=now,
                last_success=old.last_success,
                last_error=error,
                next_poll=next_poll,
                energy=old.energy or energy,
            )
            self._mark_changed(inverter_id)

    def _mark_changed(self, inverter_id: str) -> None:
        self._seq += 1
        self._changed.pop(inverter_id, None)
        self._changed[inverter_id] = self._seq

    def snapshot(self) -> list[InverterState]:
        """Every inverter's current state, in a stable order."""
        with self._lock:
            return list(self._states.values())

    def changes_since(self, epoch: int, seq: int) -> tuple[int, int, list[InverterState] | None]:
        """(epoch, seq, states changed after `seq`), or None for the states when the set of
        inverters changed since `epoch` (the reader must start again from `snapshot()`)."""
        with self._lock:
            if epoch != self._epoch:
                return self._epoch, self._seq, None
            changed = []
            for inverter_id in reversed(self._changed):
                if self._changed[inverter_id] <= seq:
                    break
                changed.append(self._states[inverter_id])
            return self._epoch, self._seq, changed

    def epoch_snapshot(self) -> tuple[int, int, list[InverterState]]:
        """(epoch, seq, every state): a consistent starting point for `changes_since`."""
        with self._lock:
            return self._epoch, self._seq, list(self._states.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)
