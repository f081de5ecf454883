"""The home dashboard ("Podero home", uid podero-home): every device of one home (a Podero
user), inverters, heat pumps, electric vehicles and wallboxes, picked by the `user_id`
variable. Every per-device series carries user_id, so one selector names the home: the shared
podero_device_* families answer for every kind at once."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from .common import (
    FLEET_UID,
    HOME_UID,
    INVERTER_UID,
    OK_FAILING,
    STALE_SECONDS,
    YES_NO,
    Board,
    Panel,
    Props,
    count_or_zero,
    dashboard_url,
    dashed,
    data_link,
    datasource_variable,
    job_variable,
    link,
    prop,
    queries,
    query,
    query_variable,
    ref,
    series,
    stat_panel,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
    value_mappings,
)

HOME = 'job=~"$job", user_id="$user_id"'
DEVICE = "kind, device_id, name"  # the columns of the device table, one row per device
# A device's name as the exporter gives it to a discovered device: `<owner>-<kind>-<first 6 of
# id>` (an inverter: `<owner>-<first 6 of id>`); the Home variable shows the owner part, or the
# whole name where it does not fit. query_result lists labels sorted: name, then user_id.
HOME_REGEX = (
    '/name="(?<text>[^"]*?)(?:(?:-heat-pump|-electric-vehicle|-wallbox)?-[0-9a-f]{6})?",'
    'user_id="(?<value>[^"]+)"/'
)


def actions() -> str:
    """One series per open action of the home's devices (an inverter's has no code)."""
    return f"max by (kind, name, action) ({series('podero_device_action_needed', HOME)} == 1)"


def now(board: Board) -> None:
    board.row("Home now")
    for title, description, unit, expr, options in (
        (
            "Solar production",
            "Solar production of the home's inverters, summed.",
            "watt",
            f"sum({series('podero_inverter_solar_production_watts', HOME)})",
            {},
        ),
        (
            "Household consumption",
            "Household consumption measured by the home's inverters, summed.",
            "watt",
            f"sum({series('podero_inverter_household_consumption_watts', HOME)})",
            {},
        ),
        (
            "Grid power",
            "Power to the grid, summed over the home's inverters: positive = export, "
            "negative = import.",
            "watt",
            f"sum({series('podero_inverter_grid_export_watts', HOME)})",
            {},
        ),
        (
            "Battery charge",
            "State of charge of the home's batteries (mean if it has several).",
            "percentunit",
            f"avg({series('podero_inverter_battery_charge_ratio', HOME)})",
            {"decimals": 0},
        ),
    ):
        board.add(stat_panel(title, description, unit, query(expr, title.lower()), **options), 4, 4)
    up = series("podero_device_up", HOME)
    board.add(
        stat_panel(
            "Devices reporting",
            "The home's devices whose last poll succeeded, out of those polled "
            "(podero_device_up; wallboxes have no data and are not polled).",
            "none",
            *queries((f"sum({up})", "reporting"), (f"count({up})", "polled")),
        ),
        4,
        4,
    )
    board.add(
        stat_panel(
            "Actions needed",
            "Actions the owner must take on the home's devices; the table below names them.",
            "none",
            query(count_or_zero(actions()), "actions"),
            warn=((1, "orange"),),
        ),
        4,
        4,
    )
    for title, description, unit, name, options in (
        (
            "Hot water",
            "Hot water temperature of each of the home's heat pumps (API field hot_water_temp).",
            "celsius",
            "podero_heat_pump_hot_water_temperature_celsius",
            {"decimals": 1},
        ),
        (
            "EV battery level",
            "Battery level of each of the home's electric vehicles (API field battery_level).",
            "percentunit",
            "podero_electric_vehicle_battery_level_ratio",
            {"decimals": 0},
        ),
        (
            "EV charged by",
            "The time of day by which each electric vehicle should reach its target level "
            "(podero_electric_vehicle_charged_by_seconds, in the exporter's time zone).",
            "clocks",
            "podero_electric_vehicle_charged_by_seconds",
            {},
        ),
    ):
        target = query(series(name, HOME), "{{name}}")
        board.add(stat_panel(title, description, unit, target, names=True, **options), 8, 4)
    devices_table(board)
    board.add(
        table_panel(
            "Actions needed",
            "One row per action the owner must take on a device of the home, with the "
            "action's code (API field actions, e.g. reauthenticate; an inverter's is empty: "
            "the API only says that an action is needed).",
            [query(actions(), "")],
            hidden=("Time", "Value"),
            sort_by="name",
        ),
        8,
        8,
    )


def devices_table(board: Board) -> None:
    info = series("podero_device_info", HOME)
    columns = (  # (column, expression per device): every kind from one shared family each
        ("Poll", series("podero_device_up", HOME)),
        ("Data age", f"time() - {series('podero_device_data_timestamp_seconds', HOME)}"),
        ("Authenticated", series("podero_device_authenticated", HOME)),
        # Inverters only: the link to the inverter's own dashboard.
        ("Inverter dashboard", series("podero_device_info", f'{HOME}, kind="inverter"')),
    )
    inverter = dashboard_url(INVERTER_UID, job="${job}", device_id="${__data.fields.device_id}")

    def column(name: str, *props: dm.DynamicConfigValue) -> tuple[str, str, Props]:
        return ("byName", name, list(props))

    board.add(
        table_panel(
            "Devices",
            "Every device of the home: inverters, heat pumps, electric vehicles and wallboxes "
            "(podero_device_info), with the last poll (wallboxes are not polled), the age of "
            "the newest data point, the time since the last successful poll, the "
            "manufacturer connection, Podero's smart optimisation and optimisation score. "
            "An inverter's 'open' opens its own dashboard.",
            [
                query(f"max by ({DEVICE}, manufacturer, model, lifecycle_state) ({info})", ""),
                *(
                    query(f"max by ({DEVICE}) ({expr})", name, ref(i + 1))
                    for i, (name, expr) in enumerate(columns)
                ),
            ],
            hidden=("Time", "Value #A"),
            sort_by="kind",
            rename={f"Value #{ref(i + 1)}": name for i, (name, _) in enumerate(columns)},
            overrides=[
                column("Poll", prop("mappings", value_mappings(OK_FAILING))),
                column("Data age", prop("unit", "s")),
                column("Authenticated", prop("mappings", value_mappings(YES_NO))),
                column(
                    "Inverter dashboard",
                    prop("mappings", value_mappings({"1": ("open", "blue")})),
                    *data_link("Open ${__data.fields.name}", inverter),
                ),
            ],
        ),
        16,
        8,
    )


def inverters(board: Board) -> None:
    board.row("Inverters")
    solar = series("podero_inverter_solar_production_watts", HOME)
    grid = series("podero_inverter_grid_export_watts", HOME)
    battery = series("podero_inverter_battery_power_watts", HOME)
    household = series("podero_inverter_household_consumption_watts", HOME)
    board.add(
        timeseries_panel(
            "Home power",
            "Solar production, household consumption, grid export and import, battery "
            "charging and discharging, each summed over the home's inverters and shown "
            "positive.",
            "watt",
            *queries(
                (f"sum(clamp_min({solar}, 0))", "solar"),
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
    board.add(
        timeseries_panel(
            "Battery charge",
            "State of charge of each battery of the home, with its battery-low alert "
            "threshold as a dashed line.",
            "percentunit",
            *queries(
                (series("podero_inverter_battery_charge_ratio", HOME), "{{name}}"),
                (
                    series("podero_inverter_battery_low_threshold_ratio", HOME),
                    "{{name}} low threshold",
                ),
            ),
            overrides=[("byRegexp", ".*threshold.*", dashed("red"))],
            max_value=1,
        ),
        12,
        8,
    )


def consumption(title: str, kind: str, what: str) -> Panel:
    """Consumption with Podero's optimisation and without it (dashed)."""
    return timeseries_panel(
        title,
        f"Consumption of {what} as Podero estimates it with its optimisation, and without it "
        "(dashed; API fields estimated_consumption, unoptimized_consumption).",
        "watt",
        *queries(
            (series(f"podero_{kind}_estimated_consumption_watts", HOME), "{{name}} estimated"),
            (series(f"podero_{kind}_unoptimized_consumption_watts", HOME), "{{name}} unoptimized"),
        ),
        overrides=[("byRegexp", ".*unoptimized.*", dashed())],
    )


