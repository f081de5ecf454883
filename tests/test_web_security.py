"""--web.config.file: strict parsing, basic auth with bcrypt, TLS with real clients."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import re
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter.config.model import ConfigError
from exporter.serve.server import ExporterHTTPServer
from exporter.serve.web import WebApp, start_web
from exporter.serve.webconfig import BasicAuth, ServerTLS, TLSServerConfig, load_web_config
from tests.conftest import require_tool
from tests.project import ROOT

LOCALHOST = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
ALICE_HASH = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$")


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    ca_name: x509.Name
    ca_key: ec.EllipticCurvePrivateKey

    def issue(self, directory: Path, name: str, sans: list[x509.GeneralName]) -> tuple[Path, Path]:
        """A certificate (and its key) for `name` with these SANs, signed by the test CA,
        written to `directory`/`name`.crt and .key."""
        key = _key()
        cert = _cert(name, key, self.ca_name, self.ca_key, names=sans)
        path = directory / f"{name}.crt"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path, _write_key(key, directory / f"{name}.key")


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    names: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = _cert("test CA", ca_key, ca_name, ca_key, ca=True)
    server_key, client_key = _key(), _key()
    server = _cert("127.0.0.1", server_key, ca_name, ca_key, names=[LOCALHOST])
    client = _cert("prometheus", client_key, ca_name, ca_key)
    pem = serialization.Encoding.PEM
    (d / "ca.crt").write_bytes(ca.public_bytes(pem))
    (d / "server.crt").write_bytes(server.public_bytes(pem))
    (d / "client.crt").write_bytes(client.public_bytes(pem))
    return Pki(
        d / "ca.crt",
        d / "server.crt",
        _write_key(server_key, d / "server.key"),
        d / "client.crt",
        _write_key(client_key, d / "client.key"),
        ca_name,
        ca_key,
    )


def serve(tmp_path: Path, config: dict[str, object]) -> Iterator[str]:
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(config))
    web_config = load_web_config(path)
    server: ExporterHTTPServer = start_web(
        "127.0.0.1:0", WebApp(lambda: [b"podero_up 1\n"], lambda: True, lambda: None), web_config
    )
    try:
        yield str(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def basic_server(tmp_path: Path) -> Iterator[str]:
    yield from serve(
        tmp_path,
        {
            "basic_auth_users": {"alice": ALICE_HASH},
            "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
        },
    )


def test_basic_auth_right_password(basic_server: str) -> None:
    r = requests.get(
        f"http://127.0.0.1:{basic_server}/metrics", auth=("alice", "wonderland"), timeout=10
    )
    assert r.status_code == 200 and r.text == "podero_up 1\n"
    assert r.headers["X-Frame-Options"] == "deny"


@pytest.mark.parametrize(
    "auth",
    [
        ("alice", "wrong"),
        ("mallory", "wonderland"),
        None,
        ("alice", "x" * 73),
        ("alice", "é" * 5000),
    ],
    ids=["wrong", "unknown", "none", "73-bytes", "10-kB"],
)
def test_basic_auth_refuses_with_401_and_challenge(
    basic_server: str, auth: tuple[str, str] | None
) -> None:
    for path in ("/metrics", "/", "/-/healthy"):
        r = requests.get(f"http://127.0.0.1:{basic_server}{path}", auth=auth, timeout=10)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="podero-exporter"'
        assert "podero_up" not in r.text
    # Whatever was tried, the right password still gets in.
    ok = requests.get(
        f"http://127.0.0.1:{basic_server}/metrics", auth=("alice", "wonderland"), timeout=10
    )
    assert ok.status_code == 200


def test_unknown_user_costs_a_bcrypt_check_too(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr("exporter.serve.webconfig.bcrypt.checkpw", counting)
    auth = BasicAuth({"alice": ALICE_HASH})
    assert not auth.allows("Basic " + base64.b64encode(b"mallory:x").decode())
    assert not auth.allows("Basic " + base64.b64encode(b"alice:x").decode())
    # Both went through one bcrypt check with the same cost factor.
    assert [h.split(b"$")[2] for h in checked] == [b"10", b"10"]


def test_successful_logins_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = BasicAuth({"alice": ALICE_HASH})
    header = "Basic " + base64.b64encode(b"alice:wonderland").decode()
    assert auth.allows(header)
    monkeypatch.setattr(
        "exporter.serve.webconfig.bcrypt.checkpw", lambda *_: pytest.fail("no cache")
    )
    assert auth.allows(header)


def tls_config(pki: Pki, **extra: object) -> dict[str, object]:
    return {
        "tls_server_config": {
            "cert_file": str(pki.server_cert),
            "key_file": str(pki.server_key),
            **extra,
        }
    }


def test_tls_serves_https(tmp_path: Path, pki: Pki) -> None:
    for port in serve(tmp_path, tls_config(pki)):
        r = requests.get(f"https://127.0.0.1:{port}/metrics", verify=str(pki.ca), timeout=10)
        assert r.status_code == 200
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)


def test_client_certificate_required(tmp_path: Path, pki: Pki) -> None:
    config = tls_config(
        pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.ca)
    )
    for port in serve(tmp_path, config):
        url = f"https://127.0.0.1:{port}/metrics"
        ok = requests.get(
            url, verify=str(pki.ca), cert=(str(pki.client_cert), str(pki.client_key)), timeout=10
        )
        assert ok.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, verify=str(pki.ca), timeout=10)


def test_tls_below_min_version_is_refused(tmp_path: Path, pki: Pki) -> None:
    for port in serve(tmp_path, tls_config(pki, min_version="TLS13")):
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with (
            socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw,
            pytest.raises(ssl.SSLError),
        ):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
        modern = ssl.create_default_context(cafile=str(pki.ca))
        with (
            socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw,
            modern.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() == "TLSv1.3"


def test_tls_and_basic_auth_together(tmp_path: Path, pki: Pki) -> None:
    for port in serve(tmp_path, {**tls_config(pki), "basic_auth_users": {"alice": ALICE_HASH}}):
        url = f"https://127.0.0.1:{port}/metrics"
        assert requests.get(url, verify=str(pki.ca), timeout=10).status_code == 401
        assert (
            requests.get(
                url, verify=str(pki.ca), auth=("alice", "wonderland"), timeout=10
            ).status_code
            == 200
        )


BROKEN_WEB_CONFIGS = [
    ({"tls_server_config": {"cert_file": "a"}, "extra": 1}, "extra: unknown key"),
    (
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "client_auth": "x"}},
        "tls_server_config.client_auth: unknown key",
    ),
    ({"tls_server_config": {"key_file": "b"}}, "set exactly one of cert_file or cert"),
    (
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "min_version": "SSL3"}},
        "tls_server_config.min_version: 'SSL3' is not one of",
    ),
    (
        {
            "tls_server_config": {
                "cert_file": "a",
                "key_file": "b",
                "client_auth_type": "RequireAndVerifyClientCert",
            }
        },
        "needs client_ca_file",
    ),
    ({"basic_auth_users": {"alice": "plaintext"}}, "is not a bcrypt hash"),
    ({"http_server_config": {"headers": {"Server": "x"}}}, "header 'Server' cannot be set"),
    (
        {
            "tls_server_config": {
                "cert_file": "a",
                "key_file": "b",
                "client_auth_type": "VerifyClientCertIfGiven",
                "client_ca_file": "c",
                "client_allowed_sans": ["prometheus.example"],
            }
        },
        "client_allowed_sans needs client_auth_type RequireAnyClientCert or",
    ),
    (
        {"tls_server_config": {"cert_file": "/nonexistent.crt", "key_file": "/nonexistent.key"}},
        "cannot load certificates",
    ),
    # exporter-toolkit keys this exporter cannot honour: refused with the reason, never ignored.
    (
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "curve_preferences": ["X25519"]}},
        "tls_server_config.curve_preferences: cannot be honoured: Python's ssl module cannot set",
    ),
    (
        {"http_server_config": {"http2": True}},
        "http_server_config.http2: cannot be honoured: this exporter serves HTTP/1.1 only",
    ),
    (
        {"rate_limit": {"interval": "1s", "burst": 5}},
        "rate_limit: cannot be honoured: this exporter has no request rate limiter",
    ),
    (
        {
            "tls_server_config": {
                "cert_file": "a",
                "key_file": "b",
                "cipher_suites": ["TLS_AES_128_GCM_SHA256"],
            }
        },
        "tls_server_config.cipher_suites: TLS_AES_128_GCM_SHA256 is a TLS 1.3 suite",
    ),
    (
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "cipher_suites": ["RC4-MD5"]}},
        "tls_server_config.cipher_suites: 'RC4-MD5' is not a cipher suite exporter-toolkit",
    ),
    (
        {
            "tls_server_config": {
                "cert_file": "a",
                "key_file": "b",
                "client_auth_type": "RequireAnyClientCert",
            }
        },
        "RequireAnyClientCert needs client_ca_file (or client_ca) (Python's TLS stack verifies",
    ),
    (
        {
            "tls_server_config": {
                "cert_file": "a",
                "key_file": "b",
                "client_ca_file": "c",
                "client_ca": "d",
            }
        },
        "set at most one of client_ca_file or client_ca",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BROKEN_WEB_CONFIGS)
def test_web_config_is_parsed_strictly(
    tmp_path: Path, raw: dict[str, object], message: str
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_web_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"basic_auth_users: {{alice: '{ALICE_HASH}'}}\nbasic_auth_users: {{}}\n",
            "line 2: duplicate key 'basic_auth_users' (first at line 1)",
        ),
        ("basic_auth_users: " + "[" * 5000 + "]" * 5000 + "\n", "web.yml: "),
        (b"basic_auth_users: {al\xffice: x}\n", "not UTF-8"),
        ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"a{n}: &a{n} [{', '.join([f'*a{n - 1}' if n > 1 else '*a'] * 9)}]\n"
            for n in range(1, 9)
        ), "aliases expand"),
    ],
    ids=["repeated-key", "deep", "not-utf8", "alias-bomb"],
)  # fmt: skip
def test_a_hostile_web_config_file_is_a_config_error(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    path = tmp_path / "web.yml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_web_config(path)


def readme_web_config() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("```yaml\n# web-config.yml")
    return text[start + len("```yaml\n") : text.index("```", start + 7)]


def test_readme_example_passes_promtool_check_web_config(tmp_path: Path, pki: Pki) -> None:
    promtool = require_tool("promtool")
    text = readme_web_config()
    (tmp_path / "server.crt").write_bytes(pki.server_cert.read_bytes())
    (tmp_path / "server.key").write_bytes(pki.server_key.read_bytes())
    (tmp_path / "ca.crt").write_bytes(pki.ca.read_bytes())
    # Its file names are relative: both read them beside the web config, wherever they run.
    assert "cert_file: server.crt" in text
    (tmp_path / "web-config.yml").write_text(text)
    result = subprocess.run(
        [promtool, "check", "web-config", str(tmp_path / "web-config.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    load_web_config(tmp_path / "web-config.yml")  # and the exporter accepts it too


def test_relative_paths_are_relative_to_the_web_config_file(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As exporter-toolkit: `server.crt` is the file beside the web config, not one in the
    directory the exporter was started from (a copy of the CA there would be taken)."""
    conf = tmp_path / "etc"
    conf.mkdir()
    for source, name in ((pki.server_cert, "server.crt"), (pki.server_key, "server.key")):
        (conf / name).write_bytes(source.read_bytes())
    (conf / "ca.crt").write_bytes(pki.ca.read_bytes())
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "ca.crt").write_text("not a certificate")
    monkeypatch.chdir(elsewhere)
    relative = {
        "cert_file": "server.crt",
        "key_file": "./server.key",
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": "ca.crt",
    }
    (conf / "web.yml").write_text(yaml.safe_dump({"tls_server_config": relative}))
    tls = load_web_config(Path("../etc/web.yml")).tls_server_config
    assert tls is not None
    assert (tls.cert_file, tls.key_file, tls.client_ca_file) == (
        "../etc/server.crt",
        "../etc/server.key",
        "../etc/ca.crt",
    )
    # An absolute path stays as it is; a missing relative file is named where it was looked for.
    absolute = {**relative, "client_ca_file": str(pki.ca), "cert_file": "missing.crt"}
    (conf / "web.yml").write_text(yaml.safe_dump({"tls_server_config": absolute}))
    with pytest.raises(
        ConfigError, match=re.escape("cannot load certificates from ../etc/missing.crt")
    ):
        load_web_config(Path("../etc/web.yml"))


