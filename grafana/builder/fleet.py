"""The fleet dashboard ("Podero fleet", uid podero-fleet): totals, energy, what the
optimisation saved (savings.py), the devices in trouble, firing alerts and exporter health
per replica. It draws the same ~40 panels for 3
devices or 10,000: nothing repeats per device. A fleet question is one selector over the
shared podero_device_* families, answered by kind."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from .common import (
    ENERGY_RESETS,
    FLEET_UID,
    HOME_UID,
    INVERTER_UID,
    NOT_CHARGED_RULE,
    STALE_SECONDS,
    Board,
    bargauge_panel,
    battery_low,
    count_or_zero,
    dashboard_url,
    dashed,
    data_link,
    datasource_variable,
    energy_queries,
    hot_water_low,
    job_variable,
    link,
    metric,
    not_charged,
    queries,
    query,
    query_variable,
    ref,
    series,
    stale,
    stat_panel,
    table_panel,
    timeseries_panel,
    without_data,
)
from .savings import savings

S = 'job=~"$job", instance=~"$instance"'
IDENTITY = "job, instance, device_id, name, user_id"


def trouble() -> tuple[tuple[str, str], ...]:
    """(reason, the devices it applies to), every kind in one list."""
    up = series("podero_device_up", S)
    return (
        ("poll failing", f"{up} == 0"),
        ("data older than 1 h", stale(S)),
        ("no data at all", without_data(S)),
        ("manufacturer connection lapsed", f"{series('podero_device_authenticated', S)} == 0"),
        ("owner action needed", f"{series('podero_device_action_needed', S)} == 1"),
        ("battery below its low threshold", battery_low(S)),
        ("hot water below its low threshold", hot_water_low(S)),
        ("not charged by its time", not_charged(S)),
    )


def trouble_query(expr: str) -> str:
    """One series per device in this trouble, its value how many (actions: one per code), with
    the device's kind joined from its info series (per-kind families have no kind label)."""
    return (
        f"count by ({IDENTITY}) ({expr})"
        f" * on (job, instance, device_id) group_left (kind) {series('podero_device_info', S)}"
    )


def by_kind_or_zero(expr: str) -> str:
    """How many devices of each polled kind `expr` lists, 0 for a kind it lists none of."""
    return f"count by (kind) ({expr}) or count by (kind) ({series('podero_device_up', S)}) * 0"


