"""The config's `metrics:` block: which per-device families are served beyond the defaults,
validated against the metrics table (`exporter.kinds.selection`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from exporter.kinds import selection


class MetricsConfig(BaseModel):
    """Which per-device families are served beyond the defaults: group or family names
    (`exporter.kinds.selection.GROUPS`); reloadable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enable: list[str] = []
    disable: list[str] = []

    @field_validator("enable")
    @classmethod
    def _known(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            selection.resolve(entry)
        return entries

    @field_validator("disable")
    @classmethod
    def _may_leave_out(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            selection.check_disable(entry)
        return entries

    @model_validator(mode="after")
    def _not_both(self) -> MetricsConfig:
        both = sorted(set(self.enable) & set(self.disable))
        if both:
            raise ValueError(f"{both[0]!r} is both enabled and disabled: choose one")
        return self

    @property
    def selection(self) -> selection.Selection:
        return selection.Selection(tuple(self.enable), tuple(self.disable))
