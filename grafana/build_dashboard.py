"""Builds the Grafana dashboards in grafana/dashboards/: `python grafana/build_dashboard.py`.

- podero-fleet.json ("Podero fleet"): fleet totals, energy, the inverters in trouble, firing
  alerts and exporter health per replica. It draws the same ~30 panels for 3 inverters or
  10,000: nothing repeats per inverter.
- podero-inverter.json ("Podero inverter"): one inverter, picked by the `inverter_id`
  variable (listed by name); the fleet dashboard's trouble table links to it.
- podero-home.json ("Podero home"): every device of one home (a Podero user): inverters,
  heat pumps, electric vehicles and wallboxes, picked by the `user_id` variable; the fleet
  and inverter dashboards link to it from a user_id or a device name.

The dashboards are written as code so that every panel is uniform (templated datasource,
description, unit) and a test can check that the JSON in the repository is what this produces.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
FLEET_UID = "podero-fleet"
INVERTER_UID = "podero-inverter"
HOME_UID = "podero-home"
# Newest data point older than this: the inverter is stale (PoderoInverterDataStale's limit).
STALE_SECONDS = 3600
J_PER_KWH = "3.6e6"  # joules per kWh, as PromQL reads it
ENERGY = (  # (counter, legend): the exporter's energy counters, joules per completed bucket
    ("podero_inverter_solar_energy_joules_total", "solar"),
    ("podero_inverter_grid_export_energy_joules_total", "grid export"),
    ("podero_inverter_grid_import_energy_joules_total", "grid import"),
    ("podero_inverter_household_energy_joules_total", "household"),
    ("podero_inverter_battery_charge_energy_joules_total", "battery charged"),
    ("podero_inverter_battery_discharge_energy_joules_total", "battery discharged"),
)
ENERGY_RESETS = (
    "Counter resets (an exporter restart starts the counters at 0) are handled by increase(); "
    "energy of buckets completed before the exporter started is not counted."
)
Panel = dict[str, Any]


def target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "datasource": DS,
        "range": True,
        "instant": False,
    }


def targets(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    """Targets from (expr, legend) pairs with refIds A, B, C..."""
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def instant(t: dict[str, Any]) -> dict[str, Any]:
    return {**t, "instant": True, "range": False}


class Layout:
    """Places panels left to right in lines of 24 grid units, under rows."""

    def __init__(self) -> None:
        self.panels: list[Panel] = []
        self.x = 0
        self.y = 0
        self.line_height = 0
        self._collapsed: Panel | None = None
        self._ids = 0

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def row(self, title: str, collapsed: bool = False) -> None:
        """Start a row; the panels of a collapsed row are stored inside it (drawn when opened)."""
        if self._collapsed:  # a closed row is one unit high; its panels are placed when opened
            self.y, self.line_height = self._collapsed["gridPos"]["y"] + 1, 0
        self.y += self.line_height
        self.x, self.line_height = 0, 0
        row: Panel = {
            "type": "row",
            "title": title,
            "collapsed": collapsed,
            "id": self._next_id(),
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "panels": [],
        }
        self.panels.append(row)
        self._collapsed = row if collapsed else None
        self.y += 1

    def add(self, panel: Panel, w: int, h: int) -> None:
        if self.x + w > 24:
            self.y += self.line_height
            self.x, self.line_height = 0, 0
        panel["id"] = self._next_id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.line_height = max(self.line_height, h)
        (self._collapsed["panels"] if self._collapsed else self.panels).append(panel)


def thresholds(*steps: tuple[float, str]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": "green", "value": None}]
        + [{"color": color, "value": value} for value, color in steps],
    }


def panel(
    kind: str,
    title: str,
    description: str,
    unit: str,
    panel_targets: list[dict[str, Any]],
    defaults: dict[str, Any],
    options: dict[str, Any],
    **extra: Any,
) -> Panel:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": panel_targets,
        "fieldConfig": {"defaults": {"unit": unit, **defaults}, "overrides": []},
        "options": options,
        **extra,
    }


def value_mappings(mappings: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Grafana value mappings from {value: (text, color)}."""
    options = {
        value: {"text": text, "color": color, "index": i}
        for i, (value, (text, color)) in enumerate(mappings.items())
    }
    return [{"type": "value", "options": options}]


def stat(
    title: str,
    description: str,
    unit: str,
    *stat_targets: dict[str, Any],
    decimals: int | None = None,
    warn: tuple[tuple[float, str], ...] = (),
    calc: str = "lastNotNull",
    mappings: dict[str, tuple[str, str]] | None = None,
    names: bool = False,
    **extra: Any,
) -> Panel:
    """A stat panel; `names`: show each series' name (one query, several devices). Its queries
    are instant: a value is what Prometheus has now, so a device whose data aged out (the
    exporter stops exporting it) shows no value rather than the last one of a range."""
    defaults: dict[str, Any] = {
        "color": {"mode": "thresholds"},
        "thresholds": thresholds(*warn),
    }
    if mappings:
        defaults["mappings"] = value_mappings(mappings)
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {
        "reduceOptions": {"calcs": [calc], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "textMode": "value_and_name" if len(stat_targets) > 1 or names else "value",
        "orientation": "auto",
    }
    now = [instant(t) for t in stat_targets]
    return panel("stat", title, description, unit, now, defaults, options, **extra)


def timeseries(
    title: str,
    description: str,
    unit: str,
    *series: dict[str, Any],
    bars: bool = False,
    max_value: float | None = None,
    overrides: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Panel:
    defaults: dict[str, Any] = {
        "custom": {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 80 if bars else 10,
            "showPoints": "never",
            "spanNulls": False,
        },
        "color": {"mode": "palette-classic"},
    }
    if max_value is not None:
        defaults["min"], defaults["max"] = 0, max_value
    options = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "none"},
    }
    p = panel("timeseries", title, description, unit, list(series), defaults, options, **extra)
    p["fieldConfig"]["overrides"] = overrides or []
    return p


def state_timeline(
    title: str,
    description: str,
    *series: dict[str, Any],
    mappings: dict[str, tuple[str, str]],
) -> Panel:
    """One band per series, coloured by its (mapped) state over time."""
    defaults: dict[str, Any] = {
        "custom": {"lineWidth": 0, "fillOpacity": 70},
        "color": {"mode": "thresholds"},
        "thresholds": thresholds(),
        "mappings": value_mappings(mappings),
    }
    options = {
        "showValue": "never",
        "rowHeight": 0.9,
        "mergeValues": True,
        "alignValue": "left",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return panel("state-timeline", title, description, "none", list(series), defaults, options)


def table(
    title: str,
    description: str,
    unit: str,
    table_targets: list[dict[str, Any]],
    hidden: tuple[str, ...],
    sort_by: str,
    overrides: list[dict[str, Any]] | None = None,
    rename: dict[str, str] | None = None,
) -> Panel:
    p = panel(
        "table",
        title,
        description,
        unit,
        [{**instant(t), "format": "table"} for t in table_targets],
        {},
        {
            "showHeader": True,
            "cellHeight": "sm",
            "sortBy": [{"displayName": sort_by, "desc": False}],
        },
        transformations=[
            # One frame per query; merge makes them one table with one row per series.
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {name: True for name in hidden},
                    "renameByName": rename or {},
                },
            },
        ],
    )
    p["fieldConfig"]["overrides"] = overrides or []
    return p


