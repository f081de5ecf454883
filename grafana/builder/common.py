"""What the three dashboards share: the templated data source, metric names read from the
exporter's metrics table, the selectors of the one vocabulary, variables, links, the panel
kinds (every panel uniform: description, unit, data source) and the grid they are placed on.

Every metric name in a query is spelled through `metric()`, which looks it up in
exporter/kinds/table.py: a family the exporter does not serve fails the build (KeyError),
not a dashboard in production."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from grafana_foundation_sdk.builders import barchart, bargauge, prometheus, stat, statetimeline
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table as tablepanel
from grafana_foundation_sdk.builders import timeseries as tspanel
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from exporter.kinds.table import by_name

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
FLEET_UID, INVERTER_UID, HOME_UID = "podero-fleet", "podero-inverter", "podero-home"
# Newest data point older than this: the device is stale (PoderoDeviceDataStale's limit).
STALE_SECONDS = 3600
J_PER_KWH = "3.6e6"  # joules per kWh, as PromQL reads it
ENERGY_RESETS = (
    "Counter resets (an exporter restart starts the counters at 0) are handled by increase(); "
    "energy of buckets completed before the exporter started is not counted."
)
# The shipped rules' latch (prometheus/podero.rules.yml): a vehicle below its level at its
# charged-by time, for as long as it stays plugged in at home below it. The dashboard reads it
# rather than repeat the rule, so that panel and alert agree. A rule, not an exporter family.
NOT_CHARGED_RULE = "device:podero_electric_vehicle_battery_level_ratio:not_charged"
YES_NO = {"1": ("yes", "green"), "0": ("no", "transparent")}
OK_FAILING = {"1": ("ok", "green"), "0": ("failing", "red")}

Query = prometheus.Dataquery
Props = list[dm.DynamicConfigValue]


def metric(name: str) -> str:
    """A family's exposition name, from the exporter's metrics table (KeyError if it has none)."""
    return by_name(name).name


def series(name: str, selector: str) -> str:
    """`name{selector}`: a family of the table, selected."""
    return f"{metric(name)}{{{selector}}}"


# --- the expressions of the one vocabulary (shared families carry kind) ------------------------


def stale(sel: str) -> str:
    """Devices polled successfully whose newest data point is older than STALE_SECONDS."""
    return (
        f"(time() - {series('podero_device_data_timestamp_seconds', sel)} > {STALE_SECONDS})"
        f" and on (job, instance, device_id) {series('podero_device_up', sel)} == 1"
    )


def without_data(sel: str) -> str:
    """Devices polled successfully that have never delivered a data point."""
    return (
        f"{series('podero_device_up', sel)} == 1 unless on (job, instance, device_id) "
        f"{series('podero_device_data_timestamp_seconds', sel)}"
    )


def hot_water_low(sel: str) -> str:
    """Heat pumps whose hot water is below their configured low threshold."""
    # Both series carry the same labels, so the comparison needs no on (...).
    return (
        f"{series('podero_heat_pump_hot_water_temperature_celsius', sel)}"
        f" < {series('podero_heat_pump_hot_water_low_threshold_celsius', sel)}"
    )


def battery_low(sel: str) -> str:
    """Inverters whose battery is below its configured low threshold."""
    return (
        f"{series('podero_inverter_battery_charge_ratio', sel)}"
        f" < {series('podero_inverter_battery_low_threshold_ratio', sel)}"
    )


def not_charged(sel: str) -> str:
    """Electric vehicles not charged by their time: the shipped recording rule's latch (kept
    per job and device_id), with each vehicle's current labels joined back, as the alert."""
    return (
        f"{series('podero_electric_vehicle_battery_level_ratio', sel)} * 0"
        f" + on (job, device_id) group_left () {NOT_CHARGED_RULE}"
    )


def count_or_zero(expr: str) -> str:
    return f"count({expr}) or vector(0)"


