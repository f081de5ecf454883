"""Benchmark 16: a partner on several replicas sharing one organisation budget (issue 23).

R exporter processes (`python -m exporter --shard.count R --shard.index i`, each on its own
port, discovery on) poll ONE simulator of mixed homes (`--devices`, about 120,000 for the whole
partner) with `max_requests_per_second` the organisation's total, set so that it binds (each
replica takes its share, `exporter.api.budget.replica_share`). The simulator counts the
requests that arrive per second and per access token (each replica fetches its own), so every
rate below is measured at the server.

Per replica: listings made (about 1/R each, from its own podero_api_requests_total), requests
per second against its share (mean until it was ready; the most in one whole second, the goal,
and in any sliding one-second window), device series exported, seconds from the process start
(interpreter start-up included) to its first call with its access token, to the first device's
data and to every device's (`/-/ready`), resident memory and CPU at readiness. The replicas
start one after another (each once the previous one has fetched its token, so that a token
names one replica). For the cluster: the most requests in one whole second against the total
(and in any sliding one-second window), and the series per scrape interval Prometheus must
ingest (the replicas' series summed).

Restart storm: one replica is killed (SIGKILL, a crash) and started again; its requests per
whole second stay within its share, and the time until its devices have data again.

With two or more sizes the scaling law (a + b x devices, from the two largest sizes) is
extrapolated to `--target` devices (default 120,000).

    python -m benchmarks.bench_replicas [--devices 120000] [--budget 200] [--quick]
    python -m benchmarks.bench_replicas --devices 8000 16000   # measure two, extrapolate
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.bench_large_fleet import LISTINGS, inverters_for
from benchmarks.harness import cpu_of, load_average, machine, rss_of, sim_stats, verdict
from exporter.api.budget import replica_share
from exporter.sim import demo_config, spawn, stop_process

LATENCY_MS = 300
CONCURRENCY = 64
# The users listing of one organisation is one body (no pagination is documented): about 17 MB
# for 52,000 homes in the simulator, over the default cap of 16 MiB (max_response_bytes).
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_REQUESTS = re.compile(rb"^podero_api_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.M)
_ENDPOINT = re.compile(rb'endpoint="([^"]*)"')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 120) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Replica:
    """One exporter process and what was measured of it."""

    index: int
    port: int
    command: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0  # perf_counter at Popen
    sim_second: float = 0.0  # the simulator's seconds since its stats reset, at Popen
    token: str = ""  # the simulator's name of this process's access token
    first: float | None = None  # seconds from start to the first device's data
    ready: float | None = None  # seconds from start to every device's data
    cpu_at_ready: float = 0.0
    rss_at_ready: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)

    def start(self, sim_url: str) -> None:
        self.first = self.ready = None
        self.sim_second = sim_clock(sim_url)
        self.started = time.perf_counter()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=log)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Sample the replica: first data (the device with the newest data), readiness."""
        if not self.alive():
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"replica {self.index} exited:\n{tail}")
        with contextlib.suppress(OSError):
            if self.first is None:
                status, body = http_get(self.port, "/api/v1/devices?sort=data_age_seconds&limit=1")
                if status == 200:
                    rows = json.loads(body)["devices"]
                    if rows and rows[0].get("data_age_seconds") is not None:
                        self.first = self.elapsed()
            if self.ready is None and http_get(self.port, "/-/ready")[0] == 200:
                self.ready = self.elapsed()
                assert self.proc is not None
                self.cpu_at_ready = cpu_of(self.proc.pid)
                self.rss_at_ready = rss_of(self.proc.pid)


def sim_clock(sim_url: str) -> float:
    connection = http.client.HTTPConnection(sim_url.split("//")[1], timeout=30)
    connection.request("GET", "/_sim/stats")
    elapsed = float(json.loads(connection.getresponse().read())["elapsed_seconds"])
    connection.close()
    return elapsed


def write_config(sim: dict[str, Any], budget: float, directory: Path) -> Path:
    raw = demo_config(sim)
    raw["inverters"] = []
    raw["discovery"] = {"org_ids": sim["org_ids"]}
    raw["podero"].update(
        max_concurrency=CONCURRENCY,
        max_requests_per_second=budget,
        timeout_seconds=30,
        max_response_bytes=MAX_RESPONSE_BYTES,
    )
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    path.chmod(0o600)
    return path


def wait_for_token(sim: dict[str, Any], known: set[str], replica: Replica, limit: float) -> str:
    """The simulator's name of the access token this replica fetched (the one new token)."""
    while replica.elapsed() < limit:
        replica.check()
        fresh = {str(c) for c in sim_stats(sim)["clients"]} - known - {"no-token", "unknown-token"}
        if fresh:
            return sorted(fresh, key=lambda name: int(name.split("-")[1]))[0]
        time.sleep(0.05)  # sampling the simulator's counts, not waiting for an outcome
    raise RuntimeError(f"replica {replica.index} fetched no token in {limit:.0f} s")


