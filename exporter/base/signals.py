"""Signals taken without a lock: handlers note the signal, the main thread acts on it.

A Python signal handler runs on the main thread between two bytecodes, also in the middle of
code that holds a lock, an earlier handler's included. A handler that takes a lock (setting
a `threading.Event` does) can therefore wait for itself for ever when a second signal comes
while the first is being handled: a flood of SIGHUP did that to the daemon. Here a handler
only stores a flag and writes a byte to a pipe; both take no lock and never block.

The pipe is also the interpreter's wake-up fd (`signal.set_wakeup_fd`): a signal the kernel
gives another thread (it does when the main thread has one pending already) runs its Python
handler only once the main thread runs Python again, and the main thread waits in `read()`.
The interpreter's own handler writes to the wake-up fd from whichever thread took the
signal, which ends that wait.
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType


class SignalInbox:
    """The signals that arrived since the last `wait()`, each once however often it came."""

    def __init__(self, signums: tuple[signal.Signals, ...]) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._arrived = dict.fromkeys(signums, False)
        self._previous = {signum: signal.signal(signum, self._handle) for signum in signums}
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self._arrived[signal.Signals(signum)] = True
        # A full pipe holds wake-ups enough: the flag above is what counts. (The wake-up fd
        # has had a byte already, which wait() may have read before this handler ran.)
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"\0")

    def wait(self) -> set[signal.Signals]:
        """Block until a signal has arrived; return those that did, and forget them."""
        while True:
            os.read(self._read, 4096)
            arrived = set()
            for signum, seen in self._arrived.items():
                if seen:  # cleared before it is acted on: one that comes after is kept
                    self._arrived[signum] = False
                    arrived.add(signum)
            if arrived:
                return arrived

    def close(self) -> None:
        """Put the handlers and the wake-up fd found back, and close the pipe."""
        signal.set_wakeup_fd(self._previous_fd)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        os.close(self._read)
        os.close(self._write)
