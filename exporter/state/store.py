"""What the exporter knows about each inverter. The poller writes; the HTTP side reads snapshots."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

from exporter.state.energy import EnergyTotals
from exporter.state.readings import DataPoint
from exporter.state.savings import PriceUnits, Savings
from exporter.state.targets import DeviceTarget


@dataclass(frozen=True, slots=True)
class DeviceState:
    """The latest knowledge about one inverter; replaced, never mutated."""

    target: DeviceTarget
    reading: DataPoint | None = None
    polled: bool = False
    up: bool = False
    last_poll: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    next_poll: float | None = None
    energy: EnergyTotals | None = None  # from the first poll on
    price: PriceUnits | None = None  # what its price is counted in (data metadata, fallback)
    savings: Savings | None = None  # from the savings endpoint, on its own cadence


class ReadingStore:
    """Thread-safe map of inverter id to its latest DeviceState."""

    def __init__(self, targets: Iterable[DeviceTarget] = ()) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, DeviceState] = {}
        # Change tracking for readers that update incrementally: `epoch` moves when the set
        # of inverters changes; `_changed` maps inverter id to the sequence number of its last
        # change, kept in change order (oldest first).
        self._epoch = 0
        self._seq = 0
        self._changed: dict[str, int] = {}
        # Where each inverter stands in the page (the order it was added in).
        self._position: dict[str, int] = {}
        self._next_position = 0
        self.set_targets(targets)

    def set_targets(self, targets: Iterable[DeviceTarget]) -> None:
        """Track exactly these inverters: new ones start empty, removed ones disappear."""
        targets = list(targets)
        wanted = {t.device_id for t in targets}
        with self._lock:
            removed = [i for i in self._states if i not in wanted]
        self.apply_targets(targets, removed)

    def apply_targets(self, changed: Iterable[DeviceTarget], removed: Iterable[str]) -> None:
        """New or changed targets (new ones start empty, changed ones keep their data unless
        their kind changed) and
        removed ones. Only a removal starts readers over (a new epoch): additions and changes
        are ordinary changes, so a growing fleet is rendered incrementally."""
        with self._lock:
            gone = [i for i in removed if i in self._states]
            for device_id in gone:
                del self._states[device_id]
                del self._position[device_id]
            if gone:
                self._epoch += 1
                self._changed.clear()
            for target in changed:
                old = self._states.get(target.device_id)
                if old is None:
                    self._states[target.device_id] = DeviceState(target=target)
                    self._position[target.device_id] = self._next_position
                    self._next_position += 1
                elif old.target.kind != target.kind:
                    # Another kind of device under the same id: its data is not this kind's.
                    self._states[target.device_id] = DeviceState(target=target)
                elif old.target != target:
                    self._states[target.device_id] = replace(old, target=target)
                else:
                    continue
                self._mark_changed(target.device_id)

    def get(self, device_id: str) -> DeviceState | None:
        with self._lock:
            return self._states.get(device_id)

    def record_success(
        self,
        device_id: str,
        reading: DataPoint | None,
        now: float,
        next_poll: float | None,
        energy: EnergyTotals | None = None,
        kind: str | None = None,
        price: PriceUnits | None = None,
    ) -> None:
        """A poll that answered; a newer reading replaces the old, no reading keeps it (and
        no price unit the old one). `kind`: the kind polled; a device that became another
        kind meanwhile keeps none."""
        with self._lock:
            old = self._states.get(device_id)
            # Removed by a reload while the poll was in flight, or now another kind.
            if old is None or (kind is not None and old.target.kind != kind):
                return
            keep = old.reading
            if reading is not None and (keep is None or reading.time >= keep.time):
                keep = reading
            self._states[device_id] = replace(
                old,
                reading=keep,
                polled=True,
                up=True,
                last_poll=now,
                last_success=now,
                last_error=None,
                next_poll=next_poll,
                energy=energy or old.energy,
                price=price or old.price,
            )
            self._mark_changed(device_id)

    def record_failure(
        self,
        device_id: str,
        error: str,
        now: float,
        next_poll: float | None,
        energy: EnergyTotals | None = None,
        kind: str | None = None,
    ) -> None:
        """A poll that failed: the old reading stays (staleness ages it out), `up` drops."""
        with self._lock:
            old = self._states.get(device_id)
            if old is None or (kind is not None and old.target.kind != kind):
                return
            self._states[device_id] = replace(
                old,
                polled=True,
                up=False,
                last_poll=now,
                last_error=error,
                next_poll=next_poll,
                energy=old.energy or energy,
            )
            self._mark_changed(device_id)

    def record_savings(self, device_id: str, kind: str, savings: Savings | None) -> None:
        """A savings fetch of a device of `kind` (ignored if it is gone or another kind);
        None: the device has no savings (any more)."""
        with self._lock:
            old = self._states.get(device_id)
            if old is None or old.target.kind != kind or old.savings == savings:
                return
            self._states[device_id] = replace(old, savings=savings)
            self._mark_changed(device_id)

    def _mark_changed(self, device_id: str) -> None:
        self._seq += 1
        self._changed.pop(device_id, None)
        self._changed[device_id] = self._seq

    def snapshot(self) -> list[DeviceState]:
        """Every inverter's current state, in a stable order."""
        with self._lock:
            return list(self._states.values())

    def changes_since(self, epoch: int, seq: int) -> tuple[int, int, list[DeviceState] | None]:
        """(epoch, seq, states changed after `seq`), or None for the states when the set of
        inverters changed since `epoch` (the reader must start again from `snapshot()`)."""
        with self._lock:
            if epoch != self._epoch:
                return self._epoch, self._seq, None
            changed = []
            for device_id in reversed(self._changed):
                if self._changed[device_id] <= seq:
                    break
                changed.append(self._states[device_id])
            # In page order, so that new inverters are appended in the order they were added.
            changed.sort(key=lambda state: self._position[state.target.device_id])
            return self._epoch, self._seq, changed

    def epoch_snapshot(self) -> tuple[int, int, list[DeviceState]]:
        """(epoch, seq, every state): a consistent starting point for `changes_since`."""
        with self._lock:
            return self._epoch, self._seq, list(self._states.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)