def watch(replicas: list[Replica], limit: float) -> None:
    """Sample every replica until each has data for every device (or `limit` seconds)."""
    started = time.perf_counter()
    while any(r.ready is None for r in replicas):
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"not every replica ready after {limit:.0f} s")
        for r in replicas:
            if r.ready is None:
                r.check()
        time.sleep(0.25)  # sampling the replicas' progress, not waiting for an outcome


def page_figures(replica: Replica) -> dict[str, Any]:
    """From the replica's /metrics: device series, other series, listings made, bytes."""
    _, listed = http_get(replica.port, "/api/v1/devices?limit=1")
    devices = int(json.loads(listed)["total"])
    if not devices:
        tail = replica.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"replica {replica.index} is ready with no devices:\n{tail}")
    _, body = http_get(replica.port, "/metrics")
    device = other = 0
    for line in body.split(b"\n"):
        if not line or line.startswith(b"#"):
            continue
        if b'device_id="' in line:
            device += 1
        else:
            other += 1
    requests: Counter[str] = Counter()
    for labels, value in _REQUESTS.findall(body):
        endpoint = _ENDPOINT.search(labels)
        if endpoint:
            requests[endpoint.group(1).decode()] += int(float(value))
    listings = sum(n for e, n in requests.items() if e in LISTINGS)
    return {
        "devices": devices,
        "device_series": device,
        "other_series": other,
        "bytes": len(body),
        "listings": listings,
        "requests": dict(requests),
    }


def window_figures(client: dict[str, Any], start: float, end: float) -> dict[str, float]:
    """A client's requests per second between the simulator's seconds `start` and `end`:
    mean, and the most in one whole second."""
    counts = client["per_second"]
    first = client["first_second"]
    lo, hi = max(0, int(start) - first), max(0, int(end) - first + 1)
    chosen = counts[lo:hi]
    return {
        "requests": sum(chosen),
        "mean": sum(chosen) / max(1e-9, end - start),
        "max_second": max(chosen, default=0),
    }


def run_size(devices: int, count: int, budget: float, restart: bool, limit: float) -> dict:  # type: ignore[type-arg]
    inverters = inverters_for(devices)
    shares = [replica_share(budget, i, count) for i in range(count)]
    print(
        f"### {count} replicas, simulator --inverters {inverters} (mixed homes), latency "
        f"{LATENCY_MS} ms, concurrency {CONCURRENCY} per replica, organisation budget {budget:g}"
        f"/s (shares {shares}; unbounded, the replicas would send up to "
        f"{count * CONCURRENCY / (LATENCY_MS / 1000):.0f}/s), max_response_bytes "
        f"{MAX_RESPONSE_BYTES >> 20} MiB; {load_average()}"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp,
        spawn("--inverters", str(inverters), "--latency-ms", str(LATENCY_MS)) as sim,
    ):
        directory = Path(tmp)
        sim_kinds = Counter(d["kind"] for d in sim["devices"])
        sim_url, sim_pid = sim["base_url"], sim["pid"]
        config = write_config(sim, budget, directory)
        sim.pop("inverters")
        sim.pop("devices")
        replicas = []
        for i in range(count):
            port = free_port()
            command = [
                sys.executable, "-m", "exporter", "--config.file", str(config),
                "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn",
                "--shard.count", str(count), "--shard.index", str(i),
            ]  # fmt: skip
            replicas.append(Replica(i, port, command, directory / f"replica-{i}.log"))
        known: set[str] = set()
        try:
            for r in replicas:  # one after another, so that each token names one replica
                r.start(sim_url)
                r.token = wait_for_token(sim, known, r, limit=120)
                known.add(r.token)
            watch(replicas, limit)
            stats = sim_stats(sim)
            result = report_cluster(replicas, shares, budget, stats, sim_pid, devices, sim_kinds)
            if restart:
                result["restart"] = restart_storm(
                    replicas[-1], shares[-1], budget, sim, known, limit
                )
        finally:
            for r in replicas:
                if r.proc is not None:
                    stop_process(r.proc)
    return result