# --- TLS: client SANs, key material, rotation ---------------------------------------------


def test_client_allowed_sans_refuses_certificates_not_listed(tmp_path: Path, pki: Pki) -> None:
    allowed = pki.issue(tmp_path, "prometheus", [x509.DNSName("prometheus.example")])
    intruder = pki.issue(tmp_path, "intruder", [x509.DNSName("intruder.example")])
    no_san = (pki.client_cert, pki.client_key)  # signed by the same CA, no SAN at all
    config = tls_config(
        pki,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=str(pki.ca),
        client_allowed_sans=["scraper.example", "prometheus.example"],
    )
    for port in serve(tmp_path, config):
        url = f"https://127.0.0.1:{port}/metrics"
        ok = requests.get(url, verify=str(pki.ca), cert=tuple(map(str, allowed)), timeout=10)
        assert ok.status_code == 200 and ok.text == "podero_up 1\n"
        for refused in (intruder, no_san):
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.get(url, verify=str(pki.ca), cert=tuple(map(str, refused)), timeout=10)


def test_client_allowed_sans_compare_ip_addresses_as_addresses(pki: Pki) -> None:
    tls = TLSServerConfig(
        cert_file=str(pki.server_cert),
        key_file=str(pki.server_key),
        client_auth_type="RequireAnyClientCert",
        client_ca_file=str(pki.ca),
        client_allowed_sans=["2001:db8::1", "spiffe://cluster/prometheus"],
    )
    server_tls = ServerTLS(tls)
    # How Python's ssl module reports SANs of a verified certificate.
    assert server_tls.allows_client({"subjectAltName": (("IP Address", "2001:DB8:0:0:0:0:0:1"),)})
    assert server_tls.allows_client({"subjectAltName": (("URI", "spiffe://cluster/prometheus"),)})
    assert not server_tls.allows_client(
        {"subjectAltName": (("IP Address", "2001:DB8:0:0:0:0:0:2"),)}
    )
    assert not server_tls.allows_client({"subject": ((("commonName", "2001:db8::1"),),)})
    assert not server_tls.allows_client(None)


