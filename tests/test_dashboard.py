"""The shipped Grafana dashboards and their provisioning, checked statically."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins, runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.base.clock import Clock
from exporter.config.model import Config
from exporter.kinds.table import by_name
from exporter.sim import RunningSimulator, demo_config
from tests.conftest import to_config
from tests.metric_names import exposed_names, metric_names, with_thresholds
from tests.project import ROOT

DASHBOARDS = ROOT / "grafana/dashboards"
FLEET, INVERTER, HOME = "podero-fleet.json", "podero-inverter.json", "podero-home.json"
ALL = (FLEET, INVERTER, HOME)
DS = {"type": "prometheus", "uid": "${datasource}"}
FLEET_S = 'job=~"$job", instance=~"$instance"'
INVERTER_S = 'job=~"$job", device_id="$device_id"'
HOME_S = 'job=~"$job", user_id="$user_id"'
# The energy counters the issue names, spelled out so that a renamed one fails here.
ENERGY_COUNTERS = {
    "podero_inverter_solar_energy_joules_total",
    "podero_inverter_grid_export_energy_joules_total",
    "podero_inverter_grid_import_energy_joules_total",
    "podero_inverter_household_energy_joules_total",
    "podero_inverter_battery_charge_energy_joules_total",
    "podero_inverter_battery_discharge_energy_joules_total",
}
# How many values each variable has for a fleet of 1,000 inverters polled by 10 replicas.
FLEET_OF_1000 = {
    "datasource": 1,
    "job": 1,
    "instance": 10,
    "device_id": 1000,
    "user_id": 900,
}
# Every threshold the exporter publishes as a series (the demo's values).
THRESHOLDS = {
    "battery_low_percent": 15,
    "grid_export_high_watts": 7000,
    "hot_water_low_celsius": 45,
    "vehicle_charged_percent": 80,
    "vehicle_charged_by": "06:30",
}
# The one vocabulary: every per-device series carries user_id, so one selector names a home,
# and device_id, so one selector names a device of any kind.
HOME_SEL = 'user_id="$user_id"'
ONE_SEL = 'device_id="$device_id"'


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_dashboard", ROOT / "grafana/build_dashboard.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboard(name: str) -> dict[str, Any]:
    return dict(json.loads((DASHBOARDS / name).read_text()))


def all_panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, with the panels stored inside collapsed rows."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def data_panels(name: str) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard(name)) if p["type"] != "row"]


def query_variables(name: str) -> list[dict[str, Any]]:
    return [v for v in dashboard(name)["templating"]["list"] if v["type"] == "query"]


def dashboard_queries(name: str) -> list[str]:
    queries = [t["expr"] for p in data_panels(name) for t in p["targets"]]
    return queries + [v["query"] for v in query_variables(name)]


def drawn_panels(board: Mapping[str, Any], values: Mapping[str, int]) -> int:
    """How many panels Grafana draws when the dashboard opens: a panel or row repeated over a
    multi-value variable is drawn once per value (All selected), over a single-value variable
    once; a collapsed row draws its header only, an expanded row its header and the panels
    up to the next row."""
    multi = {v["name"]: bool(v.get("multi")) for v in board["templating"]["list"]}

    def copies(panel: Mapping[str, Any]) -> int:
        variable = panel.get("repeat")
        if not variable:
            return 1
        return values[variable] if multi[variable] else 1

    total, row_copies = 0, 1
    for panel in board["panels"]:
        if panel["type"] == "row":
            row_copies = copies(panel)
            total += row_copies
        else:
            total += row_copies * copies(panel)
    return total


def schema_violations(board: dict[str, Any]) -> list[str]:
    """Keys of the dashboard that Grafana's dashboard schema does not know.

    grafana-foundation-sdk's models are generated from Grafana's schemas (dashboard, panel
    options and field config per panel plugin, Prometheus queries). They have no validator,
    but reading the JSON into them and writing it back drops every key the schema lacks."""
    plugins.register_default_plugins()  # panel options and queries by their plugin's schema
    dropped = [
        f"{p.get('title')}: panel type {p['type']} unknown"
        for p in all_panels(board)
        if p["type"] != "row" and runtime.panelcfg_config(p["type"]) is None
    ]
    dropped += [
        f"{p.get('title')}: query of unknown data source type"
        for p in all_panels(board)
        for t in p.get("targets", [])
        if t.get("datasource", {}).get("type") not in runtime.Runtime().dataquery_variants
    ]
    again = json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))

    def walk(mine: Any, theirs: Any, path: str) -> None:
        if isinstance(mine, dict) and isinstance(theirs, dict):
            for key, value in mine.items():
                if key not in theirs:
                    dropped.append(f"{path}/{key}")
                else:
                    walk(value, theirs[key], f"{path}/{key}")
        elif isinstance(mine, list) and isinstance(theirs, list):
            for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
                walk(a, b, f"{path}[{i}]")
        elif mine != theirs:
            dropped.append(f"{path}: {mine!r} became {theirs!r}")

    walk(board, again, "")
    return dropped


@pytest.mark.parametrize("name", ALL)
def test_dashboard_json_is_what_the_builder_produces(name: str) -> None:
    assert (DASHBOARDS / name).read_text() == builder().render(name), (
        "run python grafana/build_dashboard.py"
    )


def test_the_builder_writes_exactly_the_shipped_dashboards() -> None:
    assert set(builder().DASHBOARDS) == {p.name for p in DASHBOARDS.glob("*.json")}


def test_panel_counter_counts_repeats_and_collapsed_rows() -> None:
    # The old design: a row of 8 panels repeated per inverter, expanded.
    per_inverter = {
        "templating": {"list": [{"name": "name", "multi": True}]},
        "panels": [
            {"type": "row", "collapsed": False, "repeat": "name", "panels": []},
            *({"type": "timeseries"} for _ in range(8)),
        ],
    }
    assert drawn_panels(per_inverter, {"name": 1000}) == 9000
    per_inverter["templating"]["list"][0]["multi"] = False
    assert drawn_panels(per_inverter, {"name": 1000}) == 9
    collapsed = {
        "templating": {"list": []},
        "panels": [{"type": "row", "collapsed": True, "panels": [{"type": "stat"}] * 5}],
    }
    assert drawn_panels(collapsed, {}) == 1


def test_fleet_dashboard_draws_at_most_60_panels_for_1000_inverters() -> None:
    board = dashboard(FLEET)
    drawn = drawn_panels(board, FLEET_OF_1000)
    assert drawn <= 60, drawn
    # Opening the collapsed rows too stays within the budget.
    assert len(list(all_panels(board))) <= 60
    assert not [p for p in all_panels(board) if p.get("repeat")]


def test_inverter_dashboard_draws_one_inverter() -> None:
    board = dashboard(INVERTER)
    assert drawn_panels(board, FLEET_OF_1000) == len(list(all_panels(board))) <= 40
    variable = next(v for v in board["templating"]["list"] if v["name"] == "device_id")
    assert not variable["multi"] and not variable["includeAll"]
    # Every device series of every panel is the chosen device's: one selector, any family.
    for query in [t["expr"] for p in data_panels(INVERTER) for t in p["targets"]]:
        selectors = re.findall(r"(podero_\w+)\{([^}]*)\}", query)
        assert selectors, query
        for metric, selector in selectors:
            assert ONE_SEL in selector, (metric, query)


def test_one_vocabulary_in_every_query() -> None:
    """No label_replace (the shared families carry kind and device_id for every kind), no
    inverter_id anywhere, and every metric name is one the exporter's metrics table serves."""
    for name in ALL:
        text = (DASHBOARDS / name).read_text()
        assert "inverter_id" not in text, name
        assert "label_replace" not in text and "label_join" not in text, name
        for query in dashboard_queries(name):
            for metric in metric_names(query):
                assert by_name(metric).name == metric, (name, query)
    with pytest.raises(KeyError):
        by_name("podero_inverter_up")  # the old per-kind family, gone from /metrics


