"""The one boundary for strings from outside (exporter/base/text.py): what `clean_text`
removes, replaces and cuts, and where its limits lie exactly."""

from __future__ import annotations

import uuid

import pytest

from exporter.base import text
from exporter.base.text import MAX_SHARED, clean_text, shared


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


def test_a_string_of_exactly_the_limit_is_whole_whatever_its_characters() -> None:
    assert clean_text("é" * 200) == "é" * 200  # not ASCII: the slow path, same rule
    assert clean_text("é" * 201) == "é" * 199 + "…"
    assert clean_text("ab", 1) == "…"
    assert clean_text("a", 1) == "a"


def test_controls_are_removed_within_a_window_of_four_limits_and_sixteen() -> None:
    # With limit 10 the window is 56 characters: a value of 56 is cleaned whole, so its 10
    # visible characters survive uncut; one character more and the value is cut (ellipsis).
    assert clean_text("\x00" * 46 + "abcdefghij", 10) == "abcdefghij"
    assert clean_text("\x00" * 47 + "abcdefghij", 10) == "abcdefghi…"


def test_shared_keeps_one_copy_of_a_repeated_string() -> None:
    first = f"Fronius {uuid.uuid4()}"  # new to the table, whichever tests ran before
    again = "".join([first[:4], first[4:]])
    assert first == again and first is not again
    assert shared(first) is first and shared(again) is first


def test_a_flood_of_distinct_strings_never_grows_the_shared_table_past_its_bound() -> None:
    """A hostile API sends a new manufacturer for every device of every round: the table
    stays bounded and starts over, and a common string is kept once again afterwards."""
    for i in range(3 * MAX_SHARED + 7):
        shared(f"hostile-{i}-" + "x" * 100)
        assert len(text._shared) <= MAX_SHARED
    common = shared("".join(["Hua", "wei"]))
    assert shared("".join(["Huaw", "ei"])) is common
