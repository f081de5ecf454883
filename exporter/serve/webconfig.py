"""`--web.config.file`: TLS and basic auth for /metrics in the format of Prometheus'
exporter-toolkit, so operators can reuse the files they already have."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporter.base.files import UnreadableFile, read_regular_file
from exporter.base.safeyaml import RefusedYaml, load_yaml
from exporter.config.errors import format_validation_error
from exporter.config.model import ConfigError

log = logging.getLogger(__name__)

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
# The cipher suites exporter-toolkit accepts (Go's tls.CipherSuites() for TLS 1.2 and below),
# by their OpenSSL names. Order is preference, as in Go.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
# In Go's list too, but neither Go nor OpenSSL lets a server choose among them.
TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
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
    """The `tls_server_config` block. Every key is honoured or refused at load with the reason;
    none is accepted and ignored."""

    cert_file: str | None = None
    key_file: str | None = None
    cert: str | None = None
    key: str | None = None
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str | None = None
    client_ca: str | None = None
    client_allowed_sans: list[str] = []
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS13"
    cipher_suites: list[str] = []  # TLS 1.2 and below, in order of preference
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] = []  # refused unless empty (see _no_curves)

    @field_validator("cipher_suites")
    @classmethod
    def _known_suites(cls, suites: list[str]) -> list[str]:
        for name in suites:
            if name in TLS13_SUITES:
                raise ValueError(
                    f"{name} is a TLS 1.3 suite, which a server cannot choose (exporter-toolkit "
                    "ignores it too); list only suites for TLS 1.2 and below"
                )
            if name not in CIPHER_SUITES:
                raise ValueError(
                    f"{name!r} is not a cipher suite exporter-toolkit accepts "
                    f"(one of: {', '.join(CIPHER_SUITES)})"
                )
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(CIPHER_SUITES[name])
            except ssl.SSLError:
                raise ValueError(f"{name} is not available in this Python's OpenSSL") from None
        return suites

    @field_validator("curve_preferences")
    @classmethod
    def _no_curves(cls, curves: list[str]) -> list[str]:
        if curves:
            raise ValueError(
                "cannot be honoured: Python's ssl module cannot set the key-exchange curves; "
                "remove the key to use OpenSSL's defaults (X25519, P-256, P-384, P-521, X448)"
            )
        return curves

    @model_validator(mode="after")
    def _complete(self) -> TLSServerConfig:
        if (self.cert_file is None) == (self.cert is None):
            raise ValueError("set exactly one of cert_file or cert")
        if (self.key_file is None) == (self.key is None):
            raise ValueError("set exactly one of key_file or key")
        if self.client_ca_file is not None and self.client_ca is not None:
            raise ValueError("set at most one of client_ca_file or client_ca")
        if self.client_auth_type != "NoClientCert" and not (self.client_ca_file or self.client_ca):
            reason = ""
            if self.client_auth_type in ("RequestClientCert", "RequireAnyClientCert"):
                # Go takes any certificate here; Python's ssl cannot ask for one unverified.
                reason = (
                    " (Python's TLS stack verifies every client certificate it asks for, "
                    "so it needs the CA that signed them)"
                )
            needs = "needs client_ca_file (or client_ca)"
            raise ValueError(f"client_auth_type {self.client_auth_type} {needs}{reason}")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError("min_version is above max_version")
        if self.client_allowed_sans and self.client_auth_type not in (
            "RequireAnyClientCert",
            "RequireAndVerifyClientCert",
        ):
            # As exporter-toolkit: with an optional certificate there may be no SAN to check.
            raise ValueError(
                "client_allowed_sans needs client_auth_type RequireAnyClientCert or "
                "RequireAndVerifyClientCert"
            )
        return self


class HTTPServerConfig(_Strict):
    """The `http_server_config` block."""

    http2: bool = False  # HTTP/1.1 only: false is honoured, true refused (see _no_http2)
    headers: dict[str, str] = {}

    @field_validator("http2")
    @classmethod
    def _no_http2(cls, http2: bool) -> bool:
        if http2:
            raise ValueError(
                "cannot be honoured: this exporter serves HTTP/1.1 only; "
                "remove the key or set it to false"
            )
        return http2

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

    @model_validator(mode="before")
    @classmethod
    def _no_rate_limit(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "rate_limit" in raw:
            raise ValueError(
                "rate_limit: cannot be honoured: this exporter has no request rate limiter "
                "(its limits are per connection: ServerLimits); remove the key, or rate-limit "
                "in a reverse proxy"
            )
        return raw

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

    @cached_property
    def server_tls(self) -> ServerTLS | None:
        """The TLS side of the server, built once per loaded config (None without TLS)."""
        if self.tls_server_config is None:
            return None
        return ServerTLS(self.tls_server_config)


# A web config is a few users and a TLS block: anything larger is the wrong file.
MAX_WEB_CONFIG_BYTES = 1024 * 1024


def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate a web config file; ConfigError names the key and the reason."""
    # The exporter config's loader: a repeated key (a second `basic_auth_users: {}`) or an
    # alias bomb is refused, not silently taken.
    try:
        raw = load_yaml(read_regular_file(path, MAX_WEB_CONFIG_BYTES).decode("utf-8"))
    except UnreadableFile as exc:
        raise ConfigError(f"web config file: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"web config file: {str(path)!r} is not UTF-8 text") from None
    except RefusedYaml as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: the YAML is nested too deeply") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: YAML syntax error") from None
    try:
        config = _beside(WebConfig.model_validate(raw or {}), Path(path).parent)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    _ = config.server_tls  # loads the certificates now, so a broken file fails at startup
    return config


