"""The YAML config file: `${VAR}` expansion, secret files, validation, and error messages
that name the key and the reason (`inverters[2].inverter_id: 'abc' is not a UUID`)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from exporter.base.files import UnreadableFile, read_regular_file
from exporter.base.safeyaml import RefusedYaml, load_yaml
from exporter.config.errors import format_validation_error, join
from exporter.config.labels import DeviceLabels, check_custom_labels
from exporter.config.labels import is_label_name as is_label_name  # backfill's --label check
from exporter.config.metrics import MetricsConfig
from exporter.config.savings import SavingsConfig, UnitsConfig
from exporter.kinds import registry

# The API's aggregation buckets. Only 15MIN is accepted (`PollConfig._complete_buckets`): the
# others are listed so that the refusal can say why.
RESOLUTION_SECONDS = {
    "15MIN": 900,
    "1HOUR": 3600,
    "1DAY": 86400,
    "1WEEK": 7 * 86400,
    "1MONTH": 30 * 86400,
}
DEFAULT_TOKEN_PATHS = {
    "client_credentials": "/oauth2/token/",
    "password": "/api/partners/v2.0/auth/token",
}
# The kinds of device a home may have (the registry's); `inverters:` entries name theirs
# with `kind:`.
INVERTER = "inverter"
EV = "electric_vehicle"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A response body larger than this (decoded) is abandoned: a day of 15-minute points is a
# few kB, a listing of 10,000 homes a few MB.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# One API call, every retry and wait included, ends by then (a poll never takes longer).
DEFAULT_CALL_TIMEOUT_SECONDS = 60.0
# A secret file holds one secret: anything larger is the wrong file.
MAX_SECRET_FILE_BYTES = 64 * 1024
# A config file larger than this is the wrong file. Not 1 MiB: 10,000 devices listed by hand
# (one exporter carries them) are 1.7 MB of YAML; 4 MiB hold some 24,000, more than the
# default request budget carries.
MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024


class ConfigError(Exception):
    """A config that cannot be used; `str()` is one line per problem, each naming the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def read_secret_file(path: str) -> SecretStr:
    """The secret in a file: a regular file of at most MAX_SECRET_FILE_BYTES of UTF-8,
    without a byte order mark or surrounding whitespace (editors and `echo` add them; the API
    never wants them). Raises ValueError naming the file and what is wrong with it."""
    try:
        data = read_regular_file(path, MAX_SECRET_FILE_BYTES)
    except UnreadableFile as exc:
        raise ValueError(str(exc)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path!r} is not UTF-8 text") from None
    value = text.removeprefix("\ufeff").strip()
    if not value:
        raise ValueError(f"{path!r} is empty")
    return SecretStr(value)


class AuthConfig(_Strict):
    """Credentials for one of the two documented token flows."""

    grant_type: Literal["client_credentials", "password"] = "client_credentials"
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_file: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None

    @model_validator(mode="after")
    def _credentials_complete(self) -> AuthConfig:
        for value_key, file_key in (
            ("client_secret", "client_secret_file"),
            ("password", "password_file"),
        ):
            if getattr(self, value_key) is not None and getattr(self, file_key) is not None:
                raise ValueError(f"set either {value_key} or {file_key}, not both")
        if self.grant_type == "client_credentials":
            if not self.client_id:
                raise ValueError("client_id is required for grant_type client_credentials")
            if self.client_secret is None and self.client_secret_file is None:
                raise ValueError(
                    "client_secret or client_secret_file is required "
                    "for grant_type client_credentials"
                )
        else:
            if not self.username:
                raise ValueError("username is required for grant_type password")
            if self.password is None and self.password_file is None:
                raise ValueError("password or password_file is required for grant_type password")
        return self

    @property
    def secret_file_key(self) -> str:
        """The key naming the file of this grant's secret."""
        return "client_secret_file" if self.grant_type == "client_credentials" else "password_file"

    def secret(self) -> SecretStr:
        """The client secret (client credentials) or password (password grant), files read."""
        value = self.client_secret if self.grant_type == "client_credentials" else self.password
        if value is not None:
            return value
        path = getattr(self, self.secret_file_key)
        assert path is not None  # guaranteed by _credentials_complete
        return read_secret_file(path)


class RetryConfig(_Strict):
    """How often and how long one API call is retried."""

    attempts: int = Field(default=4, ge=1, le=10)
    max_wait_seconds: float = Field(default=30.0, gt=0, le=600)


