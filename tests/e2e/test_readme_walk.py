"""README.md, walked as a newcomer would: every shell block runs, in the README's order, in a
fresh copy of the checkout, against the simulator, so that a block that stops working fails
the suite instead of the next reader.

Each shell block (```sh, ```console) is preceded by a marker that says how:

    <!-- walk: run -->                   run it; a failing command fails the walk
    <!-- walk: run: name NAME -->        the same, and this test checks its output (CHECKS)
    <!-- walk: background: ready URL --> a long-running command (a second terminal): started,
                                         waited for until URL answers 200 (or `ready tcp
                                         HOST:PORT` accepts a connection), stopped at the end
    <!-- walk: console -->               `$ command` lines, each followed by its output, which
                                         must match (`...` stands for anything within a line)
    <!-- walk: file PATH -->             (on a YAML block) the reader saves it as PATH
    <!-- walk: check: REASON -->         needs what the walk cannot have (Docker, kubectl,
                                         systemd, a package registry): `bash -n` only

The walk rewrites only what it must: the README's ports (8089, 9090, ...) become free ones,
and the backfill's month becomes the two days its queries read (promtool reads the whole
file once per two-hour block, so a month of blocks takes a minute or two; the README's
retention is checked against the month instead). Commands run with `set -euo pipefail`,
environment variables exported by a block carry on to the next, as in one terminal.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import require_tool
from tests.e2e.processes import free_port, wait_for
from tests.project import ROOT

pytestmark = pytest.mark.e2e

README = (ROOT / "README.md").read_text(encoding="utf-8")
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
# What a fresh checkout has, without what the README makes in it (and .gitignore keeps out).
NOT_IN_A_CHECKOUT = {".git", ".venv", "local", "config.yaml", "podero_client_secret"}
PORTS = (8089, 9090, 9091, 9093, 10042, 10043)
README_RANGE = "--from 2026-10-01 --to 2026-11-01T00:00:00Z"
WALK_RANGE = "--from 2026-10-11 --to 2026-10-13T00:00:00Z"
TOOLS = ("bash", "curl", "openssl", "prometheus", "promtool", "amtool", "prometheus-alertmanager")

_FENCE = re.compile(r"^( *)```(\w*)(.*)$")
_MARKER = re.compile(r"^ *<!-- walk: (\w+)(?::? (.*?))? -->$")


@dataclass
class Block:
    kind: str  # run, background, console, file, check, or "" (no marker)
    arg: str
    language: str
    body: str
    line: int  # of the opening fence, 1-based

    @property
    def name(self) -> str | None:
        match = re.fullmatch(r"name (\S+)", self.arg)
        return match[1] if self.kind == "run" and match else None


def blocks(text: str) -> list[Block]:
    """Every fenced block, with the walk marker on the line before it (if any)."""
    lines = text.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, language = fence[1], fence[2]
        end = next(j for j in range(i + 1, len(lines)) if lines[j] == f"{indent}```")
        marker = _MARKER.match(lines[i - 1]) if i > 0 else None
        body = textwrap.dedent("\n".join(lines[i + 1 : end]))
        found.append(
            Block(marker[1] if marker else "", (marker and marker[2]) or "", language, body, i + 1)
        )
        i = end + 1
    return found


@dataclass
class Walk:
    """One terminal's worth of state: the directory, the environment, the ports, and the
    long-running processes started so far."""

    directory: Path
    env: dict[str, str]
    ports: dict[int, int]
    logs: Path
    background: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)
    step: int = 0

    def rewrite(self, text: str) -> str:
        return re.sub(
            r":(\d{4,5})\b",
            lambda m: f":{self.ports.get(int(m[1]), int(m[1]))}",
            text,
        )

    def script(self, body: str, env_out: Path | None) -> Path:
        self.step += 1
        path = self.logs / f"step{self.step:02d}.sh"
        tail = f'\nenv -0 > "{env_out}"\n' if env_out else "\n"
        path.write_text("set -euo pipefail\n" + body + tail)
        return path

    def run(self, body: str, *, merge: bool = False, timeout: float = 60) -> tuple[int, str, str]:
        """Run `body` in bash in the walk's directory; exported variables carry on."""
        env_out = self.logs / f"env{self.step + 1:02d}"
        script = self.script(("exec 2>&1\n" if merge else "") + body, env_out)
        result = subprocess.run(
            ["bash", str(script)],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if env_out.exists():
            pairs = (item.split("=", 1) for item in env_out.read_text().split("\0") if item)
            self.env = {
                k: v for k, v in pairs if k not in ("PWD", "OLDPWD", "SHLVL", "_", "SHELLOPTS")
            }
        return result.returncode, result.stdout, result.stderr

    def start(self, body: str, ready: str) -> None:
        script = self.script(body, None)
        log = self.logs / f"step{self.step:02d}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", str(script)],
                cwd=self.directory,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with its children
            )
        self.background.append((proc, log))

        def answers() -> bool:
            assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()}"
            if ready.startswith("tcp "):
                host, _, port = ready.removeprefix("tcp ").rpartition(":")
                with socket.create_connection((host, int(port)), timeout=1):
                    return True
            return requests.get(ready, timeout=2).status_code == 200

        wait_for(answers, 30, f"{body.splitlines()[0]} to answer {ready}")

    def stop(self) -> None:
        for proc, _ in reversed(self.background):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def background_logs(self) -> str:
        return "\n".join(
            f"--- {log.name}:\n{log.read_text()[-3000:]}" for _, log in self.background
        )