def _beside(config: WebConfig, directory: Path) -> WebConfig:
    """`config` with relative certificate, key and CA paths taken relative to `directory`
    (the web config file's), as exporter-toolkit does, not to the working directory: a file
    naming `server.crt` means the one beside it, wherever the exporter is started."""
    tls = config.tls_server_config
    if tls is None:
        return config
    moved = {
        key: str(directory / value)
        for key in ("cert_file", "key_file", "client_ca_file")
        if (value := getattr(tls, key)) is not None and not Path(value).is_absolute()
    }
    if not moved:
        return config
    return config.model_copy(update={"tls_server_config": tls.model_copy(update=moved)})


def ssl_context(tls: TLSServerConfig, pem: TLSMaterial) -> ssl.SSLContext:
    """A server-side SSLContext for the `tls_server_config` block, with this key material."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    # OpenSSL's cipher list is TLS 1.2 and below only, as Go's cipher_suites; without them,
    # Python's defaults. TLS 1.0 and 1.1 need security level 0 for their SHA-1 signatures.
    old = tls.min_version in ("TLS10", "TLS11")
    if tls.cipher_suites or old:
        ciphers = ":".join(CIPHER_SUITES[name] for name in tls.cipher_suites) or "DEFAULT"
        context.set_ciphers(ciphers + (":@SECLEVEL=0" if old else ""))
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        with _memory_file(pem.cert) as cert, _memory_file(pem.key) as key:
            context.load_cert_chain(cert, key)
        if pem.client_ca is not None:
            with _memory_file(pem.client_ca) as client_ca:
                context.load_verify_locations(client_ca)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"tls_server_config: cannot load certificates: {exc}") from None
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_OPTIONAL,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    return context


@dataclass(frozen=True)
class TLSMaterial:
    """The PEM bytes a context is built from: certificate chain, key, client CAs."""

    cert: bytes
    key: bytes
    client_ca: bytes | None


def read_tls_material(tls: TLSServerConfig) -> TLSMaterial:
    """The current PEM bytes: read from the files, or the inline `cert`/`key`."""

    def read(path: str | None, inline: str | None, key: str) -> bytes:
        if path is None:
            return (inline or "").encode()
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"tls_server_config.{key}: cannot load certificates from {path}: "
                f"{exc.strerror or exc}"
            ) from None

    has_ca = tls.client_ca_file is not None or tls.client_ca is not None
    client_ca = read(tls.client_ca_file, tls.client_ca, "client_ca_file") if has_ca else None
    return TLSMaterial(
        read(tls.cert_file, tls.cert, "cert_file"),
        read(tls.key_file, tls.key, "key_file"),
        client_ca,
    )


@contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path to `data` for APIs that only take file names; the bytes never reach a disk."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd = memfd_create("podero-exporter-tls", getattr(os, "MFD_CLOEXEC", 0))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    # Without memfd (not Linux): a private file, removed as soon as OpenSSL has read it.
    with tempfile.TemporaryDirectory(prefix="podero-exporter-") as directory:
        path = Path(directory) / "material.pem"
        path.touch(0o600)
        path.write_bytes(data)
        yield str(path)


class ServerTLS:
    """The TLS side of the server: the SSLContext for each new connection (rebuilt when the
    certificate, key or CA files change, so rotation needs no restart) and the
    `client_allowed_sans` check."""

    def __init__(self, tls: TLSServerConfig) -> None:
        self.config = tls
        self._lock = threading.Lock()
        self._material = read_tls_material(tls)
        self._context = ssl_context(tls, self._material)
        self._refused: TLSMaterial | None = None  # material that failed to load
        self._complaint: str | None = None  # the last reason logged, so it is logged once
        self._allowed = _san_set(tls.client_allowed_sans)

    def context(self) -> ssl.SSLContext:
        """The context for a new connection, from the files as they are now; while they
        cannot be loaded (a rotation half done), the last good one."""
        with self._lock:
            try:
                material = read_tls_material(self.config)
                if material not in (self._material, self._refused):
                    self._refused = material
                    self._context = ssl_context(self.config, material)
                    self._material, self._refused = material, None
                    log.info("tls certificates reloaded")
                self._complaint = None
            except ConfigError as exc:
                if str(exc) != self._complaint:
                    self._complaint = str(exc)
                    log.warning("tls certificates not reloaded", extra={"reason": str(exc)})
            return self._context

    def allows_client(self, peer_cert: dict[str, Any] | None) -> bool:
        """Whether a connection with this (verified) client certificate may go on: always,
        unless `client_allowed_sans` is set; then one of the certificate's SANs must be listed."""
        if not self._allowed:
            return True
        names = (peer_cert or {}).get("subjectAltName", ())
        return any(_san_value(kind, value) in self._allowed for kind, value in names)


def _san_value(kind: str, value: str) -> str:
    """A SAN as exporter-toolkit compares it: the value, IP addresses in canonical form."""
    if kind == "IP Address":
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return value
    return value


def _san_set(sans: list[str]) -> frozenset[str]:
    # An entry that parses as an IP address is compared as one; anything else as it is.
    return frozenset(_san_value("IP Address", s) for s in sans)


BCRYPT_MAX_PASSWORD = 72
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
        # bcrypt reads 72 bytes of a password (bcrypt 5 raises beyond, 4 and htpasswd cut).
        ok = bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed) and user in self._users
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