class PoderoConfig(_Strict):
    """Where the API is and how to talk to it."""

    base_url: str = "https://app.podero.com"
    auth: AuthConfig
    # One HTTP exchange, from connecting to the last byte of the body.
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # One call (a poll's data request, a listing, a token), every retry and wait included.
    call_timeout_seconds: float = Field(default=DEFAULT_CALL_TIMEOUT_SECONDS, gt=0, le=3600)
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES, ge=64 * 1024, le=1024 * 1024 * 1024
    )
    max_concurrency: int = Field(default=8, ge=1, le=256)
    max_requests_per_second: float = Field(default=25.0, gt=0, le=10_000)
    retry: RetryConfig = RetryConfig()

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        match = re.match(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<host>[^/?#]+)", value)
        if not match:
            raise ValueError(f"{value!r} is not a URL (expected https://host)")
        if match["scheme"].lower() not in ("http", "https"):
            raise ValueError(f"scheme {match['scheme']!r} is not supported (use https or http)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _call_outlasts_one_exchange(self) -> PoderoConfig:
        if self.call_timeout_seconds < self.timeout_seconds:
            raise ValueError(
                f"podero.call_timeout_seconds: must be at least podero.timeout_seconds "
                f"({self.timeout_seconds:g}), got {self.call_timeout_seconds:g}"
            )
        return self

    @property
    def token_url(self) -> str:
        """The absolute token endpoint: configured (relative or absolute) or the grant default."""
        url = self.auth.token_url or DEFAULT_TOKEN_PATHS[self.auth.grant_type]
        if "://" in url:
            return url
        return self.base_url + "/" + url.lstrip("/")


class PollConfig(_Strict):
    """How often and how far back each inverter is asked for data."""

    interval_seconds: float = Field(default=60.0, ge=1, le=86400)
    lookback_seconds: float = Field(default=3600.0, gt=0, le=31 * 86400)
    resolution: Literal["15MIN", "1HOUR", "1DAY", "1WEEK", "1MONTH"] = "15MIN"
    max_data_age_seconds: float = Field(default=3600.0, gt=0, le=90 * 86400)
    # Skip polls until the inverter's next data point can exist (false: every interval).
    skip_until_due: bool = True

    @field_validator("resolution")
    @classmethod
    def _complete_buckets(cls, value: str) -> str:
        if value != "15MIN":
            raise ValueError(
                f"{value!r} is not supported, use '15MIN': a coarser bucket is still "
                "growing when polled, so its value would be exported frozen at its first "
                "reading, judged stale from its start, and the energy counters (which "
                "count each bucket once, complete) would miss most of it"
            )
        return value

    @property
    def resolution_seconds(self) -> int:
        return RESOLUTION_SECONDS[self.resolution]


# Per-inverter entries are pydantic dataclasses with slots rather than models: a fleet of
# 10,000 inverters costs a few MB instead of tens.
_ENTRY = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True, config=_ENTRY)
class Thresholds:
    """Alert limits published as metrics so that alert rules can compare against them; each
    applies to one kind of device (`THRESHOLD_KINDS`)."""

    battery_low_percent: float | None = Field(default=None, ge=0, le=100)
    grid_export_high_watts: float | None = Field(default=None, ge=0)
    hot_water_low_celsius: float | None = Field(default=None, ge=-50, le=150)
    vehicle_charged_percent: float | None = Field(default=None, gt=0, le=100)
    vehicle_charged_by: str | None = None  # "HH:MM" in the config's timezone

    @field_validator("vehicle_charged_by", mode="before")
    @classmethod
    def _time_of_day(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 7:30 as the sexagesimal number 450.
            raise ValueError(
                f"{value!r} is a number: write the time of day in quotes, like '07:30' "
                "(YAML reads an unquoted 7:30 as the number 450)"
            )
        if not isinstance(value, str) or not _TIME_OF_DAY.fullmatch(value):
            raise ValueError(f"{value!r} is not a time of day like '07:00' (00:00 to 23:59)")
        return value

    @property
    def vehicle_charged_by_seconds(self) -> int | None:
        """`vehicle_charged_by` as seconds after midnight."""
        if self.vehicle_charged_by is None:
            return None
        hours, minutes = self.vehicle_charged_by.split(":")
        return int(hours) * 3600 + int(minutes) * 60

    def value(self, key: str) -> float | None:
        """A threshold as its metric family publishes it (a time of day in seconds)."""
        if key == "vehicle_charged_by":
            return self.vehicle_charged_by_seconds
        value: float | None = getattr(self, key)
        return value

    def over(self, defaults: Thresholds, kind: str | None = None) -> Thresholds:
        """These thresholds, with unset keys taken from `defaults`; given a `kind`, only
        that kind's (the defaults name every kind's)."""
        return Thresholds(
            **{
                key: _first(getattr(self, key), getattr(defaults, key))
                for key, applies_to in threshold_kinds().items()
                if kind is None or applies_to == kind
            }
        )

    def set_keys(self) -> list[str]:
        """The keys given a value."""
        return [key for key in threshold_kinds() if getattr(self, key) is not None]


def threshold_kinds() -> dict[str, str]:
    """The kind of device each threshold applies to, as the kinds declare them."""
    return {f.field or "": k.name for k in registry.kinds() for f in k.thresholds}


_TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


@functools.cache
def _zone_names() -> frozenset[str]:
    # `localtime` is the host's own zone (a file, not a name of the database), `Factory` no
    # zone at all.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def _first(a: Any, b: Any) -> Any:
    return a if a is not None else b


def _uuid_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a UUID")
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a UUID") from None
    # The string given when it is already canonical: a discovered home's devices then share
    # one org and one user id string, not a copy each (about 0.25 KB a device).
    return value if canonical == value else canonical


UuidStr = Annotated[str, Field(min_length=1)]


@dataclass(frozen=True, slots=True, config=_ENTRY)
class DeviceConfig:
    """One device to poll (an inverter unless `kind` says otherwise; its id is still given
    as `inverter_id`), with its display name and extra labels."""

    org_id: UuidStr
    user_id: UuidStr
    inverter_id: UuidStr
    kind: str = "inverter"
    name: str | None = Field(default=None, min_length=1, max_length=200)
    labels: dict[str, str] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)

    @field_validator("org_id", "user_id", "inverter_id", mode="before")
    @classmethod
    def _uuid(cls, value: Any) -> str:
        return _uuid_str(value)

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        return check_custom_labels(labels)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if registry.find(kind) is None:
            shown = repr(kind[:40]) + ("…" if len(kind) > 40 else "")
            raise ValueError(
                f"{shown} is not a kind of device: one of {', '.join(registry.names())}"
            )
        return kind

    @model_validator(mode="after")
    def _thresholds_of_its_kind(self) -> DeviceConfig:
        for key in self.thresholds.set_keys():
            if threshold_kinds()[key] != self.kind:
                raise ValueError(
                    f"thresholds.{key} applies to kind {threshold_kinds()[key]}, "
                    f"this entry is kind {self.kind}"
                )
        return self

    @property
    def device_id(self) -> str:
        """The device's id, whatever its kind (the config key is `inverter_id`)."""
        return self.inverter_id

    @property
    def display_name(self) -> str:
        return self.name or self.inverter_id[:8]


class ShardConfig(_Strict):
    """This replica's share of the fleet: the homes (users) whose id hashes to `index` modulo
    `count`, with all their devices, so that one home's series come from one replica."""

    count: int = Field(default=1, ge=1, le=10_000)
    index: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _index_in_range(self) -> ShardConfig:
        if self.index >= self.count:
            raise ValueError(f"index {self.index} must be below count {self.count}")
        return self

    def owns(self, user_id: str) -> bool:
        """Whether this shard polls the home's devices; stable across restarts and replicas."""
        return shard_of(user_id, self.count) == self.index


def shard_of(user_id: str, count: int) -> int:
    """The shard a home belongs to (a hash of the user id, independent of the fleet size)."""
    digest = hashlib.sha256(user_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


class DiscoveryConfig(_Strict):
    """Find every inverter of these organizations through the API's list endpoints."""

    org_ids: list[UuidStr] = Field(min_length=1)
    refresh_interval_seconds: float = Field(default=3600.0, ge=60, le=7 * 86400)
    include_deleted: bool = False
    lifecycle_states: list[str] | None = None  # absent: every state
    exclude_inverter_ids: list[UuidStr] = []

    @field_validator("org_ids", "exclude_inverter_ids", mode="before")
    @classmethod
    def _uuids(cls, values: Any) -> Any:
        if not isinstance(values, list):
            return values
        return [_uuid_str(v) for v in values]

    @field_validator("org_ids")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("an org_id is listed twice")
        return values


class Config(_Strict):
    """The whole validated config file."""

    podero: PoderoConfig
    poll: PollConfig = PollConfig()
    thresholds: Thresholds = Thresholds()
    # The time zone of times of day in the config (thresholds.vehicle_charged_by).
    timezone: str = "UTC"
    shard: ShardConfig = ShardConfig()
    discovery: DiscoveryConfig | None = None
    inverters: list[DeviceConfig] = []
    # Labels for devices by home, owner or id (discovered ones above all); not under
    # `discovery:`, so that changing them re-labels devices without listing the fleet again.
    device_labels: DeviceLabels = DeviceLabels()
    metrics: MetricsConfig = MetricsConfig()
    savings: SavingsConfig = SavingsConfig()
    units: UnitsConfig = UnitsConfig()  # where the API's metadata names no currency or unit

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # A name from the database's list, never a path handed to the file system (a
        # directory, a name too long, `localtime` would each mean something else).
        if value not in _zone_names():
            raise ValueError(
                f"{value[:80]!r} is not a time zone name of the IANA database, like "
                "'Europe/Vienna' or 'UTC'"
            )
        return value

    @model_validator(mode="after")
    def _vehicle_thresholds_in_pairs(self) -> Config:
        # A level without a time (or a time without a level) can never fire the alert.
        entries = [("thresholds", self.thresholds)] + [
            (f"inverters[{i}]", entry.thresholds.over(self.thresholds))
            for i, entry in enumerate(self.inverters)
            if entry.kind == EV
        ]
        for where, thresholds in entries:
            if (thresholds.vehicle_charged_percent is None) != (
                thresholds.vehicle_charged_by is None
            ):
                raise ValueError(
                    f"{where}: thresholds.vehicle_charged_percent and "
                    "thresholds.vehicle_charged_by go together: set both or neither"
                )
        return self

    @model_validator(mode="after")
    def _something_to_poll(self) -> Config:
        if not self.inverters and self.discovery is None:
            raise ValueError("inverters: must not be empty (or configure discovery)")
        return self

    @model_validator(mode="after")
    def _unique_inverters(self) -> Config:
        seen: dict[str, int] = {}
        names: dict[str, int] = {}
        for i, inverter in enumerate(self.inverters):
            if inverter.inverter_id in seen:
                raise ValueError(
                    f"inverters[{i}].inverter_id: {inverter.inverter_id} "
                    f"duplicates inverters[{seen[inverter.inverter_id]}]"
                )
            seen[inverter.inverter_id] = i
            if inverter.name is not None:
                if inverter.name in names:
                    raise ValueError(
                        f"inverters[{i}].name: {inverter.name!r} "
                        f"duplicates inverters[{names[inverter.name]}]"
                    )
                names[inverter.name] = i
        return self

    def summary(self) -> str:
        """One line for `--config.check`: what would be polled, and how; no secrets."""
        shard = ""
        if self.shard.count > 1:
            owned = sum(1 for i in self.inverters if self.shard.owns(i.user_id))
            shard = f" ({owned} in shard {self.shard.index} of {self.shard.count})"
        if (orgs := len(self.discovery.org_ids) if self.discovery else 0) > 0:
            shard += f" and discovery of {orgs} organization{'s' if orgs > 1 else ''}"
        return (
            f"config ok: {len(self.inverters)} inverters{shard}, "
            f"base_url {self.podero.base_url}, grant {self.podero.auth.grant_type}, "
            f"interval {self.poll.interval_seconds:g}s, resolution {self.poll.resolution}"
        )

    def required_requests_per_second(self, inverters: int) -> float:
        """Steady-state API rate for this many inverters polled once per resolution bucket."""
        return inverters / self.poll.resolution_seconds


def expand_env(node: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace `${VAR}` in every string of a parsed YAML tree, in place; a missing variable
    is an error. (In place: a fleet's config is large, and a copy would only be garbage.)"""
    if isinstance(node, str):
        if "${" not in node:
            return node

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")
            value = env[name]
            if not value.isascii() and not is_unicode(value):
                raise ConfigError(
                    f"{path or '<root>'}: environment variable {name} is not valid UTF-8"
                )
            return value

        return _ENV_REF.sub(lookup, node)
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = expand_env(value, env, join(path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            node[i] = expand_env(value, env, f"{path}[{i}]")
    return node


def is_unicode(text: str) -> bool:
    """No lone surrogates (what os.environ makes of bytes that are not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_config(text: str, env: Mapping[str, str], source: str = "config") -> Config:
    """Validate config text; raises ConfigError naming each bad key."""
    try:
        raw = load_yaml(text)
    except RefusedYaml as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: the YAML is nested too deeply") from None
    except UnicodeError:
        raise ConfigError(f"{source}: the config is not valid Unicode text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}: YAML syntax error{where}: {problem}") from None
    if raw is None:
        raise ConfigError(f"{source}: the file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    expanded = expand_env(raw, env)
    try:
        config = Config.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    auth = config.podero.auth
    try:
        auth.secret()  # read secret files now, so a bad path fails the check
    except ValueError as exc:
        raise ConfigError(f"podero.auth.{auth.secret_file_key}: {exc}") from None
    return config


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at `path`."""
    try:
        text = read_regular_file(path, MAX_CONFIG_FILE_BYTES).decode("utf-8")
    except UnreadableFile as exc:
        raise ConfigError(f"config file: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file: {str(path)!r} is not UTF-8 text") from None
    return parse_config(text, os.environ if env is None else env, source=str(path))