def dashed(regex: str, color: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": color}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def unoptimized_dashed() -> dict[str, Any]:
    """Consumption without Podero's optimisation: a dashed line without fill."""
    return {
        "matcher": {"id": "byRegexp", "options": ".*unoptimized.*"},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def variable_datasource() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
        "includeAll": False,
        "multi": False,
    }


def variable_query(
    name: str, label: str, query: str, *, multi: bool = False, regex: str = "", sort: int = 1
) -> dict[str, Any]:
    variable: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "current": {},
        "hide": 0,
        "refresh": 2,  # on time range change, so new replicas and inverters appear
        "regex": regex,
        "sort": sort,  # 1: alphabetical; 5: alphabetical, case-insensitive
        "options": [],
        "includeAll": multi,
        "multi": multi,
    }
    if multi:
        variable["allValue"] = ".*"
    return variable


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[dict[str, Any]],
    layout: Layout,
    links: list[dict[str, Any]],
    time_from: str,
    tags: tuple[str, ...] = ("podero", "solar", "battery"),
) -> dict[str, Any]:
    return {
        "title": title,
        "uid": uid,
        "description": description,
        "tags": list(tags),
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": time_from, "to": "now"},
        "annotations": {"list": []},
        "links": links,
        "templating": {"list": variables},
        "panels": layout.panels,
    }


def link(title: str, url: str) -> dict[str, Any]:
    return {
        "title": title,
        "type": "link",
        "url": url,
        "icon": "dashboard",
        "tooltip": title,
        "asDropdown": False,
        "includeVars": False,
        "keepTime": True,
        "targetBlank": False,
        "tags": [],
    }


def energy_targets(sel: str, window: str) -> list[dict[str, Any]]:
    """Energy in kWh per counter over `window`, summed over the selected inverters."""
    return [
        instant(t)
        for t in targets(
            *(
                (f"sum(increase({counter}{{{sel}}}[{window}])) / {J_PER_KWH}", legend)
                for counter, legend in ENERGY
            )
        )
    ]


# --- heat pumps, electric vehicles and wallboxes ---------------------------------------------
# Their series carry device_id, name and user_id (the home); podero_device_* also kind.
# Inverters carry inverter_id and name, and user_id only on podero_inverter_info.

KINDS = ("inverter", "heat_pump", "electric_vehicle", "wallbox")
# The in-house name the exporter gives a discovered device: `<owner>-<kind>-<first 6 of id>`
# (an inverter: `<owner>-<first 6 of id>`); the home variable shows the owner part.
OWNER_OF_NAME = "(.+?)(?:-(?:heat-pump|electric-vehicle|wallbox))?-[0-9a-f]{6}"
# The shipped rules' latch (prometheus/podero.rules.yml): a vehicle below its level at its
# charged-by time, for as long as it stays plugged in at home below it. The dashboard reads
# it rather than repeat the rule, so that panel and alert agree.
NOT_CHARGED_RULE = "device:podero_electric_vehicle_battery_level_ratio:not_charged"
NO_CODE = "(no code)"  # the action of an inverter: the API gives a flag, not a code


def label_replace(expr: str, label: str, value: str, source: str = "", regex: str = "") -> str:
    return f'label_replace({expr}, "{label}", "{value}", "{source}", "{regex}")'


def as_devices(inverter_expr: str) -> str:
    """Inverter series labelled like the other kinds: kind="inverter", device_id=inverter_id."""
    return label_replace(
        label_replace(inverter_expr, "device_id", "$1", "inverter_id", "(.+)"), "kind", "inverter"
    )


def hot_water_low(sel: str) -> str:
    """Heat pumps whose hot water is below their configured low threshold."""
    # Both series carry the same labels, so the comparison needs no on (...).
    return (
        f"podero_heat_pump_hot_water_temperature_celsius{{{sel}}}"
        f" < podero_heat_pump_hot_water_low_threshold_celsius{{{sel}}}"
    )


def not_charged(sel: str) -> str:
    """Electric vehicles not charged by their time: the shipped recording rule's latch (kept
    per job and device_id), with each vehicle's current labels joined back, as the alert."""
    return (
        f"podero_electric_vehicle_battery_level_ratio{{{sel}}} * 0"
        f" + on (job, device_id) group_left () {NOT_CHARGED_RULE}"
    )


# --- the fleet dashboard ---------------------------------------------------------------------

FLEET_SEL = 'job=~"$job", instance=~"$instance"'
TROUBLE = (  # (reason shown in the table, the inverters it applies to)
    ("poll failing", f"podero_inverter_up{{{FLEET_SEL}}} == 0"),
    (
        "data older than 1 h",
        f"(time() - podero_inverter_data_timestamp_seconds{{{FLEET_SEL}}} > {STALE_SECONDS})"
        f" and on (job, instance, inverter_id) podero_inverter_up{{{FLEET_SEL}}} == 1",
    ),
    (
        "no data at all",
        f"podero_inverter_up{{{FLEET_SEL}}} == 1 unless on (job, instance, inverter_id) "
        f"podero_inverter_data_timestamp_seconds{{{FLEET_SEL}}}",
    ),
    (
        "manufacturer connection lapsed",
        f"podero_inverter_authenticated{{{FLEET_SEL}}} == 0",
    ),
    ("owner action needed", f"podero_inverter_action_needed{{{FLEET_SEL}}} == 1"),
    (
        "battery below its low threshold",
        # Both series carry the same labels; on (...) here would drop the name from the result.
        f"podero_inverter_battery_charge_ratio{{{FLEET_SEL}}}"
        f" < podero_inverter_battery_low_threshold_ratio{{{FLEET_SEL}}}",
    ),
)
INVERTER_LINK = (
    f"/d/{INVERTER_UID}/podero-inverter?${{datasource:queryparam}}"
    "&var-job=${__data.fields.job}&var-inverter_id=${__data.fields.inverter_id}"
    "&${__url_time_range}"
)


