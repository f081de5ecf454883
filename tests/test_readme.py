"""The README stays true to the program: its flag table lists what `--help` shows, its table
of contents lists its headings, no part but "Upgrading" uses a name 0.1.0 renamed, and the
upgrading and releasing notes cover what they must."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import run_cli
from tests.project import ROOT
from tests.upgrading import RENAMED_ALERTS, RENAMED_SERIES, RENAMES

README = (ROOT / "README.md").read_text(encoding="utf-8")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def section(title: str) -> str:
    """A `## title` section of the README, its subsections included."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : None if end < 0 else end]


def help_flags() -> set[str]:
    """Every option string `podero-exporter --help` lists."""
    result = run_cli("--help")
    assert result.returncode == 0
    flags: set[str] = set()
    for line in result.stdout.splitlines():
        # An option's own line is indented two spaces; its wrapped help text much further.
        if re.match(r"^  -", line):
            names = re.split(r"\s{2,}", line.strip())[0]
            flags.update(re.findall(r"(?<![\w.-])--?[a-z][\w.-]*", names))
    return flags


def readme_flags() -> set[str]:
    start = README.index("| flag | default | meaning |")
    table = README[start : README.index("\n\n", start)]
    flags: set[str] = set()
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        flags.update(f for f in re.findall(r"`([^`]+)`", first) if f.startswith("-"))
    return flags


def test_the_flag_table_lists_every_flag_help_shows() -> None:
    shown = help_flags()
    assert {"--web.listen-address", "--web.systemd-socket", "--version", "--help"} <= shown
    assert readme_flags() == shown


def github_anchor(title: str) -> str:
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def test_the_table_of_contents_lists_every_heading_in_order() -> None:
    headings = [
        (len(m[1]) - 2, m[2])
        for line in prose_lines(README)
        if (m := re.match(r"(##+) (.+)", line)) and m[2] != "Contents"
    ]
    expected = [
        "  " * depth + f"- [{title.replace('`', '')}](#{github_anchor(title)})"
        for depth, title in headings
    ]
    contents = section("Contents").strip().splitlines()[1:]
    assert [line for line in contents if line.strip()] == expected


@pytest.mark.parametrize("old", [old for old, _ in RENAMED_SERIES + RENAMED_ALERTS])
def test_no_renamed_series_or_alert_outside_upgrading(old: str) -> None:
    rest = README.replace(section("Upgrading"), "")
    assert not re.search(rf"\b{old}\b", rest), f"{old} is still used; say {dict(RENAMES)[old]}"


def test_inverter_id_outside_upgrading_is_only_the_config_key() -> None:
    rest = README.replace(section("Upgrading"), "")
    uses = [m.start() for m in re.finditer(r"\binverter_id\b", rest)]
    assert uses, "the config key is documented"
    for at in uses:
        # `inverter_id: <uuid>` in a config entry or `inverters[2].inverter_id: ...` in an error.
        assert rest[at + len("inverter_id")] == ":", rest[at - 60 : at + 60]


def test_upgrading_has_a_row_per_rename() -> None:
    rows = [line for line in section("Upgrading").splitlines() if line.startswith("| ")]
    for old, new in RENAMES:
        assert any(f"`{old}" in row and f"`{new}" in row for row in rows), (old, new)


def test_upgrading_says_configs_load_unchanged_and_why_labels_are_where_they_are() -> None:
    text = " ".join(section("Upgrading").split())
    assert "Config files keep loading unchanged." in text
    assert "`inverters:` entries with `inverter_id:`" in text
    assert "Why `name` stays on every series" in text
    for cited in (
        "https://prometheus.io/docs/concepts/data_model/",
        "https://prometheus.io/docs/instrumenting/writing_exporters/#labels",
    ):
        assert cited in text


def test_releasing_names_the_steps_and_the_build_argument_the_dockerfile_takes() -> None:
    text = section("Releasing")
    for step in ("CHANGELOG.md", "git tag -a vX.Y.Z", "docker build --build-arg VERSION=X.Y.Z"):
        assert step in text
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG VERSION=", dockerfile, re.MULTILINE)
    assert "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_PODERO_EXPORTER=$VERSION" in dockerfile
    assert "COPY pyproject.toml README.md LICENSE ./" in dockerfile  # the licence ships


def shell_block_after(heading: str, contains: str) -> str:
    """The first ```sh block of a section that contains `contains`."""
    blocks = re.findall(r"```sh\n(.*?)```", section(heading), flags=re.DOTALL)
    (block,) = [b for b in blocks if contains in b][:1]
    return str(block)


def test_kubernetes_apply_deploys_the_image_it_pushes_with_the_secret_file_made_before() -> None:
    apply = shell_block_after("Kubernetes", "docker push")
    built = re.search(r"docker build .*-t (\S+) \.", apply)
    pushed = re.search(r"docker push (\S+)", apply)
    deployed = re.search(r"kustomize edit set image podero-exporter=(\S+?)\)", apply)
    assert built and pushed and deployed
    assert built[1] == pushed[1] == deployed[1]
    # What `kustomize edit set image podero-exporter=...` changes is what the base deploys.
    base = ROOT / "deploy/kubernetes/base"
    images = yaml.safe_load((base / "kustomization.yaml").read_text())["images"]
    assert [i["name"] for i in images] == ["podero-exporter"]
    (statefulset,) = yaml.safe_load_all((base / "statefulset.yaml").read_text())
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["image"].partition(":")[0] == "podero-exporter"
    # The secret file is the one "Running it for real" wrote, under the name it gave it.
    secret_file = re.search(r"--from-file=client-secret=(\S+)", apply)
    assert secret_file
    running = section("Running it for real")
    assert f"> {secret_file[1].removeprefix('./')} && chmod 600" in running
    assert f"client_secret_file: {secret_file[1]}" in running
    example = (base / "secret.example.yaml").read_text()
    assert f"--from-file=client-secret={secret_file[1]}" in example


def test_gitignore_keeps_what_the_readme_makes_out_of_git() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for made in ("/config.yaml", "/podero_client_secret", "/local/"):
        assert made in ignored
    assert "`config.yaml`, `podero_client_secret` and `local/`" in section("Running it for real")
