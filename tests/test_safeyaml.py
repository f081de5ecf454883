"""The YAML loader on its own: duplicate keys, merges and the bounds on aliases, at their
exact limits (the config tests see it only through whole configs)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from exporter.base.safeyaml import (
    ALIAS_EXPANSION_FLOOR,
    ALIAS_EXPANSION_PER_CHAR,
    COMPACT_FROM_CHARS,
    BoundedLoader,
    RefusedYaml,
    check_expansion,
    load_yaml,
)
from tests.project import ROOT

RECURSIVE = "an alias refers to a node that contains it (a recursive config)"


def load_within(text: str, budget: int) -> Any:
    """`text` loaded with a merge budget of `budget` entries instead of the text's own."""
    loader = BoundedLoader(text)
    loader.budget = budget
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def refusal(text: str) -> str:
    with pytest.raises(RefusedYaml) as info:
        load_yaml(text)
    return str(info.value)


# --- duplicate keys ------------------------------------------------------------------------------
def test_a_duplicate_after_a_merge_key_is_refused() -> None:
    text = "base: &base {b: 0}\nm:\n  <<: *base\n  a: 1\n  a: 2\n"
    assert refusal(text) == "line 5: duplicate key 'a' (first at line 4)"


def test_a_duplicate_after_an_unhashable_key_is_refused() -> None:
    text = "m:\n  ? [1]\n  : x\n  a: 1\n  a: 2\n"
    assert refusal(text) == "line 5: duplicate key 'a' (first at line 4)"


def test_a_long_duplicate_key_is_shown_cut_to_80_characters() -> None:
    key = "k" * 100
    assert refusal(f"{key}: 1\n{key}: 2\n") == (
        f"line 2: duplicate key '{'k' * 80}' (first at line 1)"
    )


# --- merges --------------------------------------------------------------------------------------
def test_a_chain_of_merges_with_an_override_is_fine() -> None:
    # b's own `alpha` overrides the one merged from x; merged into c, b is not checked again
    # (flattened, it holds both, the merged one first). Keys of one character would show a
    # PyYAML 6.0.4 quirk instead: its merge drops a key whose text is the same object
    # (CPython shares one-character strings), so c would get x's value.
    text = "x: &x {alpha: 1}\nb: &b {<<: *x, alpha: 2}\nc: {<<: *b}\n"
    assert load_yaml(text) == {"x": {"alpha": 1}, "b": {"alpha": 2}, "c": {"alpha": 2}}


