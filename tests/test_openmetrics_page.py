"""/metrics in OpenMetrics 1.0 for a scraper that asks for it: the reference parser reads the
demo page strictly, the samples are those of the classic page, counters' families are named
without `_total`, `# UNIT` where the name ends in a base unit, and the classic page carries no
`_created` gauges."""

from __future__ import annotations

import zlib

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_classic
from prometheus_client.samples import Sample

from exporter.kinds.table import by_name
from exporter.render.exposition import MetricsPage
from exporter.serve.web import WebApp, accepts_openmetrics, start_web
from exporter.state.readings import DataPoint
from tests.conftest import NOON
from tests.fakes import FakeClock
from tests.test_exposition import random_store
from tests.test_vocabulary import demo_exporter


def series(samples: list[Sample]) -> set[tuple[str, str]]:
    """Each sample's name and labels (what Prometheus stores a series under)."""
    return {(s.name, repr(sorted(s.labels.items()))) for s in samples}


def test_the_reference_parser_reads_the_demo_page_strictly(clock: FakeClock) -> None:
    exporter = demo_exporter(clock)
    try:
        text = b"".join(exporter.page.chunks(openmetrics=True)).decode()
        classic = b"".join(exporter.page.chunks()).decode()
    finally:
        exporter.stop()
    assert text.endswith("\n# EOF\n") and text.count("# EOF") == 1
    families = {f.name: f for f in parse_openmetrics(text)}
    solar = families["podero_inverter_solar_energy_joules"]
    assert solar.type == "counter" and solar.unit == "joules"
    assert {s.name for s in solar.samples} == {"podero_inverter_solar_energy_joules_total"}
    assert families["podero_inverter_solar_production_watts"].unit == "watts"
    assert families["podero_device_data_timestamp_seconds"].unit == "seconds"
    assert families["podero_inverter_battery_charge_ratio"].unit == "ratio"
    assert families["podero_inverter_price"].unit == ""
    assert families["podero_device_info"].type == "gauge"
    # prometheus_client's own counters and histograms say when they began; so does ours.
    polls = {s.name for s in families["podero_polls"].samples}
    assert polls == {"podero_polls_total", "podero_polls_created"}
    assert "podero_render_errors_created" in {
        s.name for s in families["podero_render_errors"].samples
    }
    assert families["podero_api_request_duration_seconds"].unit == "seconds"
    # The same series as the classic page, which has no `_created` gauges.
    om_samples = [s for f in families.values() for s in f.samples]
    classic_samples = [s for f in parse_classic(classic) for s in f.samples]
    assert not [s for s in classic_samples if s.name.endswith("_created")]
    without_created = [s for s in om_samples if not s.name.endswith("_created")]
    assert series(without_created) == series(classic_samples)
    assert len(without_created) > 300


def test_the_openmetrics_page_follows_changes_and_its_gzip_is_the_same_text() -> None:
    store = random_store(300, seed=3)
    page = MetricsPage(store, FakeClock(NOON), lambda: 3600.0, CollectorRegistry())
    page.update()
    before = b"".join(page.chunks(openmetrics=True))
    target = store.snapshot()[5].target
    store.record_success(
        target.device_id, DataPoint(NOON - 1, {"solar_production_w": 1234.5}), NOON, NOON + 60
    )
    page.update()
    after = b"".join(page.chunks(openmetrics=True))
    assert after != before
    assert f'device_id="{target.device_id}"'.encode() in after
    assert b"1234.5" in after
    list(parse_openmetrics(after.decode()))
    # The classic page holds the same samples under the classic headers.
    classic = b"".join(page.chunks()).decode()
    om = [s for f in parse_openmetrics(after.decode()) for s in f.samples]
    assert series([s for f in parse_classic(classic) for s in f.samples]) == series(
        [s for s in om if not s.name.endswith("_created")]
    )
    zipped = b"".join(page.gzip_chunks(openmetrics=True))
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert stream.decompress(zipped) == after and stream.eof
    assert b"".join(page.gzip_chunks()) != zipped  # the classic gzip is its own


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        ("application/openmetrics-text", True),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", True),
        (
            "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
            "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            True,
        ),
        ("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5", False),
        ("application/openmetrics-text;version=0.0.1", False),
        ("application/openmetrics-text;version=2.0.0", False),
        ("application/openmetrics-text;q=0", False),
        ("text/plain", False),
        ("*/*", False),
        ("", False),
        ("application/openmetrics-text;q=x", False),
    ],
)
def test_the_accept_header_decides_the_format(accept: str, wanted: bool) -> None:
    assert accepts_openmetrics(accept) is wanted


def test_a_scraper_asking_for_openmetrics_gets_it_and_others_the_classic_format() -> None:
    page = MetricsPage(
        random_store(20, seed=1), FakeClock(NOON), lambda: 3600.0, CollectorRegistry()
    )
    app = WebApp(
        page.chunks,
        lambda: True,
        lambda: None,
        metrics_gzip=page.gzip_chunks,
        openmetrics=lambda: page.chunks(openmetrics=True),
        openmetrics_gzip=lambda: page.gzip_chunks(openmetrics=True),
    )
    server = start_web("127.0.0.1:0", app)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        om = requests.get(url, headers={"Accept": "application/openmetrics-text"}, timeout=10)
        classic = requests.get(url, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert om.headers["Content-Type"] == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    assert om.headers["Content-Encoding"] == "gzip"
    assert om.headers["Vary"] == "Accept, Accept-Encoding"
    assert om.text.endswith("# EOF\n")
    counter = by_name("podero_render_errors_total")
    assert "# TYPE podero_render_errors counter\n" in om.text
    assert f"# TYPE {counter.name} counter\n" in classic.text
    assert classic.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# EOF" not in classic.text
