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
    """An inbox for SIGUSR1 and SIGUSR2; a wait() that does not return fails the test after
    DEADLINE (SIGALRM interrupts it) instead of hanging the run."""

    def late(_signum: int, _frame: object) -> None:
        raise TimeoutError("wait() did not return")

    box = SignalInbox((ONE, TWO))
    previous = signal.signal(signal.SIGALRM, late)
    signal.alarm(DEADLINE)
    try:
        yield box
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        box.close()


def test_each_signal_is_reported_once_however_often_it_came(inbox: SignalInbox) -> None:
    for _ in range(100):
        signal.raise_signal(ONE)
    signal.raise_signal(TWO)
    assert inbox.wait() == {ONE, TWO}
    signal.raise_signal(TWO)
    assert inbox.wait() == {TWO}


def test_a_flood_beyond_the_pipe_never_blocks_and_loses_no_later_signal(
    inbox: SignalInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    complaints: list[object] = []  # the interpreter's, about a full wake-up fd
    monkeypatch.setattr(sys, "unraisablehook", complaints.append)
    for _ in range(100_000):  # more wake-ups than a pipe holds (64 KiB)
        signal.raise_signal(ONE)
    signal.raise_signal(TWO)  # the stop that follows the flood
    assert inbox.wait() == {ONE, TWO}
    assert complaints == []  # a full pipe is expected in a flood: not a line per signal


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


def test_a_signal_sent_from_another_thread_is_returned(inbox: SignalInbox) -> None:
    sender = threading.Thread(target=lambda: os.kill(os.getpid(), TWO))
    sender.start()
    try:
        assert inbox.wait() == {TWO}
    finally:
        sender.join()


OTHER_THREAD = """
import os, signal, threading
from exporter.base.signals import SignalInbox
inbox = SignalInbox((signal.SIGUSR1,))
main = threading.get_native_id()

def send_once_the_main_thread_waits():
    while True:  # until the main thread is blocked reading the inbox's pipe
        fields = open(f"/proc/self/task/{main}/syscall").read().split()
        if len(fields) > 1 and fields[1] == hex(inbox._read):
            break
    os.kill(os.getpid(), signal.SIGUSR1)

sender = threading.Thread(target=send_once_the_main_thread_waits)
sender.start()  # started before the mask below: the kernel gives it the signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
print(sorted(s.name for s in inbox.wait()))
"""


def test_a_signal_another_thread_takes_still_ends_the_wait() -> None:
    """The kernel gives a process signal to any thread that does not block it (the daemon's
    main thread has one pending during a flood). Its Python handler waits for the main
    thread, which waits in read(): only the interpreter's wake-up fd ends that wait. In a
    child process, so that a wait that never ends fails the test instead of hanging it."""
    done = subprocess.run(
        [sys.executable, "-c", OTHER_THREAD], capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['SIGUSR1']"]


def test_close_puts_the_earlier_handlers_back() -> None:
    def earlier(_signum: int, _frame: object) -> None:
        pass

    previous = signal.signal(ONE, earlier)
    try:
        before = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(before)
        SignalInbox((ONE,)).close()
        assert signal.getsignal(ONE) is earlier
        assert signal.set_wakeup_fd(before) == before  # the wake-up fd found is back
    finally:
        signal.signal(ONE, previous)
