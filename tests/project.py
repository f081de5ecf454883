"""Where the project's files are, for tests that read them (the README, deploy files, the
package's own source).

scripts/mutation.sh runs mutmut, which copies exporter/, tests/ and pyproject.toml into
mutants/ and runs the tests there, importing its mutated copy of the package. A test that
reads the project's files must read the checkout's: the copy has no README, and its modules
are mutmut's rewritten ones (far over the line cap, with mutmut's imports).
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent.parent


def project_root(here: Path) -> Path:
    """The checkout that holds `here`: its parent when `here` is mutmut's mutants/ copy."""
    if here.name == "mutants" and (here.parent / "tests" / "project.py").is_file():
        return here.parent
    return here


ROOT = project_root(_HERE)
