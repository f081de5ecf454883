"""Builds grafana/dashboards/podero-inverters.json: `python grafana/build_dashboard.py`.

The dashboard is written as code so that every panel is uniform (templated datasource,
description, unit) and a test can check the JSON in the repository is what this produces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards" / "podero-inverters.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job", name=~"$name"'


def target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {
        "refId": ref,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "datasource": DS,
        "range": True,
        "instant": False,
    }


class Layout:
    """Places panels left to right in rows of 24 grid units."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.row_height = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str, description: str, repeat: str | None = None) -> None:
        self.y += self.row_height
        self.x, self.row_height = 0, 1
        panel: dict[str, Any] = {
            "type": "row",
            "title": title,
            "description": description,
            "collapsed": False,
            "id": self._next_id(),
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "panels": [],
        }
        if repeat:
            panel["repeat"] = repeat
        self.panels.append(panel)
        self.y += 1
        self.row_height = 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self.y += self.row_height
            self.x, self.row_height = 0, 0
        panel["id"] = self._next_id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_height = max(self.row_height, h)
        self.panels.append(panel)


def stat(
    title: str, description: str, unit: str, *targets: dict[str, Any], decimals: int | None = None
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": list(targets),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "textMode": "value_and_name",
            "orientation": "auto",
        },
    }


def timeseries(
    title: str,
    description: str,
    unit: str,
    *targets: dict[str, Any],
    overrides: list[dict[str, Any]] | None = None,
    max_value: float | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
        },
        "color": {"mode": "palette-classic"},
    }
    if max_value is not None:
        defaults["min"], defaults["max"] = 0, max_value
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": list(targets),
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
    }


def bargauge(title: str, description: str, unit: str, *targets: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": list(targets),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "color": {"mode": "palette-classic"},
                "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
            },
            "overrides": [],
        },
        "options": {
            "orientation": "horizontal",
            "displayMode": "basic",
            "showUnfilled": True,
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
    }


def table(
    title: str, description: str, unit: str, *targets: dict[str, Any], hidden: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [{**t, "format": "table", "instant": True, "range": False} for t in targets],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm"},
        "transformations": [
            {
                "id": "organize",
                "options": {"excludeByName": {name: True for name in hidden}, "renameByName": {}},
            }
        ],
    }