HOME_LINK = (
    f"/d/{HOME_UID}/podero-home?${{datasource:queryparam}}"
    "&var-job=${__data.fields.job}&var-user_id=${__data.fields.user_id}&${__url_time_range}"
)
DEVICE_TROUBLE = (  # (reason, the heat pumps and electric vehicles it applies to)
    ("poll failing", f"podero_device_up{{{FLEET_SEL}}} == 0"),
    (
        "data older than 1 h",
        f"(time() - podero_device_data_timestamp_seconds{{{FLEET_SEL}}} > {STALE_SECONDS})"
        f" and on (job, instance, device_id) podero_device_up{{{FLEET_SEL}}} == 1",
    ),
    (
        "no data at all",
        f"podero_device_up{{{FLEET_SEL}}} == 1 unless on (job, instance, device_id) "
        f"podero_device_data_timestamp_seconds{{{FLEET_SEL}}}",
    ),
    ("manufacturer connection lapsed", f"podero_device_authenticated{{{FLEET_SEL}}} == 0"),
    ("owner action needed", f"podero_device_action_needed{{{FLEET_SEL}}} == 1"),
    (
        "hot water below its low threshold",
        label_replace(hot_water_low(FLEET_SEL), "kind", "heat_pump"),
    ),
    ("not charged by its time", label_replace(not_charged(FLEET_SEL), "kind", "electric_vehicle")),
)


def trouble_query(reason: str, expr: str) -> str:
    """One series per inverter in this trouble, labelled with the reason and its home."""
    return (
        f"label_replace(max by (job, instance, inverter_id, name) ({expr}) "
        f"* on (job, instance, inverter_id) group_left (user_id) "
        f"podero_inverter_info{{{FLEET_SEL}}}, "
        f'"reason", "{reason}", "", "")'
    )


def device_trouble_query(reason: str, expr: str) -> str:
    """One series per device (and action) in this trouble, labelled with the reason."""
    return label_replace(
        f"max by (job, instance, kind, device_id, name, user_id, action) ({expr})",
        "reason",
        reason,
    )


def link_override(field: str, title: str, url: str) -> dict[str, Any]:
    """A table column whose cells open `url` (a data link)."""
    return {
        "matcher": {"id": "byName", "options": field},
        "properties": [{"id": "links", "value": [{"title": title, "url": url}]}],
    }


def count_or_zero(expr: str) -> str:
    return f"count({expr}) or vector(0)"