def heat_pumps_and_vehicles(board: Board) -> None:
    board.row("Heat pumps")
    board.add(
        timeseries_panel(
            "Heat pump temperatures",
            "Hot water and inlet temperature of each heat pump (API fields hot_water_temp, "
            "inlet_temp_act), with the hot-water-low threshold (thresholds."
            "hot_water_low_celsius) as a dashed line.",
            "celsius",
            *queries(
                (
                    series("podero_heat_pump_hot_water_temperature_celsius", HOME),
                    "{{name}} hot water",
                ),
                (series("podero_heat_pump_inlet_temperature_celsius", HOME), "{{name}} inlet"),
                (
                    series("podero_heat_pump_hot_water_low_threshold_celsius", HOME),
                    "{{name}} hot water low threshold",
                ),
            ),
            overrides=[("byRegexp", ".*threshold.*", dashed("red"))],
        ),
        12,
        8,
    )
    board.add(consumption("Heat pump consumption", "heat_pump", "each heat pump"), 12, 8)

    board.row("Electric vehicles")
    board.add(
        timeseries_panel(
            "EV battery level",
            "Battery level of each electric vehicle, with its target level (thresholds."
            "vehicle_charged_percent) as a dashed line.",
            "percentunit",
            *queries(
                (series("podero_electric_vehicle_battery_level_ratio", HOME), "{{name}}"),
                (
                    series("podero_electric_vehicle_charged_threshold_ratio", HOME),
                    "{{name}} target threshold",
                ),
            ),
            overrides=[("byRegexp", ".*threshold.*", dashed("orange"))],
            max_value=1,
        ),
        8,
        8,
    )
    board.add(
        state_timeline_panel(
            "EV plugged in, charging, at home",
            "For each electric vehicle: plugged in, charging, and at the place where Podero "
            "optimises its charging (API fields is_plugged_in, is_charging, "
            "is_at_optimized_location).",
            *queries(
                (series("podero_electric_vehicle_plugged_in", HOME), "{{name}} plugged in"),
                (series("podero_electric_vehicle_charging", HOME), "{{name}} charging"),
                (
                    series("podero_electric_vehicle_at_optimized_location", HOME),
                    "{{name}} at home",
                ),
            ),
            mappings=YES_NO,
        ),
        8,
        8,
    )
    board.add(
        consumption(
            "EV charging consumption", "electric_vehicle", "each electric vehicle's charging"
        ),
        8,
        8,
    )


