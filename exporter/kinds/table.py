"""The table of every metric family the exporter serves: the families every kind shares, each
kind's own, and the exporter's own. The collector, the exposition, the status page, backfill,
the dashboards and the tests read names from here; the labels the exporter sets, which
configuration may never set again, are derived from it."""

from __future__ import annotations

from exporter.kinds import common, registry, savings
from exporter.kinds.family import IDENTITY, Family, Source
from exporter.kinds.own import SELF_FAMILIES

# Labels Prometheus sets on every scraped series.
TARGET_LABELS = ("job", "instance")


def device_families() -> tuple[Family, ...]:
    """Every per-device family in the order they are served: each kind's readings and
    counters, then the shared ones (polls, savings and units, descriptions), then what
    describes the devices."""
    kinds = registry.kinds()
    own = tuple(f for k in kinds for f in (*k.readings, *k.energy))
    described = tuple(f for k in kinds for f in (*k.thresholds, *k.inventory))
    return (*own, *common.POLLED, *savings.DEVICE_FAMILIES, *common.DESCRIBED, *described)


def families() -> tuple[Family, ...]:
    """Every family: the devices', the organizations' savings, the exporter's own last."""
    return (*device_families(), *savings.ORGANIZATION_FAMILIES, *SELF_FAMILIES)


def by_name(name: str) -> Family:
    """The family of this exposition name (KeyError for a name the exporter does not serve):
    dashboards, rules and tests spell names through this, so a renamed family fails loudly."""
    for family in families():
        if family.name == name:
            return family
    raise KeyError(name)


def info_labels() -> tuple[str, ...]:
    """The labels of podero_device_info before custom ones: identity, kind, org, and every
    kind's inventory labels (manufacturer, model, ...)."""
    described = dict.fromkeys(label for k in registry.kinds() for label in k.info)
    return (*common.INFO.label_names, *common.INFO_LABELS, *described)


def device_labels() -> dict[str, str]:
    """Every label the exporter sets on a per-device series, with a series that carries it:
    everything on the info series (which custom labels join) and every other label of a
    per-device family (a state set's status, an open action)."""
    labels = dict.fromkeys(info_labels(), common.INFO.name)
    for family in device_families():
        for label in family.label_names:
            labels.setdefault(label, family.name)
    return labels


def reserved_labels() -> dict[str, str]:
    """Each label a custom label of a device may not be, with the series that carries it:
    the exporter's own (`device_labels`) and those Prometheus adds to every series."""
    return {**device_labels(), **dict.fromkeys(TARGET_LABELS, "every series (Prometheus)")}


__all__ = ["IDENTITY", "Family", "Source", "by_name", "families", "reserved_labels"]
