"""Routes a client can choose: the telemetry path, gzip, status requests refused when
every status slot is taken, and the home view's user_id."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry

from exporter.render.exposition import MetricsPage
from exporter.render.status import Busy
from exporter.serve.web import WebApp, accepts_gzip, start_web
from tests.conftest import NOON, run_cli
from tests.fakes import FakeClock
from tests.test_exposition import random_store
from tests.test_status import HOME, home_view

BODY = [b"# HELP podero_up x\n# TYPE podero_up gauge\n", b"podero_up 1\n"]


class BusyStatus:
    """A status view whose every slot is taken."""

    def html(self, params: dict[str, str]) -> bytes:
        raise Busy()

    def json(self, params: dict[str, str]) -> bytes:
        raise Busy()


@pytest.fixture
def site() -> Iterator[str]:
    app = WebApp(
        metrics=lambda: BODY,
        ready=lambda: True,
        reload=lambda: None,
        status=BusyStatus(),  # type: ignore[arg-type]
        metrics_gzip=lambda: [gzip.compress(chunk) for chunk in BODY],
        metrics_path="/prom/metrics",
    )
    server = start_web("127.0.0.1:0", app)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_on_the_telemetry_path_only(site: str) -> None:
    assert requests.get(f"{site}/prom/metrics", timeout=5).text == b"".join(BODY).decode()
    assert requests.get(f"{site}/metrics", timeout=5).status_code == 404


def test_gzip_when_asked_and_plain_otherwise(site: str) -> None:
    zipped = requests.get(
        f"{site}/prom/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True
    )
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    raw = zipped.raw.read()
    assert gzip.decompress(raw) == b"".join(BODY)  # concatenated members: one stream
    plain = requests.get(
        f"{site}/prom/metrics", headers={"Accept-Encoding": "identity"}, timeout=5, stream=True
    )
    assert "Content-Encoding" not in plain.headers
    assert plain.raw.read() == b"".join(BODY)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("GZIP", True),
        ("*", True),
        ("identity", False),
        ("", False),
        ("gzip;q=abc", False),
        ("x," * 10_000 + "gzip", False),  # only the first 32 codings are read
    ],
)
def test_accept_encoding(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_status_requests_beyond_the_bound_get_503_and_scrapes_go_on(site: str) -> None:
    for path in ("/", "/api/v1/inverters"):
        answer = requests.get(site + path, timeout=5)
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert requests.get(f"{site}/prom/metrics", timeout=5).ok


@pytest.mark.parametrize(
    "path", ["metrics", "/", "/-/ready", "/api/v1/devices", "/a b", "/" + "x" * 300]
)
def test_a_bad_telemetry_path_is_refused(tmp_path: Path, path: str) -> None:
    result = run_cli("--demo", "--web.telemetry-path", path, "--config.check")
    assert result.returncode == 2
    assert "--web.telemetry-path" in result.stderr


def test_a_python_client_reads_the_whole_gzip_page() -> None:
    """requests (urllib3, reading in pieces) used to stop after the first of several gzip
    members: the page is one member however it was put together."""

    page = MetricsPage(
        random_store(600, seed=8), FakeClock(NOON), lambda: 3600.0, CollectorRegistry()
    )
    page.update()
    body = b"".join(page.gzip_chunks())
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    plain = stream.decompress(body)
    assert stream.eof and stream.unused_data == b""  # one member, nothing after it
    assert plain == b"".join(page.chunks())
    app = WebApp(page.chunks, lambda: True, lambda: None, metrics_gzip=page.gzip_chunks)
    server = start_web("127.0.0.1:0", app)
    try:
        answer = requests.get(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.headers["Content-Encoding"] == "gzip"
    assert answer.content == plain and len(plain) > 200_000


def test_the_home_view_over_http_and_a_bad_user_id_is_a_400_that_does_not_echo() -> None:
    view, _ = home_view(FakeClock(NOON))
    server = start_web("127.0.0.1:0", WebApp(lambda: BODY, lambda: True, lambda: None, view))
    site = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = requests.get(site + "/", params={"user_id": HOME}, timeout=5)
        listed = requests.get(site + "/api/v1/devices", params={"user_id": HOME}, timeout=5)
        attack = "<script>alert(1)</script>"
        refused = [
            requests.get(site + path, params={"user_id": attack}, timeout=5)
            for path in ("/", "/api/v1/devices", "/api/v1/inverters")
        ]
    finally:
        server.shutdown()
        server.server_close()
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.text.count("<tr data-device-id=") == 4
    assert listed.json()["total"] == 4 and listed.json()["home"]["user_id"] == HOME
    for answer in refused:
        assert answer.status_code == 400
        assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert answer.text == (
            "Bad request: user_id is not a UUID "
            "(expected e.g. 6f1c0000-0000-4000-8000-000000000000).\n"
        )
