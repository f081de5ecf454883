"""Wallboxes: `/users/{user}/wallboxes`; the API has no data series for them, so they are
inventory only: info, authentication and open actions, never polled."""

from __future__ import annotations

from exporter.kinds.kind import Kind

WALLBOX = Kind(name="wallbox", path="wallboxes", listing="wallboxes")
