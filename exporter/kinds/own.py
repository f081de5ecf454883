"""The exporter's own families: API calls, tokens, polls, reloads, discovery, build."""

from __future__ import annotations

from exporter.kinds.family import Family, Source

API_REQUESTS = Family(
    "podero_api_requests_total",
    "HTTP exchanges with the Podero API by endpoint and status code "
    "(timeout and connection_error when no status arrived); retries count each try.",
    Source.SELF,
    type="counter",
    labels=("endpoint", "code"),
)
API_REQUEST_DURATION = Family(
    "podero_api_request_duration_seconds",
    "Duration of one HTTP exchange with the Podero API.",
    Source.SELF,
    type="histogram",
    labels=("endpoint",),
)
API_INVALID_RESPONSES = Family(
    "podero_api_invalid_responses_total",
    "Successful HTTP answers whose body was not usable (not JSON, wrong shape).",
    Source.SELF,
    type="counter",
    labels=("endpoint",),
)
TOKEN_REQUESTS = Family(
    "podero_oauth_token_requests_total",
    "Access token requests by result (success or failure).",
    Source.SELF,
    type="counter",
    labels=("result",),
)
TOKEN_EXPIRY = Family(
    "podero_oauth_token_expiry_timestamp_seconds",
    "When the current access token expires, Unix seconds (0 before the first token).",
    Source.SELF,
)
POLL_DURATION = Family(
    "podero_poll_duration_seconds",
    "Duration of one device poll, retries included.",
    Source.SELF,
    type="histogram",
)
POLLS = Family(
    "podero_polls_total",
    "Device polls by result (success or failure).",
    Source.SELF,
    type="counter",
    labels=("result",),
)
CONFIG_RELOAD_OK = Family(
    "podero_config_last_reload_successful",
    "Whether the last configuration (re)load succeeded.",
    Source.SELF,
)
CONFIG_RELOAD_TIME = Family(
    "podero_config_last_reload_success_timestamp_seconds",
    "When the configuration was last loaded successfully, Unix seconds.",
    Source.SELF,
)
DISCOVERY_DEVICES = Family(
    "podero_discovery_devices",
    "Devices known from discovery per organization and kind (after filters).",
    Source.SELF,
    labels=("org_id", "kind"),
)
DISCOVERY_SUCCESS = Family(
    "podero_discovery_last_success_timestamp_seconds",
    "When every list call of this organization last succeeded, Unix seconds.",
    Source.SELF,
    labels=("org_id",),
)
DISCOVERY_DURATION = Family(
    "podero_discovery_duration_seconds",
    "Duration of the last listing round of an organization (users and their homes).",
    Source.SELF,
)
BUILD_INFO = Family(
    "podero_exporter_build_info",
    "Always 1; the labels say which exporter build is running: version, the source "
    "revision it was built from, and the Python version.",
    Source.SELF,
    labels=("version", "revision", "python_version"),
)
TIMEZONE_OFFSET = Family(
    "podero_exporter_timezone_offset_seconds",
    "UTC offset of the config's timezone now, in seconds (it changes with daylight saving "
    "time): time() plus this is the local time that configured times of day are in.",
    Source.SELF,
)
RENDER_ERRORS = Family(
    "podero_render_errors_total",
    "Times a device was left out of a rendering (/metrics, the status page) because its "
    "data could not be rendered; the others are served as usual, and each device is "
    "logged once. Should stay 0.",
    Source.SELF,
    type="counter",
)
SELF_FAMILIES: tuple[Family, ...] = (
    API_REQUESTS,
    API_REQUEST_DURATION,
    API_INVALID_RESPONSES,
    TOKEN_REQUESTS,
    TOKEN_EXPIRY,
    POLL_DURATION,
    POLLS,
    CONFIG_RELOAD_OK,
    CONFIG_RELOAD_TIME,
    DISCOVERY_DEVICES,
    DISCOVERY_SUCCESS,
    DISCOVERY_DURATION,
    BUILD_INFO,
    TIMEZONE_OFFSET,
    RENDER_ERRORS,
)
