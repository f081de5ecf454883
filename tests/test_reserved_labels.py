"""Labels the exporter sets are reserved in one place, derived from the metrics table: a custom
label of any name the exporter emits on a device's series is refused with the label and the
series; any other name joins the info series and the page stays valid."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.config.model import Config, ConfigError
from exporter.kinds.table import reserved_labels
from tests.conftest import require_tool, to_config
from tests.fakes import FakeClock
from tests.metric_names import with_thresholds


def emitted_labels(config: Config, clock: FakeClock) -> set[str]:
    """Every label name on a per-device series of a real exporter's page (every kind, their
    savings and the units of prices and savings)."""
    exporter = Exporter(with_thresholds(config, every_family=True), clock)
    exporter.refresh_inventory()
    exporter.poller.poll_all()
    exporter.fetch_savings()
    text = exporter.page.render().decode()
    exporter.stop()
    return {
        label
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "device_id" in sample.labels
        for label in sample.labels
    }


def with_label(config: Config, name: str) -> Config:
    raw = config.model_dump(mode="json")
    raw["podero"]["auth"]["client_secret"] = config.podero.auth.secret().get_secret_value()
    raw["inverters"][0]["labels"] = {name: "x"}
    return to_config(raw)


def test_every_label_the_exporter_emits_is_refused_as_a_custom_label(
    sim_config: Config, clock: FakeClock
) -> None:
    emitted = emitted_labels(sim_config, clock)
    # Every kind's identity, the info series' descriptions, a state set and an action, the
    # units of prices and savings.
    assert {"device_id", "user_id", "name", "kind", "org_id", "manufacturer", "status"} <= emitted
    assert {"currency", "unit", "energy_unit"} <= emitted
    assert emitted <= set(reserved_labels())
    for name in sorted(emitted | {"job", "instance"}):
        with pytest.raises(ConfigError) as refused:
            with_label(sim_config, name)
        series = reserved_labels()[name]
        assert f"inverters[0].labels: '{name}' is set by the exporter on {series}" in str(
            refused.value
        ), name


def test_another_label_joins_the_info_series_and_the_page_stays_valid(
    sim_config: Config, clock: FakeClock
) -> None:
    exporter = Exporter(with_label(sim_config, "region"), clock)
    exporter.poller.poll_all()
    text = exporter.page.render().decode()
    exporter.stop()
    infos = [
        s.labels
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "podero_device_info" and "region" in s.labels
    ]
    assert len(infos) == 1 and infos[0]["region"] == "x"
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