def fleet() -> dict[str, Any]:
    s = FLEET_SEL
    layout = Layout()

    layout.row("Fleet now")
    solar = f"podero_inverter_solar_production_watts{{{s}}}"
    grid = f"podero_inverter_grid_export_watts{{{s}}}"
    household = f"podero_inverter_household_consumption_watts{{{s}}}"
    battery = f"podero_inverter_battery_power_watts{{{s}}}"
    for title, description, expr in (
        ("Solar production", "Solar production, summed.", solar),
        (
            "Grid export",
            "Power exported to the grid (positive grid power), summed.",
            f"clamp_min({grid}, 0)",
        ),
        (
            "Grid import",
            "Power imported from the grid (negative grid power, shown positive), summed.",
            f"clamp_min(-{grid}, 0)",
        ),
        ("Household consumption", "Household consumption, summed.", household),
        (
            "Battery charging",
            "Power going into the batteries (negative battery power, shown positive), summed.",
            f"clamp_min(-{battery}, 0)",
        ),
        (
            "Battery discharging",
            "Power coming out of the batteries (positive battery power), summed.",
            f"clamp_min({battery}, 0)",
        ),
    ):
        layout.add(
            stat(
                title,
                f"{description} Inverters whose data is older than the exporter's "
                "poll.max_data_age_seconds do not count.",
                "watt",
                target(f"sum({expr})", title.lower()),
            ),
            4,
            4,
        )
    layout.add(
        stat(
            "Inverters reporting",
            "Inverters whose last poll succeeded, out of those the selected replicas poll.",
            "none",
            *targets(
                (f"sum(podero_inverter_up{{{s}}})", "reporting"),
                (f"count(podero_inverter_info{{{s}}})", "polled"),
            ),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Failing inverters",
            "Inverters whose last poll failed (podero_inverter_up == 0); the table below "
            "lists them.",
            "none",
            target(count_or_zero(f"podero_inverter_up{{{s}}} == 0"), "failing"),
            warn=((1, "red"),),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Stale inverters",
            f"Inverters polled successfully whose newest data point is older than "
            f"{STALE_SECONDS // 3600} h (PoderoInverterDataStale's limit).",
            "none",
            target(count_or_zero(TROUBLE[1][1]), "stale"),
            warn=((1, "orange"),),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Inverters without data",
            "Inverters polled successfully that have never delivered a data point "
            "(up == 1 but no podero_inverter_data_timestamp_seconds).",
            "none",
            target(count_or_zero(TROUBLE[2][1]), "no data"),
            warn=((1, "orange"),),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Mean battery charge",
            "Average state of charge of the batteries with current data.",
            "percentunit",
            target(f"avg(podero_inverter_battery_charge_ratio{{{s}}})", "battery"),
            decimals=0,
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Firing alerts",
            "Podero alerts firing now (ALERTS with alertname Podero*), any replica.",
            "none",
            target(count_or_zero('ALERTS{alertstate="firing", alertname=~"Podero.*"}'), "firing"),
            warn=((1, "red"),),
        ),
        4,
        4,
    )

    layout.row("Energy today")
    layout.add(
        stat(
            "Energy today",
            "Energy since local midnight, summed over the selected inverters: "
            "sum(increase(counter[$__range])) / 3.6e6 on the panel's time range 'now/d' "
            f"(the day so far). {ENERGY_RESETS}",
            "kwatth",
            *energy_targets(s, "$__range"),
            decimals=1,
            timeFrom="now/d",
        ),
        24,
        4,
    )

    layout.row("Inverters in trouble")
    layout.add(
        table(
            "Inverters in trouble",
            "One row per inverter and reason: poll failing, data older than 1 h, no data at "
            "all, manufacturer connection lapsed, owner action needed, battery below its "
            "configured low threshold. Click a name to open the inverter's dashboard, a "
            "user_id to open its home.",
            "none",
            targets(*((trouble_query(reason, expr), reason) for reason, expr in TROUBLE)),
            hidden=("Time", "job", *(f"Value #{chr(ord('A') + i)}" for i in range(6))),
            sort_by="reason",
            overrides=[
                link_override("name", "Open ${__data.fields.name}", INVERTER_LINK),
                link_override("user_id", "Open the home of ${__data.fields.name}", HOME_LINK),
            ],
        ),
        14,
        10,
    )
    layout.add(
        table(
            "Firing alerts",
            'Podero alerts firing now (ALERTS{alertstate="firing"}, alertname Podero*), '
            "with the labels that say where.",
            "none",
            [target('ALERTS{alertstate="firing", alertname=~"Podero.*"}', "{{alertname}}")],
            hidden=("Time", "__name__", "alertstate", "Value"),
            sort_by="alertname",
        ),
        10,
        10,
    )

    layout.row("Heat pumps, electric vehicles and wallboxes")
    polled = f"count by (kind) (podero_device_up{{{s}}})"
    for title, description, unit, kind_targets, kwargs in (
        (
            "Devices by kind",
            "How many devices of each kind the selected replicas export (the info series "
            "podero_inverter_info and podero_device_info).",
            "none",
            targets(
                (f"count(podero_inverter_info{{{s}}})", "inverter"),
                (f"count by (kind) (podero_device_info{{{s}}})", "{{kind}}"),
            ),
            {},
        ),
        (
            "Reporting by kind",
            "Share of the polled devices of each kind whose last poll succeeded (wallboxes "
            "have no data and are not polled).",
            "percentunit",
            targets(
                (f"avg(podero_inverter_up{{{s}}})", "inverter"),
                (f"avg by (kind) (podero_device_up{{{s}}})", "{{kind}}"),
            ),
            {"decimals": 0},
        ),
        (
            "Fresh data by kind",
            f"Share of the polled devices of each kind whose newest data point is younger "
            f"than {STALE_SECONDS // 3600} h (a device without any data point counts as not "
            "fresh).",
            "percentunit",
            targets(
                (
                    f"(count(time() - podero_inverter_data_timestamp_seconds{{{s}}} "
                    f"< {STALE_SECONDS}) or vector(0)) / count(podero_inverter_up{{{s}}})",
                    "inverter",
                ),
                (
                    f"(count by (kind) (time() - podero_device_data_timestamp_seconds{{{s}}} "
                    f"< {STALE_SECONDS}) or {polled} * 0) / {polled}",
                    "{{kind}}",
                ),
            ),
            {"decimals": 0},
        ),
        (
            "Failing devices",
            "Heat pumps and electric vehicles whose last poll failed (podero_device_up == 0); "
            "the table below lists them.",
            "none",
            [target(count_or_zero(DEVICE_TROUBLE[0][1]), "failing")],
            {"warn": ((1, "red"),)},
        ),
        (
            "Hot water below threshold",
            "Heat pumps whose hot water is below the configured thresholds.hot_water_low_celsius "
            "(podero_heat_pump_hot_water_low_threshold_celsius).",
            "none",
            [target(count_or_zero(hot_water_low(s)), "heat pumps")],
            {"warn": ((1, "orange"),)},
        ),
        (
            "EVs not charged",
            "Electric vehicles that were plugged in at home below their target level "
            "(thresholds.vehicle_charged_percent) at the time of day they should be charged by "
            "(thresholds.vehicle_charged_by) and still are: what PoderoVehicleNotCharged "
            "alerts on (the shipped rules' recording rule " + NOT_CHARGED_RULE + ").",
            "none",
            [target(count_or_zero(not_charged(s)), "not charged")],
            {"warn": ((1, "orange"),)},
        ),
    ):
        layout.add(stat(title, description, unit, *kind_targets, **kwargs), 4, 4)
    layout.add(
        table(
            "Heat pumps and EVs in trouble",
            "One row per heat pump or electric vehicle and reason: poll failing, data older "
            "than 1 h, no data at all, manufacturer connection lapsed, owner action needed "
            "(with the action's code), hot water below its low threshold, not charged by its "
            "time. Click a name to open its home.",
            "none",
            targets(
                *((device_trouble_query(reason, expr), reason) for reason, expr in DEVICE_TROUBLE)
            ),
            hidden=(
                "Time",
                "job",
                "device_id",
                *(f"Value #{chr(ord('A') + i)}" for i in range(len(DEVICE_TROUBLE))),
            ),
            sort_by="reason",
            overrides=[link_override("name", "Open the home of ${__data.fields.name}", HOME_LINK)],
        ),
        16,
        10,
    )
    layout.add(
        panel(
            "bargauge",
            "Devices needing action by code",
            "Devices whose owner must act, by kind and the action's code (API field actions, "
            f"e.g. reauthenticate); inverters only say that an action is needed: {NO_CODE}.",
            "none",
            targets(
                (f"count(podero_inverter_action_needed{{{s}}} == 1)", f"inverter: {NO_CODE}"),
                (
                    f"count by (kind, action) (podero_device_action_needed{{{s}}} == 1)",
                    "{{kind}}: {{action}}",
                ),
            ),
            {"min": 0, "color": {"mode": "palette-classic"}, "thresholds": thresholds()},
            {
                "orientation": "horizontal",
                "displayMode": "basic",
                "showUnfilled": True,
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            },
        ),
        8,
        10,
    )
    layout.add(
        timeseries(
            "Heat pump and EV consumption",
            "Consumption of the heat pumps and the charging electric vehicles, summed: as "
            "estimated with Podero's optimisation, and without it (dashed; API fields "
            "estimated_consumption, unoptimized_consumption).",
            "watt",
            *targets(
                (f"sum(podero_heat_pump_estimated_consumption_watts{{{s}}})", "heat pumps"),
                (
                    f"sum(podero_heat_pump_unoptimized_consumption_watts{{{s}}})",
                    "heat pumps unoptimized",
                ),
                (
                    f"sum(podero_electric_vehicle_estimated_consumption_watts{{{s}}})",
                    "electric vehicles",
                ),
                (
                    f"sum(podero_electric_vehicle_unoptimized_consumption_watts{{{s}}})",
                    "electric vehicles unoptimized",
                ),
            ),
            overrides=[unoptimized_dashed()],
        ),
        24,
        8,
    )

    layout.row("Fleet over time")
    layout.add(
        timeseries(
            "Fleet power",
            "Solar production, household consumption, grid export and import, battery "
            "charging and discharging, each summed over the selected inverters.",
            "watt",
            *targets(
                (f"sum(podero_inverter_solar_production_watts{{{s}}})", "solar"),
                (f"sum(podero_inverter_household_consumption_watts{{{s}}})", "household"),
                (f"sum(clamp_min(podero_inverter_grid_export_watts{{{s}}}, 0))", "grid export"),
                (f"sum(clamp_min(-podero_inverter_grid_export_watts{{{s}}}, 0))", "grid import"),
                (
                    f"sum(clamp_min(-podero_inverter_battery_power_watts{{{s}}}, 0))",
                    "battery charging",
                ),
                (
                    f"sum(clamp_min(podero_inverter_battery_power_watts{{{s}}}, 0))",
                    "battery discharging",
                ),
            ),
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Inverters by state",
            "How many inverters report, fail, are stale or have no data, over time.",
            "none",
            *targets(
                (f"sum(podero_inverter_up{{{s}}})", "reporting"),
                (count_or_zero(f"podero_inverter_up{{{s}}} == 0"), "failing"),
                (count_or_zero(TROUBLE[1][1]), "stale"),
                (count_or_zero(TROUBLE[2][1]), "no data"),
            ),
        ),
        12,
        8,
    )

    rate = "[$__rate_interval]"
    layout.row("Exporter health per replica")
    layout.add(
        timeseries(
            "Replica up",
            "Whether Prometheus scrapes each selected exporter replica (up).",
            "none",
            target('up{job=~"$job", instance=~"$instance"}', "{{instance}}"),
            max_value=1,
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "API errors per replica",
            "Podero API answers per second that were not 2xx (timeouts and connection errors "
            "included), per replica.",
            "reqps",
            target(
                f'sum by (instance) (rate(podero_api_requests_total{{{s}, code!~"2.."}}{rate}))',
                "{{instance}}",
            ),
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "API requests by status code",
            "Requests to the Podero API per second, by HTTP status (timeouts and connection "
            "errors by name), all selected replicas.",
            "reqps",
            target(
                f"sum by (code) (rate(podero_api_requests_total{{{s}}}{rate}))",
                "{{code}}",
            ),
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Token expiry per replica",
            "Time until each replica's access token expires; it is renewed ahead.",
            "s",
            target(f"podero_oauth_token_expiry_timestamp_seconds{{{s}}} - time()", "{{instance}}"),
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Poll duration p95 per replica",
            "95th percentile duration of one inverter poll, retries included, per replica.",
            "s",
            target(
                "histogram_quantile(0.95, sum by (le, instance) "
                f"(rate(podero_poll_duration_seconds_bucket{{{s}}}{rate})))",
                "{{instance}}",
            ),
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "API request latency p95",
            "95th percentile duration of one API call, by endpoint, all selected replicas.",
            "s",
            target(
                "histogram_quantile(0.95, sum by (le, endpoint) "
                f"(rate(podero_api_request_duration_seconds_bucket{{{s}}}{rate})))",
                "{{endpoint}}",
            ),
        ),
        8,
        8,
    )

    # Collapsed: its queries read every sample of the month and run only when it is opened.
    layout.row("Energy this month", collapsed=True)
    layout.add(
        stat(
            "Energy this month",
            "Energy since the first of the month, summed over the selected inverters: "
            "sum(increase(counter[$__range])) / 3.6e6 on the panel's time range 'now/M'. "
            f"{ENERGY_RESETS} Each query reads every sample of the month: up to 44,640 per "
            "inverter at a 60 s scrape, 44.6 million for 1,000 inverters (Prometheus refuses "
            "a query above --query.max-samples, 50 million by default).",
            "kwatth",
            *energy_targets(s, "$__range"),
            decimals=0,
            timeFrom="now/M",
        ),
        24,
        4,
    )

    layout.row("Fleet inventory", collapsed=True)
    layout.add(
        {
            **panel(
                "bargauge",
                "Inverters by manufacturer and model",
                "How many of the selected inverters each manufacturer and model accounts for.",
                "none",
                [
                    target(
                        f"count by (manufacturer, model) (podero_inverter_info{{{s}}})",
                        "{{manufacturer}} {{model}}",
                    )
                ],
                {
                    "min": 0,
                    "color": {"mode": "palette-classic"},
                    "thresholds": thresholds(),
                },
                {
                    "orientation": "horizontal",
                    "displayMode": "basic",
                    "showUnfilled": True,
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                },
            )
        },
        12,
        8,
    )
    layout.add(
        timeseries(
            "Discovered inverters",
            "Inverters found by discovery, per organization and replica.",
            "none",
            target(f"podero_discovery_inverters{{{s}}}", "{{org_id}} {{instance}}"),
        ),
        12,
        8,
    )

    return dashboard(
        FLEET_UID,
        "Podero fleet",
        "A fleet of solar inverters and home batteries, heat pumps, electric vehicles and "
        "wallboxes from the Podero Partner API: totals, energy, the devices in trouble and "
        "the exporter replicas.",
        [
            variable_datasource(),
            variable_query("job", "Job", "label_values(podero_exporter_build_info, job)"),
            variable_query(
                "instance",
                "Replica",
                'label_values(up{job=~"$job"}, instance)',
                multi=True,
            ),
        ],
        layout,
        [
            link("Podero inverter", f"/d/{INVERTER_UID}/podero-inverter"),
            link("Podero home", f"/d/{HOME_UID}/podero-home"),
        ],
        "now-24h",
    )