def now(board: Board) -> None:
    board.row("Fleet now")
    solar = series("podero_inverter_solar_production_watts", S)
    grid = series("podero_inverter_grid_export_watts", S)
    household = series("podero_inverter_household_consumption_watts", S)
    battery = series("podero_inverter_battery_power_watts", S)
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
        board.add(
            stat_panel(
                title,
                f"{description} Inverters whose data is older than the exporter's "
                "poll.max_data_age_seconds do not count.",
                "watt",
                query(f"sum({expr})", title.lower()),
            ),
            4,
            4,
        )
    up = series("podero_device_up", S)
    hours = STALE_SECONDS // 3600
    for title, description, unit, targets, options in (
        (
            "Devices by kind",
            "How many devices of each kind the selected replicas export (podero_device_info; "
            "wallboxes included).",
            "none",
            [query(f"count by (kind) ({series('podero_device_info', S)})", "{{kind}}")],
            {},
        ),
        (
            "Reporting by kind",
            "Share of the polled devices of each kind whose last poll succeeded "
            "(podero_device_up; wallboxes are not polled).",
            "percentunit",
            [query(f"avg by (kind) ({up})", "{{kind}}")],
            {"decimals": 0},
        ),
        (
            "Fresh data by kind",
            f"Share of the polled devices of each kind whose newest data point is younger "
            f"than {hours} h (a device without any data point counts as not fresh).",
            "percentunit",
            [
                query(
                    f"(count by (kind) (time() - "
                    f"{series('podero_device_data_timestamp_seconds', S)} < {STALE_SECONDS}) "
                    f"or count by (kind) ({up}) * 0) / count by (kind) ({up})",
                    "{{kind}}",
                )
            ],
            {"decimals": 0},
        ),
        (
            "Mean battery charge",
            "Average state of charge of the batteries with current data.",
            "percentunit",
            [query(f"avg({series('podero_inverter_battery_charge_ratio', S)})", "battery")],
            {"decimals": 0},
        ),
        (
            "Hot water below threshold",
            "Heat pumps whose hot water is below the configured thresholds.hot_water_low_celsius "
            "(podero_heat_pump_hot_water_low_threshold_celsius).",
            "none",
            [query(count_or_zero(hot_water_low(S)), "heat pumps")],
            {"warn": ((1, "orange"),)},
        ),
        (
            "EVs not charged",
            "Electric vehicles that were plugged in at home below their target level "
            "(thresholds.vehicle_charged_percent) at the time of day they should be charged by "
            "(thresholds.vehicle_charged_by) and still are: what PoderoVehicleNotCharged "
            f"alerts on (the shipped rules' recording rule {NOT_CHARGED_RULE}).",
            "none",
            [query(count_or_zero(not_charged(S)), "not charged")],
            {"warn": ((1, "orange"),)},
        ),
        (
            "Failing devices",
            "Devices of each kind whose last poll failed (podero_device_up == 0); the table "
            "below lists them.",
            "none",
            [query(by_kind_or_zero(f"{up} == 0"), "{{kind}}")],
            {"warn": ((1, "red"),)},
        ),
        (
            "Stale devices",
            f"Devices of each kind polled successfully whose newest data point is older than "
            f"{hours} h (PoderoDeviceDataStale's limit).",
            "none",
            [query(by_kind_or_zero(stale(S)), "{{kind}}")],
            {"warn": ((1, "orange"),)},
        ),
        (
            "Devices without data",
            "Devices of each kind polled successfully that have never delivered a data point "
            "(up == 1 but no podero_device_data_timestamp_seconds).",
            "none",
            [query(by_kind_or_zero(without_data(S)), "{{kind}}")],
            {"warn": ((1, "orange"),)},
        ),
        (
            "Connection lapsed",
            "Devices of each kind whose manufacturer connection is no longer authenticated "
            "(podero_device_authenticated == 0): the owner must reconnect.",
            "none",
            [
                query(
                    f"count by (kind) ({series('podero_device_authenticated', S)} == 0) or "
                    f"count by (kind) ({series('podero_device_authenticated', S)}) * 0",
                    "{{kind}}",
                )
            ],
            {"warn": ((1, "orange"),)},
        ),
        (
            "Action needed",
            "Devices of each kind on which Podero says the owner must act "
            "(podero_device_action_needed, one device however many actions).",
            "none",
            [
                query(
                    "count by (kind) (max without (action) "
                    f"({series('podero_device_action_needed', S)}) == 1) or "
                    f"count by (kind) ({series('podero_device_authenticated', S)}) * 0",
                    "{{kind}}",
                )
            ],
            {"warn": ((1, "orange"),)},
        ),
        (
            "Firing alerts",
            "Podero alerts firing now (ALERTS with alertname Podero*), any replica.",
            "none",
            [query(count_or_zero('ALERTS{alertstate="firing", alertname=~"Podero.*"}'), "firing")],
            {"warn": ((1, "red"),)},
        ),
    ):
        board.add(stat_panel(title, description, unit, *targets, **options), 4, 4)


def energy_today(board: Board) -> None:
    board.row("Energy today")
    board.add(
        stat_panel(
            "Energy today",
            "Energy since local midnight, summed over the selected inverters: "
            "sum(increase(counter[$__range])) / 3.6e6 on the panel's time range 'now/d' "
            f"(the day so far). {ENERGY_RESETS}",
            "kwatth",
            *energy_queries(S, "$__range"),
            decimals=1,
            time_from="now/d",
        ),
        24,
        4,
    )


