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


# Enough for every manufacturer, model, zone, state and action code of a partner's fleet.
MAX_SHARED = 4096
_shared: dict[str, str] = {}


def shared(text: str) -> str:
    """One copy of a string thousands of devices repeat (a manufacturer, a model, a zone, a
    state): the first one seen, where each listing round decodes a copy per device. Not
    `sys.intern`: Python 3.12.0 to 3.12.5 keep interned strings for ever, and a hostile API
    can send endless distinct ones. This table holds at most MAX_SHARED strings and starts
    over when full (a race of two threads at worst leaves two copies of one string)."""
    found = _shared.get(text)
    if found is not None:
        return found
    if len(_shared) >= MAX_SHARED:
        _shared.clear()
    _shared[text] = text
    return text
