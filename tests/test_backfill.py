"""`podero-exporter backfill` against the simulator in-process, on the fake clock: exact values
per bucket of every device kind, labels equal to the live exporter's, paging, 400-halving,
resume, label checks."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter import backfill, cli
from exporter.api.pages import JournalMismatch
from exporter.app import Exporter
from exporter.backfill import (
    BackfillResult,
    NothingToBackfill,
    Progress,
    UsageError,
    parse_labels,
)
from exporter.config.model import Config
from exporter.kinds import common, electric_vehicle, heat_pump, registry, savings, table
from exporter.kinds import inverter as inverter_kind
from exporter.kinds.family import Family, Source
from exporter.kinds.table import device_labels
from exporter.render.collector import polled_samples, target_samples
from exporter.render.openmetrics import history_families, in_history
from exporter.sim import RunningSimulator, demo_config
from exporter.sim.api import ApiError as SimApiError
from exporter.sim.fleet import MEASURED
from exporter.state.readings import DataPoint
from exporter.state.savings import Period, PriceUnits, Savings
from exporter.state.store import DeviceState
from exporter.state.targets import DeviceTarget, Inventory
from tests.conftest import INV_A, minimal_config, run_cli, to_config
from tests.fakes import FakeClock

FROM, TO = "2026-11-20T00:00:00Z", "2026-11-22T00:00:00Z"  # two whole days before NOON
BUCKET = 900
Series = dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]]


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run(
    config: Config,
    clock: FakeClock,
    output: Path,
    *flags: str,
    start: str = FROM,
    end: str = TO,
    stop: threading.Event | None = None,
) -> BackfillResult:
    args = backfill.parse_args(
        ["--from", start, "--to", end, "--output", str(output), *flags],
    )
    return backfill.run(config, args, clock, io.StringIO(), stop)


def series_of(text: str) -> Series:
    """Every sample of a complete OpenMetrics text (strictly parsed), by name and labels."""
    found: Series = {}
    for family in parse_om(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert sample.timestamp is not None
            found.setdefault(key, []).append((float(sample.timestamp), sample.value))
    return found


def served(sim: RunningSimulator, inverter: dict[str, str], start: str, end: str) -> list[Any]:
    """The points the simulator serves for this inverter and range (its own answer)."""
    body = sim.api.inverter_data(
        inverter["org_id"],
        inverter["user_id"],
        inverter["inverter_id"],
        {"from_datetime": start, "to_datetime": end, "resolution": "15MIN"},
    )
    return list(body["data"])


def served_device(sim: RunningSimulator, device: dict[str, str], start: str, end: str) -> list[Any]:
    """The points the simulator serves for this heat pump or EV and range."""
    body = sim.api.device_data(
        device["org_id"],
        device["user_id"],
        device["kind"],
        device["device_id"],
        {"from_datetime": start, "to_datetime": end, "resolution": "15MIN"},
    )
    return list(body["data"])


@pytest.fixture
def fleet_config(sim: RunningSimulator) -> Config:
    """The five inverters and every other device of their homes (two heat pumps, two EVs,
    two wallboxes), configured with their kinds."""
    raw = demo_config(sim.describe())
    raw["podero"].update(retry={"attempts": 2, "max_wait_seconds": 1})
    raw["podero"]["max_requests_per_second"] = 1000
    for n, device in enumerate(sim.describe()["devices"]):
        raw["inverters"].append(
            {
                "org_id": device["org_id"],
                "user_id": device["user_id"],
                "inverter_id": device["device_id"],
                "kind": device["kind"],
                "name": f"{device['kind']}-{n}",
            }
        )
    return to_config(raw)


def devices_of(sim: RunningSimulator, kind: str) -> list[dict[str, str]]:
    return [d for d in sim.describe()["devices"] if d["kind"] == kind]


def of_device(series: Series, device_id: str) -> Series:
    """The series of one heat pump, EV or wallbox (its samples carry device_id)."""
    return {key: points for key, points in series.items() if ("device_id", device_id) in key[1]}


def of_inverter(series: Series, name: str, inverter_id: str) -> list[tuple[float, float]]:
    return next(
        points
        for (n, labels), points in series.items()
        if n == name and ("device_id", inverter_id) in labels
    )


def test_every_bucket_holds_the_values_the_simulator_serves(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    result = run(sim_config, clock, tmp_path / "out.om", "--label", "job=podero")
    assert result.complete and result.devices == 5 and result.buckets == 5 * 192
    text = (tmp_path / "out.om").read_text()
    assert text.endswith("\n# EOF\n")
    series = series_of(text)
    readings = [f for f in inverter_kind.INVERTER.readings if f.field is not None and f.default]
    # Off by default (config `metrics:`), so backfill leaves them out as /metrics does.
    assert "podero_inverter_estimated_consumption_watts" not in {name for name, _ in series}
    checked = 0
    for inverter in sim.describe()["inverters"]:
        ident = inverter["inverter_id"]
        mine = {
            name: points
            for (name, labels), points in series.items()
            if ("device_id", ident) in labels
        }
        points = served(sim, inverter, FROM, TO)
        assert len(points) == 192
        for family in readings:
            expected = [
                (epoch(p["time"]), p[family.field] * family.scale)
                for p in points
                if p[family.field] is not None
            ]
            if not expected:  # null in every bucket (no battery): no series at all
                assert family.name not in mine
                continue
            assert mine[family.name] == expected  # the same float arithmetic, exactly
            checked += len(expected)
        stamps = [epoch(p["time"]) for p in points]
        assert mine[common.DATA_TIMESTAMP.name] == [(t, t) for t in stamps]
    # The fifth simulated inverter has no battery: its battery series are absent, not 0.
    no_battery = sim.describe()["inverters"][4]["inverter_id"]
    assert not [
        k
        for k in series
        if k[0] == inverter_kind.BATTERY_CHARGE.name and ("device_id", no_battery) in k[1]
    ]
    assert checked > 5 * 192 * 5
    # Units: the ratio is the API's percent / 100.
    first = sim.describe()["inverters"][0]
    percent = served(sim, first, FROM, TO)[40]["battery_charge_level_percent"]
    ratio = dict(of_inverter(series, inverter_kind.BATTERY_CHARGE.name, first["inverter_id"]))
    assert ratio[epoch(FROM) + 40 * BUCKET] == pytest.approx(percent / 100)


def test_every_bucket_of_heat_pumps_and_evs_holds_the_values_the_simulator_serves(
    sim: RunningSimulator, fleet_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    result = run(fleet_config, clock, tmp_path / "out.om", "--label", "job=podero")
    assert result.complete and result.devices == 11
    assert result.kinds == {"inverter": 5, "heat_pump": 2, "electric_vehicle": 2, "wallbox": 2}
    assert result.buckets == result.expected_buckets == 9 * 192  # wallboxes have no data
    assert "11 devices (5 inverters, 2 heat pumps, 2 electric vehicles, 2 wallboxes)" in (
        result.summary(tmp_path / "out.om")
    )
    series = series_of((tmp_path / "out.om").read_text())
    for kind in ("heat_pump", "electric_vehicle"):
        for device in devices_of(sim, kind):
            mine = {
                name: points for (name, _), points in of_device(series, device["device_id"]).items()
            }
            points = served_device(sim, device, FROM, TO)
            assert len(points) == 192
            stamps = [epoch(p["time"]) for p in points]
            for family in registry.get(kind).readings:  # every row of the kind's table
                assert family.field is not None
                expected = [
                    (t, family.convert(float(p[family.field])))  # True -> 1.0, False -> 0.0
                    for t, p in zip(stamps, points, strict=True)
                ]
                assert mine[family.name] == expected, family.name
            assert mine[common.DATA_TIMESTAMP.name] == [(t, t) for t in stamps]
    # Units: the EV's battery level is the API's percent / 100; its flags are 0 or 1.
    ev = devices_of(sim, "electric_vehicle")[0]
    mine = {name: dict(points) for (name, _), points in of_device(series, ev["device_id"]).items()}
    raw = served_device(sim, ev, FROM, TO)
    for index in (10, 90, 150):
        at = epoch(raw[index]["time"])
        percent = raw[index]["battery_level"]
        assert 0 < percent <= 100 and mine[electric_vehicle.BATTERY_LEVEL.name][
            at
        ] == pytest.approx(percent / 100)
        assert mine[electric_vehicle.CHARGING.name][at] == (
            1.0 if raw[index]["is_charging"] else 0.0
        )
    for flag in (
        electric_vehicle.CHARGING,
        electric_vehicle.PLUGGED_IN,
        electric_vehicle.AT_OPTIMIZED_LOCATION,
    ):
        assert set(mine[flag.name].values()) == {0.0, 1.0}  # both states occur in two days
    # Energy counters are the inverters' alone.
    inverters = {i["inverter_id"] for i in sim.describe()["inverters"]}
    energy = {dict(k[1])["device_id"] for k in series if "_energy_" in k[0]}
    assert energy and energy <= inverters


def test_a_wallbox_is_described_at_every_bucket(
    sim: RunningSimulator, fleet_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    run(fleet_config, clock, tmp_path / "out.om")
    series = series_of((tmp_path / "out.om").read_text())
    stamps = [epoch(FROM) + k * BUCKET for k in range(192)]
    descriptive = {f.name for f in history_families() if f.source is Source.TARGET}
    for wallbox in devices_of(sim, "wallbox"):
        mine = of_device(series, wallbox["device_id"])
        assert {name for name, _ in mine} <= descriptive
        (info,) = [key for key in mine if key[0] == common.INFO.name]
        simulated = sim.api.fleet.devices_by_id[wallbox["device_id"]]
        assert ("kind", "wallbox") in info[1]
        assert ("manufacturer", simulated.manufacturer) in info[1]
        assert mine[info] == [(t, 1.0) for t in stamps]
        for points in mine.values():
            assert [t for t, _ in points] == stamps
    stats = sim.api.stats()["responses"]
    assert "wallbox_data" not in stats and stats["wallbox"] == {"200": 2}  # its inventory only


def test_nulls_of_heat_pumps_and_evs_are_left_out(
    sim: RunningSimulator, fleet_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    serve = sim.api.device_data
    hot_water_gaps = {epoch(FROM) + k * BUCKET for k in (3, 4, 100)}
    offline = epoch(FROM) + 50 * BUCKET  # the EVs send a price and nothing measured

    def answer(org: str, user: str, kind: str, device: str, query: dict[str, str]) -> Any:
        body = serve(org, user, kind, device, query)
        for point in body["data"]:
            if kind == "heat_pump" and epoch(point["time"]) in hot_water_gaps:
                point["hot_water_temp"] = None
            if kind == "electric_vehicle" and epoch(point["time"]) == offline:
                point.update(dict.fromkeys(registry.get("electric_vehicle").measured_names))
        return body

    sim.api.device_data = answer  # type: ignore[method-assign]
    run(fleet_config, clock, tmp_path / "out.om")
    series = series_of((tmp_path / "out.om").read_text())
    for pump in devices_of(sim, "heat_pump"):
        mine = {
            name: dict(points) for (name, _), points in of_device(series, pump["device_id"]).items()
        }
        assert hot_water_gaps.isdisjoint(mine[heat_pump.HOT_WATER_TEMPERATURE.name])
        assert len(mine[heat_pump.HOT_WATER_TEMPERATURE.name]) == 192 - 3
        assert hot_water_gaps <= set(mine[heat_pump.INLET_TEMPERATURE.name])
    for ev in devices_of(sim, "electric_vehicle"):
        mine = of_device(series, ev["device_id"])
        for (name, _), points in mine.items():  # the price alone is no history either
            assert offline not in dict(points) and len(points) == 191, name


def test_labels_equal_the_live_exporters(
    sim: RunningSimulator, fleet_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    flags = ("--label", "job=podero", "--label", "instance=x:1")
    run(fleet_config, clock, tmp_path / "out.om", *flags)
    history: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for (name, labels), _ in series_of((tmp_path / "out.om").read_text()).items():
        assert ("job", "podero") in labels and ("instance", "x:1") in labels
        rest = tuple(kv for kv in labels if kv[0] not in ("job", "instance"))
        history.setdefault(name, set()).add(rest)
    exporter = Exporter(fleet_config, clock)
    exporter.poll_once()
    live: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    devices = (
        "podero_inverter_",
        "podero_heat_pump_",
        "podero_electric_vehicle_",
        "podero_device_",
    )
    for family in parse_text(exporter.page.render().decode()):
        for sample in family.samples:
            if sample.name.startswith(devices):
                live.setdefault(sample.name, set()).add(tuple(sorted(sample.labels.items())))
    exporter.stop()
    for name in history:
        assert history[name] == live[name], name
    # Every device family the live exporter serves is history, but for these, left out on
    # purpose: poll outcomes, today's state of the link and the optimisation, and what the
    # optimisation saved (today's and this month's figures, on the savings endpoints).
    left_out = {
        f.name
        for f in (
            *(common.UP, common.NEXT_POLL, common.LAST_SUCCESS, common.UP),
            *(
                common.AUTHENTICATED,
                common.ACTION_NEEDED,
                inverter_kind.CONNECTION_STATUS,
                inverter_kind.MONITORING_STATUS,
            ),
            *(common.AUTHENTICATED, common.ACTION_NEEDED),
            *(common.SMART_OPTIMIZATION, common.OPTIMIZATION_SCORE),
            *savings.DEVICE_FAMILIES,
        )
    }
    # The opt-in families the live exporter leaves out by default, backfill leaves out too.
    assert set(live) - set(history) == {name for name in left_out if table.by_name(name).default}
    assert {f.name for f in history_families()} & set(live) == set(history)
    kinds = {dict(labels).get("kind") for labels in history[common.INFO.name]}
    assert kinds == {"inverter", "heat_pump", "electric_vehicle", "wallbox"}


def test_history_takes_every_family_of_the_table_but_the_live_ones() -> None:
    # Derived from the table, so that rows added for a kind (thresholds, say) come along.
    for family in table.device_families():
        live_only = family.source is Source.POLL and family.field != "time"
        assert in_history(family) == (family in history_families())
        if family.source in (Source.READING, Source.ENERGY):
            assert in_history(family)
        if live_only:
            assert not in_history(family)
    for readings in (k.readings for k in registry.kinds()):
        assert set(readings) <= set(history_families())
    assert common.DATA_TIMESTAMP in history_families() and common.INFO in history_families()
    added = Family("podero_heat_pump_x_threshold_celsius", "t", Source.TARGET)
    assert in_history(added)  # a new description row of any kind


def test_energy_counters_add_each_completed_bucket_from_the_range_start(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    run(sim_config, clock, tmp_path / "out.om")
    series = series_of((tmp_path / "out.om").read_text())
    inverter = sim.describe()["inverters"][0]
    points = served(sim, inverter, FROM, TO)
    for name, field, sign in (
        (inverter_kind.SOLAR_ENERGY.name, "solar_production_w", 1),
        (inverter_kind.GRID_EXPORT_ENERGY.name, "export_power_to_grid_w", 1),
        (inverter_kind.GRID_IMPORT_ENERGY.name, "export_power_to_grid_w", -1),
        (inverter_kind.BATTERY_CHARGE_ENERGY.name, "battery_charge_discharge_power_w", -1),
    ):
        total, expected = 0.0, []
        for p in points:
            expected.append((epoch(p["time"]), total))  # before this bucket has ended
            total += max(0.0, sign * (p[field] or 0.0)) * BUCKET
        found = of_inverter(series, name, inverter["inverter_id"])
        assert [t for t, _ in found] == [t for t, _ in expected]
        assert [v for _, v in found] == pytest.approx([v for _, v in expected])
        assert total > 0
    run(sim_config, clock, tmp_path / "plain.om", "--no-energy")
    assert "_energy_" not in (tmp_path / "plain.om").read_text()


def test_one_request_per_device_and_day(
    sim: RunningSimulator, fleet_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    # 42 hours over three UTC days: three pages per device with a data series.
    result = run(
        fleet_config,
        clock,
        tmp_path / "out.om",
        start="2026-11-19T12:00:00Z",
        end="2026-11-21T06:00:00Z",
    )
    stats = sim.api.stats()["responses"]
    assert stats["inverter_data"] == {"200": 5 * 3}
    assert stats["heat_pump_data"] == {"200": 2 * 3}
    assert stats["electric_vehicle_data"] == {"200": 2 * 3}
    assert "wallbox_data" not in stats
    # Inventory of the configured devices, one detail each.
    assert stats["inverter"] == {"200": 5} and stats["heat_pump"] == {"200": 2}
    assert result.pages == result.requests == 27
    assert result.buckets == result.expected_buckets == 9 * 42 * 4
    series = series_of((tmp_path / "out.om").read_text())
    every = {t for points in series.values() for t, _ in points}
    assert min(every) == epoch("2026-11-19T12:00:00Z")
    assert max(every) == epoch("2026-11-21T05:45:00Z")
    for kind in ("heat_pump", "electric_vehicle", "wallbox"):
        stamps = {
            t
            for device in devices_of(sim, kind)
            for points in of_device(series, device["device_id"]).values()
            for t, _ in points
        }
        assert min(stamps) == epoch("2026-11-19T12:00:00Z"), kind
        assert max(stamps) == epoch("2026-11-21T05:45:00Z"), kind
        assert len(stamps) == 42 * 4


def refuse(sim: RunningSimulator, when: Callable[[str, float], bool]) -> None:
    """Make the simulator answer 400 to data requests for which `when(inverter, hours)`."""
    serve = sim.api.inverter_data

    def answer(org: str, user: str, inverter: str, query: dict[str, str]) -> dict[str, Any]:
        hours = (epoch(query["to_datetime"]) - epoch(query["from_datetime"])) / 3600
        if when(inverter, hours):
            raise SimApiError(400, "The requested range is too large.")
        return serve(org, user, inverter, query)

    sim.api.inverter_data = answer  # type: ignore[method-assign]


def with_podero(config: Config, **changes: Any) -> Config:
    return config.model_copy(update={"podero": config.podero.model_copy(update=changes)})


def test_a_refused_long_range_is_halved_until_accepted(
    sim: RunningSimulator, clock: FakeClock, tmp_path: Path
) -> None:
    raw = demo_config(sim.describe(), inverters=1)
    raw["podero"].update(max_concurrency=1, max_requests_per_second=1000)
    config = to_config(raw)
    run(config, clock, tmp_path / "whole.om")
    refuse(sim, lambda _inverter, hours: hours > 6)
    sim.api.reset_stats()
    result = run(config, clock, tmp_path / "halved.om")
    # Day one: 24 h refused, 2 x 12 h refused, 4 x 6 h accepted; day two starts at 6 h.
    assert sim.api.stats()["responses"]["inverter_data"] == {"400": 3, "200": 8}
    assert result.requests == 11 and result.complete
    assert (tmp_path / "halved.om").read_text() == (tmp_path / "whole.om").read_text()


def test_the_longest_accepted_range_is_learnt_per_kind(
    sim: RunningSimulator, fleet_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    serve = sim.api.device_data

    def answer(org: str, user: str, kind: str, device: str, query: dict[str, str]) -> Any:
        hours = (epoch(query["to_datetime"]) - epoch(query["from_datetime"])) / 3600
        if kind == "heat_pump" and hours > 6:
            raise SimApiError(400, "The requested range is too large.")
        return serve(org, user, kind, device, query)

    sim.api.device_data = answer  # type: ignore[method-assign]
    result = run(with_podero(fleet_config, max_concurrency=1), clock, tmp_path / "out.om")
    assert result.complete and result.buckets == 9 * 192
    stats = sim.api.stats()["responses"]
    # The first heat pump page: 24 h and 2 x 12 h refused, 4 x 6 h accepted; then 6 h pages.
    assert stats["heat_pump_data"] == {"400": 3, "200": 4 * 4}
    # The other kinds' endpoints keep their whole days.
    assert stats["inverter_data"] == {"200": 10}
    assert stats["electric_vehicle_data"] == {"200": 4}


def test_a_refused_single_bucket_means_no_data_there(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    silent = sim.describe()["inverters"][1]["inverter_id"]
    refuse(sim, lambda inverter, _hours: inverter == silent)
    result = run(sim_config, clock, tmp_path / "out.om", end="2026-11-21T00:00:00Z")
    assert result.complete and result.buckets == 4 * 96
    # Halved down to every single bucket: 1 + 2 + 4 + ... requests, 191 for a day of 96.
    assert sim.api.stats()["responses"]["inverter_data"] == {"200": 4, "400": 191}
    assert silent not in (tmp_path / "out.om").read_text()


def test_a_failed_run_leaves_a_partial_file_and_a_rerun_fetches_only_what_is_missing(
    sim: RunningSimulator, fleet_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    # One device of each kind with a data series fails: an inverter, a heat pump, an EV.
    broken = sim.describe()["inverters"][2]["inverter_id"]
    sim.api.faults.broken_inverters = (broken,)
    pump = devices_of(sim, "heat_pump")[1]["device_id"]
    ev = devices_of(sim, "electric_vehicle")[0]["device_id"]
    serve = sim.api.device_data

    def answer(org: str, user: str, kind: str, device: str, query: dict[str, str]) -> Any:
        if device in (pump, ev):
            raise SimApiError(503, "Service temporarily unavailable.")
        return serve(org, user, kind, device, query)

    sim.api.device_data = answer  # type: ignore[method-assign]
    out = tmp_path / "out.om"
    first = run(fleet_config, clock, out, "--label", "job=podero")
    assert not first.complete and first.failed == 3 * 2 and first.fetched == 18 - 6
    partial = out.read_text()
    assert "# EOF" not in partial
    assert broken not in partial and pump not in partial and ev not in partial
    assert len(series_of(partial + "# EOF\n")) > 4 * 15  # valid OpenMetrics up to the marker
    sim.api.faults.broken_inverters = ()
    sim.api.device_data = serve  # type: ignore[method-assign]
    sim.api.reset_stats()
    second = run(fleet_config, clock, out, "--label", "job=podero")
    assert second.complete and second.fetched == 6 and second.resumed == 12
    stats = sim.api.stats()["responses"]
    assert stats["inverter_data"] == stats["heat_pump_data"] == {"200": 2}
    assert stats["electric_vehicle_data"] == {"200": 2}
    fresh = tmp_path / "fresh.om"
    run(fleet_config, clock, fresh, "--label", "job=podero")
    assert out.read_text() == fresh.read_text()
    assert pump in out.read_text() and ev in out.read_text()


def test_an_interrupted_run_resumes(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    config = with_podero(sim_config, max_concurrency=1)
    stop = threading.Event()
    serve = sim.api.inverter_data
    calls = []

    def answer(*args: Any) -> dict[str, Any]:
        calls.append(args)
        if len(calls) == 3:
            stop.set()  # as if Ctrl-C came while the third page was in flight
        return serve(*args)

    sim.api.inverter_data = answer  # type: ignore[method-assign]
    out = tmp_path / "out.om"
    first = run(config, clock, out, stop=stop)
    # The page in flight finishes; the one queued behind it may have started too.
    assert first.interrupted and first.fetched in (3, 4) and not first.complete
    assert "# EOF" not in out.read_text()
    assert "interrupted" in first.summary(out)
    second = run(config, clock, out)
    assert second.complete and second.resumed == first.fetched
    assert second.fetched == 10 - first.fetched
    assert len(calls) == 10  # no page asked for twice
    assert out.read_text().endswith("# EOF\n")


def test_a_torn_journal_line_is_fetched_again(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    out = tmp_path / "out.om"
    run(sim_config, clock, out)
    complete = out.read_text()
    journal = tmp_path / "out.om.pages"
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 100])  # killed while writing the last page
    sim.api.reset_stats()
    result = run(sim_config, clock, out)
    assert result.fetched == 1 and result.resumed == 9
    assert sim.api.stats()["responses"]["inverter_data"] == {"200": 1}
    assert out.read_text() == complete


@pytest.mark.parametrize(
    "bad",
    [
        '"day":Infinity,"points":[]',
        '"day":DAY',
        '"day":DAY,"points":[["noon",{"solar_production_w":1}]]',
        '"day":DAY,"points":[[1,{"solar_production_w":"much"}]]',
        '"day":DAY,"points":[[NaN,{}]]',
        '"day":DAY,"points":{"a":1}',
    ],
    ids=["day-infinite", "no-points", "time-text", "value-text", "time-nan", "points-object"],
)
def test_a_malformed_journal_line_is_fetched_again(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock, tmp_path: Path, bad: str
) -> None:
    out = tmp_path / "out.om"
    run(sim_config, clock, out)
    complete = out.read_text()
    journal = tmp_path / "out.om.pages"
    lines = journal.read_bytes().splitlines(keepends=True)
    # A line that parses as JSON but is no page, in place of the last page (same device).
    last = json.loads(lines[-1])
    fields = f'"inverter_id":"{last["inverter_id"]}",' + bad.replace("DAY", str(last["day"]))
    journal.write_bytes(b"".join(lines[:-1]) + ("{" + fields + "}\n").encode())
    sim.api.reset_stats()
    result = run(sim_config, clock, out)
    assert result.fetched == 1 and result.resumed == 9
    assert out.read_text() == complete


def test_a_journal_of_another_range_is_refused(
    sim: RunningSimulator, sim_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    run(sim_config, clock, tmp_path / "out.om")
    with pytest.raises(JournalMismatch, match="belongs to another backfill"):
        run(sim_config, clock, tmp_path / "out.om", start="2026-11-19T00:00:00Z")


def test_an_existing_output_without_journal_is_left_alone(
    sim_config: Config, clock: FakeClock, tmp_path: Path
) -> None:
    (tmp_path / "out.om").write_text("precious")
    with pytest.raises(UsageError, match="exists without its journal"):
        run(sim_config, clock, tmp_path / "out.om")
    assert (tmp_path / "out.om").read_text() == "precious"


def test_discovered_devices_of_every_kind_are_backfilled(
    sim: RunningSimulator, clock: FakeClock, tmp_path: Path
) -> None:
    info = sim.describe()
    raw = demo_config(info)
    raw["inverters"] = []
    raw["discovery"] = {"org_ids": info["org_ids"]}
    raw["podero"]["max_requests_per_second"] = 1000
    result = run(to_config(raw), clock, tmp_path / "out.om")
    assert result.complete and result.devices == 11
    assert result.kinds == {"inverter": 5, "heat_pump": 2, "electric_vehicle": 2, "wallbox": 2}
    stats = sim.api.stats()["responses"]
    assert stats["inverter_data"] == {"200": 10} and "inverter" not in stats  # listed, no details
    assert stats["heat_pump_data"] == stats["electric_vehicle_data"] == {"200": 4}
    assert "heat_pump" not in stats and "wallbox" not in stats
    series = series_of((tmp_path / "out.om").read_text())
    infos = [dict(labels) for name, labels in series if name == common.INFO.name]
    others = [i for i in infos if i["kind"] != "inverter"]
    assert sorted(i["kind"] for i in others) == sorted(d["kind"] for d in info["devices"])
    assert all(i["manufacturer"] and i["name"].startswith("cust-") for i in others)
    assert sum(i["kind"] == "inverter" for i in infos) == 5


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        (["device_id=x"], "sets this label"),
        (["name=x"], "sets this label"),
        (["status=x"], "sets this label"),
        (["manufacturer=x"], "sets this label"),
        (["site=x"], "sets this label"),  # a configured label of an inverter
        (["__name__=x"], "not a valid"),
        (["1job=x"], "not a valid"),
        (["job-name=x"], "not a valid"),
        (["job"], "expected NAME=VALUE"),
        (["job=a", "job=b"], "given twice"),
        (["job="], "empty value"),
        (["site2=\udcff"], "not valid UTF-8"),  # what argv makes of a byte that is not UTF-8
    ],
)
def test_bad_labels_are_refused(labels: list[str], reason: str) -> None:
    raw = minimal_config()
    raw["inverters"][0]["labels"] = {"site": "vienna"}
    with pytest.raises(UsageError, match=reason):
        parse_labels(labels, to_config(raw))


def test_job_and_instance_labels_are_accepted() -> None:
    labels = parse_labels(
        ["job=podero", "instance=host:10042", "env=a=b"], to_config(minimal_config())
    )
    assert labels == (("job", "podero"), ("instance", "host:10042"), ("env", "a=b"))


def test_device_labels_cover_everything_the_collector_sets() -> None:
    inventory = Inventory(
        manufacturer="m",
        model="x",
        price_zone="AT",
        lifecycle_state="ok",
        connection_status="c",
        monitoring_status="ok",
        actions=("reauthenticate",),
    )
    names: set[str] = set()
    for kind in ("inverter", "heat_pump", "electric_vehicle", "wallbox"):
        target = DeviceTarget(INV_A, "o", "u", "n", inventory=inventory, kind=kind)
        state = DeviceState(
            target,
            reading=DataPoint(0.0, {"price": 1.0}),
            polled=True,
            price=PriceUnits("EUR", "EUR/MWh"),
            savings=Savings(Period(0.0, 1.0, 1.0, 1.0), None, "EUR", "kWh", 0.0),
        )
        for samples in (*target_samples(target).values(), *polled_samples(state).values()):
            names.update(key for labels, _ in samples for key, _ in labels)
    assert names == set(device_labels())


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--from", "2026-11-20T00:00:00", "--to", TO], "--from: .* has no time zone"),
        (["--from", "yesterday", "--to", TO], "--from: 'yesterday' is not an ISO 8601"),
        (["--from", FROM, "--to", "2026-11-24T00:00:00Z"], "--to: .* is in the future"),
        (["--from", FROM, "--to", "2026-11-20T00:10:00Z"], "holds no whole 15MIN bucket"),
        (["--from", "0026-11-20", "--to", TO], "is over 1830 days"),
    ],
)
def test_bad_ranges_are_refused(
    sim_config: Config, clock: FakeClock, tmp_path: Path, flags: list[str], reason: str
) -> None:
    args = backfill.parse_args([*flags, "--output", str(tmp_path / "o.om")])
    with pytest.raises(UsageError, match=reason):
        backfill.run(sim_config, args, clock, io.StringIO())


def test_weekly_buckets_are_refused(sim_config: Config, clock: FakeClock, tmp_path: Path) -> None:
    config = sim_config.model_copy(
        update={"poll": sim_config.poll.model_copy(update={"resolution": "1WEEK"})}
    )
    with pytest.raises(UsageError, match=r"poll\.resolution 1WEEK"):
        run(config, clock, tmp_path / "o.om")


def test_the_subcommand_reports_bad_input_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_root_logger: None
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(minimal_config()))
    code = cli.main(
        [
            "backfill",
            "--config.file",
            str(path),
            "--from",
            FROM,
            "--to",
            TO,
            "--output",
            str(tmp_path / "o"),
            "--label",
            "name=x",
        ]
    )
    assert code == 2
    assert (
        "podero-exporter backfill: --label 'name': the exporter sets this label"
        in capsys.readouterr().err
    )


def test_the_subcommand_has_its_own_help() -> None:
    result = run_cli("backfill", "--help")
    assert result.returncode == 0
    assert "--from" in result.stdout and "--label NAME=VALUE" in result.stdout


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_only() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = Progress(stream, total=10)
        progress.update(4, 1, force=True)
        progress.close()
    assert "backfill: 4/10 pages (50%), 1 failed" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r\x1b[K")
    assert pipe.getvalue() == ""


def test_measured_fields_of_the_simulator_are_all_exported() -> None:
    # The exact-value test above compares every reading family; it must cover every field
    # the simulator measures.
    assert set(MEASURED) <= {f.field for f in inverter_kind.INVERTER.readings}


def test_the_subcommand_writes_the_file_and_says_so(
    sim_config: Config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    restore_root_logger: None,
) -> None:
    path = tmp_path / "config.yaml"
    raw = sim_config.model_dump(mode="json")
    raw["podero"]["auth"]["client_secret"] = sim_config.podero.auth.client_secret.get_secret_value()
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out.om"
    flags = ["--config.file", str(path), "--from", FROM, "--to", TO, "--output", str(out)]
    assert cli.main(["backfill", *flags]) == 0
    err = capsys.readouterr().err
    assert "backfill complete: 5 devices (5 inverters), 10 pages (10 fetched" in err
    assert "\r" not in err
    assert out.read_text().endswith("# EOF\n")


def test_ctrl_c_keeps_the_finished_pages(
    sim_config: Config, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_wait = backfill.wait
    waits = []

    def interrupted_wait(*args: Any, **kwargs: Any) -> Any:
        waits.append(1)
        if len(waits) == 3:
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(backfill, "wait", interrupted_wait)
    out = tmp_path / "out.om"
    first = run(with_podero(sim_config, max_concurrency=1), clock, out)
    assert first.interrupted and 2 <= first.fetched < 10
    assert "# EOF" not in out.read_text()
    monkeypatch.setattr(backfill, "wait", real_wait)
    second = run(sim_config, clock, out)
    assert second.complete and second.fetched + second.resumed == 10
    assert second.resumed == first.fetched


def test_hostile_names_and_label_values_are_escaped(
    sim: RunningSimulator, clock: FakeClock, tmp_path: Path
) -> None:
    raw = demo_config(sim.describe(), inverters=1)
    raw["podero"]["max_requests_per_second"] = 1000
    hostile = 'roof "A"\\ \n<b>ü🌞'
    raw["inverters"][0].update(name=hostile, labels={"site": 'a"b\\c'})
    out = tmp_path / "out.om"
    run(to_config(raw), clock, out, "--label", 'instance=x"\\y', end="2026-11-21T00:00:00Z")
    series = series_of(out.read_text())
    assert len(series) > 10
    for _name, labels in series:
        assert dict(labels)["name"] == hostile and dict(labels)["instance"] == 'x"\\y'
    info = next(labels for name, labels in series if name == common.INFO.name)
    assert dict(info)["site"] == 'a"b\\c'


def test_failed_discovery_is_an_error_not_an_empty_backfill(
    sim: RunningSimulator, clock: FakeClock, tmp_path: Path
) -> None:
    info = sim.describe()
    raw = demo_config(info)
    raw["discovery"] = {"org_ids": info["org_ids"]}
    raw["podero"].update(max_requests_per_second=1000, retry={"attempts": 1})
    sim.api.faults.failing_endpoints = ("users",)
    with pytest.raises(NothingToBackfill, match="discovery failed"):
        run(to_config(raw), clock, tmp_path / "out.om")
    assert "inverter_data" not in sim.api.stats()["responses"]
    # The journal it left holds no page, so another range may use the same output.
    sim.api.faults.failing_endpoints = ()
    assert run(to_config(raw), clock, tmp_path / "out.om", start="2026-11-21").complete