def devices_in_trouble(board: Board) -> None:
    board.row("Devices in trouble")
    reasons = trouble()
    home = dashboard_url(HOME_UID, job="${job}", user_id="${__data.fields.user_id}")
    board.add(
        table_panel(
            "Devices in trouble",
            "One row per device in trouble, every kind, one column per reason: poll failing, "
            "data older than 1 h, no data at all, manufacturer connection lapsed, owner action "
            "needed (how many actions), battery below its low threshold, hot water below its "
            "low threshold, not charged by its time. Click a name or a user_id to open the "
            "device's home (an inverter's own dashboard is linked from there).",
            queries(*((trouble_query(expr), reason) for reason, expr in reasons)),
            hidden=("Time", "job", "device_id"),
            sort_by="name",
            rename={f"Value #{ref(i)}": reason for i, (reason, _) in enumerate(reasons)},
            overrides=[
                ("byName", "name", data_link("Open the home of ${__data.fields.name}", home)),
                ("byName", "user_id", data_link("Open this home", home)),
            ],
        ),
        24,
        10,
    )
    board.add(
        table_panel(
            "Firing alerts",
            'Podero alerts firing now (ALERTS{alertstate="firing"}, alertname Podero*), '
            "with the labels that say where.",
            [query('ALERTS{alertstate="firing", alertname=~"Podero.*"}', "{{alertname}}")],
            hidden=("Time", "__name__", "alertstate", "Value"),
            sort_by="alertname",
        ),
        16,
        8,
    )
    board.add(
        bargauge_panel(
            "Devices needing action by code",
            "Devices whose owner must act, by kind and the action's code (API field actions, "
            "e.g. reauthenticate); an inverter only says that an action is needed, so its "
            "code is empty.",
            query(
                f"count by (kind, action) ({series('podero_device_action_needed', S)} == 1)",
                "{{kind}} {{action}}",
            ),
        ),
        8,
        8,
    )


def over_time(board: Board) -> None:
    board.row("Fleet over time")
    solar = series("podero_inverter_solar_production_watts", S)
    household = series("podero_inverter_household_consumption_watts", S)
    grid = series("podero_inverter_grid_export_watts", S)
    battery = series("podero_inverter_battery_power_watts", S)
    board.add(
        timeseries_panel(
            "Fleet power",
            "Solar production, household consumption, grid export and import, battery "
            "charging and discharging, each summed over the selected inverters.",
            "watt",
            *queries(
                (f"sum({solar})", "solar"),
                (f"sum({household})", "household"),
                (f"sum(clamp_min({grid}, 0))", "grid export"),
                (f"sum(clamp_min(-{grid}, 0))", "grid import"),
                (f"sum(clamp_min(-{battery}, 0))", "battery charging"),
                (f"sum(clamp_min({battery}, 0))", "battery discharging"),
            ),
        ),
        12,
        8,
    )
    up = series("podero_device_up", S)
    board.add(
        timeseries_panel(
            "Devices by state",
            "How many devices of each kind report, fail, are stale or have no data, over time.",
            "none",
            *queries(
                (f"sum by (kind) ({up})", "{{kind}} reporting"),
                (by_kind_or_zero(f"{up} == 0"), "{{kind}} failing"),
                (by_kind_or_zero(stale(S)), "{{kind}} stale"),
                (by_kind_or_zero(without_data(S)), "{{kind}} no data"),
            ),
        ),
        12,
        8,
    )
    board.add(
        timeseries_panel(
            "Heat pump and EV consumption",
            "Consumption of the heat pumps and the charging electric vehicles, summed: as "
            "estimated with Podero's optimisation, and without it (dashed; API fields "
            "estimated_consumption, unoptimized_consumption).",
            "watt",
            *queries(
                *(
                    (f"sum({series(f'podero_{kind}_{which}_consumption_watts', S)})", legend)
                    for kind, which, legend in (
                        ("heat_pump", "estimated", "heat pumps"),
                        ("heat_pump", "unoptimized", "heat pumps unoptimized"),
                        ("electric_vehicle", "estimated", "electric vehicles"),
                        ("electric_vehicle", "unoptimized", "electric vehicles unoptimized"),
                    )
                )
            ),
            overrides=[("byRegexp", ".*unoptimized.*", dashed())],
        ),
        24,
        8,
    )