def dashed(regex: str, color: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": color}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def build() -> dict[str, Any]:
    layout = Layout()

    layout.row("Fleet", "The whole fleet at a glance.")
    layout.add(
        stat(
            "Inverters reporting",
            "Inverters whose last poll succeeded, out of those configured.",
            "none",
            target(f"sum(podero_inverter_up{{{SEL}}})", "reporting"),
            target(f"count(podero_inverter_info{{{SEL}}})", "configured", "B"),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Stale inverters",
            "Inverters whose newest data point is older than one hour.",
            "none",
            target(
                f"count((time() - podero_inverter_data_timestamp_seconds{{{SEL}}}) > 3600)"
                " or vector(0)",
                "stale",
            ),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Solar production",
            "Total solar production of the selected inverters.",
            "watt",
            target(f"sum(podero_inverter_solar_production_watts{{{SEL}}})", "solar"),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Grid export",
            "Total power exported to the grid (positive grid power).",
            "watt",
            target(f"sum(clamp_min(podero_inverter_grid_export_watts{{{SEL}}}, 0))", "export"),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Grid import",
            "Total power imported from the grid (negative grid power, shown positive).",
            "watt",
            target(f"sum(clamp_min(-podero_inverter_grid_export_watts{{{SEL}}}, 0))", "import"),
        ),
        4,
        4,
    )
    layout.add(
        stat(
            "Mean battery charge",
            "Average state of charge of the batteries.",
            "percentunit",
            target(f"avg(podero_inverter_battery_charge_ratio{{{SEL}}})", "battery"),
            decimals=0,
        ),
        4,
        4,
    )

    layout.row("Fleet inventory", "What the Podero API says about the devices.")
    layout.add(
        bargauge(
            "Inverters by manufacturer and model",
            "How many of the selected inverters each manufacturer and model accounts for.",
            "none",
            target(
                f"count by (manufacturer, model) (podero_inverter_info{{{SEL}}})",
                "{{manufacturer}} {{model}}",
            ),
        ),
        8,
        8,
    )
    layout.add(
        table(
            "Inverters needing action",
            "Inverters whose owner must act: Podero flags action_needed, or the manufacturer "
            "connection lapsed (the customer must reconnect).",
            "none",
            target(
                f'label_replace(podero_inverter_action_needed{{{SEL}}} == 1, "reason", '
                f'"action needed", "", "") or label_replace(podero_inverter_authenticated'
                f'{{{SEL}}} == 0, "reason", "manufacturer connection lapsed", "", "")',
                "",
            ),
            hidden=("Time", "Value", "__name__", "job", "instance"),
        ),
        10,
        8,
    )
    layout.add(
        timeseries(
            "Discovered inverters",
            "Inverters found by discovery, per organization.",
            "none",
            target('podero_discovery_inverters{job=~"$job"}', "{{org_id}}"),
        ),
        6,
        8,
    )

    layout.row("Inverter $name", "One row per selected inverter.", repeat="name")
    layout.add(
        timeseries(
            "Solar production",
            "Solar production (API field solar_production_w).",
            "watt",
            target(f"podero_inverter_solar_production_watts{{{SEL}}}", "{{name}}"),
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Household consumption",
            "Household consumption (API field household_consumption_w).",
            "watt",
            target(f"podero_inverter_household_consumption_watts{{{SEL}}}", "{{name}}"),
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Grid export and import",
            "Power to the grid: export and import each shown as a positive series "
            "(API field export_power_to_grid_w, positive = export).",
            "watt",
            target(f"clamp_min(podero_inverter_grid_export_watts{{{SEL}}}, 0)", "{{name}} export"),
            target(
                f"clamp_min(-podero_inverter_grid_export_watts{{{SEL}}}, 0)", "{{name}} import", "B"
            ),
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Battery power",
            "Battery charging and discharging, each shown positive "
            "(API field battery_charge_discharge_power_w, positive = discharging).",
            "watt",
            target(
                f"clamp_min(-podero_inverter_battery_power_watts{{{SEL}}}, 0)", "{{name}} charging"
            ),
            target(
                f"clamp_min(podero_inverter_battery_power_watts{{{SEL}}}, 0)",
                "{{name}} discharging",
                "B",
            ),
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Battery charge",
            "State of charge, with the battery-low alert threshold as a dashed line.",
            "percentunit",
            target(f"podero_inverter_battery_charge_ratio{{{SEL}}}", "{{name}}"),
            target(
                f"podero_inverter_battery_low_threshold_ratio{{{SEL}}}",
                "{{name}} low threshold",
                "B",
            ),
            overrides=[dashed(".*threshold.*", "red")],
            max_value=1,
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Price",
            "Energy price of the exported data point, as the API delivers it "
            "(the unit is not documented; examples look like currency per MWh).",
            "none",
            target(f"podero_inverter_price{{{SEL}}}", "{{name}}"),
        ),
        8,
        8,
    )
    layout.add(
        timeseries(
            "Data age",
            "Age of the newest data point; above one hour PoderoInverterDataStale fires.",
            "s",
            target(f"time() - podero_inverter_data_timestamp_seconds{{{SEL}}}", "{{name}}"),
        ),
        8,
        8,
    )

    layout.row("Exporter health", "How the exporter and its calls to the Podero API are doing.")
    layout.add(
        timeseries(
            "API requests by status code",
            "Requests to the Podero API per second, by HTTP status (timeouts and connection errors "
            "by name).",
            "reqps",
            target(
                'sum by (code) (rate(podero_api_requests_total{job=~"$job"}[$__rate_interval]))',
                "{{code}}",
            ),
        ),
        6,
        8,
    )
    layout.add(
        timeseries(
            "API request latency p95",
            "95th percentile duration of one API call, by endpoint.",
            "s",
            target(
                "histogram_quantile(0.95, sum by (le, endpoint) "
                '(rate(podero_api_request_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))',
                "{{endpoint}}",
            ),
        ),
        6,
        8,
    )
    layout.add(
        timeseries(
            "Token expiry",
            "Time until the current access token expires; it is renewed ahead.",
            "s",
            target(
                'podero_oauth_token_expiry_timestamp_seconds{job=~"$job"} - time()', "{{instance}}"
            ),
        ),
        6,
        8,
    )
    layout.add(
        timeseries(
            "Poll duration p95",
            "95th percentile duration of one inverter poll, retries included.",
            "s",
            target(
                "histogram_quantile(0.95, sum by (le) "
                '(rate(podero_poll_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))',
                "p95",
            ),
        ),
        6,
        8,
    )

    return {
        "title": "Podero inverters",
        "uid": "podero-inverters",
        "description": "Solar inverters and home batteries from the Podero Partner API.",
        "tags": ["podero", "solar", "battery"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
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
                },
                {
                    "name": "job",
                    "label": "Job",
                    "type": "query",
                    "datasource": DS,
                    "query": "label_values(podero_exporter_build_info, job)",
                    "definition": "label_values(podero_exporter_build_info, job)",
                    "current": {},
                    "hide": 0,
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                    "options": [],
                    "includeAll": False,
                    "multi": False,
                },
                {
                    "name": "name",
                    "label": "Inverter",
                    "type": "query",
                    "datasource": DS,
                    "query": 'label_values(podero_inverter_info{job=~"$job"}, name)',
                    "definition": 'label_values(podero_inverter_info{job=~"$job"}, name)',
                    "current": {},
                    "hide": 0,
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                    "options": [],
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                },
            ]
        },
        "panels": layout.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
