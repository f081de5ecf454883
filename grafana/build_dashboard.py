"""Builds the Grafana dashboards in grafana/dashboards/: `python grafana/build_dashboard.py`.

The dashboards are code (grafana/builder/, grafana-foundation-sdk's builders) so that every
panel is uniform (templated data source, description, unit), every metric name is one the
exporter's metrics table serves, and a test can check that the JSON in the repository is what
this produces. grafana-foundation-sdk is needed to build, not to run the exporter."""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root: grafana.builder, and exporter.kinds.table for the metric names.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grafana.builder import DASHBOARDS, render, write

__all__ = ["DASHBOARDS", "render", "write"]

if __name__ == "__main__":
    for path in write():
        print(f"wrote {path}")