def exporter_health(board: Board) -> None:
    rate = "[$__rate_interval]"
    requests = metric("podero_api_requests_total")
    board.row("Exporter health per replica")
    for title, description, unit, target in (
        (
            "Replica up",
            "Whether Prometheus scrapes each selected exporter replica (up).",
            "none",
            query('up{job=~"$job", instance=~"$instance"}', "{{instance}}"),
        ),
        (
            "API errors per replica",
            "Podero API answers per second that were not 2xx (timeouts and connection errors "
            "included), per replica.",
            "reqps",
            query(
                f'sum by (instance) (rate({requests}{{{S}, code!~"2.."}}{rate}))', "{{instance}}"
            ),
        ),
        (
            "API requests by status code",
            "Requests to the Podero API per second, by HTTP status (timeouts and connection "
            "errors by name), all selected replicas.",
            "reqps",
            query(f"sum by (code) (rate({requests}{{{S}}}{rate}))", "{{code}}"),
        ),
        (
            "Token expiry per replica",
            "Time until each replica's access token expires; it is renewed ahead.",
            "s",
            query(
                f"{series('podero_oauth_token_expiry_timestamp_seconds', S)} - time()",
                "{{instance}}",
            ),
        ),
        (
            "Poll duration p95 per replica",
            "95th percentile duration of one device poll, retries included, per replica.",
            "s",
            query(
                "histogram_quantile(0.95, sum by (le, instance) "
                f"(rate({metric('podero_poll_duration_seconds')}_bucket{{{S}}}{rate})))",
                "{{instance}}",
            ),
        ),
        (
            "API request latency p95",
            "95th percentile duration of one API call, by endpoint, all selected replicas.",
            "s",
            query(
                "histogram_quantile(0.95, sum by (le, endpoint) "
                f"(rate({metric('podero_api_request_duration_seconds')}_bucket{{{S}}}{rate})))",
                "{{endpoint}}",
            ),
        ),
    ):
        extra = {"max_value": 1} if title == "Replica up" else {}
        board.add(timeseries_panel(title, description, unit, target, **extra), 8, 8)


def collapsed(board: Board) -> None:
    # Collapsed: its queries read every sample of the month and run only when it is opened.
    board.row("Energy this month", collapsed=True)
    board.add(
        stat_panel(
            "Energy this month",
            "Energy since the first of the month, summed over the selected inverters: "
            "sum(increase(counter[$__range])) / 3.6e6 on the panel's time range 'now/M'. "
            f"{ENERGY_RESETS} Each query reads every sample of the month: up to 44,640 per "
            "inverter at a 60 s scrape, 44.6 million for 1,000 inverters (Prometheus refuses "
            "a query above --query.max-samples, 50 million by default).",
            "kwatth",
            *energy_queries(S, "$__range"),
            decimals=0,
            time_from="now/M",
        ),
        24,
        4,
    )
    board.row("Fleet inventory", collapsed=True)
    board.add(
        bargauge_panel(
            "Devices by manufacturer and model",
            "How many of the selected devices each kind, manufacturer and model accounts for.",
            query(
                f"count by (kind, manufacturer, model) ({series('podero_device_info', S)})",
                "{{kind}}: {{manufacturer}} {{model}}",
            ),
        ),
        12,
        8,
    )
    board.add(
        timeseries_panel(
            "Discovered devices",
            "Devices found by discovery, per organization, kind and replica.",
            "none",
            query(series("podero_discovery_devices", S), "{{org_id}} {{kind}} {{instance}}"),
        ),
        12,
        8,
    )


def fleet() -> dm.Dashboard:
    board = Board(
        FLEET_UID,
        "Podero fleet",
        "A fleet of solar inverters and home batteries, heat pumps, electric vehicles and "
        "wallboxes from the Podero Partner API: totals, energy, the devices in trouble and "
        "the exporter replicas.",
        tags=("podero", "solar", "battery"),
        variables=[
            datasource_variable(),
            job_variable(),
            query_variable(
                "instance", "Replica", 'label_values(up{job=~"$job"}, instance)', multi=True
            ),
        ],
        links=[link("Podero inverter", INVERTER_UID), link("Podero home", HOME_UID)],
    )
    now(board)
    energy_today(board)
    savings(board)
    devices_in_trouble(board)
    over_time(board)
    exporter_health(board)
    collapsed(board)
    return board.build()
