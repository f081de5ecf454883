"""The fleet dashboard's "Savings" row: what Podero's optimisation saved the selected heat pumps
and vehicles today and this month, in the currency podero_device_savings_info names (joined
on device_id, so a fleet billed in two currencies shows two sums, never one mixed), what
they consumed, and the organization's own figures. Six panels, whatever the fleet's size."""

from __future__ import annotations

from .common import J_PER_KWH, Board, queries, query, series, stat_panel, timeseries_panel

S = 'job=~"$job", instance=~"$instance"'
PERIODS = (("today", "today"), ("this_month", "this month"))


def in_currency(owner: str, period: str) -> str:
    """The savings of `period` with the currency of their info series (`owner`: device or
    organization)."""
    join = "job, instance, device_id" if owner == "device" else "job, instance, org_id"
    return (
        f"{series(f'podero_{owner}_savings_{period}', S)}"
        f" * on ({join}) group_left (currency) {series(f'podero_{owner}_savings_info', S)}"
    )


def savings(board: Board) -> None:
    board.row("Savings")
    for period, words in PERIODS:
        board.add(
            stat_panel(
                f"Savings {words}",
                f"Money Podero's optimisation saved the selected heat pumps and electric "
                f"vehicles {words} (podero_device_savings_{period}: the API's savings of the "
                f"{'day' if period == 'today' else 'month'} so far, fetched every "
                "savings.interval_seconds), summed per currency of podero_device_savings_info.",
                "none",
                query(f"sum by (currency) ({in_currency('device', period)})", "{{currency}}"),
                decimals=2,
                names=True,
            ),
            5,
            4,
        )
    for period, words in PERIODS:
        board.add(
            stat_panel(
                f"Consumption {words}",
                f"Energy the selected heat pumps and electric vehicles consumed {words}, by "
                f"kind (podero_device_consumption_{period}_joules / 3.6e6: kWh), from the "
                "savings endpoints.",
                "kwatth",
                query(
                    f"sum by (kind) "
                    f"({series(f'podero_device_consumption_{period}_joules', S)}) / {J_PER_KWH}",
                    "{{kind}}",
                ),
                decimals=1,
                names=True,
            ),
            5,
            4,
        )
    # One replica per organization fetches it (shard index 0); max, not sum, in case more do.
    board.add(
        stat_panel(
            "Organization savings",
            "What the optimisation saved all devices of each organization today and this "
            "month (podero_organization_savings_today and _this_month, GET "
            "/org/{org_id}/devices/savings), per currency of podero_organization_savings_info.",
            "none",
            *queries(
                *(
                    (
                        f"max by (org_id, currency) ({in_currency('organization', period)})",
                        f"{{{{org_id}}}} {words}",
                    )
                    for period, words in PERIODS
                )
            ),
            decimals=2,
        ),
        4,
        4,
    )
    board.add(
        timeseries_panel(
            "Savings today by kind",
            "Money saved since the start of the day, per kind and currency, over time: it "
            "grows through the day and starts again at 0 with the API's next daily bucket.",
            "none",
            query(
                f"sum by (kind, currency) ({in_currency('device', 'today')})",
                "{{kind}} {{currency}}",
            ),
        ),
        24,
        8,
    )
