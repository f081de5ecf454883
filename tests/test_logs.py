"""Log lines: identifiers as fields, and no value from the API can break a line or a field."""

from __future__ import annotations

import json
import logging
import re

from hypothesis import given
from hypothesis import strategies as st

from exporter.base.logs import JsonFormatter, LogfmtFormatter, kv

HOSTILE = 'inv\r\nts=forged level=error msg=\x1b[31mred\x1b[0m \udc80 \u2028 "q" \\ end'


def record(**fields: object) -> logging.LogRecord:
    rec = logging.LogRecord(
        "exporter.poller", logging.WARNING, __file__, 1, "poll failed", (), None
    )
    rec.__dict__.update(kv(**fields))
    return rec


def parse_logfmt(line: str) -> dict[str, str]:
    """A strict reader of the logfmt this exporter writes."""
    fields: dict[str, str] = {}
    pos = 0
    pattern = re.compile(r'(\w+)=("((?:[^"\\]|\\.)*)"|[^ "]*)( |$)')
    while pos < len(line):
        match = pattern.match(line, pos)
        assert match, f"unparsable at {pos}: {line[pos:]!r}"
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(
                r"\\(u[0-9a-f]{4}|U[0-9a-f]{8}|.)",
                lambda m: (
                    chr(int(m.group(1)[1:], 16))
                    if len(m.group(1)) > 1
                    else {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1))
                ),
                match.group(3),
            )
        fields[match.group(1)] = value
        pos = match.end()
    return fields


def test_identifiers_are_fields_with_a_constant_message() -> None:
    line = LogfmtFormatter().format(record(device_id="abc", name="roof top", status=503))
    fields = parse_logfmt(line)
    assert fields["msg"] == "poll failed"
    assert fields["device_id"] == "abc" and fields["name"] == "roof top"
    assert fields["status"] == "503" and fields["logger"] == "exporter.poller"
    parsed = json.loads(JsonFormatter().format(record(device_id="abc", name="roof top")))
    assert parsed["msg"] == "poll failed" and parsed["name"] == "roof top"


def test_a_hostile_value_stays_inside_its_field() -> None:
    line = LogfmtFormatter().format(record(name=HOSTILE))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    line.encode("utf-8")  # no lone surrogate reaches the stream
    fields = parse_logfmt(line)
    assert fields["name"] == HOSTILE and fields["level"] == "warning"
    as_json = JsonFormatter().format(record(name=HOSTILE))
    assert as_json.isascii() and "\n" not in as_json
    assert json.loads(as_json)["name"] == HOSTILE


@given(st.text())
def test_any_value_round_trips_in_both_formats(value: str) -> None:
    line = LogfmtFormatter().format(record(name=value, reason=value))
    assert "\n" not in line
    line.encode("utf-8")
    fields = parse_logfmt(line)
    assert fields["name"] == value and fields["reason"] == value
    assert json.loads(JsonFormatter().format(record(name=value)))["name"] == value
