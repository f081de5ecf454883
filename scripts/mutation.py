"""Mutation testing of the modules that decide values (issue 22; docs/testing.md).

Runs mutmut on one module at a time against that module's unit tests only (no end-to-end
test), keeps each module's results in build/mutation/ (with the diff of each mutant
no test killed), and prints one table: mutants
generated, killed, survived, timed out, excluded (equivalent, listed in
scripts/mutation-excluded.txt with the reason) and the kill rate.

Run it through scripts/mutation.sh, which installs the pinned mutmut first:

    scripts/mutation.sh                      # all modules of MODULES, one after another
    scripts/mutation.sh exporter/api/budget.py
    scripts/mutation.sh exporter/api/budget.py=tests/test_budget.py,tests/test_api.py
    scripts/mutation.sh --table              # the table of the last runs, running nothing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "build" / "mutation"
EXCLUDED = ROOT / "scripts" / "mutation-excluded.txt"

# Each module with the unit-test files that test it. A module's row is a mutmut run of its own
# (its mutants against these tests only), so a file that merely imports it does not belong here.
MODULES: dict[str, tuple[str, ...]] = {
    "exporter/state/readings.py": ("tests/test_readings.py",),
    "exporter/state/schedule.py": ("tests/test_schedule.py",),
    "exporter/api/budget.py": ("tests/test_budget.py",),
    "exporter/state/energy.py": ("tests/test_energy.py",),
    "exporter/base/text.py": ("tests/test_text.py",),
    "exporter/api/auth.py": ("tests/test_auth.py",),
    # The fast, direct tests first: a mutant dies in them before the slow cases run.
    "exporter/base/safeyaml.py": ("tests/test_safeyaml.py", "tests/test_config.py"),
    "exporter/state/targets.py": ("tests/test_targets.py",),
    "exporter/api/transport.py": (
        "tests/test_transport.py",
        "tests/test_api.py",
        "tests/test_memory_budget.py",
    ),
    "exporter/api/connections.py": ("tests/test_transport.py", "tests/test_api.py"),
    "exporter/base/signals.py": ("tests/test_signals.py",),
}

# mutmut's exit codes (mutmut.stats.status_by_exit_code) in the table's columns. A mutant that
# makes the tests run past mutmut's CPU limit (15 x their normal time) is timed out: a test run
# would hang on it, so it is noticed, and the kill rate counts it with the killed ones.
KILLED = {1, 3}
TIMED_OUT = {24, -24, 36, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}  # no selected test reaches the mutated function: a survivor


@dataclasses.dataclass
class Row:
    """One module's figures, with the names of the mutants in each class."""

    module: str
    seconds: float
    killed: list[str]
    timed_out: list[str]
    survived: list[str]
    excluded: dict[str, str]
    other: dict[str, int | None]  # exit codes outside the classes above (segfault, unchecked)
    stale: list[str]  # excluded by name, but killed or not generated: the line should go

    @property
    def generated(self) -> int:
        return (
            len(self.killed)
            + len(self.timed_out)
            + len(self.survived)
            + len(self.excluded)
            + len(self.other)
        )

    @property
    def kill_rate(self) -> float:
        counted = self.generated - len(self.excluded)
        return (len(self.killed) + len(self.timed_out)) / counted if counted else 1.0


def mutant_order(name: str) -> tuple[str, int]:
    """Sorts mutants by function, then by number (x_f__mutmut_2 before x_f__mutmut_10)."""
    function, _, number = name.rpartition("__mutmut_")
    return function, int(number) if number.isdigit() else -1


def result_file(module: str) -> Path:
    return RESULTS / (module.removesuffix(".py").replace("/", ".") + ".json")


