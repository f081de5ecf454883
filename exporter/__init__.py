"""Prometheus exporter for the Podero Partner API."""

__version__ = "0.1.0"
