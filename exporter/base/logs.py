"""Log lines as Prometheus' own tools write them: logfmt (default) or JSON, one formatter each.

A message is a short constant sentence; identifiers and values travel as fields:
`log.warning("poll failed", extra=kv(inverter_id=i, name=n, reason=r))` (`kv` because a
LogRecord reserves some keys, `name` among them; plain `extra` keys are rendered too). Every
value is escaped, so a string from the API (control characters, ANSI escapes, lone
surrogates) cannot forge a line or a field.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came in through `extra`.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
LEVELS = ("debug", "info", "warn", "warning", "error")


def kv(**fields: Any) -> dict[str, dict[str, Any]]:
    """Log fields for `extra=`, any key allowed (`name` included)."""
    return {"kv": fields}


def record_fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """ts, level, logger, msg, then the record's extra fields, then an exception if any."""
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key == "kv" and isinstance(value, dict):
            fields.update((str(k), v) for k, v in value.items() if v is not None)
        elif key not in _RECORD_ATTRS and not key.startswith("_"):
            fields[key] = value
    if record.exc_info:
        fields["exc"] = formatter.formatException(record.exc_info)
    return fields


def logfmt_value(value: Any) -> str:
    """A logfmt value: bare when it can be, else quoted with every unprintable character escaped."""
    text = value if isinstance(value, str) else str(value)
    if text and text.isprintable() and not any(c in text for c in ' "=\\'):
        return text
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif c == " " or c.isprintable():
            out.append(c)
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=warning logger=exporter.poller msg="poll failed" inverter_id=...`."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={logfmt_value(v)}" for k, v in record_fields(record, self).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the same keys as logfmt; non-ASCII is escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(record, self), default=str)


def setup_logging(level: str, fmt: str) -> None:
    """Send every log record to stderr in the chosen format (`warn` means `warning`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("WARNING" if level == "warn" else level.upper())
    # urllib3 logs request lines at debug level; keep it quiet so nothing about requests leaks.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