def fresh_checkout(directory: Path) -> Path:
    """The checkout's files, linked into `directory`, with the installed package as `.venv`."""
    directory.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_IN_A_CHECKOUT and not entry.name.endswith(".egg-info"):
            (directory / entry.name).symlink_to(entry)
    venv = Path(sys.prefix)
    for script in ("podero-exporter", "podero-simulator"):
        assert (venv / "bin" / script).exists(), f"{script} is not installed: pip install -e ."
    (directory / ".venv").symlink_to(venv)
    return directory


def console_steps(body: str) -> list[tuple[str, list[str]]]:
    """The `$ command` lines of a console block, each with the output lines after it."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line)
    return steps


def matches(expected: list[str], actual: list[str]) -> bool:
    if len(expected) != len(actual):
        return False
    return all(
        re.fullmatch(".*".join(re.escape(part) for part in want.split("...")), got)
        for want, got in zip(expected, actual, strict=True)
    )


def json_documents(text: str) -> list[Any]:
    """The JSON documents printed one after another (curl prints no newline between)."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
        while at < len(text) and text[at].isspace():
            at += 1
    return documents


def check_rehearsal(stdout: str, stderr: str, walk: Walk) -> None:
    # README: the check prints one line; --once the five devices of the fleet, each up.
    assert stdout.startswith("config ok: 0 inverters and discovery of 1 organization, "), stdout
    up = [line for line in stdout.splitlines() if line.startswith("podero_device_up")]
    kinds = sorted(re.search(r'kind="(\w+)"', line)[1] for line in up)  # type: ignore[index]
    assert kinds == ["electric_vehicle", "heat_pump", "inverter", "inverter", "inverter"], up
    assert all(line.endswith(" 1.0") for line in up), up


def check_backfill(stdout: str, stderr: str, walk: Walk) -> None:
    assert "backfill complete: 6 devices (3 inverters, 1 heat pump, 1 electric vehicle, " in stderr
    # "promtool prints a header and one line per two-hour block it cuts".
    header, *rows = stdout.strip().splitlines()
    assert header.split()[:2] == ["BLOCK", "ULID"], header
    made = [p for p in (walk.directory / "local/blocks").iterdir() if p.is_dir()]
    assert len(rows) == len(made) == 2 * 12, (rows, made)


def check_backfill_queries(stdout: str, stderr: str, walk: Walk) -> None:
    water, energy = json_documents(stdout)
    (pump,) = water["data"]["result"]  # the fleet's one heat pump, at noon
    assert 30 < float(pump["value"][1]) < 70, pump
    solar = energy["data"]["result"]
    assert len(solar) == 3, solar  # every inverter, with a sunny October day's energy
    assert all(0 < float(s["value"][1]) < 100 for s in solar), solar


def check_tls(stdout: str, stderr: str, walk: Walk) -> None:
    assert stdout == "Healthy.\n", stdout + stderr