def energy() -> tuple[tuple[str, str], ...]:
    """(counter, legend): the exporter's energy counters, joules per completed bucket."""
    return tuple(
        (metric(f"podero_inverter_{name}_energy_joules_total"), legend)
        for name, legend in (
            ("solar", "solar"),
            ("grid_export", "grid export"),
            ("grid_import", "grid import"),
            ("household", "household"),
            ("battery_charge", "battery charged"),
            ("battery_discharge", "battery discharged"),
        )
    )


# --- queries -------------------------------------------------------------------------------------


def query(expr: str, legend: str = "", ref: str = "A") -> Query:
    """A range query on the templated data source."""
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend or "__auto")
        .ref_id(ref)
        .datasource(DS)
        .range()
    )


def queries(*pairs: tuple[str, str]) -> list[Query]:
    """Queries from (expr, legend) pairs with refIds A, B, C..."""
    return [query(expr, legend, ref(i)) for i, (expr, legend) in enumerate(pairs)]


def ref(i: int) -> str:
    return chr(ord("A") + i)


def energy_queries(sel: str, window: str) -> list[Query]:
    """Energy in kWh per counter over `window`, summed over the selected inverters."""
    return queries(
        *(
            (f"sum(increase({counter}{{{sel}}}[{window}])) / {J_PER_KWH}", legend)
            for counter, legend in energy()
        )
    )


# --- field config pieces -------------------------------------------------------------------------


def thresholds(*steps: tuple[float, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps(
            [dm.Threshold(value=None, color="green")]
            + [dm.Threshold(value=value, color=color) for value, color in steps]
        )
    )


def color(mode: dm.FieldColorModeId) -> db.FieldColor:
    return db.FieldColor().mode(mode)


def value_mappings(mappings: dict[str, tuple[str, str]]) -> list[dm.ValueMapping]:
    """Grafana value mappings from {value: (text, color)}."""
    options = {
        value: dm.ValueMappingResult(text=text, color=shade, index=i)
        for i, (value, (text, shade)) in enumerate(mappings.items())
    }
    return [dm.ValueMap(options=options)]


def prop(key: str, value: Any) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=key, value=value)


def dashed(fixed_color: str | None = None) -> Props:
    """A dashed line without fill (thresholds, consumption without optimisation)."""
    props = [prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})]
    if fixed_color:
        props.append(prop("color", {"mode": "fixed", "fixedColor": fixed_color}))
    return [*props, prop("custom.fillOpacity", 0)]


def data_link(title: str, url: str) -> Props:
    """A table column whose cells open `url` (a data link)."""
    return [prop("links", [{"title": title, "url": url}])]


def dashboard_url(uid: str, **variables: str) -> str:
    """A link into another dashboard keeping the data source and the time range."""
    params = "".join(f"&var-{name}={value}" for name, value in variables.items())
    return f"/d/{uid}/{uid}?${{datasource:queryparam}}{params}&${{__url_time_range}}"


