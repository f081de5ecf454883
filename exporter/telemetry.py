"""The exporter's own health metrics: API calls, tokens, polls, config reloads, build.

Kept in a registry of their own (no global state), fed through the observer interfaces
that the API client and the poller call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from exporter import __version__

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POLL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Telemetry:
    """Counters, gauges and histograms about the exporter itself."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        self.api_requests = Counter(
            "podero_api_requests_total",
            "HTTP exchanges with the Podero API by endpoint and status code "
            "(timeout and connection_error when no status arrived); retries count each try.",
            ["endpoint", "code"],
            registry=r,
        )
        self.api_duration = Histogram(
            "podero_api_request_duration_seconds",
            "Duration of one HTTP exchange with the Podero API.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.invalid_responses = Counter(
            "podero_api_invalid_responses_total",
            "Successful HTTP answers whose body was not usable (not JSON, wrong shape).",
            ["endpoint"],
            registry=r,
        )
        self.token_requests = Counter(
            "podero_oauth_token_requests_total",
            "Access token requests by result (success or failure).",
            ["result"],
            registry=r,
        )
        for result in ("success", "failure"):
            self.token_requests.labels(result)
        self.token_expiry = Gauge(
            "podero_oauth_token_expiry_timestamp_seconds",
            "When the current access token expires, Unix seconds (0 before the first token).",
            registry=r,
        )
        self.poll_duration = Histogram(
            "podero_poll_duration_seconds",
            "Duration of one inverter poll, retries included.",
            buckets=POLL_BUCKETS,
            registry=r,
        )
        self.polls = Counter(
            "podero_polls_total",
            "Inverter polls by result (success or failure).",
            ["result"],
            registry=r,
        )
        for result in ("success", "failure"):
            self.polls.labels(result)
        self.reload_ok = Gauge(
            "podero_config_last_reload_successful",
            "Whether the last configuration (re)load succeeded.",
            registry=r,
        )
        self.reload_time = Gauge(
            "podero_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, Unix seconds.",
            registry=r,
        )
        self.discovery_inverters = Gauge(
            "podero_discovery_inverters",
            "Inverters known from discovery per organization (after filters).",
            ["org_id"],
            registry=r,
        )
        self.discovery_success = Gauge(
            "podero_discovery_last_success_timestamp_seconds",
            "When every list call of this organization last succeeded, Unix seconds.",
            ["org_id"],
            registry=r,
        )
        self.discovery_duration = Gauge(
            "podero_discovery_duration_seconds",
            "Duration of the last discovery run (all organizations).",
            registry=r,
        )
        build = Gauge(
            "podero_exporter_build_info",
            "Always 1; the version label says which exporter build is running.",
            ["version"],
            registry=r,
        )
        build.labels(__version__).set(1)

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

    def discovery_done(
        self, org_counts: dict[str, int], succeeded: Iterable[str], seconds: float
    ) -> None:
        for org, count in org_counts.items():
            self.discovery_inverters.labels(org).set(count)
        for org in succeeded:
            self.discovery_success.labels(org).set(time.time())
        self.discovery_duration.set(seconds)

    def config_loaded(self, ok: bool, now: float) -> None:
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(now)