def test_merges_may_fill_a_mapping_up_to_the_budget_not_beyond() -> None:
    text = "a: &a {k1: 1, k2: 2, k3: 3}\nb: &b {k4: 4, k5: 5}\nm: {<<: [*a, *b], k6: 6}\n"
    assert load_within(text, 6)["m"] == {"k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "k6": 6}
    with pytest.raises(RefusedYaml) as info:
        load_within(text, 5)
    assert str(info.value) == (
        "line 3: merges (<<) expand this mapping to 6 entries, "
        "more than a config of this size may hold"
    )


def test_the_budget_is_a_floor_plus_a_share_per_character() -> None:
    text = "a: 1\n"
    assert BoundedLoader(text).budget == ALIAS_EXPANSION_FLOOR + ALIAS_EXPANSION_PER_CHAR * 5


# --- aliases: the expansion budget and recursion -------------------------------------------------
def test_each_use_of_a_shared_node_counts_up_to_the_budget_not_beyond() -> None:
    shared = [1, 2, 3]  # 1 + 3
    root = {"a": shared, "b": shared}  # 1 + 2 + 4 + 4
    check_expansion(root, 11)
    with pytest.raises(RefusedYaml) as info:
        check_expansion(root, 10)
    assert str(info.value) == "aliases expand the config beyond 10 nodes"


def test_nested_mappings_count_their_values() -> None:
    root = {"x": {"y": {"z": [1, 2]}}}  # 3, 5, 7, 9
    check_expansion(root, 9)
    with pytest.raises(RefusedYaml, match="beyond 8 nodes"):
        check_expansion(root, 8)


def test_a_part_over_the_budget_is_found_after_others_are_done() -> None:
    # Children are walked last first: the small ones finish before the big one is looked at.
    big = list(range(30))
    small = [1]
    with pytest.raises(RefusedYaml, match="beyond 20 nodes"):
        check_expansion({"big": big, "small": small}, 20)
    with pytest.raises(RefusedYaml, match="beyond 20 nodes"):
        check_expansion([big, small, small], 20)


def test_a_node_used_twice_side_by_side_is_shared_not_recursive() -> None:
    shared = [[1], [2]]
    check_expansion([shared, shared, [shared]], 100)
    assert load_yaml("a: &a [x, [y]]\nb: [*a, *a]\nc: *a\n")["b"][1] == ["x", ["y"]]


def test_a_node_that_contains_itself_is_refused() -> None:
    loop: list[Any] = [1]
    loop.append([loop])
    with pytest.raises(RefusedYaml) as info:
        check_expansion(loop, 100)
    assert str(info.value) == RECURSIVE
    assert refusal("a: &a [1, *a]\n") == RECURSIVE


def test_a_document_with_aliases_is_held_to_the_budget() -> None:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n in range(1, 6):  # 9**5 = 59049 laughs from some 250 bytes
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]")
    text = "\n".join(lines) + "\n"
    budget = ALIAS_EXPANSION_FLOOR + ALIAS_EXPANSION_PER_CHAR * len(text)
    assert refusal(text) == f"aliases expand the config beyond {budget} nodes"


def test_a_scalar_document_with_a_star_in_its_text_is_that_scalar() -> None:
    assert load_yaml("5  # a star: *\n") == 5
    assert load_yaml("'a*b'\n") == "a*b"


# --- a large document is rebuilt in fresh memory -------------------------------------------


def fleet_yaml(entries: int) -> str:
    """A config-like document: one mapping of four UUID-sized strings per entry, with a
    shared anchor used by every entry."""
    head = "shared: &labels {region: north}\ninverters:\n"
    rows = (
        f"- {{org_id: '{i:036d}', user_id: u{i:035d}, inverter_id: i{i:035d}, "
        f"name: Home {i}, labels: *labels}}\n"
        for i in range(entries)
    )
    return head + "".join(rows)


def test_a_large_document_keeps_its_values_and_its_shared_nodes() -> None:
    text = fleet_yaml(600)
    assert len(text) >= COMPACT_FROM_CHARS  # rebuilt
    document = load_yaml(text)
    rows = document["inverters"]
    assert rows[599] == {
        "org_id": f"{599:036d}",
        "user_id": f"u{599:035d}",
        "inverter_id": f"i{599:035d}",
        "name": "Home 599",
        "labels": {"region": "north"},
    }
    # Aliases still name one object, as the loader made them (the expansion check needs it).
    assert rows[0]["labels"] is rows[599]["labels"] is document["shared"]


# Resident memory of a fresh interpreter that loads a 10,000-entry document, after the
# allocator got back what it can: about 36 MB without the rebuild, about 6 MB with it.
RSS_PROBE = """
import gc, sys
from exporter.base.memory import limit_malloc_arenas, release_free_memory
from exporter.base.safeyaml import load_yaml
from tests.test_safeyaml import fleet_yaml

def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

limit_malloc_arenas()
text = fleet_yaml(10_000)
gc.collect(); release_free_memory()
before = rss_kb()
document = load_yaml(text)
gc.collect(); release_free_memory()
print(rss_kb() - before, len(document["inverters"]))
"""


def test_a_large_document_leaves_no_more_resident_memory_than_it_needs() -> None:
    out = subprocess.run(
        [sys.executable, "-c", RSS_PROBE], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    grown_kb, rows = int(out[0]), int(out[1])
    assert rows == 10_000
    assert grown_kb < 15 * 1024, f"{grown_kb} KB resident after loading"
