"""YAML that cannot hurt: the safe loader, with duplicate keys refused (YAML keeps the last
one silently) and aliases bounded (a billion laughs is a few hundred bytes of text that
everything after loading would walk as a tree of a billion nodes)."""

from __future__ import annotations

import pickle
from typing import Any

import yaml

# Nodes a document may expand to through aliases, per character of its text (plus a floor):
# a shared anchor is fine, a billion laughs is not.
ALIAS_EXPANSION_PER_CHAR = 10
ALIAS_EXPANSION_FLOOR = 10_000

# Documents of this many characters and more are rebuilt in fresh memory after loading
# (see `load_yaml`).
COMPACT_FROM_CHARS = 64 * 1024

# libyaml's loader where PyYAML has it: far faster, and far less garbage, for the config of
# a fleet with thousands of inverters. (Only parsing is in C; constructing the Python
# objects is PyYAML's Python code, which the loader below extends.)
_FastSafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RefusedYaml(yaml.YAMLError):
    """A well-formed YAML document the config refuses: `str()` says what and where."""


class BoundedLoader(_FastSafeLoader):  # type: ignore[misc]
    """The safe loader, refusing duplicate keys (YAML would keep the last one silently) and
    merges (`<<`) that grow a mapping beyond the document's size budget."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.budget = ALIAS_EXPANSION_FLOOR + ALIAS_EXPANSION_PER_CHAR * len(stream)
        self._checked: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Every mapping comes here before its merges are flattened into it (its own
        # construction, or a merge into another mapping): the moment to see its own keys.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            _refuse_duplicates(self, node)
        super().flatten_mapping(node)
        if len(node.value) > self.budget:
            raise RefusedYaml(
                f"line {node.start_mark.line + 1}: merges (<<) expand this mapping to "
                f"{len(node.value)} entries, more than a config of this size may hold"
            )


def _refuse_duplicates(loader: Any, node: yaml.MappingNode) -> None:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=False)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:
            continue  # an unhashable key: the constructor refuses it in its own words
        if first is not key_node:
            raise RefusedYaml(
                f"line {key_node.start_mark.line + 1}: duplicate key {str(key)[:80]!r} "
                f"(first at line {first.start_mark.line + 1})"
            )


def check_expansion(root: Any, budget: int) -> None:
    """Refuse a tree that aliases make larger than `budget` nodes, or recursive: everything
    after loading (${VAR} expansion, validation) walks it as if it were a tree. Counts each
    shared node once per use without walking it again."""
    sizes: dict[int, int] = {}  # of the nodes finished
    started: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node
        if finished:
            size = 1 + len(node) + sum(sizes.get(id(child), 0) for child in children)
            if size > budget:
                raise RefusedYaml(f"aliases expand the config beyond {budget} nodes")
            sizes[id(node)] = size
            continue
        if id(node) in sizes:
            continue
        if id(node) in started:  # started, not finished: on the path to itself
            raise RefusedYaml("an alias refers to a node that contains it (a recursive config)")
        started.add(id(node))
        stack.append((node, True))
        stack.extend(
            (child, False)
            for child in children
            if isinstance(child, dict | list) and id(child) not in sizes
        )


def load_yaml(text: str) -> Any:
    """The document in `text`; raises yaml.YAMLError (syntax, duplicate keys, aliases), or
    RecursionError for a document nested about a thousand levels deep."""
    loader = BoundedLoader(text)
    try:
        document = loader.get_single_data()
    finally:
        loader.dispose()
    if "*" in text and isinstance(document, dict | list):  # no alias, no sharing
        check_expansion(document, loader.budget)
    if len(text) < COMPACT_FROM_CHARS:
        return document
    # Rebuilt in fresh memory once the loader's garbage is gone. The loader's strings are
    # the ones its parser made, each beside that parser's nodes and marks (about 3 KB per
    # inverter entry); once those are freed, the few strings kept pin the allocator's arenas,
    # and a config of 10,000 inverters would leave some 30 MB resident for the process'
    # lifetime. Serialized into one buffer and rebuilt after the original (and the loader)
    # are dropped, the document fills fresh arenas densely (tests/test_safeyaml.py measures
    # it). Only the bytes made two lines below are unpickled: nothing from outside.
    buffer = pickle.dumps(document, protocol=pickle.HIGHEST_PROTOCOL)
    del document, loader
    return pickle.loads(buffer)
