"""Files of the wrong kind (issue 20): each one the exporter reads (the config, the secret
file, the web config) as a FIFO, a device, a socket, a directory, a symlink loop or too large,
refused at once with the file named and what it is: at start (`load_config`,
`load_web_config`) and by `--config.check` in a child process (a hang fails the test)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from exporter.app import Exporter
from exporter.base.files import MAX_SYMLINKS, UnreadableFile, read_regular_file
from exporter.config.model import (
    MAX_CONFIG_FILE_BYTES,
    MAX_SECRET_FILE_BYTES,
    ConfigError,
    load_config,
)
from exporter.serve.webconfig import MAX_WEB_CONFIG_BYTES, load_web_config
from tests.conftest import NOON, minimal_config, to_config
from tests.fakes import FakeClock

# How long --config.check may take before it counts as hanging (it takes about 0.5 s).
CHECK_TIMEOUT = 60.0
LIMITS = {
    "config": MAX_CONFIG_FILE_BYTES,
    "secret": MAX_SECRET_FILE_BYTES,
    "web-config": MAX_WEB_CONFIG_BYTES,
}


def make_fifo(path: Path) -> tuple[Path, str]:
    os.mkfifo(path)
    return path, "is a FIFO (named pipe), not a regular file"


def make_socket(path: Path) -> tuple[Path, str]:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))  # the socket file stays when the socket is closed
    return path, "is a socket, not a regular file"


def make_directory(path: Path) -> tuple[Path, str]:
    path.mkdir()
    return path, "is a directory, not a regular file"


def make_loop(path: Path) -> tuple[Path, str]:
    other = path.with_name(path.name + "-other")
    path.symlink_to(other)
    other.symlink_to(path)
    return path, f"too many levels of symbolic links (a loop, or more than {MAX_SYMLINKS})"


def make_long_chain(path: Path) -> tuple[Path, str]:
    target = path.with_name(path.name + "-target")
    target.write_text("x")
    link = target
    for i in range(MAX_SYMLINKS + 1):
        next_link = path if i == MAX_SYMLINKS else path.with_name(f"{path.name}-{i}")
        next_link.symlink_to(link)
        link = next_link
    return path, f"too many levels of symbolic links (a loop, or more than {MAX_SYMLINKS})"


def oversize(limit: int) -> Callable[[Path], tuple[Path, str]]:
    def make(path: Path) -> tuple[Path, str]:
        with path.open("wb") as file:
            file.truncate(limit + 1)  # sparse: costs no disk
        size = f"{limit // 1024 // 1024} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"
        return path, f"is larger than {size}"

    return make


def device(name: str) -> Callable[[Path], tuple[Path, str]]:
    def make(path: Path) -> tuple[Path, str]:
        return Path(name), "is a character device, not a regular file"

    return make


# Kinds of wrong file: name -> make one (at this path, or name a device); the file to name
# in the config and the reason it is refused.
KINDS: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "fifo": make_fifo,
    "dev-zero": device("/dev/zero"),
    "dev-urandom": device("/dev/urandom"),
    "socket": make_socket,
    "directory": make_directory,
    "symlink-loop": make_loop,
    "symlink-chain": make_long_chain,
}
OS_ERRORS = {"symlink-loop", "symlink-chain"}
TARGETS = ("config", "secret", "web-config")
CASES = [(target, kind) for target in TARGETS for kind in [*KINDS, "oversize"]]


def expected_message(target: str, path: Path, reason: str, kind: str) -> str:
    said = (
        f"cannot read {str(path)!r}: {reason}" if kind in OS_ERRORS else f"{str(path)!r} {reason}"
    )
    label = {
        "config": "config file",
        "secret": "podero.auth.client_secret_file",
        "web-config": "web config file",
    }[target]
    return f"{label}: {said}"


class Case:
    """One wrong file for one target, and the files around it that are right."""

    def __init__(self, root: Path, target: str, kind: str) -> None:
        self.dir = root / f"{target}-{kind}"
        self.dir.mkdir()
        make = oversize(LIMITS[target]) if kind == "oversize" else KINDS[kind]
        self.bad, self.reason = make(self.dir / "bad")
        self.message = expected_message(target, self.bad, self.reason, kind)
        raw = minimal_config()
        if target == "secret":
            del raw["podero"]["auth"]["client_secret"]
            raw["podero"]["auth"]["client_secret_file"] = str(self.bad)
        self.config = self.bad if target == "config" else self.dir / "config.yaml"
        if target != "config":
            self.config.write_text(yaml.safe_dump(raw))
        self.web_config: Path | None = None
        if target == "web-config":
            self.web_config = self.bad

    def check_args(self) -> list[str]:
        args = ["--config.file", str(self.config), "--config.check"]
        if self.web_config is not None:
            args += ["--web.config.file", str(self.web_config)]
        return args


@pytest.fixture(scope="module")
def cases() -> Iterator[dict[tuple[str, str], Case]]:
    # A short directory of its own: a unix socket's path must fit in about 100 bytes.
    root = Path(tempfile.mkdtemp(prefix="podero-files-"))
    try:
        yield {(target, kind): Case(root, target, kind) for target, kind in CASES}
    finally:
        shutil.rmtree(root)


@pytest.fixture(scope="module")
def checks(cases: dict[tuple[str, str], Case]) -> dict[tuple[str, str], tuple[int, str, str]]:
    """`--config.check` for every case, as many at a time as there are cores; one still
    running CHECK_TIMEOUT after it started is killed and recorded as a hang (a hang, not a
    slow machine: a check takes well under a second)."""

    def check(case: Case) -> tuple[int, str, str]:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "exporter", *case.check_args()],
                capture_output=True,
                text=True,
                timeout=CHECK_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return (-1, "", f"hung for {CHECK_TIMEOUT:g} s")
        return (done.returncode, done.stdout, done.stderr)

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        found = dict(zip(cases, pool.map(check, cases.values()), strict=True))
    return found


def load(case: Case) -> None:
    if case.web_config is not None:
        load_web_config(case.web_config)
    else:
        load_config(case.config, {})


@pytest.mark.parametrize(("target", "kind"), CASES)
def test_a_wrong_file_is_refused_at_start_naming_it_and_what_it_is(
    cases: dict[tuple[str, str], Case], target: str, kind: str
) -> None:
    case = cases[(target, kind)]
    with pytest.raises(ConfigError) as info:
        load(case)
    assert str(info.value) == case.message


@pytest.mark.parametrize(("target", "kind"), CASES)
def test_a_wrong_file_is_refused_by_config_check_at_once(
    checks: dict[tuple[str, str], tuple[int, str, str]],
    cases: dict[tuple[str, str], Case],
    target: str,
    kind: str,
) -> None:
    returncode, out, err = checks[(target, kind)]
    assert (returncode, out) == (2, ""), err
    assert err == f"podero-exporter: config error: {cases[(target, kind)].message}\n"


def test_the_right_files_pass_the_check_and_links_up_to_the_bound_are_followed(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    link = secret
    for i in range(MAX_SYMLINKS):
        next_link = tmp_path / f"link-{i}"
        next_link.symlink_to(link)
        link = next_link
    raw = minimal_config()
    del raw["podero"]["auth"]["client_secret"]
    raw["podero"]["auth"]["client_secret_file"] = str(link)  # 40 links deep
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    web_config = tmp_path / "web.yml"
    web_config.write_text("http_server_config: {http2: false}\n")
    config = load_config(config_file, {})
    assert config.podero.auth.secret().get_secret_value() == "s3cret"
    assert load_web_config(web_config).http_server_config.http2 is False
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "--config.file",
            str(config_file),
            "--web.config.file",
            str(web_config),
            "--config.check",
        ],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config ok: 2 inverters")


def test_a_file_that_says_it_is_empty_but_is_not_is_read_no_further_than_the_cap() -> None:
    # /proc files are regular files of size 0 whose reads produce text: the size the file
    # says is not trusted, the reading stops at the cap.
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(UnreadableFile) as info:
        read_regular_file("/proc/self/status", 100)
    assert str(info.value) == "'/proc/self/status' is larger than 100 bytes"
    assert read_regular_file("/proc/self/status", 1024 * 1024).startswith(b"Name:")


def test_a_fifo_with_a_writer_is_still_refused_and_nothing_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer, with data waiting
    try:
        os.write(writer, b"secret")
        with pytest.raises(UnreadableFile, match="is a FIFO"):
            read_regular_file(fifo, 1024)
        assert os.read(writer, 100) == b"secret"  # still there: nobody read it
    finally:
        os.close(writer)


@pytest.mark.parametrize(
    ("target", "kind"), [case for case in CASES if case[0] != "web-config"]
)  # the web config is read at start only; a reload reads the config and its secret file
def test_a_wrong_file_is_refused_at_reload_and_the_running_config_stays(
    cases: dict[tuple[str, str], Case], target: str, kind: str
) -> None:
    case = cases[(target, kind)]
    exporter = Exporter(to_config(minimal_config()), FakeClock(NOON))
    try:
        running = exporter.config
        assert exporter.reload(lambda: load_config(case.config, {})) == case.message
        assert exporter.config is running
        text = exporter.page.render().decode()
        assert "podero_config_last_reload_successful 0.0" in text
    finally:
        exporter.stop()
