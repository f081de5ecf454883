"""Where the exporter listens, as exporter-toolkit's flags have it: --web.listen-address as
often as given, and --web.systemd-socket (socket activation: LISTEN_PID, LISTEN_FDS, fd 3)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from exporter.cli import parse_args
from exporter.serve.server import ExporterHTTPServer, systemd_sockets
from exporter.serve.web import WebApp, start_servers
from exporter.sim import stop_process
from tests.conftest import run_cli
from tests.e2e.processes import exporter_command, free_port, wait_for

BODY = [b"podero_up 1\n"]


def app() -> WebApp:
    return WebApp(metrics=lambda: BODY, ready=lambda: True, reload=lambda: None)


# --- --web.listen-address, repeated ------------------------------------------------------


def test_listen_address_repeats_and_defaults() -> None:
    assert parse_args([]).listen == [":10042"]
    assert parse_args(["--web.listen-address", "127.0.0.1:1"]).listen == ["127.0.0.1:1"]
    twice = parse_args(["--web.listen-address", "127.0.0.1:1", "--web.listen-address", "[::1]:2"])
    assert twice.listen == ["127.0.0.1:1", "[::1]:2"]


def test_a_server_on_two_loopback_ports_answers_on_both() -> None:
    servers = start_servers(["127.0.0.1:0", "127.0.0.1:0"], app())
    try:
        ports = [port for _, port in servers.addresses]
        assert len(set(ports)) == 2
        for port in ports:
            r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            assert r.status_code == 200 and r.content == BODY[0]
    finally:
        servers.shutdown()
        servers.server_close()
    for port in ports:  # both stopped together
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_an_address_that_cannot_be_listened_on_leaves_none_listening() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free = free_port()
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{busy}"):
            start_servers([f"127.0.0.1:{free}", f"127.0.0.1:{busy}"], app())
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{free}/metrics", timeout=5)


@pytest.mark.e2e
def test_the_exporter_process_serves_every_listen_address(tmp_path: Path) -> None:
    first, second = free_port(), free_port()
    args = ["--demo", "--web.listen-address", f"127.0.0.1:{first}"]
    args += ["--web.listen-address", f"127.0.0.1:{second}"]
    with _process(exporter_command(*args), tmp_path / "exporter.log") as log:
        for port in (first, second):
            scrape = _wait_for_metrics(port)
            assert "podero_exporter_build_info{" in scrape
        _wait_for_log(log, f"address=127.0.0.1:{first},127.0.0.1:{second}")


# --- --web.systemd-socket ----------------------------------------------------------------


# What systemd does between fork and exec: the socket at fd 3, LISTEN_PID = the process's own
# pid, LISTEN_FDS = 1. The pid is only known in the child, so a launcher sets it and execs.
LAUNCHER = (
    "import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); os.close(fd); "
    "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='web'); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


@contextmanager
def _process(cmd: list[str], log: Path, pass_fds: tuple[int, ...] = ()) -> Iterator[Path]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, pass_fds=pass_fds)
        try:
            yield log
        finally:
            stop_process(proc)


def _launch_with_socket(sock: socket.socket, *args: str) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, str(sock.fileno()), *exporter_command(*args)[1:]]


def _wait_for_metrics(port: int) -> str:
    def scrape() -> str | None:
        r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        return r.text if r.ok else None

    return wait_for(scrape, 30, f"/metrics on port {port}")


def _wait_for_log(log: Path, text: str) -> None:
    """The exporter serves before it logs that it started: wait for the line, not for time."""
    wait_for(lambda: text in log.read_text(), 30, f"{text!r} in the exporter's log")


@pytest.mark.e2e
def test_the_exporter_serves_the_socket_systemd_passes(tmp_path: Path) -> None:
    with socket.socket() as activation:
        activation.bind(("127.0.0.1", 0))
        activation.listen()
        port = activation.getsockname()[1]
        cmd = _launch_with_socket(activation, "--demo", "--web.systemd-socket")
        with _process(cmd, tmp_path / "exporter.log", (activation.fileno(),)) as log:
            # The parent still holds the socket, as systemd does: only the exporter accepts.
            assert "podero_exporter_build_info{" in _wait_for_metrics(port)
            assert requests.get(f"http://127.0.0.1:{port}/-/healthy", timeout=5).ok
            _wait_for_log(log, f"address=127.0.0.1:{port}")


@pytest.mark.e2e
def test_passed_sockets_without_the_flag_are_not_served_and_say_so(tmp_path: Path) -> None:
    with socket.socket() as activation:
        activation.bind(("127.0.0.1", 0))
        activation.listen()
        own = free_port()
        cmd = _launch_with_socket(activation, "--demo", "--web.listen-address", f"127.0.0.1:{own}")
        with _process(cmd, tmp_path / "exporter.log", (activation.fileno(),)) as log:
            # The given address is served (the HTTP library is kept from taking fd 3) ...
            assert "podero_exporter_build_info{" in _wait_for_metrics(own)
            # ... and the operator is told why systemd's socket is not.
            _wait_for_log(log, "--web.systemd-socket is not given: not serving them")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "LISTEN_PID and LISTEN_FDS are not set: this process was not started by systemd"),
        ({"LISTEN_PID": "1", "LISTEN_FDS": "1"}, "LISTEN_PID is '1', not this process"),
        ({"LISTEN_FDS": "1"}, "LISTEN_PID and LISTEN_FDS are not set"),
    ],
    ids=["not-activated", "another-process", "no-pid"],
)
def test_systemd_socket_is_refused_clearly_when_not_started_by_systemd(
    env: dict[str, str], message: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    result = run_cli("--demo", "--web.systemd-socket", env={**clean, **env})
    assert result.returncode == 2
    assert f"podero-exporter: config error: --web.systemd-socket: {message}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LISTEN_PID": "99", "LISTEN_FDS": "1"}, "LISTEN_PID is '99', not this process (7)"),
        ({"LISTEN_PID": "7", "LISTEN_FDS": "0"}, "LISTEN_FDS '0': no socket was passed"),
        ({"LISTEN_PID": "7", "LISTEN_FDS": "x"}, "LISTEN_FDS 'x': no socket was passed"),
        (
            {"LISTEN_PID": "\u0667", "LISTEN_FDS": "1"},
            "LISTEN_PID is '\u0667', not this",
        ),  # a non-ASCII digit
    ],
)
def test_systemd_variables_are_checked_before_any_descriptor_is_touched(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        systemd_sockets(env, pid=7)


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["file", "unlistened"])
def test_a_passed_descriptor_that_is_no_listening_tcp_socket_is_refused(
    tmp_path: Path, kind: str
) -> None:
    if kind == "file":
        handle = (tmp_path / "not-a-socket").open("wb")
        fd, expected = handle.fileno(), "fd 3 is not a socket"
    else:
        handle = socket.socket()  # type: ignore[assignment]
        fd, expected = handle.fileno(), "fd 3 is not a listening TCP socket"
    with handle:
        launcher = [sys.executable, "-c", LAUNCHER, str(fd)]
        result = subprocess.run(
            [*launcher, *exporter_command("--demo", "--web.systemd-socket")[1:]],
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert f"podero-exporter: config error: --web.systemd-socket: {expected}" in result.stderr


def test_the_server_refuses_to_start_with_systemd_variables_left_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # cheroot would serve fd 3 for every address while LISTEN_PID is set; the CLI unsets it.
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    with pytest.raises(OSError, match="LISTEN_PID is set: serve systemd's sockets with"):
        start_servers(["127.0.0.1:0"], app())


def test_a_listening_socket_is_served_as_it_is() -> None:
    with socket.socket(socket.AF_INET6) as ready:
        ready.bind(("::1", 0))
        ready.listen()
        port = ready.getsockname()[1]
        servers = start_servers([ready], app())
        try:
            server: ExporterHTTPServer = servers.servers[0]
            assert server.server_address == ("::1", port)
            assert requests.get(f"http://[::1]:{port}/metrics", timeout=5).content == BODY[0]
        finally:
            servers.shutdown()
            servers.server_close()