# --- the per-inverter dashboard --------------------------------------------------------------

ONE = 'job=~"$job", inverter_id="$inverter_id"'


def inverter() -> dict[str, Any]:
    s = ONE
    layout = Layout()

    layout.row("Now")
    now_stats: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
        (
            "Solar production",
            "Solar production (API field solar_production_w).",
            "watt",
            f"podero_inverter_solar_production_watts{{{s}}}",
            {},
        ),
        (
            "Household consumption",
            "Household consumption (API field household_consumption_w).",
            "watt",
            f"podero_inverter_household_consumption_watts{{{s}}}",
            {},
        ),
        (
            "Grid power",
            "Power to the grid (API field export_power_to_grid_w): positive = export, "
            "negative = import.",
            "watt",
            f"podero_inverter_grid_export_watts{{{s}}}",
            {},
        ),
        (
            "Battery charge",
            "State of charge (API field battery_charge_level_percent / 100).",
            "percentunit",
            f"podero_inverter_battery_charge_ratio{{{s}}}",
            {"decimals": 0},
        ),
        (
            "Price",
            "Energy price of the exported data point as the API delivers it (unit not "
            "documented; examples look like currency per MWh).",
            "none",
            f"podero_inverter_price{{{s}}}",
            {},
        ),
        (
            "Data age",
            f"Age of the newest data point; above {STALE_SECONDS // 3600} h the inverter is "
            "stale (PoderoInverterDataStale).",
            "s",
            f"time() - podero_inverter_data_timestamp_seconds{{{s}}}",
            {"warn": ((STALE_SECONDS, "orange"),)},
        ),
    )
    for title, description, unit, expr, kwargs in now_stats:
        layout.add(stat(title, description, unit, target(expr, title.lower()), **kwargs), 4, 4)
    layout.add(
        stat(
            "Poll status",
            "Whether the exporter's last poll of this inverter succeeded (podero_inverter_up).",
            "none",
            target(f"podero_inverter_up{{{s}}}", "last poll"),
            mappings={"1": ("ok", "green"), "0": ("failing", "red")},
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Manufacturer connection",
            "Whether the manufacturer connection is authenticated (else the owner must "
            "reconnect) and whether Podero says the owner must act (API fields "
            "is_authenticated, action_needed).",
            "none",
            *targets(
                (f"podero_inverter_authenticated{{{s}}}", "authenticated"),
                (f"podero_inverter_action_needed{{{s}}}", "action needed"),
            ),
            mappings={"1": ("yes", "blue"), "0": ("no", "blue")},
        ),
        8,
        4,
    )
    layout.add(
        table(
            "Inverter details",
            "What the Podero API says about the device: ids, manufacturer, model, price zone, "
            "lifecycle state and configured labels. Click the user_id to open the home's "
            "other devices.",
            "none",
            [target(f"podero_inverter_info{{{s}}}", "")],
            hidden=("Time", "__name__", "Value"),
            sort_by="name",
            overrides=[link_override("user_id", "Open this home's devices", HOME_LINK)],
        ),
        12,
        4,
    )

    layout.row("Power")
    layout.add(
        timeseries(
            "Solar and household",
            "Solar production and household consumption.",
            "watt",
            *targets(
                (f"podero_inverter_solar_production_watts{{{s}}}", "solar"),
                (f"podero_inverter_household_consumption_watts{{{s}}}", "household"),
            ),
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Grid export and import",
            "Power to the grid: export and import each shown as a positive series "
            "(API field export_power_to_grid_w, positive = export).",
            "watt",
            *targets(
                (f"clamp_min(podero_inverter_grid_export_watts{{{s}}}, 0)", "export"),
                (f"clamp_min(-podero_inverter_grid_export_watts{{{s}}}, 0)", "import"),
            ),
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Battery power",
            "Battery charging and discharging, each shown positive "
            "(API field battery_charge_discharge_power_w, positive = discharging).",
            "watt",
            *targets(
                (f"clamp_min(-podero_inverter_battery_power_watts{{{s}}}, 0)", "charging"),
                (f"clamp_min(podero_inverter_battery_power_watts{{{s}}}, 0)", "discharging"),
            ),
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Battery charge",
            "State of charge, with the battery-low alert threshold as a dashed line.",
            "percentunit",
            *targets(
                (f"podero_inverter_battery_charge_ratio{{{s}}}", "charge"),
                (f"podero_inverter_battery_low_threshold_ratio{{{s}}}", "low threshold"),
            ),
            overrides=[dashed(".*threshold.*", "red")],
            max_value=1,
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Price",
            "Energy price of the exported data point, as the API delivers it "
            "(the unit is not documented; examples look like currency per MWh).",
            "none",
            target(f"podero_inverter_price{{{s}}}", "price"),
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Data age",
            f"Age of the newest data point; above {STALE_SECONDS // 3600} h "
            "PoderoInverterDataStale fires.",
            "s",
            target(f"time() - podero_inverter_data_timestamp_seconds{{{s}}}", "data age"),
        ),
        12,
        8,
    )

    layout.row("Energy")
    layout.add(
        stat(
            "Energy today",
            "Energy since local midnight: increase(counter[$__range]) / 3.6e6 on the panel's "
            f"time range 'now/d' (the day so far). {ENERGY_RESETS}",
            "kwatth",
            *energy_targets(s, "$__range"),
            decimals=1,
            timeFrom="now/d",
        ),
        8,
        8,
    )
    layout.add(
        panel(
            "barchart",
            "Energy per day",
            "Energy per day over the last 7 days: increase(counter[$__interval]) / 3.6e6 with "
            "the panel's minimum interval of 1d, so each bar is the 24 hours up to its time. "
            f"{ENERGY_RESETS}",
            "kwatth",
            [
                target(
                    f"increase({counter}{{{s}}}[$__interval]) / {J_PER_KWH}",
                    legend,
                    chr(ord("A") + i),
                )
                for i, (counter, legend) in enumerate(ENERGY)
            ],
            {"decimals": 1, "color": {"mode": "palette-classic"}},
            {
                "xField": "Time",
                "orientation": "vertical",
                "stacking": "none",
                "showValue": "never",
                "groupWidth": 0.8,
                "barWidth": 0.9,
                "xTickLabelRotation": 0,
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "none"},
            },
            interval="1d",
            timeFrom="7d",
            # One frame per counter; the bar chart draws one frame, so join them on time.
            transformations=[
                {"id": "joinByField", "options": {"byField": "Time", "mode": "outer"}}
            ],
        ),
        16,
        8,
    )

    return dashboard(
        INVERTER_UID,
        "Podero inverter",
        "One solar inverter and home battery from the Podero Partner API: power, battery, "
        "price, data age and energy per day. Pick it by name in the Inverter variable.",
        [
            variable_datasource(),
            variable_query("job", "Job", "label_values(podero_exporter_build_info, job)"),
            variable_query(
                "inverter_id",
                "Inverter",
                'query_result(podero_inverter_info{job=~"$job"})',
                # query_result lists labels sorted by name, joined by ","; show the name.
                regex='/inverter_id="(?<value>[^"]+)".*[{,]name="(?<text>[^"]+)"/',
                sort=5,
            ),
        ],
        layout,
        [
            link("Podero fleet", f"/d/{FLEET_UID}/podero-fleet"),
            link("Podero home", f"/d/{HOME_UID}/podero-home"),
        ],
        "now-24h",
    )