def test_inline_key_material_leaves_nothing_on_disk(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    inline = {
        "tls_server_config": {
            "cert": pki.server_cert.read_text(),
            "key": pki.server_key.read_text(),
        }
    }
    for port in serve(tmp_path, inline):
        r = requests.get(f"https://127.0.0.1:{port}/metrics", verify=str(pki.ca), timeout=10)
        assert r.status_code == 200
    assert list(scratch.iterdir()) == []
    # Nor is an in-memory file of it left open.
    assert not [
        fd for fd in os.listdir("/proc/self/fd") if "podero" in _readlink(f"/proc/self/fd/{fd}")
    ]


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def peer_common_name(port: str, ca: Path) -> str:
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cert = tls.getpeercert()
    assert cert is not None
    return str(dict(field[0] for field in cert["subject"])["commonName"])


def test_rotated_certificates_are_served_without_a_restart(tmp_path: Path, pki: Pki) -> None:
    live, staging = tmp_path / "live", tmp_path / "staging"
    live.mkdir()
    staging.mkdir()

    def rotate_to(name: str, *, key: bool = True) -> None:
        cert, new_key = pki.issue(staging, name, [LOCALHOST])
        os.replace(cert, live / "server.crt")  # atomically, as cert-manager or certbot do
        if key:
            os.replace(new_key, live / "server.key")

    rotate_to("first")
    config = {
        "tls_server_config": {
            "cert_file": str(live / "server.crt"),
            "key_file": str(live / "server.key"),
        }
    }
    for port in serve(tmp_path, config):
        assert peer_common_name(port, pki.ca) == "first"
        rotate_to("second")
        assert peer_common_name(port, pki.ca) == "second"
        # Half a rotation (a new certificate, the old key): the last good pair goes on.
        rotate_to("third", key=False)
        assert peer_common_name(port, pki.ca) == "second"
        rotate_to("third")
        assert peer_common_name(port, pki.ca) == "third"


def test_tls_is_set_up_once_per_config(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[object] = []
    real = ssl.SSLContext.load_cert_chain

    def counting(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loaded.append(args)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", counting)
    for port in serve(tmp_path, tls_config(pki)):
        for _ in range(3):
            r = requests.get(f"https://127.0.0.1:{port}/metrics", verify=str(pki.ca), timeout=10)
            assert r.status_code == 200
    # Checking the files at startup and serving share one context; connections reuse it.
    assert len(loaded) == 1


# --- TLS: the cipher suite keys, honoured --------------------------------------------------


def negotiated_cipher(port: str, ca: Path, offer: str) -> str:
    """The TLS 1.2 cipher suite the server picks from a client offering `offer` (OpenSSL
    names, in the client's order of preference)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(offer)
    with (
        socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cipher = tls.cipher()
    assert cipher is not None
    return cipher[0]


def test_cipher_suites_limit_what_tls_1_2_clients_get(tmp_path: Path, pki: Pki) -> None:
    config = tls_config(pki, cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"])
    for port in serve(tmp_path, config):
        offer = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
        assert negotiated_cipher(port, pki.ca, offer) == "ECDHE-ECDSA-AES256-GCM-SHA384"
        with pytest.raises(ssl.SSLError):
            negotiated_cipher(port, pki.ca, "ECDHE-ECDSA-AES128-GCM-SHA256")
        # TLS 1.3 is left to its own suites, as in Go.
        r = requests.get(f"https://127.0.0.1:{port}/metrics", verify=str(pki.ca), timeout=10)
        assert r.status_code == 200


@pytest.mark.parametrize(("prefer_server", "expected"), [(True, "AES256"), (False, "AES128")])
def test_prefer_server_cipher_suites_picks_whose_order_wins(
    tmp_path: Path, pki: Pki, prefer_server: bool, expected: str
) -> None:
    config = tls_config(
        pki,
        cipher_suites=[
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ],
        prefer_server_cipher_suites=prefer_server,
    )
    for port in serve(tmp_path, config):
        client_order = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
        assert negotiated_cipher(port, pki.ca, client_order) == (
            f"ECDHE-ECDSA-{expected}-GCM-SHA{384 if expected == 'AES256' else 256}"
        )


def test_http2_false_is_what_is_served(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("http_server_config: {http2: false}\n")
    assert load_web_config(path).http_server_config.http2 is False


def test_inline_client_ca_verifies_client_certificates(tmp_path: Path, pki: Pki) -> None:
    config = tls_config(
        pki, client_auth_type="RequireAndVerifyClientCert", client_ca=pki.ca.read_text()
    )
    for port in serve(tmp_path, config):
        url = f"https://127.0.0.1:{port}/metrics"
        client = (str(pki.client_cert), str(pki.client_key))
        assert requests.get(url, verify=str(pki.ca), cert=client, timeout=10).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, verify=str(pki.ca), timeout=10)
