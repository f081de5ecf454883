"""Custom labels: the names a user may set, and the rules that give discovered devices theirs.

A rule matches a home's `user_id`, its `owner` (the user's external id, as discovery reads it)
or a `device_id`, and adds its labels to the info series (`podero_device_info`) of every
device it matches. Rules come from the config (`device_labels.rules`) and from a YAML file it
names (`device_labels.file`, read again at every reload), in that order; where two matching
rules set the same label, the later one wins, and a device's own `labels` in `inverters:` win
over every rule. Example:

    device_labels:
      rules:
        - match: {owner: cust-00017}
          labels: {region: north, installer: acme}
        - match: {device_id: 0d6f1c2e-...}
          labels: {contract: flex}
      file: /etc/podero-exporter/device-labels.yaml   # a list of rules of the same shape
"""

from __future__ import annotations

import re
import uuid

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from exporter.base.files import UnreadableFile, read_regular_file
from exporter.base.safeyaml import RefusedYaml, load_yaml
from exporter.config.errors import format_validation_error
from exporter.kinds import table

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# What a rule may match on: a home's user id, its owner (external id), a device's id.
MATCH_KEYS = ("user_id", "owner", "device_id")
# A file of rules for a fleet of 10,000 homes is a few MB.
MAX_LABELS_FILE_BYTES = 32 * 1024 * 1024

Labels = tuple[tuple[str, str], ...]


def is_label_name(name: str) -> bool:
    """A Prometheus label name a user may set (not one of the reserved `__` names)."""
    return bool(_LABEL_NAME.match(name)) and not name.startswith("__")


def check_custom_labels(labels: dict[str, str]) -> dict[str, str]:
    """`labels` if every name may be set by a user and none is the exporter's own (from the
    metrics table) or Prometheus' (job, instance); else ValueError naming the label."""
    reserved = table.reserved_labels()
    for key in labels:
        if not is_label_name(key):
            raise ValueError(f"{key!r} is not a valid Prometheus label name")
        if (series := reserved.get(key)) is not None:
            raise ValueError(
                f"{key!r} is set by the exporter on {series} and cannot be a custom label"
            )
    return labels


class LabelRule(BaseModel):
    """One rule: exactly one of user_id, owner or device_id to match, and the labels to add."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: dict[str, str]
    labels: dict[str, str] = Field(min_length=1)

    @field_validator("match")
    @classmethod
    def _one_key(cls, match: dict[str, str]) -> dict[str, str]:
        if len(match) != 1 or not set(match) <= set(MATCH_KEYS):
            raise ValueError(f"exactly one of {', '.join(MATCH_KEYS)}, got {sorted(match)}")
        ((key, value),) = match.items()
        if not value:
            raise ValueError(f"{key} must not be empty")
        if key != "owner":
            try:
                value = str(uuid.UUID(value))
            except ValueError:
                raise ValueError(f"{key} {value[:80]!r} is not a UUID") from None
        return {key: value}

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        return check_custom_labels(labels)

    @property
    def key(self) -> tuple[str, str]:
        """What it matches: (user_id | owner | device_id, value)."""
        ((key, value),) = self.match.items()
        return key, value


class DeviceLabels(BaseModel):
    """The rules for labels of devices by home, owner or id (`device_labels:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[LabelRule] = []
    file: str | None = Field(default=None, min_length=1)
    # Every rule, the file's after the config's, and the index of each by what it matches.
    _all: tuple[LabelRule, ...] = PrivateAttr(default=())
    _index: dict[tuple[str, str], list[int]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _read_file(self) -> DeviceLabels:
        rules = [*self.rules, *(read_rules_file(self.file) if self.file else ())]
        self._all = tuple(rules)
        for i, rule in enumerate(rules):
            self._index.setdefault(rule.key, []).append(i)
        return self

    def __len__(self) -> int:
        return len(self._all)

    def labels_for(self, user_id: str, owner: str | None, device_id: str) -> Labels:
        """The labels the rules give this device, sorted by name (later rules win)."""
        if not self._index:
            return ()
        keys = [("user_id", user_id), ("device_id", device_id)]
        if owner is not None:
            keys.append(("owner", owner))
        hits = sorted(i for key in keys for i in self._index.get(key, ()))
        merged: dict[str, str] = {}
        for i in hits:
            merged.update(self._all[i].labels)
        return tuple(sorted(merged.items()))


_RULES = TypeAdapter(list[LabelRule])


def read_rules_file(path: str) -> list[LabelRule]:
    """The rules in a YAML file (a list of `{match, labels}`); ValueError naming the file and
    what is wrong with it."""
    try:
        text = read_regular_file(path, MAX_LABELS_FILE_BYTES).decode("utf-8")
        raw = load_yaml(text)
    except UnreadableFile as exc:
        raise ValueError(str(exc)) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path!r} is not UTF-8 text") from None
    except (RefusedYaml, yaml.YAMLError, RecursionError) as exc:
        raise ValueError(f"{path!r} is not valid YAML: {str(exc)[:200]}") from None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError(f"{path!r} must hold a list of rules ({{match: ..., labels: ...}})")
    try:
        return _RULES.validate_python(raw)
    except ValidationError as exc:
        problems = format_validation_error(exc).replace("\n", "; ")
        raise ValueError(f"{path!r}: {problems}") from None
