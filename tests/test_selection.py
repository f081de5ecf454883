"""The config's `metrics:` block chooses which per-device families are served (issue 23):
the defaults stay at most 20 series per inverter with every shipped dashboard and alert
working (tests/test_dashboard.py and tests/test_rules.py check their names against an
exporter with the defaults); groups and families are validated against the metrics table;
a reload, the page and backfill all follow the choice."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.config.model import Config, ConfigError, parse_config
from exporter.kinds import common, selection, table
from exporter.kinds.inverter import CONNECTION_STATUS, ESTIMATED_CONSUMPTION, SOLAR_ENERGY
from exporter.sim import RunningSimulator
from tests.conftest import minimal_config, to_config
from tests.fakes import FakeClock
from tests.metric_names import with_thresholds

INVERTER_SERIES_GOAL = 20


def page_of(config: Config, clock: FakeClock) -> str:
    exporter = Exporter(config, clock)
    exporter.refresh_inventory()
    exporter.poller.poll_all()
    exporter.fetch_savings()  # the heat pumps' and vehicles' savings series too
    text = exporter.page.render().decode()
    exporter.stop()
    return text


def series_per_device(text: str) -> dict[str, list[int]]:
    """Series counts of every device, by kind."""
    per: Counter[str] = Counter()
    kinds: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            device = sample.labels.get("device_id")
            if device is not None:
                per[device] += 1
                if sample.name == common.INFO.name:
                    kinds[device] = sample.labels["kind"]
    by_kind: dict[str, list[int]] = defaultdict(list)
    for device, count in per.items():
        by_kind[kinds[device]].append(count)
    return by_kind


def raw_of(config: Config) -> dict[str, Any]:
    raw = config.model_dump(mode="json")
    raw["podero"]["auth"]["client_secret"] = config.podero.auth.secret().get_secret_value()
    return raw


def test_the_defaults_serve_at_most_twenty_series_per_device_of_any_kind(
    sim_config: Config, clock: FakeClock
) -> None:
    # Thresholds of every kind set, and the homes' other devices discovered: the most a
    # device exports with the defaults.
    config = with_thresholds(sim_config)
    counts = series_per_device(page_of(config, clock))
    assert set(counts) == {"inverter", "heat_pump", "electric_vehicle", "wallbox"}
    assert max(counts["inverter"]) <= INVERTER_SERIES_GOAL
    # A vehicle with both thresholds and its savings: as many; the others fewer.
    assert all(max(counts[k]) <= INVERTER_SERIES_GOAL for k in counts)
    # Every group on: what the defaults leave out.
    every = series_per_device(page_of(with_thresholds(sim_config, every_family=True), clock))
    assert max(every["inverter"]) >= max(counts["inverter"]) + 14


def test_a_group_or_a_family_can_be_enabled_or_disabled(
    sim_config: Config, clock: FakeClock
) -> None:
    raw = raw_of(sim_config)
    raw["metrics"] = {
        "enable": ["status", ESTIMATED_CONSUMPTION.name],
        "disable": ["energy", "podero_device_authenticated"],
    }
    names = {f.name for f in text_string_to_metric_families(page_of(to_config(raw), clock))}
    assert CONNECTION_STATUS.name in names and "podero_inverter_monitoring_status" in names
    assert ESTIMATED_CONSUMPTION.name in names
    assert "podero_inverter_unoptimized_consumption_watts" not in names  # only the one family
    assert SOLAR_ENERGY.name.removesuffix("_total") not in names
    assert "podero_device_authenticated" not in names
    assert {"podero_device_up", "podero_device_info", "podero_device_action_needed"} <= names


def test_a_counter_may_be_named_with_or_without_total() -> None:
    assert selection.resolve(SOLAR_ENERGY.name) == selection.resolve(
        SOLAR_ENERGY.name.removesuffix("_total")
    )


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        (
            {"enable": ["statuses"]},
            "metrics.enable: 'statuses' is neither a group (health, readings,",
        ),
        (
            {"disable": ["podero_device_up"]},
            "metrics.disable: 'podero_device_up' would leave out podero_device_up",
        ),
        (
            {"disable": ["health"]},
            "'health' would leave out podero_device_up, which every alert and dashboard joins on",
        ),
        ({"enable": ["status"], "disable": ["status"]}, "'status' is both enabled and disabled"),
        ({"enable": "status"}, "metrics.enable: input should be a valid list, got str"),
        ({"enable": [7]}, "metrics.enable[0]: input should be a valid string, got int"),
        ({"allow": ["status"]}, "metrics.allow: unknown key"),
        # A self metric is not the config's to choose, nor is anything the table lacks.
        ({"enable": ["podero_api_requests_total"]}, "is neither a group"),
        ({"enable": ["x" * 100_000]}, "'" + "x" * 120 + "' is neither a group"),
        ({"enable": ["podero_device_up\n# EOF"]}, "'podero_device_up\\n# EOF' is neither"),
    ],
)
def test_a_wrong_selection_is_refused_with_the_key_and_the_reason(
    metrics: Any, expected: str
) -> None:
    text = yaml.safe_dump(minimal_config(metrics=metrics))
    with pytest.raises(ConfigError) as info:
        parse_config(text, {}, source="config.yaml")
    message = str(info.value)
    assert "\n" not in message and len(message) < 1000, message
    assert expected in message, message


def test_every_group_is_described_and_every_family_has_a_known_group() -> None:
    found = selection.groups()
    assert set(found) == set(selection.GROUPS)
    assert all(found[name] for name in selection.GROUPS), "a group without families"
    assert {f.group for f in table.device_families()} <= set(selection.GROUPS)
    # What every alert and dashboard joins on is on by default and cannot be disabled.
    assert all(f.default for f in selection.REQUIRED)


def test_a_reload_serves_the_new_selection_and_back(sim_config: Config, clock: FakeClock) -> None:
    exporter = Exporter(sim_config, clock)
    exporter.poller.poll_all()

    def names() -> set[str]:
        text = exporter.page.render().decode()
        return {f.name for f in text_string_to_metric_families(text)}

    before = names()
    assert "podero_device_next_poll_timestamp_seconds" not in before
    raw = raw_of(sim_config)
    raw["metrics"] = {"enable": ["schedule"], "disable": ["price"]}
    assert exporter.reload(lambda: to_config(raw)) is None
    after = names()
    assert after - before == {
        "podero_device_next_poll_timestamp_seconds",
        "podero_device_last_success_timestamp_seconds",
    }
    assert before - after == {"podero_inverter_price", "podero_device_price_info"}
    assert exporter.reload(lambda: sim_config) is None
    assert names() == before
    exporter.stop()


def test_backfill_follows_the_selection(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock, tmp_path: Any
) -> None:
    from tests.test_backfill import run, series_of

    raw = raw_of(sim_config)
    raw["metrics"] = {"enable": ["consumption"], "disable": ["price"]}
    run(to_config(raw), clock, tmp_path / "out.om")
    names = {name for name, _ in series_of((tmp_path / "out.om").read_text())}
    assert ESTIMATED_CONSUMPTION.name in names
    assert "podero_inverter_price" not in names
    assert "podero_inverter_solar_production_watts" in names


def test_the_readme_names_every_group_and_the_default_counts(
    sim_config: Config, clock: FakeClock
) -> None:
    from tests.test_readme import section

    text = section("Metrics").split("### Choosing metrics", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|")[1].strip(" `") for line in text.splitlines() if line.startswith("| `")]
    assert rows == list(selection.GROUPS)
    counts = series_per_device(page_of(with_thresholds(sim_config), clock))
    most = {kind: max(found) for kind, found in counts.items()}
    assert (
        f"at most {most['inverter']}\nseries per inverter (every threshold set), "
        f"{most['heat_pump']} per heat pump, {most['electric_vehicle']} per vehicle and "
        f"{most['wallbox']} per\nwallbox" in text
    ), most
