"""`podero-exporter`: Prometheus-style flags, demo mode, config check, one-shot mode, signals."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import zoneinfo
from collections.abc import Sequence
from datetime import datetime, timedelta

import yaml
from pydantic import ValidationError

from exporter import __version__
from exporter.app import Exporter, Reloader
from exporter.base.clock import SystemClock
from exporter.base.logs import LEVELS, kv, setup_logging
from exporter.base.memory import limit_malloc_arenas
from exporter.base.signals import SignalInbox
from exporter.config.model import Config, ConfigError, ShardConfig, load_config, parse_config
from exporter.serve.server import SYSTEMD_ENV, systemd_sockets
from exporter.serve.web import FIXED_PATHS, WebApp, parse_listen_address, start_servers
from exporter.serve.webconfig import describe, load_web_config

log = logging.getLogger("exporter")
DEMO_INVERTERS = 3
DEMO_SCENARIOS = ("battery-low", "hot-water-low", "vehicle-late")
DEMO_TIMEZONE = "Europe/Vienna"
DEFAULT_LISTEN = ":10042"
# Kubernetes sets these from the pod ordinal and the replica count (deploy/kubernetes).
SHARD_INDEX_ENV = "PODERO_SHARD_INDEX"
SHARD_COUNT_ENV = "PODERO_SHARD_COUNT"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="podero-exporter",
        description="Prometheus exporter for the Podero Partner API: the inverters, batteries, "
        "heat pumps and electric vehicles of a partner's customers.",
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        default="config.yaml",
        help="path to the YAML config (default: config.yaml)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        metavar="ADDRESS",
        action="append",
        default=None,
        help=f"address to serve /metrics on; repeat it to serve on several "
        f"(default: {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--web.systemd-socket",
        dest="systemd_socket",
        action="store_true",
        help="serve on the sockets systemd passes (socket activation) instead of "
        "--web.listen-address",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        default=None,
        help="exporter-toolkit web config: TLS and basic auth for every endpoint",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="serve POST /-/reload (SIGHUP reloads either way)",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        help="path under which to expose the metrics (default: /metrics)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default="info",
        choices=LEVELS,
    )
    parser.add_argument(
        "--log.format", dest="log_format", default="logfmt", choices=("logfmt", "json")
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the config, print a summary and exit",
    )
    parser.add_argument(
        "--once", action="store_true", help="poll every inverter once, print the metrics and exit"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run against a built-in simulated Podero API (no config needed)",
    )
    parser.add_argument(
        "--demo.inverters",
        dest="demo_inverters",
        type=int,
        default=DEMO_INVERTERS,
        help="simulated inverters in demo mode",
    )
    parser.add_argument(
        "--demo.scenario",
        dest="demo_scenario",
        choices=DEMO_SCENARIOS,
        default=None,
        help="make the demo show an alert: battery-low drains the first simulated battery, "
        "hot-water-low cools the first heat pump's water, vehicle-late leaves the first "
        "vehicle plugged in at home at 50 %% five minutes after its charged-by time",
    )
    parser.add_argument(
        "--shard.count",
        dest="shard_count",
        default=None,
        help=f"split the fleet into this many shards (default: ${SHARD_COUNT_ENV}, "
        "else shard.count of the config)",
    )
    parser.add_argument(
        "--shard.index",
        dest="shard_index",
        default=None,
        help=f"the shard this replica polls, 0 to count-1 (default: ${SHARD_INDEX_ENV}, "
        "else shard.index of the config)",
    )
    parser.add_argument("--version", action="version", version=f"podero-exporter {__version__}")
    args = parser.parse_args(argv)
    if args.systemd_socket and args.listen:
        parser.error(
            "--web.systemd-socket serves the sockets of systemd's socket unit; "
            "give --web.listen-address there (ListenStream=), not here"
        )
    args.listen = args.listen or [DEFAULT_LISTEN]
    return args


def _demo_config(count: int, scenario: str | None) -> tuple[Config, str]:
    """Start the simulator on an ephemeral loopback port; the config that polls it."""
    # Only the demo loads the simulator; the daemon never imports it.
    from exporter.sim import Faults, SimFleet, SimulatedApi, demo_config, start_simulator

    api = SimulatedApi(SimFleet(seed=1, inverters=count), faults=Faults())
    first = {d.kind: d.id for d in reversed(api.fleet.devices)}  # the first of each kind
    charged_by = "06:30"
    if scenario == "battery-low":
        api.overrides[api.fleet.inverters[0].id] = {"battery_charge_level_percent": 5.0}
    elif scenario == "hot-water-low":
        api.overrides[first["heat_pump"]] = {"hot_water_temp": 31.5}
    elif scenario == "vehicle-late":
        pinned = {"battery_level": 50.0, "is_plugged_in": 1.0, "is_at_optimized_location": 1.0}
        api.overrides[first["electric_vehicle"]] = pinned
        due = datetime.now(zoneinfo.ZoneInfo(DEMO_TIMEZONE)) - timedelta(minutes=5)
        charged_by = due.strftime("%H:%M")
    sim = start_simulator(api)
    info = sim.describe()
    raw = demo_config(info)
    # No inverters by hand: the demo discovers the simulated organization's fleet.
    raw["inverters"] = []
    raw["discovery"] = {"org_ids": info["org_ids"], "refresh_interval_seconds": 300}
    # The demo polls every 10 s (no skipping) so that simulator scenarios show at once, and
    # sets thresholds so that the alert rules and the dashboard's threshold lines have data;
    # they lie outside what the simulated fleet does (a 20 % battery reserve, at most 12 kW of
    # solar, hot water above 43 °C, cars charged to 90 % by 05:00), so nothing fires unless a
    # scenario asks for it.
    raw["poll"] = {"interval_seconds": 10, "skip_until_due": False}
    raw["thresholds"] = {
        "battery_low_percent": 15,
        "grid_export_high_watts": 15000,
        "hot_water_low_celsius": 40,
        "vehicle_charged_percent": 80,
        "vehicle_charged_by": charged_by,
    }
    raw["timezone"] = DEMO_TIMEZONE
    text = yaml.safe_dump(raw)
    return parse_config(text, {}, source="demo"), sim.base_url


def _shard_setting(flag: str | None, env: str, name: str) -> tuple[int | None, str]:
    """A shard number from its flag, else its environment variable (and where it came from)."""
    value, source = (flag, f"--shard.{name}") if flag is not None else (os.environ.get(env), env)
    if value is None or value == "":
        return None, ""
    try:
        return int(value), source
    except ValueError:
        raise ConfigError(f"{source}: {value!r} is not a whole number") from None


def with_flags(config: Config, args: argparse.Namespace) -> Config:
    """The config with the shard from the flags or the environment applied."""
    count, count_source = _shard_setting(args.shard_count, SHARD_COUNT_ENV, "count")
    index, index_source = _shard_setting(args.shard_index, SHARD_INDEX_ENV, "index")
    if count is None and index is None:
        return config
    try:
        shard = ShardConfig(
            count=config.shard.count if count is None else count,
            index=config.shard.index if index is None else index,
        )
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        sources = "/".join(s for s in (count_source, index_source) if s)
        raise ConfigError(f"{sources}: {reason}") from None
    return config.model_copy(update={"shard": shard})


def check_telemetry_path(path: str) -> None:
    """--web.telemetry-path must be an absolute path that no other endpoint uses."""
    if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", path) or len(path) > 200:
        raise ConfigError(f"--web.telemetry-path {path!r}: expected a path such as /metrics")
    if path in FIXED_PATHS:
        raise ConfigError(f"--web.telemetry-path {path!r}: already used by another endpoint")


def _listeners(args: argparse.Namespace) -> list[str | socket.socket]:
    """What to serve on: systemd's sockets with --web.systemd-socket, else every
    --web.listen-address (checked). ValueError says what is wrong."""
    # systemd's variables are for this process only (sd_listen_fds unsets them too); left
    # set, the HTTP server library would take fd 3 for every address.
    systemd_env = {name: os.environ.pop(name) for name in SYSTEMD_ENV if name in os.environ}
    if args.systemd_socket:
        return list(systemd_sockets(systemd_env, os.getpid()))
    if systemd_env.get("LISTEN_PID") == str(os.getpid()):
        log.warning(
            "systemd passed sockets but --web.systemd-socket is not given: not serving them",
            extra=kv(address=",".join(args.listen)),
        )
    for address in args.listen:
        parse_listen_address(address)
    return list(args.listen)


def load(args: argparse.Namespace) -> Config:
    """The config file named on the command line, validated, with flags applied."""
    return with_flags(load_config(args.config_file), args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["backfill"]:
        from exporter import backfill  # only this subcommand needs it

        return backfill.main(argv[1:])
    args = parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        listeners = _listeners(args)
        if args.demo:
            config, sim_url = _demo_config(max(1, args.demo_inverters), args.demo_scenario)
            config = with_flags(config, args)
            log.info("demo mode: polling the simulated Podero API", extra=kv(base_url=sim_url))
        else:
            config = load(args)
        check_telemetry_path(args.telemetry_path)
        web_config = load_web_config(args.web_config_file) if args.web_config_file else None
    except (ConfigError, ValueError) as exc:
        for line in str(exc).splitlines():
            print(f"podero-exporter: config error: {line}", file=sys.stderr)
        return 2
    if args.config_check:
        print(config.summary())
        return 0

    limit_malloc_arenas()
    clock = SystemClock()
    exporter = Exporter(config, clock)
    if args.once:
        result = exporter.poll_once()
        sys.stdout.write(exporter.page.render().decode())
        exporter.stop()
        return 0 if result.succeeded else 1

    # One thread runs every reload; the web request and SIGHUP only ask it for one.
    reloader = (
        Reloader(lambda: "the demo config cannot be reloaded").start()
        if args.demo
        else exporter.reloader(lambda: load(args))
    )

    # Before anything says it has started: a SIGHUP from then on must find its handler.
    # The handlers only note a signal; this thread acts on it (exporter/base/signals.py).
    stops = (signal.SIGTERM, signal.SIGINT)
    hup = getattr(signal, "SIGHUP", None)
    inbox = SignalInbox((*stops, hup) if hup else stops)
    try:
        web = start_servers(
            listeners,
            WebApp(
                metrics_path=args.telemetry_path,
                metrics=exporter.page.chunks,
                metrics_gzip=exporter.page.gzip_chunks,
                openmetrics=lambda: exporter.page.chunks(openmetrics=True),
                openmetrics_gzip=lambda: exporter.page.gzip_chunks(openmetrics=True),
                ready=lambda: exporter.ready,
                reload=reloader.ask if args.enable_lifecycle else None,
                status=exporter.status_view(),
            ),
            web_config,
        )
    except OSError as exc:
        print(f"podero-exporter: {exc}", file=sys.stderr)
        inbox.close()
        exporter.stop()
        return 1
    exporter.start()
    if web_config is not None:
        log.info("web config loaded", extra=kv(file=args.web_config_file, **describe(web_config)))
    log.info(
        "podero-exporter started",
        extra=kv(
            version=__version__,
            address=",".join(
                f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                for host, port in web.addresses
            ),
            configured_inverters=len(config.inverters),
            discovered_organizations=len(config.discovery.org_ids) if config.discovery else 0,
        ),
    )

    while True:
        arrived = inbox.wait()
        if hup in arrived:
            reloader.ask_soon()
        if stopped := sorted(arrived.intersection(stops)):
            log.info("shutting down", extra=kv(signal=stopped[0].name))
            break
    clock.stop()  # wakes every retry and budget wait with Stopped
    exporter.stop()
    reloader.stop()
    web.shutdown()
    web.server_close()
    log.info("stopped")
    logging.shutdown()
    sys.stdout.flush()
    # API calls still in flight are read-only GETs with nothing to save: abandon them rather
    # than wait up to timeout x attempts for their threads (the interpreter would join them).
    os._exit(0)
