"""config.example.yaml documents every key the config model accepts, each where it belongs
(set, or in a comment at its place), and loads with the model as it is shipped."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import pydantic
import yaml

from exporter.config.labels import MATCH_KEYS
from exporter.config.model import Config, parse_config
from exporter.kinds import registry
from tests.project import ROOT

EXAMPLE = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
SECRET_FILE = "/run/secrets/podero_client_secret"


def _fields(model: Any) -> dict[str, Any] | None:
    """A pydantic model's or pydantic dataclass's fields (name: annotation), else None."""
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        return {name: f.annotation for name, f in model.model_fields.items()}
    if dataclasses.is_dataclass(model) and hasattr(model, "__pydantic_fields__"):
        return {name: f.annotation for name, f in model.__pydantic_fields__.items()}
    return None


def _inner(annotation: Any) -> list[tuple[Any, bool]]:
    """The model types inside an annotation (through Optional, unions, Annotated and lists),
    each with whether it is reached through a list."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _inner(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _inner(arg)]
    if origin is list:
        return [(t, True) for t, _ in _inner(typing.get_args(annotation)[0])]
    return [(annotation, False)] if _fields(annotation) is not None else []


def model_keys(
    model: Any, prefix: str = "", seen: set[Any] | None = None, *, once: bool = True
) -> set[str]:
    """Every key path the model accepts: `podero.auth.client_id`, `inverters[].kind`, ...
    With `once`, a model met again (a device's `thresholds` are the top-level `thresholds`)
    is walked only at its first place in field order; elsewhere only its key is given."""
    seen = set() if seen is None else seen
    if once:
        seen.add(model)
    fields = _fields(model)
    assert fields is not None, model
    keys: set[str] = set()
    for name, annotation in fields.items():
        path = f"{prefix}{name}"
        keys.add(path)
        for inner, listed in _inner(annotation):
            if inner not in seen:
                keys |= model_keys(inner, path + ("[]." if listed else "."), seen, once=once)
    return keys


def _known_names() -> set[str]:
    return {path.rsplit(".", 1)[-1].removesuffix("[]") for path in model_keys(Config)}


def uncommented(text: str) -> str:
    """The example with its commented-out keys (`# token_url: ...` at the key's own
    indentation) turned back into YAML, so that they count where they stand."""
    names = _known_names()
    pattern = re.compile(r"^(\s*)# ((\w+):(?: .*)?)$")
    lines = []
    for line in text.splitlines():
        match = pattern.match(line)
        lines.append(match[1] + match[2] if match and match[3] in names else line)
    return "\n".join(lines) + "\n"


def document_keys(node: Any, prefix: str = "") -> set[str]:
    """The key paths of a parsed YAML document, in model_keys' notation. Mappings that are
    values (labels, match) are walked too: a path the model does not know is left over."""
    keys: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            keys.add(path)
            keys |= document_keys(value, path + ".")
    elif isinstance(node, list):
        for item in node:
            keys |= document_keys(item, prefix.removesuffix(".") + "[].")
    return keys


def test_the_walk_finds_nested_and_listed_keys() -> None:
    # The walk itself: a key of a list's items, a nested model's, a pydantic dataclass's.
    keys = model_keys(Config)
    for path in (
        "podero.auth.client_secret_file",
        "podero.retry.max_wait_seconds",
        "thresholds.vehicle_charged_by",
        "inverters[].kind",
        "device_labels.rules[].match",
        "discovery.exclude_inverter_ids",
    ):
        assert path in keys
    assert "inverters[].thresholds" in keys and "inverters.thresholds" not in keys
    # The same model twice is asked for once, where it comes first.
    assert "inverters[].thresholds.vehicle_charged_by" not in keys


def test_every_key_of_the_model_is_in_the_example_at_its_place() -> None:
    documented = document_keys(yaml.safe_load(uncommented(EXAMPLE)))
    missing = sorted(model_keys(Config) - documented)
    assert not missing, f"config.example.yaml does not show: {missing}"


def test_the_example_shows_every_kind_and_every_label_match() -> None:
    kinds = re.search(r"# (inverter \(the default\), .*)", EXAMPLE)
    assert kinds is not None
    for kind in registry.names():
        assert kind in kinds[1], kind
    matches = set(re.findall(r"match: \{(\w+):", EXAMPLE))
    assert matches == set(MATCH_KEYS)


def test_the_example_claims_no_key_the_model_refuses() -> None:
    # Commented keys are documentation too: a stale one (renamed, removed) would mislead.
    shown = document_keys(yaml.safe_load(uncommented(EXAMPLE)))
    model = model_keys(Config, once=False)
    free_form = (
        "inverters[].labels.",
        "device_labels.rules[].labels.",
        "device_labels.rules[].match.",
    )
    stale = sorted(k for k in shown - model if not k.startswith(free_form))
    assert not stale, f"config.example.yaml shows keys the config refuses: {stale}"


def test_the_example_loads_with_the_model(tmp_path: Path) -> None:
    variables = set(re.findall(r"\$\{(\w+)\}", EXAMPLE))
    assert "PODERO_CLIENT_ID" in variables
    secret = tmp_path / "podero_client_secret"
    secret.write_text("dummy-secret\n")
    assert EXAMPLE.count(SECRET_FILE) == 1
    config = parse_config(
        EXAMPLE.replace(SECRET_FILE, str(secret)), {name: "dummy" for name in variables}
    )
    assert config.podero.auth.client_id == "dummy"
    assert config.podero.auth.secret().get_secret_value() == "dummy-secret"
    assert config.discovery is not None and config.inverters
    assert {device.kind for device in config.inverters} == {"inverter", "heat_pump"}


def test_the_example_says_shards_hash_homes_and_inverters_are_optional() -> None:
    text = " ".join(EXAMPLE.split())
    assert "polls the homes (users) whose user id hashes" in text
    assert "only podero.auth and inverters are required" not in text
    # And the model agrees: discovery alone will do.
    alone = parse_config(
        "podero: {auth: {client_id: a, client_secret: b}}\n"
        "discovery: {org_ids: [0b1e6e1c-58a7-4a3e-9a52-2f5b0c1d4e01]}\n",
        {},
    )
    assert alone.inverters == [] and alone.discovery is not None
