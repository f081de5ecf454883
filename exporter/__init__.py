"""Prometheus exporter for the Podero Partner API."""

from importlib import import_module

try:
    # Written by setuptools-scm from the git tag when the package is installed or built.
    __version__: str = import_module("exporter._version").version
except ModuleNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"
