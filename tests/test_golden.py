"""The /metrics page of a fixed simulated fleet, byte for byte (see tests/golden.py)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from exporter.kinds import registry
from exporter.kinds.family import Source
from exporter.kinds.table import device_families
from tests.golden import GOLDEN, render_golden


def test_the_page_equals_the_golden_file() -> None:
    assert render_golden() == GOLDEN.read_text(), (
        "the exposition changed: if intended, run `.venv/bin/python -m tests.golden` "
        "and review the diff of tests/golden/metrics.txt"
    )


def test_the_golden_file_holds_every_family_of_the_table_for_every_inverter() -> None:
    families = {f.name: f for f in text_string_to_metric_families(GOLDEN.read_text())}
    inverter = registry.get("inverter").families
    # Inverters have no savings endpoint: every other shared family, and their own.
    served = [
        f
        for f in device_families()
        if (f.shared and f.source is not Source.SAVINGS) or f in inverter
    ]
    names = [f.name.removesuffix("_total") if f.type == "counter" else f.name for f in served]
    assert list(families) == names
    info = families["podero_device_info"].samples
    assert len(info) == 5 and all(s.labels.get("manufacturer") for s in info)
    for family, name in zip(served, names, strict=True):
        assert families[name].documentation == family.help
        assert families[name].type == family.type