def legend() -> cb.VizLegendOptions:
    return (
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def tooltip(mode: cm.TooltipDisplayMode) -> cb.VizTooltipOptions:
    return cb.VizTooltipOptions().mode(mode).sort(cm.SortOrder.NONE)


def last_value() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


# --- panels --------------------------------------------------------------------------------------

Panel = Any  # one of the SDK's panel builders (each has title, description, unit, targets...)


def _panel(panel: Panel, title: str, description: str, unit: str, targets: list[Query]) -> Panel:
    return (
        panel.title(title)
        .description(description)
        .unit(unit)
        .datasource(DS)
        .targets(targets)
        .overrides([])
    )


def _overrides(panel: Panel, overrides: Iterable[tuple[str, str, Props]]) -> Panel:
    """(matcher, field name or regex, properties) -> the panel's field overrides."""
    for matcher, options, props in overrides:
        if matcher == "byName":
            panel.override_by_name(options, props)
        else:
            panel.override_by_regexp(options, props)
    return panel


def stat_panel(
    title: str,
    description: str,
    unit: str,
    *targets: Query,
    decimals: int | None = None,
    warn: tuple[tuple[float, str], ...] = (),
    mappings: dict[str, tuple[str, str]] | None = None,
    names: bool = False,
    time_from: str | None = None,
) -> stat.Panel:
    """A stat panel; `names`: show each series' name (one query, several devices). Its queries
    are instant: a value is what Prometheus has now, so a device whose data aged out (the
    exporter stops exporting it) shows no value rather than the last one of a range."""
    panel = _panel(stat.Panel(), title, description, unit, [t.instant() for t in targets])
    panel.color_scheme(color(dm.FieldColorModeId.THRESHOLDS)).thresholds(thresholds(*warn))
    if mappings:
        panel.mappings(value_mappings(mappings))
    if decimals is not None:
        panel.decimals(decimals)
    if time_from:
        panel.time_from(time_from)
    several = len(targets) > 1 or names
    return (
        panel.reduce_options(last_value())
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .justify_mode(cm.BigValueJustifyMode.AUTO)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME if several else cm.BigValueTextMode.VALUE)
        .orientation(cm.VizOrientation.AUTO)
    )


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    *targets: Query,
    max_value: float | None = None,
    overrides: Sequence[tuple[str, str, Props]] = (),
) -> tspanel.Panel:
    panel = _panel(tspanel.Panel(), title, description, unit, list(targets))
    panel.draw_style(cm.GraphDrawStyle.LINE).line_width(1).fill_opacity(10)
    panel.show_points(cm.VisibilityMode.NEVER).span_nulls(False)
    panel.color_scheme(color(dm.FieldColorModeId.PALETTE_CLASSIC))
    if max_value is not None:
        panel.min(0).max(max_value)
    panel.legend(legend()).tooltip(tooltip(cm.TooltipDisplayMode.MULTI))
    return _overrides(panel, overrides)


def state_timeline_panel(
    title: str, description: str, *targets: Query, mappings: dict[str, tuple[str, str]]
) -> statetimeline.Panel:
    """One band per series, coloured by its (mapped) state over time."""
    panel = _panel(statetimeline.Panel(), title, description, "none", list(targets))
    return (
        panel.line_width(0)
        .fill_opacity(70)
        .color_scheme(color(dm.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds())
        .mappings(value_mappings(mappings))
        .show_value(cm.VisibilityMode.NEVER)
        .row_height(0.9)
        .merge_values(True)
        .align_value(cm.TimelineValueAlignment.LEFT)
        .legend(legend().show_legend(False))
        .tooltip(tooltip(cm.TooltipDisplayMode.SINGLE))
    )


def table_panel(
    title: str,
    description: str,
    targets: list[Query],
    *,
    hidden: Sequence[str],
    sort_by: str,
    rename: dict[str, str] | None = None,
    overrides: Sequence[tuple[str, str, Props]] = (),
) -> tablepanel.Panel:
    """A table of the series' labels (one row per series, the queries' frames merged on their
    labels); its values are instant."""
    targets = [t.instant().format(pm.PromQueryFormat.TABLE) for t in targets]
    panel = _panel(tablepanel.Panel(), title, description, "none", targets)
    panel.show_header(True).cell_height(cm.TableCellHeight.SM)
    panel.sort_by([cb.TableSortByFieldState().display_name(sort_by).desc(False)])
    panel.transformations(
        [
            # One frame per query; merge makes them one table with one row per series.
            dm.DataTransformerConfig(id_val="merge", options={}),
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {name: True for name in hidden},
                    "renameByName": rename or {},
                },
            ),
        ]
    )
    return _overrides(panel, overrides)


def bargauge_panel(title: str, description: str, *targets: Query) -> bargauge.Panel:
    """Horizontal bars of counts, one per series."""
    panel = _panel(bargauge.Panel(), title, description, "none", list(targets))
    return (
        panel.min(0)
        .color_scheme(color(dm.FieldColorModeId.PALETTE_CLASSIC))
        .thresholds(thresholds())
        .orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .reduce_options(last_value())
    )


