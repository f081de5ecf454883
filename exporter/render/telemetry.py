"""The exporter's own health metrics: API calls, tokens, polls, config reloads, build.

Kept in a registry of their own (no global state), fed through the observer interfaces
that the API client and the poller call.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from exporter import __version__
from exporter.kinds import own as m
from exporter.kinds.table import Family

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POLL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Telemetry:
    """Counters, gauges and histograms about the exporter itself (names from the table)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        self.api_requests = Counter(*_named(m.API_REQUESTS), registry=r)
        self.api_duration = Histogram(
            *_named(m.API_REQUEST_DURATION), buckets=LATENCY_BUCKETS, registry=r
        )
        self.invalid_responses = Counter(*_named(m.API_INVALID_RESPONSES), registry=r)
        self.token_requests = Counter(*_named(m.TOKEN_REQUESTS), registry=r)
        for result in ("success", "failure"):
            self.token_requests.labels(result)
        self.token_expiry = Gauge(*_named(m.TOKEN_EXPIRY), registry=r)
        self.poll_duration = Histogram(*_named(m.POLL_DURATION), buckets=POLL_BUCKETS, registry=r)
        self.polls = Counter(*_named(m.POLLS), registry=r)
        for result in ("success", "failure"):
            self.polls.labels(result)
        self.reload_ok = Gauge(*_named(m.CONFIG_RELOAD_OK), registry=r)
        self.reload_time = Gauge(*_named(m.CONFIG_RELOAD_TIME), registry=r)
        self.discovery_devices = Gauge(*_named(m.DISCOVERY_DEVICES), registry=r)
        self.discovery_success = Gauge(*_named(m.DISCOVERY_SUCCESS), registry=r)
        self.discovery_duration = Gauge(*_named(m.DISCOVERY_DURATION), registry=r)
        self.timezone_offset = Gauge(*_named(m.TIMEZONE_OFFSET), registry=r)
        build = Gauge(*_named(m.BUILD_INFO), registry=r)
        build.labels(__version__, build_revision(), platform.python_version()).set(1)

    def follow_timezone(self, zone: str, now: Callable[[], float]) -> None:
        """Serve the UTC offset of `zone` at each scrape (daylight saving time included)."""
        tz = zoneinfo.ZoneInfo(zone)

        def offset() -> float:
            delta = datetime.fromtimestamp(now(), tz).utcoffset()
            return 0.0 if delta is None else delta.total_seconds()

        self.timezone_offset.set_function(offset)

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        self.api_requests.labels(endpoint, code).inc()
        self.api_duration.labels(endpoint).observe(seconds)

    def invalid_response(self, endpoint: str) -> None:
        self.invalid_responses.labels(endpoint).inc()

    def token_result(self, ok: bool, expires_at: float | None) -> None:
        self.token_requests.labels("success" if ok else "failure").inc()
        if expires_at is not None:
            self.token_expiry.set(expires_at)

    def poll_done(self, seconds: float, ok: bool) -> None:
        self.poll_duration.observe(seconds)
        self.polls.labels("success" if ok else "failure").inc()

    def discovery_org_done(
        self, org_id: str, devices: dict[str, int], ok: bool, seconds: float
    ) -> None:
        for kind, count in devices.items():
            self.discovery_devices.labels(org_id, kind).set(count)
        if ok:
            self.discovery_success.labels(org_id).set(time.time())
        self.discovery_duration.set(seconds)

    def config_loaded(self, ok: bool, now: float) -> None:
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(now)


def _named(family: Family) -> tuple[str, str, tuple[str, ...]]:
    """prometheus_client's (name, documentation, labelnames) for a table row."""
    return family.name, family.help, family.labels


REVISION_ENV = "PODERO_EXPORTER_REVISION"


def build_revision() -> str:
    """The source revision of this build: $PODERO_EXPORTER_REVISION (set by the Dockerfile),
    else the commit pip recorded for an install from git, else the commit of the checkout the
    package runs from, else "unknown"."""
    if os.environ.get(REVISION_ENV):
        return os.environ[REVISION_ENV][:64]
    try:
        direct = metadata.distribution("podero-exporter").read_text("direct_url.json")
        commit = json.loads(direct or "{}").get("vcs_info", {}).get("commit_id")
        if isinstance(commit, str) and commit:
            return commit[:64]
    except (metadata.PackageNotFoundError, ValueError, AttributeError):
        pass
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip()
    return commit[:64] if result.returncode == 0 and commit else "unknown"
