"""The demo's page speaks one vocabulary (issue 19's acceptance): no series carries
inverter_id, every per-device series carries device_id and user_id, podero_device_up has a
series for every polled kind, no concept exists as both podero_inverter_X and podero_device_X,
and promtool accepts the page."""

from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.kinds import registry
from exporter.kinds.table import device_families
from tests.conftest import require_tool
from tests.fakes import FakeClock


def demo_exporter(clock: FakeClock) -> Exporter:
    """The demo's exporter (six homes), polled once; the caller stops it."""
    from exporter.cli import _demo_config

    config, _ = _demo_config(6, None)
    exporter = Exporter(config, clock)
    exporter.poll_once()
    return exporter


def demo_page(clock: FakeClock) -> str:
    exporter = demo_exporter(clock)
    text = exporter.page.render().decode()
    exporter.stop()
    return text


def test_the_demo_page_speaks_one_vocabulary(clock: FakeClock) -> None:
    text = demo_page(clock)
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert "inverter_id" not in text
    per_device = {f.name.removesuffix("_total") for f in device_families()}
    device_samples = [s for s in samples if s.name.removesuffix("_total") in per_device]
    assert len(device_samples) > 200
    assert all({"device_id", "user_id"} <= set(s.labels) for s in device_samples)
    up_kinds = {s.labels["kind"] for s in samples if s.name == "podero_device_up"}
    assert up_kinds == {k.name for k in registry.kinds() if k.polled}
    names = {s.name for s in samples}
    inverter = {
        n.removeprefix("podero_inverter_") for n in names if n.startswith("podero_inverter_")
    }
    device = {n.removeprefix("podero_device_") for n in names if n.startswith("podero_device_")}
    assert inverter & device == set() and "up" in device and "info" in device
    result = subprocess.run(
        [require_tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout == result.stderr == "", result.stdout
