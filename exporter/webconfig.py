"""`--web.config.file`: TLS and basic auth for /metrics in the format of Prometheus'
exporter-toolkit, so operators can reuse the files they already have."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
from pathlib import Path
from typing import Any, Literal

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporter.config import ConfigError, format_validation_error

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# The response headers exporter-toolkit lets a web config set.
ALLOWED_HEADERS = frozenset(
    {
        "Strict-Transport-Security",
        "X-Content-Type-Options",
        "X-Frame-Options",
        "X-XSS-Protection",
        "Content-Security-Policy",
    }
)
ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSServerConfig(_Strict):
    """The `tls_server_config` block."""

    cert_file: str | None = None
    key_file: str | None = None
    cert: str | None = None
    key: str | None = None
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str | None = None
    client_allowed_sans: list[str] = []
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS13"
    # Accepted so that existing files load; Python's TLS stack chooses these itself.
    cipher_suites: list[str] = []
    curve_preferences: list[str] = []
    prefer_server_cipher_suites: bool = True

    @model_validator(mode="after")
    def _complete(self) -> TLSServerConfig:
        if (self.cert_file is None) == (self.cert is None):
            raise ValueError("set exactly one of cert_file or cert")
        if (self.key_file is None) == (self.key is None):
            raise ValueError("set exactly one of key_file or key")
        verifies = self.client_auth_type in (
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        )
        if verifies and not self.client_ca_file:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError("min_version is above max_version")
        return self


class HTTPServerConfig(_Strict):
    """The `http_server_config` block."""

    http2: bool = True  # HTTP/1.1 is served either way
    headers: dict[str, str] = {}

    @field_validator("headers")
    @classmethod
    def _allowed(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name not in ALLOWED_HEADERS:
                raise ValueError(
                    f"header {name!r} cannot be set (allowed: {', '.join(sorted(ALLOWED_HEADERS))})"
                )
        return headers


class WebConfig(_Strict):
    """The whole web config file."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(
                    f"the password of {user!r} is not a bcrypt hash "
                    "(make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')"
                )
        return users


def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate a web config file; ConfigError names the key and the reason."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read web config: {exc.strerror or exc}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: YAML syntax error") from None
    try:
        config = WebConfig.model_validate(raw or {})
        if config.tls_server_config is not None:
            ssl_context(config.tls_server_config)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    return config


def ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A server-side SSLContext for the `tls_server_config` block."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.min_version in ("TLS10", "TLS11"):
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    try:
        cert, key = _pem_path(tls.cert_file, tls.cert), _pem_path(tls.key_file, tls.key)
        context.load_cert_chain(cert, key)
        if tls.client_ca_file:
            context.load_verify_locations(tls.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls_server_config: cannot load certificates: {exc}") from None
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_OPTIONAL,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    return context


def _pem_path(path: str | None, inline: str | None) -> str:
    if path is not None:
        return path
    # Inline PEM: ssl wants a file, so keep it in one readable only by this process.
    import tempfile

    handle = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False)  # noqa: SIM115
    with handle:
        handle.write(inline or "")
    Path(handle.name).chmod(0o600)
    return handle.name


# Checked for unknown users so that they cost as much bcrypt time as known ones.
_DUMMY_HASH = bcrypt.hashpw(b"podero-exporter unknown user", bcrypt.gensalt(10))


class BasicAuth:
    """Checks `Authorization: Basic` headers against bcrypt hashes, caching successes."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._cache: set[bytes] = set()
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        """Whether the header carries a known user's right password."""
        if not self._users:
            return True
        user, password = _parse_basic(header)
        hashed = self._users.get(user, _DUMMY_HASH) if user is not None else _DUMMY_HASH
        key = hashlib.sha256(b"\0".join([(user or "").encode(), password, hashed])).digest()
        with self._lock:
            if key in self._cache:
                return True
        ok = bcrypt.checkpw(password, hashed) and user in self._users
        if ok:
            with self._lock:
                self._cache.add(key)
        return ok


def _parse_basic(header: str | None) -> tuple[str | None, bytes]:
    if not header or not header.lower().startswith("basic "):
        return None, b""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None, b""
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None, b""
    return user.decode("utf-8", "replace"), password


def describe(config: WebConfig) -> dict[str, Any]:
    """What the web config enables, for the startup log line (no secrets)."""
    return {
        "tls": config.tls_server_config is not None,
        "client_auth": config.tls_server_config.client_auth_type
        if config.tls_server_config
        else "NoClientCert",
        "basic_auth_users": len(config.basic_auth_users),
    }
