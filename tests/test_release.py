"""What ships with a release: the licence text, the package metadata, the version from git tags."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from exporter import __version__
from tests.conftest import run_cli
from tests.project import ROOT
from tests.upgrading import RENAMES

# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the licence's official text.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


CHANGELOG = ROOT / "CHANGELOG.md"
# The Prometheus projects' entry kinds, in the order they are listed under a release.
ENTRY_KINDS = ("CHANGE", "FEATURE", "ENHANCEMENT", "BUGFIX")


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_licence_file_is_the_official_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256
    assert b"Version 2.0, January 2004" in text and b"END OF TERMS AND CONDITIONS" in text


def test_the_metadata_names_the_licence_as_pep_639_has_it() -> None:
    project = pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    # PEP 639: with a licence expression, licence classifiers are an error.
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    requires = {r.name: r for r in map(Requirement, pyproject()["build-system"]["requires"])}
    # setuptools 77 is the first to read license-files and a licence expression.
    assert requires["setuptools"].specifier.contains("77")
    assert not requires["setuptools"].specifier.contains("76.1")


def test_the_version_comes_from_git_tags_with_a_fallback() -> None:
    config = pyproject()
    assert "version" in config["project"]["dynamic"]
    assert "dynamic" not in config["tool"].get("setuptools", {})
    scm = config["tool"]["setuptools_scm"]
    Version(scm["fallback_version"])  # a tree without git metadata still builds
    assert scm["version_file"] == "exporter/_version.py"
    assert any(Requirement(r).name == "setuptools-scm" for r in config["build-system"]["requires"])


def test_the_generated_version_file_stays_out_of_git() -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    result = subprocess.run(
        ["git", "check-ignore", "-q", "exporter/_version.py"], cwd=ROOT, check=False
    )
    assert result.returncode == 0


def test_version_flag_prints_the_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"podero-exporter {__version__}\n"
    Version(result.stdout.split()[1])  # PEP 440, as pip and the image tag read it


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def _scm_version(root: Path) -> str:
    """What setuptools-scm makes of `root` with this project's pyproject.toml."""
    result = subprocess.run(
        [sys.executable, "-m", "setuptools_scm"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(
    importlib.util.find_spec("setuptools_scm") is None or shutil.which("git") is None,
    reason="setuptools-scm (a build requirement) is not installed in this environment",
)
def test_setuptools_scm_reads_the_tag_and_falls_back_without_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    bare = tmp_path / "bare"
    shutil.copytree(repo, bare)  # a source copy without git metadata, as a Docker context
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "first")
    untagged = _scm_version(repo)  # a clone without tags (CI) still gets a version
    assert Version(untagged).is_devrelease, untagged
    _git(repo, "tag", "v0.1.0")
    assert _scm_version(repo) == "0.1.0"
    (repo / "README.md").write_text("next\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "after the release")
    after = _scm_version(repo)
    assert re.fullmatch(r"0\.1\.1\.dev1\+g[0-9a-f]+", after), after
    assert _scm_version(bare) == pyproject()["tool"]["setuptools_scm"]["fallback_version"]


def changelog() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(version, date, [(kind, text)]) per release, newest first, as CHANGELOG.md has them."""
    releases: list[tuple[str, str, list[tuple[str, str]]]] = []
    for line in CHANGELOG.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            heading = re.fullmatch(r"## (\d+\.\d+\.\d+) / (\d{4}-\d{2}-\d{2})", line)
            assert heading, f"a release heading reads '## 1.2.3 / YYYY-MM-DD': {line!r}"
            releases.append((heading[1], heading[2], []))
        elif line.startswith("* "):
            entry = re.match(r"\* \[([A-Z]+)\] (.+)", line)
            assert entry and releases, f"an entry reads '* [KIND] text' under a release: {line!r}"
            releases[-1][2].append((entry[1], entry[2]))
        elif line.startswith("  ") and releases and releases[-1][2]:
            kind, text = releases[-1][2][-1]
            releases[-1][2][-1] = (kind, f"{text} {line.strip()}")
    return releases


def test_changelog_releases_are_headed_and_ordered_as_prometheus_does() -> None:
    releases = changelog()
    assert releases, "CHANGELOG.md has no release"
    versions = [Version(v) for v, _, _ in releases]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    for version, date, entries in releases:
        dt.date.fromisoformat(date)
        kinds = [kind for kind, _ in entries]
        assert entries, f"{version} has no entries"
        assert set(kinds) <= set(ENTRY_KINDS), f"{version}: unknown kinds {set(kinds)}"
        assert kinds == sorted(kinds, key=ENTRY_KINDS.index), f"{version}: out of order"


def test_the_first_release_lists_every_rename_as_a_change() -> None:
    first = next(entries for version, _, entries in changelog() if version == "0.1.0")
    changes = [text for kind, text in first if kind == "CHANGE"]
    for old, new in RENAMES:
        assert any(f"`{old}" in text and f"`{new}" in text for text in changes), (old, new)
    # The modules' move into subpackages, for code that imports them.
    assert any("exporter.serve" in text and "exporter.web" in text for text in changes)
