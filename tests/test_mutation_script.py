"""scripts/mutation.py's arithmetic (docs/testing.md): which mutmut result lands in which
column, what the kill rate counts, which exclusions count and which are stale. The mutmut
run itself is not run here (minutes per module): these tests feed it saved results."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.project import ROOT

MODULE = "exporter/state/example.py"
PREFIX = "exporter.state.example.x_f__mutmut_"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scripts_mutation", ROOT / "scripts/mutation.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def mutation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = script()
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(module, "EXCLUDED", tmp_path / "excluded.txt")
    (tmp_path / "results").mkdir()
    return module


def saved(mutation: ModuleType, exit_codes: dict[int, int | None], excluded: str) -> None:
    codes = {f"{PREFIX}{n}": code for n, code in exit_codes.items()}
    mutation.result_file(MODULE).write_text(
        json.dumps({"module": MODULE, "tests": [], "seconds": 90.0, "exit_codes": codes})
    )
    mutation.EXCLUDED.write_text(excluded)


def test_columns_and_kill_rate(mutation: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    # 1 and 3 killed, 36 timed out, 0 survived, 33 no test reaches it (a survivor), -11 other.
    codes = {1: 1, 2: 1, 3: 3, 4: 36, 5: 0, 6: 0, 7: 33, 8: -11, 9: 1, 10: 0}
    excluded = (
        "# a comment\n\n"
        f"{PREFIX}6 equivalent: the same by another route\n"
        f"{PREFIX}9 equivalent: but killed, so stale\n"
        f"{PREFIX}99 gone: no longer generated\n"
    )
    saved(mutation, codes, excluded)
    (row,) = mutation.table([MODULE])
    assert row.generated == 10
    assert row.killed == [f"{PREFIX}1", f"{PREFIX}2", f"{PREFIX}3", f"{PREFIX}9"]
    assert row.timed_out == [f"{PREFIX}4"]
    assert row.survived == [f"{PREFIX}5", f"{PREFIX}7", f"{PREFIX}10"]  # numeric order
    assert row.excluded == {f"{PREFIX}6": "equivalent: the same by another route"}
    assert row.other == {f"{PREFIX}8": -11}
    assert row.stale == [f"{PREFIX}9", f"{PREFIX}99"]
    assert row.kill_rate == 5 / 9  # (4 killed + 1 timed out) / (10 - 1 excluded)
    out = capsys.readouterr().out
    assert f"| {MODULE} | 10 | 4 | 3 | 1 | 1 | 55.6 % | 1.5 min |" in out
    assert f"  {PREFIX}6 equivalent: the same by another route" in out


def test_a_module_without_results_is_pending(
    mutation: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    mutation.EXCLUDED.write_text("")
    assert mutation.table([MODULE]) == []
    assert f"| {MODULE} | | | | | | pending | |" in capsys.readouterr().out


def test_an_exclusion_without_a_reason_is_refused(mutation: ModuleType) -> None:
    saved(mutation, {1: 0}, f"{PREFIX}1\n")
    with pytest.raises(SystemExit, match=r"excluded.txt:1: want 'MUTANT_NAME REASON'"):
        mutation.table([MODULE])


def test_every_default_module_has_its_unit_tests_and_no_end_to_end_test() -> None:
    modules = script().MODULES
    assert len(modules) == 11
    for module, tests in modules.items():
        assert (ROOT / module).is_file(), module
        assert tests and all((ROOT / test).is_file() for test in tests), module
        assert not any(test.startswith("tests/e2e") for test in tests), module