CHECKS = {
    "rehearsal": check_rehearsal,
    "backfill": check_backfill,
    "backfill-queries": check_backfill_queries,
    "tls": check_tls,
}


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    for tool in TOOLS:
        require_tool(tool)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODERO_")}
    logs = tmp_path / "logs"
    logs.mkdir()
    ports = {port: free_port() for port in PORTS}
    walker = Walk(fresh_checkout(tmp_path / "checkout"), env, ports, logs)
    try:
        yield walker
    finally:
        walker.stop()


def test_every_shell_block_has_a_walk_marker() -> None:
    found = blocks(README)
    unmarked = [b.line for b in found if b.language in SHELL_LANGUAGES and not b.kind]
    assert not unmarked, f"README.md lines {unmarked}: say how the walk treats them"
    kinds = {b.kind for b in found if b.kind}
    assert kinds <= {"run", "background", "console", "file", "check"}, kinds
    for block in found:
        if block.kind == "check":
            assert block.arg, f"line {block.line}: say why the walk only checks the syntax"
        if block.kind == "background":
            assert re.fullmatch(r"ready (https?://\S+|tcp \S+:\d+)", block.arg), block.line
        if block.kind == "file":
            assert block.language == "yaml" and block.arg, block.line
    named = {b.name for b in found if b.name}
    assert named == set(CHECKS), named


def test_the_readme_backfill_keeps_the_month_it_asks_for() -> None:
    """What the walk cannot afford to run: the month. The Prometheus on the blocks must keep
    them all (its retention counts back from the newest block), and the README counts its
    blocks right."""
    (backfill,) = [b for b in blocks(README) if b.name == "backfill"]
    assert README_RANGE in backfill.body
    start, end = (
        dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        for value in re.findall(r"--(?:from|to) (\S+?)(?:T00:00:00Z)?(?:\s|$)", README_RANGE)
    )
    hours = (end - start).total_seconds() / 3600
    assert f"({hours / 2:.0f} for this month)" in " ".join(README.split())
    (prometheus,) = [
        b for b in blocks(README) if b.kind == "background" and "local/blocks" in b.body
    ]
    retention = re.search(r"--storage\.tsdb\.retention\.time=(\d+)([dwy])", prometheus.body)
    assert retention is not None, "the default retention (15 days) deletes half the month"
    days = int(retention[1]) * {"d": 1, "w": 7, "y": 365}[retention[2]]
    assert days * 24 >= hours


def test_the_readme_walks(walk: Walk) -> None:
    done: list[str] = []
    for block in blocks(README):
        if block.kind == "" or block.language not in SHELL_LANGUAGES | {"yaml"}:
            continue
        where = f"README.md line {block.line} ({block.kind})"
        body = walk.rewrite(block.body)
        if block.name == "backfill":
            assert README_RANGE in body
            body = body.replace(README_RANGE, WALK_RANGE)
        if block.kind == "check":
            syntax = subprocess.run(
                ["bash", "-n"], input=block.body, capture_output=True, text=True, check=False
            )
            assert syntax.returncode == 0, f"{where}: {syntax.stderr}"
        elif block.kind == "file":
            path = walk.directory / block.arg
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body + "\n")
        elif block.kind == "background":
            walk.start(body, walk.rewrite(block.arg.removeprefix("ready ")))
        elif block.kind == "run":
            code, out, err = walk.run(body)
            assert code == 0, f"{where} failed ({code}):\n{out}\n{err}\n{walk.background_logs()}"
            if block.name:
                CHECKS[block.name](out, err, walk)
        elif block.kind == "console":
            for command, expected in console_steps(body):
                code, out, _ = walk.run(command, merge=True)
                actual = out.rstrip("\n").splitlines()
                assert matches(expected, actual), (
                    (f"{where}: $ {command}\nexpected:\n" + "\n".join(expected))
                    + "\ngot:\n"
                    + "\n".join(actual)
                )
        done.append(block.kind)
    # The walk reached every kind of step (a marker typo would skip blocks silently).
    assert {"run", "background", "console", "file", "check"} <= set(done), done
    assert done.count("background") >= 5, done
