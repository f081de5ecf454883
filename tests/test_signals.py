"""The daemon's signal handlers take no lock: a flood, or a signal inside a handler, is safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from exporter.base.signals import SignalInbox

ONE, TWO = signal.SIGUSR1, signal.SIGUSR2
DEADLINE = 10


@pytest.fixture
def inbox() -> Iterator[SignalInbox]:
    box = SignalInbox((ONE, TWO))
    try:
        yield box
    finally:
        box.close()


def test_each_signal_is_reported_once_however_often_it_came(inbox: SignalInbox) -> None:
    for _ in range(100):
        signal.raise_signal(ONE)
    signal.raise_signal(TWO)
    assert inbox.wait() == {ONE, TWO}
    signal.raise_signal(TWO)
    assert inbox.wait() == {TWO}


def test_a_flood_beyond_the_pipe_never_blocks_and_loses_no_later_signal(
    inbox: SignalInbox,
) -> None:
    for _ in range(100_000):  # more wake-ups than a pipe holds (64 KiB)
        signal.raise_signal(ONE)
    signal.raise_signal(TWO)  # the stop that follows the flood
    assert inbox.wait() == {ONE, TWO}


NESTED = """
import os, signal
from exporter.base import signals
inbox = signals.SignalInbox((signal.SIGUSR1, signal.SIGUSR2))
write, nested = os.write, []

def write_with_a_signal_inside(fd, data):
    if not nested:
        nested.append(True)
        signal.raise_signal(signal.SIGUSR2)  # its handler runs here, inside the first one's
    return write(fd, data)

signals.os.write = write_with_a_signal_inside
signal.raise_signal(signal.SIGUSR1)
print(nested, sorted(s.name for s in inbox.wait()))
"""


def test_a_signal_inside_a_handler_is_handled_and_kept() -> None:
    """A second signal runs its handler inside the first one's, on the same thread. A
    handler that held a lock there (threading.Event.set takes one) waited for itself for
    ever: a child process, so that such a wait fails the test instead of hanging the run."""
    done = subprocess.run(
        [sys.executable, "-c", NESTED], capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[True]", "['SIGUSR1',", "'SIGUSR2']"]


def test_a_signal_during_wait_wakes_it(inbox: SignalInbox) -> None:
    sender = threading.Thread(target=lambda: os.kill(os.getpid(), TWO))
    sender.start()
    try:
        assert inbox.wait() == {TWO}
    finally:
        sender.join()


def test_close_puts_the_earlier_handlers_back() -> None:
    def earlier(_signum: int, _frame: object) -> None:
        pass

    previous = signal.signal(ONE, earlier)
    try:
        SignalInbox((ONE,)).close()
        assert signal.getsignal(ONE) is earlier
    finally:
        signal.signal(ONE, previous)
