"""The one boundary for strings from outside (exporter/base/text.py): what `clean_text`
removes, replaces and cuts, and where its limits lie exactly."""

from __future__ import annotations

import pytest

from exporter.base.text import clean_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Fronius Symo GEN24", "Fronius Symo GEN24"),
        ("Wechselrichter Süd ☀", "Wechselrichter Süd ☀"),
        ("X\udc80Y", "X\ufffdY"),  # a lone surrogate (the JSON escape \udc80)
        ("\ud83d\ude00", "\ufffd\ufffd"),  # a pair json.loads would have joined: two halves
        ("a\x00b\x1b[31mc\x7f", "ab[31mc"),
        ("line\nbreak\r\ttab", "linebreaktab"),
        ("in\u202ereverse\u2066", "inreverse"),
        ("\u2028\u2029\ufeffx", "x"),
        ("\x85next line", "next line"),  # C1
        ("", ""),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
    clean_text(raw).encode("utf-8")


def test_clean_text_caps_the_length_cheaply() -> None:
    assert clean_text("x" * 201) == "x" * 199 + "…"
    assert clean_text("x" * 200) == "x" * 200
    assert clean_text("y" * 10_000_000, 50) == "y" * 49 + "…"
    assert clean_text("\x00" * 10_000 + "tail", 10) == "…"  # cut, not silently shortened
    assert clean_text("abc", 0) == ""
