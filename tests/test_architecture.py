"""The layout stays what docs/architecture.md says: one-way layers (import-linter), no import
cycle, the simulator out of the daemon, and modules small enough to read."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

from tests.project import ROOT, project_root

MAX_MODULE_LINES = 600


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts, importing `exporter` from `root`."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", "pyproject.toml"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_layer_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_layer_contracts_fail_on_a_violation(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "exporter", tmp_path / "exporter")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    transport = tmp_path / "exporter" / "api" / "transport.py"
    # The transport reaching up to the HTTP server: two contracts must catch it.
    transport.write_text(transport.read_text() + "\nimport exporter.serve.web  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "One-way layers: the ground at the bottom, the command line at the top BROKEN" in (
        result.stdout
    )
    assert "The API side knows nothing of Prometheus or of serving BROKEN" in result.stdout
    assert "exporter.api.transport -> exporter.serve.web" in result.stdout


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module) & modules:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_in_the_package() -> None:
    graph = grimp.build_graph("exporter")
    modules = {m for m in graph.modules if m.startswith("exporter")}
    assert len(modules) > 20
    assert _cycles(graph, modules) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert _cycles(graph, {"p.a", "p.b", "p.c"}) == [["p.a", "p.b"]]


def test_the_daemon_loads_no_simulator_module() -> None:
    code = (
        "import sys, exporter.cli, exporter.app; "
        "print(sorted(m for m in sys.modules if m.startswith('exporter.sim')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


def test_tests_read_the_checkout_even_from_mutmuts_copy(tmp_path: Path) -> None:
    """scripts/mutation.sh runs the tests in mutants/, a mutated copy of the package and the
    tests: the files tests read (this module's line caps among them) are the checkout's."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "project.py").write_text("")
    (tmp_path / "mutants").mkdir()
    assert project_root(tmp_path / "mutants") == tmp_path
    assert project_root(tmp_path) == tmp_path
    assert project_root(tmp_path / "tests") == tmp_path / "tests"  # not a copy
    assert (ROOT / "README.md").is_file() and ROOT.name != "mutants"


def test_no_module_is_over_600_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in (ROOT / "exporter").rglob("*.py")
    }
    assert len(sizes) > 20
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_the_top_of_the_package_holds_entry_points_and_every_package_is_layered() -> None:
    import tomllib

    top = sorted(p.name for p in (ROOT / "exporter").glob("*.py"))
    assert len(top) <= 8, top
    packages = sorted(
        p.parent.name for p in (ROOT / "exporter").glob("*/__init__.py") if p.parent.name != "sim"
    )
    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ][0]["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    # A module added to a package is checked by the package's layer: none is listed by name.
    assert {f"exporter.{p}" for p in packages} <= named
    assert all(name.count(".") == 1 for name in named), named