def health(board: Board) -> None:
    board.row("Device health")
    board.add(
        timeseries_panel(
            "Data age",
            f"Age of each device's newest data point; above {STALE_SECONDS // 3600} h it is stale.",
            "s",
            query(f"time() - {series('podero_device_data_timestamp_seconds', HOME)}", "{{name}}"),
        ),
        12,
        8,
    )
    board.add(
        state_timeline_panel(
            "Poll status",
            "Whether the exporter's last poll of each device succeeded (podero_device_up).",
            query(series("podero_device_up", HOME), "{{name}}"),
            mappings=OK_FAILING,
        ),
        12,
        8,
    )


def home() -> dm.Dashboard:
    homes = series("podero_device_info", 'job=~"$job"')
    board = Board(
        HOME_UID,
        "Podero home",
        "Every device of one home (a Podero user): its inverters and batteries, heat pumps, "
        "electric vehicles and wallboxes, and their health. Pick the home in the Home "
        "variable.",
        tags=("podero", "home", "solar", "heat-pump", "electric-vehicle"),
        variables=[
            datasource_variable(),
            job_variable(),
            query_variable(
                "user_id",
                "Home",
                f"query_result(max by (name, user_id) ({homes}))",
                # Shown by the owner's handle from the device names, else a device's name.
                regex=HOME_REGEX,
                sort=dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC,
            ),
        ],
        links=[link("Podero fleet", FLEET_UID), link("Podero inverter", INVERTER_UID)],
    )
    now(board)
    inverters(board)
    heat_pumps_and_vehicles(board)
    health(board)
    return board.build()