# --- the home dashboard: every device of one user --------------------------------------------

JOB = 'job=~"$job"'
HOME = 'job=~"$job", user_id="$user_id"'
HOME_INVERTERS = f"on (job, instance, inverter_id) podero_inverter_info{{{HOME}}}"
DEVICE_COLUMNS = "kind, device_id, inverter_id, name"
YES_NO = {"1": ("yes", "green"), "0": ("no", "transparent")}


def of_home(inverter_expr: str) -> str:
    """An expression over inverter series, restricted to the home's inverters (only their
    info series carries user_id)."""
    return f"({inverter_expr}) and {HOME_INVERTERS}"


def every_device(inverter_expr: str, device_expr: str, by: str = DEVICE_COLUMNS) -> str:
    """The home's inverters (labelled like devices) and its other devices, one series each."""
    return f"max by ({by}) ({as_devices(of_home(inverter_expr))} or {device_expr})"


def column(name: str, *properties: dict[str, Any]) -> dict[str, Any]:
    return {"matcher": {"id": "byName", "options": name}, "properties": list(properties)}


def home() -> dict[str, Any]:
    layout = Layout()
    device_up = every_device(f"podero_inverter_up{{{JOB}}}", f"podero_device_up{{{HOME}}}")
    inverter_actions = as_devices(of_home(f"podero_inverter_action_needed{{{JOB}}} == 1"))
    actions = (
        f"max by (kind, name, action) ({label_replace(inverter_actions, 'action', NO_CODE)}"
        f" or podero_device_action_needed{{{HOME}}} == 1)"
    )

    layout.row("Home now")
    home_stats: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
        (
            "Solar production",
            "Solar production of the home's inverters, summed.",
            "watt",
            f"sum({of_home(f'podero_inverter_solar_production_watts{{{JOB}}}')})",
            {},
        ),
        (
            "Household consumption",
            "Household consumption measured by the home's inverters, summed.",
            "watt",
            f"sum({of_home(f'podero_inverter_household_consumption_watts{{{JOB}}}')})",
            {},
        ),
        (
            "Grid power",
            "Power to the grid, summed over the home's inverters: positive = export, "
            "negative = import.",
            "watt",
            f"sum({of_home(f'podero_inverter_grid_export_watts{{{JOB}}}')})",
            {},
        ),
        (
            "Battery charge",
            "State of charge of the home's batteries (mean if it has several).",
            "percentunit",
            f"avg({of_home(f'podero_inverter_battery_charge_ratio{{{JOB}}}')})",
            {"decimals": 0},
        ),
    )
    for title, description, unit, expr, kwargs in home_stats:
        layout.add(stat(title, description, unit, target(expr, title.lower()), **kwargs), 4, 4)
    layout.add(
        stat(
            "Devices reporting",
            "The home's inverters, heat pumps and electric vehicles whose last poll succeeded, "
            "out of those polled (wallboxes have no data and are not polled).",
            "none",
            *targets((f"sum({device_up})", "reporting"), (f"count({device_up})", "polled")),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Actions needed",
            "Actions the owner must take on the home's devices; the table below names them.",
            "none",
            target(count_or_zero(actions), "actions"),
            warn=((1, "orange"),),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Hot water",
            "Hot water temperature of each of the home's heat pumps (API field hot_water_temp).",
            "celsius",
            target(f"podero_heat_pump_hot_water_temperature_celsius{{{HOME}}}", "{{name}}"),
            decimals=1,
            names=True,
        ),
        8,
        4,
    )
    layout.add(
        stat(
            "EV battery level",
            "Battery level of each of the home's electric vehicles (API field battery_level).",
            "percentunit",
            target(f"podero_electric_vehicle_battery_level_ratio{{{HOME}}}", "{{name}}"),
            decimals=0,
            names=True,
        ),
        8,
        4,
    )
    layout.add(
        stat(
            "EV charged by",
            "The time of day by which each electric vehicle should reach its target level "
            "(podero_electric_vehicle_charged_by_seconds, in the exporter's time zone).",
            "clocks",
            target(f"podero_electric_vehicle_charged_by_seconds{{{HOME}}}", "{{name}}"),
            names=True,
        ),
        8,
        4,
    )
    info_columns = f"{DEVICE_COLUMNS}, manufacturer, model, lifecycle_state"
    health = (  # (column, inverter expression, other devices' expression)
        ("Poll", f"podero_inverter_up{{{JOB}}}", f"podero_device_up{{{HOME}}}"),
        (
            "Data age",
            f"time() - podero_inverter_data_timestamp_seconds{{{JOB}}}",
            f"time() - podero_device_data_timestamp_seconds{{{HOME}}}",
        ),
        (
            "Authenticated",
            f"podero_inverter_authenticated{{{JOB}}}",
            f"podero_device_authenticated{{{HOME}}}",
        ),
    )
    device_only = (  # (column, metric): the inverters have no such field
        ("Smart optimisation", "podero_device_smart_optimization_active"),
        ("Score", "podero_device_optimization_score"),
    )
    columns = [name for name, *_ in health] + [name for name, _ in device_only]
    layout.add(
        table(
            "Devices",
            "Every device of the home: inverters, heat pumps, electric vehicles and wallboxes, "
            "with the last poll (wallboxes are not polled), the age of the newest data point, "
            "the manufacturer connection, Podero's smart optimisation and optimisation score. "
            "Click an inverter_id to open the inverter's dashboard.",
            "none",
            [
                target(
                    every_device(
                        f"podero_inverter_info{{{HOME}}}",
                        f"podero_device_info{{{HOME}}}",
                        info_columns,
                    ),
                    "",
                ),
                *(
                    target(every_device(inverter_expr, device_expr), name, chr(ord("B") + i))
                    for i, (name, inverter_expr, device_expr) in enumerate(health)
                ),
                *(
                    target(
                        f"max by ({DEVICE_COLUMNS}) ({metric}{{{HOME}}})",
                        name,
                        chr(ord("B") + len(health) + i),
                    )
                    for i, (name, metric) in enumerate(device_only)
                ),
            ],
            hidden=("Time", "device_id", "Value #A"),
            sort_by="kind",
            rename={f"Value #{chr(ord('B') + i)}": name for i, name in enumerate(columns)},
            overrides=[
                column(
                    "Poll",
                    {
                        "id": "mappings",
                        "value": value_mappings({"1": ("ok", "green"), "0": ("failing", "red")}),
                    },
                ),
                column("Data age", {"id": "unit", "value": "s"}),
                column("Authenticated", {"id": "mappings", "value": value_mappings(YES_NO)}),
                column("Smart optimisation", {"id": "mappings", "value": value_mappings(YES_NO)}),
                column("Score", {"id": "decimals", "value": 2}),
                link_override(
                    "inverter_id",
                    "Open ${__data.fields.name}",
                    f"/d/{INVERTER_UID}/podero-inverter?${{datasource:queryparam}}"
                    "&var-job=${job}&var-inverter_id=${__data.fields.inverter_id}"
                    "&${__url_time_range}",
                ),
            ],
        ),
        16,
        8,
    )
    layout.add(
        table(
            "Actions needed",
            "One row per action the owner must take on a device of the home, with the "
            f"action's code (API field actions, e.g. reauthenticate; inverters: {NO_CODE}).",
            "none",
            [target(actions, "")],
            hidden=("Time", "Value"),
            sort_by="name",
        ),
        8,
        8,
    )

    layout.row("Inverters")
    power = (
        ("solar", "clamp_min(podero_inverter_solar_production_watts{%s}, 0)"),
        ("household", "podero_inverter_household_consumption_watts{%s}"),
        ("grid export", "clamp_min(podero_inverter_grid_export_watts{%s}, 0)"),
        ("grid import", "clamp_min(-podero_inverter_grid_export_watts{%s}, 0)"),
        ("battery charging", "clamp_min(-podero_inverter_battery_power_watts{%s}, 0)"),
        ("battery discharging", "clamp_min(podero_inverter_battery_power_watts{%s}, 0)"),
    )
    layout.add(
        timeseries(
            "Home power",
            "Solar production, household consumption, grid export and import, battery "
            "charging and discharging, each summed over the home's inverters and shown "
            "positive.",
            "watt",
            *targets(*((f"sum({of_home(expr % JOB)})", legend) for legend, expr in power)),
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Battery charge",
            "State of charge of each battery of the home, with its battery-low alert "
            "threshold as a dashed line.",
            "percentunit",
            *targets(
                (of_home(f"podero_inverter_battery_charge_ratio{{{JOB}}}"), "{{name}}"),
                (
                    of_home(f"podero_inverter_battery_low_threshold_ratio{{{JOB}}}"),
                    "{{name}} low threshold",
                ),
            ),
            overrides=[dashed(".*threshold.*", "red")],
            max_value=1,
        ),
        12,
        8,
    )

    layout.row("Heat pumps")
    layout.add(
        timeseries(
            "Heat pump temperatures",
            "Hot water and inlet temperature of each heat pump (API fields hot_water_temp, "
            "inlet_temp_act), with the hot-water-low threshold (thresholds."
            "hot_water_low_celsius) as a dashed line.",
            "celsius",
            *targets(
                (f"podero_heat_pump_hot_water_temperature_celsius{{{HOME}}}", "{{name}} hot water"),
                (f"podero_heat_pump_inlet_temperature_celsius{{{HOME}}}", "{{name}} inlet"),
                (
                    f"podero_heat_pump_hot_water_low_threshold_celsius{{{HOME}}}",
                    "{{name}} hot water low threshold",
                ),
            ),
            overrides=[dashed(".*threshold.*", "red")],
        ),
        12,
        8,
    )
    layout.add(
        timeseries(
            "Heat pump consumption",
            "Consumption of each heat pump as Podero estimates it with its optimisation, and "
            "without it (dashed; API fields estimated_consumption, unoptimized_consumption).",
            "watt",
            *targets(
                (f"podero_heat_pump_estimated_consumption_watts{{{HOME}}}", "{{name}} estimated"),
                (
                    f"podero_heat_pump_unoptimized_consumption_watts{{{HOME}}}",
                    "{{name}} unoptimized",
                ),
            ),
            overrides=[unoptimized_dashed()],
        ),
        12,
        8,
    )

    layout.row("Electric vehicles")
    layout.add(
        timeseries(
            "EV battery level",
            "Battery level of each electric vehicle, with its target level (thresholds."
            "vehicle_charged_percent) as a dashed line.",
            "percentunit",
            *targets(
                (f"podero_electric_vehicle_battery_level_ratio{{{HOME}}}", "{{name}}"),
                (
                    f"podero_electric_vehicle_charged_threshold_ratio{{{HOME}}}",
                    "{{name}} target threshold",
                ),
            ),
            overrides=[dashed(".*threshold.*", "orange")],
            max_value=1,
        ),
        8,
        8,
    )
    layout.add(
        state_timeline(
            "EV plugged in, charging, at home",
            "For each electric vehicle: plugged in, charging, and at the place where Podero "
            "optimises its charging (API fields is_plugged_in, is_charging, "
            "is_at_optimized_location).",
            *targets(
                (f"podero_electric_vehicle_plugged_in{{{HOME}}}", "{{name}} plugged in"),
                (f"podero_electric_vehicle_charging{{{HOME}}}", "{{name}} charging"),
                (f"podero_electric_vehicle_at_optimized_location{{{HOME}}}", "{{name}} at home"),
            ),
            mappings=YES_NO,
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "EV charging consumption",
            "Charging power of each electric vehicle as Podero estimates it with its "
            "optimisation, and without it (dashed; API fields estimated_consumption, "
            "unoptimized_consumption).",
            "watt",
            *targets(
                (
                    f"podero_electric_vehicle_estimated_consumption_watts{{{HOME}}}",
                    "{{name}} estimated",
                ),
                (
                    f"podero_electric_vehicle_unoptimized_consumption_watts{{{HOME}}}",
                    "{{name}} unoptimized",
                ),
            ),
            overrides=[unoptimized_dashed()],
        ),
        8,
        8,
    )

    layout.row("Device health")
    layout.add(
        timeseries(
            "Data age",
            f"Age of each device's newest data point; above {STALE_SECONDS // 3600} h it is stale.",
            "s",
            target(
                every_device(
                    f"time() - podero_inverter_data_timestamp_seconds{{{JOB}}}",
                    f"time() - podero_device_data_timestamp_seconds{{{HOME}}}",
                ),
                "{{name}}",
            ),
        ),
        12,
        8,
    )
    layout.add(
        state_timeline(
            "Poll status",
            "Whether the exporter's last poll of each device succeeded (podero_inverter_up, "
            "podero_device_up).",
            target(device_up, "{{name}}"),
            mappings={"1": ("ok", "green"), "0": ("failing", "red")},
        ),
        12,
        8,
    )

    every_info = f"podero_inverter_info{{{JOB}}} or podero_device_info{{{JOB}}}"
    named = label_replace(
        label_replace(every_info, "home", "$1", "name", "(.*)"),
        "home",
        "$1",
        "name",
        OWNER_OF_NAME,
    )
    return dashboard(
        HOME_UID,
        "Podero home",
        "Every device of one home (a Podero user): its inverters and batteries, heat pumps, "
        "electric vehicles and wallboxes, and their health. Pick the home in the Home "
        "variable.",
        [
            variable_datasource(),
            variable_query("job", "Job", "label_values(podero_exporter_build_info, job)"),
            variable_query(
                "user_id",
                "Home",
                f"query_result(max by (home, user_id) ({named}))",
                # Shown by the owner's handle from the device names, else a device's name.
                regex='/home="(?<text>[^"]*)",user_id="(?<value>[^"]+)"/',
                sort=5,
            ),
        ],
        layout,
        [
            link("Podero fleet", f"/d/{FLEET_UID}/podero-fleet"),
            link("Podero inverter", f"/d/{INVERTER_UID}/podero-inverter"),
        ],
        "now-24h",
        tags=("podero", "home", "solar", "heat-pump", "electric-vehicle"),
    )


DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "podero-fleet.json": fleet,
    "podero-inverter.json": inverter,
    "podero-home.json": home,
}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2) + "\n"


if __name__ == "__main__":
    for name in DASHBOARDS:
        path = DASHBOARDS_DIR / name
        path.write_text(render(name))
        print(f"wrote {path}")
