"""The one boundary for strings from the API: every string the exporter got from outside
passes `clean_text` before it reaches a label, a page, a log line or JSON.

A string from `json.loads` can hold anything JSON escapes can spell: lone surrogates
(`"\\udc80"`, which cannot be encoded as UTF-8 and would fail the whole page that holds
it), control characters (newlines in a log line, NUL in a label), direction overrides that
make a page show something other than what it holds, and megabytes of text.
"""

from __future__ import annotations

import re

# Long enough for every name, model and error message the API documents; short enough that
# a hostile value costs nothing worth mentioning in a label, a log line or a table cell.
DEFAULT_LIMIT = 200
ELLIPSIS = "…"
_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional embeddings,
# overrides and isolates (text that renders in another order than it reads).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def clean_text(value: str, limit: int = DEFAULT_LIMIT) -> str:
    """`value` as valid Unicode text without control characters, at most `limit` characters
    (cut ones end in an ellipsis); lone surrogates become U+FFFD."""
    if value.isascii() and value.isprintable() and len(value) <= limit:
        return value  # nearly every string: nothing to do
    # Cut first (with room for the controls about to go), so that a megabyte costs no more
    # than a short string.
    window = 4 * limit + 16
    text = _INVISIBLE.sub("", _SURROGATE.sub("\ufffd", value[:window]))
    if len(text) > limit or len(value) > window:
        return text[: limit - 1] + ELLIPSIS if limit > 0 else ""
    return text