def energy_per_day_panel(title: str, description: str, targets: list[Query]) -> barchart.Panel:
    """Bars per day of the energy counters' increase, one bar group per day."""
    panel = _panel(barchart.Panel(), title, description, "kwatth", targets)
    return (
        panel.decimals(1)
        .color_scheme(color(dm.FieldColorModeId.PALETTE_CLASSIC))
        .x_field("Time")
        .orientation(cm.VizOrientation.VERTICAL)
        .stacking(cm.StackingMode.NONE)
        .show_value(cm.VisibilityMode.NEVER)
        .group_width(0.8)
        .bar_width(0.9)
        .x_tick_label_rotation(0)
        .legend(legend())
        .tooltip(tooltip(cm.TooltipDisplayMode.MULTI))
        .interval("1d")
        .time_from("7d")
        # One frame per counter; the bar chart draws one frame, so join them on time.
        .transformations(
            [dm.DataTransformerConfig(id_val="joinByField", options={"byField": "Time"})]
        )
    )


# --- variables and links -------------------------------------------------------------------------


def datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


def query_variable(
    name: str,
    label: str,
    expr: str,
    *,
    multi: bool = False,
    regex: str = "",
    sort: dm.VariableSort = dm.VariableSort.ALPHABETICAL_ASC,
) -> db.QueryVariable:
    variable = (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(expr)
        .hide(dm.VariableHide.DONT_HIDE)
        # On time range change, so that new replicas and devices appear.
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(sort)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        variable.all_value(".*")
    if regex:
        variable.regex(regex)
    return variable


def job_variable() -> db.QueryVariable:
    return query_variable(
        "job", "Job", f"label_values({metric('podero_exporter_build_info')}, job)"
    )


def link(title: str, uid: str) -> db.DashboardLink:
    return (
        db.DashboardLink(title)
        .type(dm.DashboardLinkType.LINK)
        .url(f"/d/{uid}/{uid}")
        .icon("dashboard")
        .tooltip(title)
        .as_dropdown(False)
        .include_vars(False)
        .keep_time(True)
        .target_blank(False)
        .tags([])
    )


# --- the grid ------------------------------------------------------------------------------------


class Board:
    """A dashboard whose panels are placed left to right in lines of 24 grid units, under
    rows; the panels of a collapsed row are stored inside it (Grafana draws them when it is
    opened)."""

    def __init__(
        self,
        uid: str,
        title: str,
        description: str,
        *,
        tags: Sequence[str],
        variables: Sequence[Any],
        links: Sequence[db.DashboardLink],
    ) -> None:
        self.dashboard = (
            db.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(list(tags))
            .timezone("browser")
            .version(1)
            .editable()
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .refresh("1m")
            .time("now-24h", "now")
            .variables(list(variables))
            .links(list(links))
        )
        self.x = self.y = self.line_height = self.ids = 0
        self.collapsed: tuple[db.Row, int] | None = None  # a closed row, its y

    def _next_id(self) -> int:
        self.ids += 1
        return self.ids

    def _close(self) -> None:
        if self.collapsed:  # a closed row is one unit high; its panels are placed when opened
            row, row_y = self.collapsed
            self.dashboard.with_row(row)
            self.y, self.line_height, self.collapsed = row_y + 1, 0, None

    def row(self, title: str, *, collapsed: bool = False) -> None:
        self._close()
        self.y += self.line_height
        self.x, self.line_height = 0, 0
        row = db.Row(title).id(self._next_id()).collapsed(collapsed)
        row.grid_pos(dm.GridPos(h=1, w=24, x=0, y=self.y))
        if collapsed:
            self.collapsed = (row, self.y)
        else:
            self.dashboard.with_row(row)
        self.y += 1

    def add(self, panel: Panel, w: int, h: int) -> None:
        if self.x + w > 24:
            self.y += self.line_height
            self.x, self.line_height = 0, 0
        panel.id(self._next_id()).grid_pos(dm.GridPos(h=h, w=w, x=self.x, y=self.y))
        self.x += w
        self.line_height = max(self.line_height, h)
        if self.collapsed:
            self.collapsed[0].with_panel(panel)
        else:
            self.dashboard.with_panel(panel)

    def build(self) -> dm.Dashboard:
        self._close()
        return self.dashboard.build()
