"""Metric names used by the shipped dashboard and rules, and the names a real exporter exposes."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.base.clock import Clock
from exporter.config.model import Config
from exporter.kinds import selection


def metric_names(expr: str) -> set[str]:
    """The podero_/process_ metric names a PromQL expression mentions (histogram suffixes cut)."""
    names = set(re.findall(r"\b((?:podero|process)_[a-z0-9_]+)", expr))
    return {
        re.sub(r"_(bucket|sum|count)$", "", n)
        if n.endswith(("_bucket", "_sum", "_count")) and "duration" in n
        else n
        for n in names
    }


def exposed_names(config: Config, clock: Clock) -> set[str]:
    """Family and sample names of a real exporter's page after discovery (where configured),
    one poll of every device and one fetch of the savings."""
    exporter = Exporter(config, clock)
    exporter.refresh_inventory()
    exporter.poller.poll_all()
    exporter.fetch_savings()
    text = exporter.page.render().decode()
    exporter.stop()
    return {f.name for f in text_string_to_metric_families(text)} | {
        s.name for f in text_string_to_metric_families(text) for s in f.samples
    }


def with_thresholds(config: Config, every_family: bool = False) -> Config:
    """The config with thresholds of every kind, so threshold series exist, and discovery of
    the configured inverters' organizations, so that their homes' other devices are polled;
    with `every_family`, every group of families served (else the defaults)."""
    raw = config.model_dump(mode="json")
    if every_family:
        raw["metrics"] = {"enable": list(selection.groups())}
    raw["discovery"] = {"org_ids": sorted({i.org_id for i in config.inverters})}
    raw["podero"]["auth"]["client_secret"] = config.podero.auth.secret().get_secret_value()
    raw["thresholds"] = {
        "battery_low_percent": 15,
        "grid_export_high_watts": 7000,
        "hot_water_low_celsius": 40,
        "vehicle_charged_percent": 80,
        "vehicle_charged_by": "06:30",
    }
    return Config.model_validate(raw)
