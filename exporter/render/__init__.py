"""Rendering the store for Prometheus and people: samples, /metrics, OpenMetrics, status page."""