def read_excluded() -> dict[str, str]:
    """Mutant name -> why it does not count, from scripts/mutation-excluded.txt."""
    excluded: dict[str, str] = {}
    for number, line in enumerate(EXCLUDED.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, reason = line.strip().partition(" ")
        if "__mutmut_" not in name or not reason.strip():
            sys.exit(f"{EXCLUDED.name}:{number}: want 'MUTANT_NAME REASON', got {line!r}")
        excluded[name] = reason.strip()
    return excluded


def run_one(module: str, tests: tuple[str, ...], max_children: int) -> None:
    """One mutmut run in a fresh mutants/ (a separate process: mutmut keeps global state)."""
    for test in tests:
        if not (ROOT / test).is_file():
            sys.exit(f"{module}: no test file {test}")
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = result_file(module).with_suffix(".log")
    print(f"{module}: mutmut against {' '.join(tests)} (log: {log.relative_to(ROOT)})", flush=True)
    start = time.monotonic()
    with log.open("w") as out:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--mutmut",
                module,
                *tests,
                f"--max-children={max_children}",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.monotonic() - start
    meta = ROOT / "mutants" / (module + ".meta")
    if child.returncode != 0 or not meta.is_file():
        sys.exit(f"{module}: mutmut failed (exit {child.returncode}); see {log}")
    exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
    result_file(module).write_text(
        json.dumps(
            {"module": module, "tests": tests, "seconds": seconds, "exit_codes": exit_codes},
            indent=1,
            sort_keys=True,
        )
    )
    print(f"{module}: {len(exit_codes)} mutants in {seconds:.0f} s", flush=True)


def mutmut(module: str, tests: list[str], max_children: int) -> None:
    """Inside the child: mutmut's `run` with this module and these tests only (the rest of
    the configuration is [tool.mutmut] in pyproject.toml)."""
    from mutmut import configuration
    from mutmut.__main__ import cli

    configuration._config = dataclasses.replace(
        configuration.config(), only_mutate=[module], pytest_add_cli_args_test_selection=tests
    )
    cli.main(["run", f"--max-children={max_children}"], standalone_mode=False)
    # The diff of every mutant no test killed, to read without mutants/ (removed after the run).
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    meta = json.loads((Path("mutants") / (module + ".meta")).read_text())
    diffs = [
        f"# {name}: exit code {code}\n{get_diff_for_mutant(name, path=module)}\n"
        for name, code in sorted(meta["exit_code_by_key"].items(), key=lambda i: mutant_order(i[0]))
        if code not in KILLED and code not in TIMED_OUT
    ]
    result_file(module).with_suffix(".diff").write_text("\n".join(diffs))


def row_of(module: str, excluded: dict[str, str]) -> Row | None:
    path = result_file(module)
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    row = Row(module, saved["seconds"], [], [], [], {}, {}, [])
    for name, code in sorted(saved["exit_codes"].items(), key=lambda item: mutant_order(item[0])):
        if code in KILLED:
            row.killed.append(name)
        elif code in TIMED_OUT:
            row.timed_out.append(name)
        elif name in excluded and (code in SURVIVED or code in NO_TESTS):
            row.excluded[name] = excluded[name]
        elif code in SURVIVED or code in NO_TESTS:
            row.survived.append(name)
        else:
            row.other[name] = code
    prefix = module.removesuffix(".py").replace("/", ".") + "."
    row.stale = sorted(
        (
            name
            for name in excluded
            if name.startswith(prefix) and name not in row.excluded and name not in row.other
        ),
        key=mutant_order,
    )
    return row


def table(modules: list[str]) -> list[Row]:
    """Print the table (Markdown, as docs/testing.md holds it) and what is behind it."""
    excluded = read_excluded()
    rows = [row_of(module, excluded) for module in modules]
    print()
    print("| module | generated | killed | survived | timed out | excluded | kill rate | time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for module, row in zip(modules, rows, strict=True):
        if row is None:
            print(f"| {module} | | | | | | pending | |")
            continue
        print(
            f"| {module} | {row.generated} | {len(row.killed)} | {len(row.survived)}"
            f" | {len(row.timed_out)} | {len(row.excluded)} | {100 * row.kill_rate:.1f} %"
            f" | {row.seconds / 60:.1f} min |"
        )
    print()
    print("kill rate = (killed + timed out) / (generated - excluded)")
    for row in rows:
        if row is None:
            continue
        for title, names in (
            ("survived", {name: "" for name in row.survived}),
            ("excluded", row.excluded),
            ("other exit codes (count as not killed)", row.other),
            ("stale exclusions (killed or gone: delete the line)", dict.fromkeys(row.stale, "")),
        ):
            if names:
                print(f"\n{row.module}, {title}:")
                for name, why in names.items():
                    print(f"  {name} {why}".rstrip())
    return [row for row in rows if row is not None]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--mutmut":
        parser = argparse.ArgumentParser()
        parser.add_argument("--mutmut", required=True)
        parser.add_argument("--max-children", type=int, required=True)
        parser.add_argument("tests", nargs="+")
        args = parser.parse_args()
        mutmut(args.mutmut, args.tests, args.max_children)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "modules",
        nargs="*",
        metavar="MODULE[=TEST,...]",
        help="modules to run (default: all of MODULES), each with its unit tests",
    )
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants")
    parser.add_argument("--table", action="store_true", help="print the last results only")
    args = parser.parse_args()
    chosen: dict[str, tuple[str, ...]] = {}
    for spec in args.modules or list(MODULES):
        module, _, tests = spec.partition("=")
        if tests:
            chosen[module] = tuple(tests.split(","))
        elif module in MODULES:
            chosen[module] = MODULES[module]
        else:
            parser.error(f"{module}: not in MODULES; give its tests as {module}=TEST,...")
    if not args.table:
        for module, tests in chosen.items():
            run_one(module, tests, args.max_children)
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    table(list(chosen))


if __name__ == "__main__":
    main()
