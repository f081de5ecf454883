"""Which per-device families the exporter serves: every family belongs to a group, and the
config's `metrics:` block enables or disables groups or single families beyond the defaults
(node_exporter's `--collector.*`, kube-state-metrics' allow and deny lists), reloadable.

    metrics:
      enable: [status]                            # connection and monitoring state sets
      disable: [podero_inverter_battery_charge_energy_joules_total]
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.kinds import common, table
from exporter.kinds.family import Family

# Every alert and dashboard selects or joins on these: never left out.
REQUIRED = (common.UP, common.INFO)

GROUPS = {
    "health": "up, info, the data timestamp, authentication, open actions",
    "readings": "each kind's measured values (power, charge, temperatures, vehicle state)",
    "price": "the energy price of each data point, and its currency and unit (info series)",
    "consumption": "estimated and unoptimised consumption (inverters' off by default)",
    "energy": "the inverters' energy counters",
    "thresholds": "the configured alert thresholds (only where configured)",
    "optimization": "smart optimisation active and the optimisation score (off by default)",
    "savings": "what the optimisation saved today and this month, consumption, currency",
    "schedule": "when each device was last polled (and its savings fetched) with success, "
    "and when it is next polled (off by default)",
    "status": "connection and monitoring status state sets (off by default)",
    "inventory": "rated power, battery capacity and battery connected (off by default)",
}


def groups() -> dict[str, tuple[Family, ...]]:
    """Each group's families, in the order they are served (the kinds' own groups too)."""
    found: dict[str, list[Family]] = {name: [] for name in GROUPS}
    for family in table.device_families():
        found.setdefault(family.group, []).append(family)
    return {name: tuple(families) for name, families in found.items()}


def resolve(entry: str) -> tuple[Family, ...]:
    """The families a `metrics:` entry names: a group or one family (ValueError otherwise)."""
    by_group = groups()
    if entry in by_group:
        return by_group[entry]
    for family in table.device_families():
        if entry in (family.name, family.name.removesuffix("_total")):
            return (family,)
    raise ValueError(
        f"{entry[:120]!r} is neither a group ({', '.join(by_group)}) nor a per-device "
        "family the exporter serves (see README, Metrics)"
    )


def check_disable(entry: str) -> None:
    """Refuse to leave out a family every alert and dashboard needs."""
    for family in resolve(entry):
        if family in REQUIRED:
            raise ValueError(
                f"{entry!r} would leave out {family.name}, which every alert and dashboard "
                "joins on: it is always served"
            )


@dataclass(frozen=True)
class Selection:
    """The config's choice: groups or families to add to the defaults, and to leave out."""

    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()

    def served(self) -> frozenset[Family]:
        """The per-device families to serve: the defaults, plus what is enabled, minus what
        is disabled (a family both enabled by its group and disabled by name is left out)."""
        chosen = {f for f in table.device_families() if f.default}
        for entry in self.enable:
            chosen.update(resolve(entry))
        for entry in self.disable:
            chosen.difference_update(f for f in resolve(entry) if f not in REQUIRED)
        return frozenset(chosen)


DEFAULT = Selection()