def report_cluster(
    replicas: list[Replica],
    shares: list[float],
    budget: float,
    stats: dict[str, Any],
    sim_pid: int,
    devices: int,
    sim_kinds: Counter[str],
) -> dict[str, Any]:
    clients = stats["clients"]
    pages = [page_figures(r) for r in replicas]
    print(f"simulated devices besides inverters: {dict(sim_kinds)}")
    print(
        "replica  devices  listings (share)  req/s: mean from first call to ready, most in a whole "
        "second (sliding) vs share  device series  first call  first data  all data   "
        "RSS at ready  CPU to ready"
    )
    total_listings = sum(p["listings"] for p in pages)
    for r, share, page in zip(replicas, shares, pages, strict=True):
        client = clients[r.token]
        assert r.ready is not None and r.first is not None
        w = window_figures(client, client["first_arrival_seconds"], r.sim_second + r.ready)
        most = max(client["per_second"], default=0)
        print(
            f"{r.index:>7}  {page['devices']:>7}  {page['listings']:>8} "
            f"({page['listings'] / total_listings:.3f})  "
            f"{w['mean']:>6.1f}, {most:>4} ({client['busiest_second']:>4}) vs {share:>5g} "
            f"{verdict(most <= share):>7}   {page['device_series']:>13}  "
            f"{client['first_arrival_seconds'] - r.sim_second:>8.2f} s  {r.first:>8.2f} s  "
            f"{r.ready:>6.1f} s  {r.rss_at_ready:>9.1f} MB  {r.cpu_at_ready:>9.1f} s"
        )
    most = max(stats["per_second"], default=0)
    series = sum(p["device_series"] for p in pages)
    others = sum(p["other_series"] for p in pages)
    slowest = max(r.ready or 0 for r in replicas)
    sim_rss, sim_cpu = rss_of(sim_pid), cpu_of(sim_pid)
    print(
        f"cluster: most requests in one whole second at the simulator {most} against the total "
        f"{budget:g} (goal never above: {verdict(most <= budget)}); in any sliding one-second "
        f"window {stats['busiest_second']}; {stats['requests']} requests until every replica "
        f"was ready (the simulator counts each when it reached the host)"
    )
    print(
        f"cluster: {series} device series + {others} others = {series + others} series per "
        f"scrape interval for Prometheus ({series / devices:.1f} per device), "
        f"{sum(p['bytes'] for p in pages) / 1e6:.1f} MB of plain pages; every device's data "
        f"after {slowest:.1f} s; replicas' RSS {sum(r.rss_at_ready for r in replicas):.0f} MB, "
        f"simulator's {sim_rss:.0f} MB (CPU {sim_cpu:.0f} s); {load_average()}"
    )
    return {
        "devices": devices,
        "all data s": slowest,
        "first data s": max(r.first or 0 for r in replicas),
        "series": series + others,
        "replica RSS MB": max(r.rss_at_ready for r in replicas),
        "replica CPU s": max(r.cpu_at_ready for r in replicas),
        "simulator RSS MB": sim_rss,
        "simulator CPU s": sim_cpu,
        "requests": stats["requests"],
    }


def restart_storm(
    replica: Replica, share: float, budget: float, sim: dict[str, Any], known: set[str],
    limit: float,
) -> dict[str, Any]:  # fmt: skip
    print(f"### restart storm: replica {replica.index} killed (SIGKILL) and started again")
    assert replica.proc is not None
    replica.proc.kill()
    replica.proc.wait()
    replica.start(sim["base_url"])
    replica.token = wait_for_token(sim, known, replica, limit=120)
    known.add(replica.token)
    watch([replica], limit)
    stats = sim_stats(sim)
    client = stats["clients"][replica.token]
    assert replica.ready is not None and replica.first is not None
    w = window_figures(client, client["first_arrival_seconds"], replica.sim_second + replica.ready)
    most = max(client["per_second"], default=0)
    cluster = max(stats["per_second"][int(replica.sim_second) :], default=0)
    print(
        f"restarted replica: {w['mean']:.1f} requests/s on average from its first call until "
        f"ready, most in one "
        f"whole second {most} (sliding window {client['busiest_second']}) against its share "
        f"{share:g} ({verdict(most <= share)}); first call with its token after "
        f"{client['first_arrival_seconds'] - replica.sim_second:.2f} s, first data after "
        f"{replica.first:.2f} s, every "
        f"device's data again after {replica.ready:.1f} s; the cluster meanwhile: most in one "
        f"whole second {cluster} against {budget:g} ({verdict(cluster <= budget)}); "
        f"{load_average()}"
    )
    return {"again s": replica.ready, "most": most}


def extrapolate(results: list[dict[str, Any]], target: int) -> None:
    a, b = results[-2], results[-1]
    print(
        f"### scaling law from {a['devices']} and {b['devices']} devices (a + b x devices), "
        f"extrapolated to {target} devices (NOT measured)"
    )
    for key in ("all data s", "series", "requests", "replica RSS MB", "replica CPU s",
                "simulator RSS MB", "simulator CPU s"):  # fmt: skip
        slope = (b[key] - a[key]) / (b["devices"] - a["devices"])
        base = a[key] - slope * a["devices"]
        print(
            f"{key:>17}: {a[key]:>10.1f} at {a['devices']}, {b[key]:>10.1f} at {b['devices']}; "
            f"{base:.1f} + {slope:.5f} x devices = {base + slope * target:.1f} at {target}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="*", help="sizes (default 120,000)")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--budget", type=float, default=None, help="organisation total (200/s)")
    parser.add_argument("--no-restart", action="store_true")
    parser.add_argument("--target", type=int, default=120_000, help="extrapolate to this size")
    parser.add_argument("--quick", action="store_true", help="4,000 devices, budget 100/s")
    args = parser.parse_args()
    sizes = args.devices or ([4000] if args.quick else [120_000])
    budget = args.budget or (100.0 if args.quick else 200.0)
    print(f"machine: {machine()}; {load_average()}")
    results = []
    for devices in sizes:
        # A bound for the watch: about 1.8 requests per device at the budget, four times over.
        limit = 300 + 4 * 1.8 * devices / budget
        results.append(run_size(devices, args.replicas, budget, not args.no_restart, limit))
    if len(results) >= 2:
        extrapolate(results, args.target)


if __name__ == "__main__":
    main()
