"""Pydantic's validation errors as the config's messages: one line per error, `key.path:
reason` (`inverters[2].inverter_id: 'abc' is not a UUID`), used for the exporter's config and
for --web.config.file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError


def join(path: str, key: Any) -> str:
    """`path.key`, or `key` at the top."""
    return f"{path}.{key}" if path else str(key)


def _loc_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part in ("literal", "str", "int", "float"):
            continue
        else:
            path = join(path, part)
    return path or "<root>"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _describe(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown key"
    if kind in ("missing", "missing_argument"):
        return "required key is missing"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        return f"{error['input']!r} is not one of {ctx.get('expected')}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {
            "greater_than": ("gt", "greater than"),
            "greater_than_equal": ("ge", "at least"),
            "less_than": ("lt", "less than"),
            "less_than_equal": ("le", "at most"),
        }[kind]
        return f"must be {bound[1]} {_number(ctx.get(bound[0]))}, got {error['input']!r}"
    if kind in ("too_short", "string_too_short") and isinstance(error.get("input"), list):
        return "must not be empty"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{error['msg'].lower()}, got {type(error['input']).__name__}"
    return str(error["msg"])


# A config of 10,000 inverters with one mistake repeated would otherwise print 30,000 lines.
MAX_ERROR_LINES = 50


def format_validation_error(exc: ValidationError) -> str:
    """One line per pydantic error: `key.path: reason`; the first MAX_ERROR_LINES of them
    and how many more there are."""
    lines = []
    errors = exc.errors(include_url=False)
    for error in errors[:MAX_ERROR_LINES]:
        message = _describe(error)
        path = _loc_path(tuple(error["loc"]))
        # Cross-field checks carry their own key path in the message.
        if re.match(r"^[\w\[\]\.]+: ", message):
            lines.append(message)
        else:
            lines.append(f"{path}: {message}")
    if len(errors) > MAX_ERROR_LINES:
        more = len(errors) - MAX_ERROR_LINES
        lines.append(f"... and {more} more error{'s' if more > 1 else ''} ({len(errors)} in all)")
    return "\n".join(lines)
