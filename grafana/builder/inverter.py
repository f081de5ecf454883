"""The inverter dashboard ("Podero inverter", uid podero-inverter): one solar inverter and
home battery, picked by name in the `device_id` variable (the inverters among
podero_device_info); the home dashboard's device table links to it."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from .common import (
    ENERGY_RESETS,
    FLEET_UID,
    HOME_UID,
    INVERTER_UID,
    J_PER_KWH,
    OK_FAILING,
    STALE_SECONDS,
    Board,
    dashboard_url,
    dashed,
    data_link,
    datasource_variable,
    energy,
    energy_per_day_panel,
    energy_queries,
    job_variable,
    link,
    queries,
    query,
    query_variable,
    ref,
    series,
    stat_panel,
    table_panel,
    timeseries_panel,
)

ONE = 'job=~"$job", device_id="$device_id"'


def now(board: Board) -> None:
    board.row("Now")
    hours = STALE_SECONDS // 3600
    for title, description, unit, expr, options in (
        (
            "Solar production",
            "Solar production (API field solar_production_w).",
            "watt",
            series("podero_inverter_solar_production_watts", ONE),
            {},
        ),
        (
            "Household consumption",
            "Household consumption (API field household_consumption_w).",
            "watt",
            series("podero_inverter_household_consumption_watts", ONE),
            {},
        ),
        (
            "Grid power",
            "Power to the grid (API field export_power_to_grid_w): positive = export, "
            "negative = import.",
            "watt",
            series("podero_inverter_grid_export_watts", ONE),
            {},
        ),
        (
            "Battery charge",
            "State of charge (API field battery_charge_level_percent / 100).",
            "percentunit",
            series("podero_inverter_battery_charge_ratio", ONE),
            {"decimals": 0},
        ),
        (
            "Price",
            "Energy price of the exported data point as the API delivers it (unit not "
            "documented; examples look like currency per MWh).",
            "none",
            series("podero_inverter_price", ONE),
            {},
        ),
        (
            "Data age",
            f"Age of the newest data point; above {hours} h the inverter is stale "
            "(PoderoDeviceDataStale).",
            "s",
            f"time() - {series('podero_device_data_timestamp_seconds', ONE)}",
            {"warn": ((STALE_SECONDS, "orange"),)},
        ),
    ):
        board.add(stat_panel(title, description, unit, query(expr, title.lower()), **options), 4, 4)
    board.add(
        stat_panel(
            "Poll status",
            "Whether the exporter's last poll of this inverter succeeded (podero_device_up).",
            "none",
            query(series("podero_device_up", ONE), "last poll"),
            mappings=OK_FAILING,
        ),
        4,
        4,
    )
    board.add(
        stat_panel(
            "Manufacturer connection",
            "Whether the manufacturer connection is authenticated (else the owner must "
            "reconnect) and whether Podero says the owner must act (API fields "
            "is_authenticated, action_needed).",
            "none",
            *queries(
                (series("podero_device_authenticated", ONE), "authenticated"),
                (series("podero_device_action_needed", ONE), "action needed"),
            ),
            mappings={"1": ("yes", "blue"), "0": ("no", "blue")},
        ),
        8,
        4,
    )
    home = dashboard_url(HOME_UID, job="${job}", user_id="${__data.fields.user_id}")
    board.add(
        table_panel(
            "Inverter details",
            "What the Podero API says about the device: ids, manufacturer, model, price zone, "
            "lifecycle state and configured labels (podero_device_info). Click the user_id to "
            "open the home's other devices.",
            [query(series("podero_device_info", ONE), "")],
            hidden=("Time", "__name__", "Value"),
            sort_by="name",
            overrides=[("byName", "user_id", data_link("Open this home's devices", home))],
        ),
        12,
        4,
    )


def power(board: Board) -> None:
    board.row("Power")
    solar = series("podero_inverter_solar_production_watts", ONE)
    grid = series("podero_inverter_grid_export_watts", ONE)
    battery = series("podero_inverter_battery_power_watts", ONE)
    hours = STALE_SECONDS // 3600
    for title, description, unit, targets, options in (
        (
            "Solar and household",
            "Solar production and household consumption.",
            "watt",
            queries(
                (solar, "solar"),
                (series("podero_inverter_household_consumption_watts", ONE), "household"),
            ),
            {},
        ),
        (
            "Grid export and import",
            "Power to the grid: export and import each shown as a positive series "
            "(API field export_power_to_grid_w, positive = export).",
            "watt",
            queries((f"clamp_min({grid}, 0)", "export"), (f"clamp_min(-{grid}, 0)", "import")),
            {},
        ),
        (
            "Battery power",
            "Battery charging and discharging, each shown positive "
            "(API field battery_charge_discharge_power_w, positive = discharging).",
            "watt",
            queries(
                (f"clamp_min(-{battery}, 0)", "charging"),
                (f"clamp_min({battery}, 0)", "discharging"),
            ),
            {},
        ),
        (
            "Battery charge",
            "State of charge, with the battery-low alert threshold as a dashed line.",
            "percentunit",
            queries(
                (series("podero_inverter_battery_charge_ratio", ONE), "charge"),
                (series("podero_inverter_battery_low_threshold_ratio", ONE), "low threshold"),
            ),
            {"overrides": [("byRegexp", ".*threshold.*", dashed("red"))], "max_value": 1},
        ),
        (
            "Price",
            "Energy price of the exported data point, as the API delivers it "
            "(the unit is not documented; examples look like currency per MWh).",
            "none",
            [query(series("podero_inverter_price", ONE), "price")],
            {},
        ),
        (
            "Data age",
            f"Age of the newest data point (above {hours} h PoderoDeviceDataStale fires); "
            "the poll's outcome is the Poll status panel.",
            "s",
            queries(
                (f"time() - {series('podero_device_data_timestamp_seconds', ONE)}", "data age"),
            ),
            {},
        ),
    ):
        board.add(timeseries_panel(title, description, unit, *targets, **options), 12, 8)


def energy_row(board: Board) -> None:
    board.row("Energy")
    board.add(
        stat_panel(
            "Energy today",
            "Energy since local midnight: increase(counter[$__range]) / 3.6e6 on the panel's "
            f"time range 'now/d' (the day so far). {ENERGY_RESETS}",
            "kwatth",
            *energy_queries(ONE, "$__range"),
            decimals=1,
            time_from="now/d",
        ),
        8,
        8,
    )
    board.add(
        energy_per_day_panel(
            "Energy per day",
            "Energy per day over the last 7 days: increase(counter[$__interval]) / 3.6e6 with "
            "the panel's minimum interval of 1d, so each bar is the 24 hours up to its time. "
            f"{ENERGY_RESETS}",
            [
                query(f"increase({counter}{{{ONE}}}[$__interval]) / {J_PER_KWH}", legend, ref(i))
                for i, (counter, legend) in enumerate(energy())
            ],
        ),
        16,
        8,
    )


def inverter() -> dm.Dashboard:
    inverters = series("podero_device_info", 'job=~"$job", kind="inverter"')
    board = Board(
        INVERTER_UID,
        "Podero inverter",
        "One solar inverter and home battery from the Podero Partner API: power, battery, "
        "price, data age and energy per day. Pick it by name in the Inverter variable.",
        tags=("podero", "solar", "battery"),
        variables=[
            datasource_variable(),
            job_variable(),
            query_variable(
                "device_id",
                "Inverter",
                f"query_result(max by (device_id, name) ({inverters}))",
                # query_result lists a series' labels sorted by name; show the name.
                regex='/device_id="(?<value>[^"]+)",name="(?<text>[^"]+)"/',
                sort=dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC,
            ),
        ],
        links=[link("Podero fleet", FLEET_UID), link("Podero home", HOME_UID)],
    )
    now(board)
    power(board)
    energy_row(board)
    return board.build()