@pytest.mark.parametrize("name", ALL)
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    taken: dict[tuple[int, int], str] = {}
    board = dashboard(name)
    for panel in board["panels"]:  # what the dashboard shows when it opens
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, (panel["title"], taken[(x, y)])
                taken[(x, y)] = panel["title"]
    for row in board["panels"]:
        for inner in row.get("panels", []):  # a closed row's panels, placed below it
            pos = inner["gridPos"]
            assert pos["y"] > row["gridPos"]["y"] and pos["x"] + pos["w"] <= 24, inner["title"]


@pytest.mark.parametrize("name", ALL)
def test_dashboards_fit_grafanas_schema(name: str) -> None:
    board = dashboard(name)
    assert schema_violations(board) == []
    # The check sees a misspelt key at any depth: in a panel, its options, a query, a row.
    board["panels"][1]["options"]["reduceOption"] = {}
    board["panels"][1]["targets"][0]["legend"] = "x"
    board["panels"][0]["description"] = "rows have no description"
    board["panels"][2]["type"] = "timeserie"
    assert len(schema_violations(board)) == 4


@pytest.mark.parametrize("name", ALL)
def test_every_panel_has_title_description_unit_and_templated_datasource(name: str) -> None:
    panels = data_panels(name)
    assert len(panels) >= 15
    ids = [p["id"] for p in all_panels(dashboard(name))]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["title"], panel
        assert panel.get("description"), panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["datasource"] == DS
        for t in panel["targets"]:
            assert t["datasource"] == DS
            assert t["refId"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("name", ALL)
def test_rates_use_the_rate_interval(name: str) -> None:
    for query in dashboard_queries(name):
        for window in re.findall(r"\brate\([^\[]*\[([^\]]+)\]", query):
            assert window == "$__rate_interval", query


def test_units_fit_the_metrics() -> None:
    for name in ALL:
        for panel in data_panels(name):
            if panel["type"] == "table":  # tables here show labels; their values are hidden
                continue
            unit = panel["fieldConfig"]["defaults"]["unit"]
            exprs = " ".join(t["expr"] for t in panel["targets"])
            counts = re.search(r"\bcount\b", exprs)  # count(...) and count by (...) (...)
            if "_watts" in exprs and not counts:
                assert unit == "watt", panel["title"]
            if "_ratio" in exprs and "<" not in exprs and not counts:
                assert unit == "percentunit", panel["title"]
            if "_joules_total" in exprs:
                assert unit == "kwatth", panel["title"]
                assert "/ 3.6e6" in exprs, panel["title"]
            if "rate(podero_api_requests_total" in exprs:
                assert unit == "reqps", panel["title"]
            if "timestamp_seconds" in exprs and "time()" in exprs and not counts:
                assert unit == "s", panel["title"]
            if "_celsius" in exprs and not counts:
                assert unit == "celsius", panel["title"]
            if "_charged_by_seconds" in exprs and not counts:
                assert unit == "clocks", panel["title"]  # a time of day, shown as hh:mm:ss


def test_energy_panels_count_with_increase_and_say_so() -> None:
    energy = [
        p
        for name in ALL
        for p in data_panels(name)
        if any("_energy_joules_total" in t["expr"] for t in p["targets"])
    ]
    assert {p["title"] for p in energy} == {"Energy today", "Energy this month", "Energy per day"}
    for panel in energy:
        assert "increase()" in panel["description"], panel["title"]
        used = set().union(*(metric_names(t["expr"]) for t in panel["targets"]))
        assert used == ENERGY_COUNTERS, panel["title"]
        for t in panel["targets"]:
            assert re.search(r"increase\(podero_\w+_joules_total\{[^}]*\}\[\$__\w+\]\)", t["expr"])
    today = [p for p in energy if p["title"] == "Energy today"]
    assert len(today) == 2 and all(p["timeFrom"] == "now/d" for p in today)
    month = next(p for p in energy if p["title"] == "Energy this month")
    assert month["timeFrom"] == "now/M"


def test_no_inputs_and_no_hard_coded_datasource() -> None:
    for name, uid in (
        (FLEET, "podero-fleet"),
        (INVERTER, "podero-inverter"),
        (HOME, "podero-home"),
    ):
        text = (DASHBOARDS / name).read_text()
        board = dashboard(name)
        assert "__inputs" not in board
        assert board["uid"] == uid
        assert set(re.findall(r'"uid": "([^"]*)"', text)) == {"${datasource}", uid}
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["job"]["query"].startswith("label_values(")
        for v in variables.values():
            if v["type"] == "query":
                assert v["datasource"] == DS


def test_fleet_variables_pick_replicas() -> None:
    variables = [v["name"] for v in dashboard(FLEET)["templating"]["list"]]
    assert variables == ["datasource", "job", "instance"]
    instance = query_variables(FLEET)[1]
    assert instance["multi"] and instance["includeAll"] and instance["allValue"] == ".*"
    assert instance["query"] == 'label_values(up{job=~"$job"}, instance)'
    for query in dashboard_queries(FLEET):
        if "podero_" in query and "ALERTS" not in query and "label_values" not in query:
            for selector in re.findall(r"podero_\w+\{([^}]*)\}", query):
                assert 'instance=~"$instance"' in selector, query


# The reasons of the fleet's trouble table, one column each, every kind in one table.
TROUBLE_REASONS = [
    "poll failing",
    "data older than 1 h",
    "no data at all",
    "manufacturer connection lapsed",
    "owner action needed",
    "battery below its low threshold",
    "hot water below its low threshold",
    "not charged by its time",
]


def test_required_fleet_panels_exist() -> None:
    panels = {p["title"]: p for p in data_panels(FLEET)}
    assert {
        "Solar production",
        "Grid export",
        "Grid import",
        "Household consumption",
        "Battery charging",
        "Battery discharging",
        "Devices by kind",
        "Reporting by kind",
        "Fresh data by kind",
        "Failing devices",
        "Stale devices",
        "Devices without data",
        "Connection lapsed",
        "Action needed",
        "Hot water below threshold",
        "EVs not charged",
        "Energy today",
        "Energy this month",
        "Devices in trouble",
        "Firing alerts",
        "Devices by state",
        "Replica up",
        "API errors per replica",
        "Token expiry per replica",
        "Poll duration p95 per replica",
        "Devices needing action by code",
        "Devices by manufacturer and model",
        "Discovered devices",
        "Savings today",
        "Savings this month",
        "Consumption today",
        "Consumption this month",
        "Organization savings",
        "Savings today by kind",
    } <= set(panels)

    def expr(title: str, i: int = 0) -> str:
        return str(panels[title]["targets"][i]["expr"])

    # A fleet question is one selector over a shared family, answered by kind.
    assert expr("Devices by kind").startswith("count by (kind) (podero_device_info{")
    assert expr("Reporting by kind").startswith("avg by (kind) (podero_device_up{")
    assert "count by (kind) (time() - podero_device_data_timestamp_seconds{" in expr(
        "Fresh data by kind"
    )
    assert expr("Failing devices").startswith("count by (kind) (podero_device_up{")
    for title in ("Failing devices", "Stale devices", "Devices without data"):
        # A kind with none of them shows 0, not "No data".
        assert expr(title).endswith(f"or count by (kind) (podero_device_up{{{FLEET_S}}}) * 0")
        assert {t["legendFormat"] for t in panels[title]["targets"]} == {"{{kind}}"}, title
    by_code = expr("Devices needing action by code")
    assert by_code.startswith("count by (kind, action) (podero_device_action_needed{")
    assert expr("Discovered devices").startswith("podero_discovery_devices{")
    trouble = panels["Devices in trouble"]
    assert [t["legendFormat"] for t in trouble["targets"]] == TROUBLE_REASONS
    for t in trouble["targets"]:
        # One row per device, whatever the family; its kind from the shared info series.
        assert t["expr"].startswith("count by (job, instance, device_id, name, user_id) ("), t
        join = (
            f") * on (job, instance, device_id) group_left (kind) podero_device_info{{{FLEET_S}}}"
        )
        assert t["expr"].endswith(join), t
    organize = trouble["transformations"][1]["options"]
    assert list(organize["renameByName"].values()) == TROUBLE_REASONS
    assert {o["matcher"]["options"] for o in trouble["fieldConfig"]["overrides"]} == {
        "name",
        "user_id",
    }
    assert 'ALERTS{alertstate="firing"' in expr("Firing alerts")
    for title in ("API errors per replica", "Poll duration p95 per replica"):
        assert "by (instance)" in expr(title).replace("le, ", "")


def test_required_inverter_panels_exist() -> None:
    panels = {p["title"]: p for p in data_panels(INVERTER)}
    assert {
        "Solar production",
        "Household consumption",
        "Grid export and import",
        "Battery power",
        "Battery charge",
        "Price",
        "Data age",
        "Energy today",
        "Energy per day",
    } <= set(panels)
    graphs = {p["title"]: p for p in data_panels(INVERTER) if p["type"] == "timeseries"}
    battery = graphs["Battery charge"]
    assert any("threshold" in t["expr"] for t in battery["targets"])
    assert {t["legendFormat"] for t in graphs["Battery power"]["targets"]} == {
        "charging",
        "discharging",
    }
    per_day = panels["Energy per day"]
    assert per_day["interval"] == "1d"
    # The shared families answer for the inverter too.
    exprs = {title: [t["expr"] for t in p["targets"]] for title, p in panels.items()}
    assert exprs["Poll status"] == [f"podero_device_up{{{INVERTER_S}}}"]
    assert exprs["Inverter details"] == [f"podero_device_info{{{INVERTER_S}}}"]
    assert metric_names(" ".join(exprs["Data age"])) == {"podero_device_data_timestamp_seconds"}
    variable = query_variables(INVERTER)[1]
    assert variable["name"] == "device_id"
    assert variable["query"] == (
        'query_result(max by (device_id, name) (podero_device_info{job=~"$job", kind="inverter"}))'
    )
    # The inverters are listed by name, their device_id the value.
    assert variable_options(variable, [{"device_id": "a1", "name": "Roof"}]) == {"a1": "Roof"}


def variable_options(variable: Mapping[str, Any], series: list[dict[str, str]]) -> dict[str, str]:
    """What Grafana lists for a query_result variable with a /regex/ of named groups value
    and text: each series as `{label="value",...} 1 1700000000`, labels sorted by name as
    Prometheus sends them; the first text of a value is kept."""
    pattern = re.compile(variable["regex"].strip("/").replace("(?<", "(?P<"))
    found: dict[str, str] = {}
    for labels in series:
        line = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "} 1 1700000000"
        match = pattern.search(line)
        assert match, line
        found.setdefault(match.group("value"), match.group("text"))
    return found


def test_home_dashboard_draws_one_home() -> None:
    board = dashboard(HOME)
    assert drawn_panels(board, FLEET_OF_1000) == len(list(all_panels(board))) <= 40
    variable = next(v for v in board["templating"]["list"] if v["name"] == "user_id")
    assert not variable["multi"] and not variable["includeAll"]
    for query in [t["expr"] for p in data_panels(HOME) for t in p["targets"]]:
        selectors = re.findall(r"(podero_\w+)\{([^}]*)\}", query)
        assert selectors, query
        # Every series of every kind carries user_id: one selector, no join.
        for metric, selector in selectors:
            assert HOME_SEL in selector, (metric, query)
        assert " on (" not in query, query


def test_required_home_panels_exist() -> None:
    panels = {p["title"]: p for p in data_panels(HOME)}
    assert {
        "Solar production",
        "Household consumption",
        "Grid power",
        "Battery charge",
        "Devices reporting",
        "Actions needed",
        "Hot water",
        "EV battery level",
        "EV charged by",
        "Devices",
        "Home power",
        "Heat pump temperatures",
        "Heat pump consumption",
        "EV plugged in, charging, at home",
        "EV charging consumption",
        "Data age",
        "Poll status",
    } <= set(panels)

    def metrics(title: str) -> set[str]:
        return set().union(*(metric_names(t["expr"]) for t in panels[title]["targets"]))

    assert metrics("Home power") >= {
        "podero_inverter_solar_production_watts",
        "podero_inverter_grid_export_watts",
        "podero_inverter_battery_power_watts",
        "podero_inverter_household_consumption_watts",
    }
    # Threshold series, drawn dashed.
    for title, threshold in (
        ("Heat pump temperatures", "podero_heat_pump_hot_water_low_threshold_celsius"),
        ("EV battery level", "podero_electric_vehicle_charged_threshold_ratio"),
        ("Battery charge", "podero_inverter_battery_low_threshold_ratio"),
    ):
        assert threshold in metrics(title), title
        (override,) = panels[title]["fieldConfig"]["overrides"]
        assert override["matcher"]["options"] == ".*threshold.*", title
        legends = [t["legendFormat"] for t in panels[title]["targets"]]
        assert any(re.fullmatch(".*threshold.*", legend) for legend in legends), title
    assert metrics("Heat pump temperatures") >= {
        "podero_heat_pump_hot_water_temperature_celsius",
        "podero_heat_pump_inlet_temperature_celsius",
    }
    assert metrics("Heat pump consumption") == {
        "podero_heat_pump_estimated_consumption_watts",
        "podero_heat_pump_unoptimized_consumption_watts",
    }
    states = panels["EV plugged in, charging, at home"]
    assert states["type"] == "state-timeline"
    assert metrics(states["title"]) == {
        "podero_electric_vehicle_plugged_in",
        "podero_electric_vehicle_charging",
        "podero_electric_vehicle_at_optimized_location",
    }
    assert panels["Poll status"]["type"] == "state-timeline"
    # The device table: every kind (wallboxes from the info series), one shared family per
    # health column, each column one row per device.
    devices = panels["Devices"]
    assert metrics("Devices") == {
        "podero_device_info",
        "podero_device_up",
        "podero_device_data_timestamp_seconds",
        "podero_device_authenticated",
    }
    for t in devices["targets"]:
        assert t["expr"].startswith("max by (kind, device_id, name"), t
    organize = devices["transformations"][1]["options"]
    assert list(organize["renameByName"].values()) == [
        "Poll",
        "Data age",
        "Authenticated",
        "Inverter dashboard",
    ]
    assert "device_id" not in organize["excludeByName"]  # the inverter link reads it
    inverters_only = devices["targets"][-1]["expr"]
    assert inverters_only.endswith(f'podero_device_info{{{HOME_S}, kind="inverter"}})')
    actions = panels["Actions needed"]["targets"][0]["expr"]
    assert actions == f"max by (kind, name, action) (podero_device_action_needed{{{HOME_S}}} == 1)"
    variable = query_variables(HOME)[1]
    assert variable["name"] == "user_id"
    assert (
        variable["query"]
        == 'query_result(max by (name, user_id) (podero_device_info{job=~"$job"}))'
    )
    # A home is shown by its owner's handle from the exporter's device names, else by a name.
    assert variable_options(
        variable,
        [
            {"name": "anna-heat-pump-0a1b2c", "user_id": "u1"},
            {"name": "anna-0a1b2c", "user_id": "u1"},
            {"name": "bob-electric-vehicle-abcdef", "user_id": "u2"},
            {"name": "Garage", "user_id": "u3"},
            {"name": "my-roof", "user_id": "u4"},
        ],
    ) == {"u1": "anna", "u2": "bob", "u3": "Garage", "u4": "my-roof"}


def test_the_dashboards_link_to_each_other() -> None:
    def urls(name: str) -> set[str]:
        return {link["url"].split("?")[0] for link in dashboard(name)["links"]}

    assert urls(FLEET) == {"/d/podero-inverter/podero-inverter", "/d/podero-home/podero-home"}
    assert urls(INVERTER) == {"/d/podero-fleet/podero-fleet", "/d/podero-home/podero-home"}
    assert urls(HOME) == {"/d/podero-fleet/podero-fleet", "/d/podero-inverter/podero-inverter"}

    def data_links(name: str) -> dict[tuple[str, str], str]:
        return {
            (panel["title"], override["matcher"]["options"]): link["url"]
            for panel in data_panels(name)
            for override in panel["fieldConfig"]["overrides"]
            for prop in override["properties"]
            if prop["id"] == "links"
            for link in prop["value"]
        }

    to_home = "var-user_id=${__data.fields.user_id}"
    fleet, inverter, home = data_links(FLEET), data_links(INVERTER), data_links(HOME)
    assert to_home in fleet[("Devices in trouble", "user_id")]
    assert to_home in fleet[("Devices in trouble", "name")]
    assert to_home in inverter[("Inverter details", "user_id")]
    assert "var-device_id=${__data.fields.device_id}" in home[("Devices", "Inverter dashboard")]
    variables = {
        dashboard(name)["uid"]: {v["name"] for v in dashboard(name)["templating"]["list"]}
        for name in ALL
    }
    for url in [*fleet.values(), *inverter.values(), *home.values()]:
        assert url.startswith(("/d/podero-home/", "/d/podero-inverter/")), url
        assert "${datasource:queryparam}" in url and "${__url_time_range}" in url, url
        uid = url.split("/")[2]
        # Every variable a link sets is one the target dashboard has.
        assert set(re.findall(r"var-(\w+)=", url)) <= variables[uid], url


def test_data_links_read_fields_the_table_keeps() -> None:
    """A data link's ${__data.fields.x} reads a column of the table after its transformations:
    a column the organize step hides is gone, and the link would carry the literal text."""
    checked = 0
    for name in ALL:
        for panel in data_panels(name):
            hidden = {
                field
                for step in panel.get("transformations", [])
                if step["id"] == "organize"
                for field, gone in step["options"]["excludeByName"].items()
                if gone
            }
            for override in panel["fieldConfig"]["overrides"]:
                for prop in override["properties"]:
                    if prop["id"] != "links":
                        continue
                    for link in prop["value"]:
                        fields = re.findall(r"\$\{__data\.fields\.(\w+)\}", link["url"])
                        assert fields, link
                        assert not set(fields) & hidden, (panel["title"], fields, hidden)
                        checked += 1
    assert checked == 4


def exposed_by_every_kind(sim: RunningSimulator, clock: Clock) -> set[str]:
    """Names a real exporter exposes for the simulated homes it discovers (inverters, heat
    pumps, electric vehicles, wallboxes), with every threshold set, after one poll."""
    raw = demo_config(sim.describe())
    raw["inverters"] = []
    raw["discovery"] = {"org_ids": sim.describe()["org_ids"]}
    raw["thresholds"] = THRESHOLDS
    raw["timezone"] = "Europe/Vienna"
    exporter = Exporter(to_config(raw), clock)
    exporter.poll_once()
    text = exporter.page.render().decode()
    exporter.stop()
    families = list(text_string_to_metric_families(text))
    return {f.name for f in families} | {s.name for f in families for s in f.samples}


def test_every_metric_in_the_dashboards_is_exposed(
    sim_config: Config, sim: RunningSimulator, clock: Clock
) -> None:
    exposed = exposed_names(with_thresholds(sim_config), clock) | exposed_by_every_kind(sim, clock)
    used = set().union(*(metric_names(q) for n in ALL for q in dashboard_queries(n)))
    assert used, "no metric names found"
    assert used >= ENERGY_COUNTERS
    assert {n for n in used if n.startswith("podero_device_")} >= {
        "podero_device_info",
        "podero_device_up",
        "podero_device_data_timestamp_seconds",
        "podero_device_authenticated",
        "podero_device_action_needed",
    }
    assert "podero_discovery_devices" in used
    assert {
        "podero_device_savings_today",
        "podero_device_savings_this_month",
        "podero_device_savings_info",
        "podero_device_consumption_today_joules",
        "podero_device_consumption_this_month_joules",
        "podero_organization_savings_today",
        "podero_organization_savings_this_month",
        "podero_organization_savings_info",
    } <= used
    assert {n for n in used if n not in exposed} == set()


def test_the_savings_row_sums_money_per_currency_and_energy_in_kwh() -> None:
    """Money is summed per currency of the savings' info series (joined on the device), never
    across currencies; energy is joules / 3.6e6; the organization's figures are not added up
    across replicas."""
    board = dashboard(FLEET)
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows.index("Savings") == rows.index("Energy today") + 1
    panels = {p["title"]: p for p in data_panels(FLEET)}
    info = (
        "* on (job, instance, device_id) group_left (currency) "
        f"podero_device_savings_info{{{FLEET_S}}})"
    )
    for title, family in (
        ("Savings today", "podero_device_savings_today"),
        ("Savings this month", "podero_device_savings_this_month"),
    ):
        (target,) = panels[title]["targets"]
        assert target["expr"] == f"sum by (currency) ({family}{{{FLEET_S}}} {info}", title
        assert target["legendFormat"] == "{{currency}}"
    for title, family in (
        ("Consumption today", "podero_device_consumption_today_joules"),
        ("Consumption this month", "podero_device_consumption_this_month_joules"),
    ):
        (target,) = panels[title]["targets"]
        assert target["expr"] == f"sum by (kind) ({family}{{{FLEET_S}}}) / 3.6e6", title
        assert panels[title]["fieldConfig"]["defaults"]["unit"] == "kwatth"
    org = [t["expr"] for t in panels["Organization savings"]["targets"]]
    assert [e.split(" (")[0] for e in org] == ["max by", "max by"]
    assert all("group_left (currency) podero_organization_savings_info{" in e for e in org)
    over_time = panels["Savings today by kind"]["targets"][0]["expr"]
    assert over_time.startswith("sum by (kind, currency) (podero_device_savings_today{")


def test_provisioning_files() -> None:
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    source = ds["datasources"][0]
    assert source["type"] == "prometheus"
    # Grafana's $__rate_interval is at least 4 x this; it must be the real scrape interval.
    scrape = yaml.safe_load((ROOT / "prometheus/prometheus.example.yml").read_text())
    assert source["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]
    boards = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/podero.yml").read_text())
    provider = boards["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounts


@pytest.mark.parametrize("name", ALL)
def test_stat_panels_show_what_prometheus_has_now(name: str) -> None:
    """A stat over a range shows the last value it saw, also of a series gone stale: stats
    ask instant queries, so data that aged out of the exporter is not shown as current."""
    stats = [p for p in data_panels(name) if p["type"] == "stat"]
    assert stats
    for panel in stats:
        for t in panel["targets"]:
            assert t["instant"] is True and t["range"] is False, panel["title"]
