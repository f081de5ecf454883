"""The files an operator names (the config, a secret, the web config), read as an operator
expects: a regular file or nothing. A FIFO, a device, a socket or a directory is refused at
once, naming the file and what it is; nothing blocks on opening (O_NONBLOCK) and nothing is
read beyond a size cap. Symbolic links are followed as the kernel follows them: at most
MAX_SYMLINKS in one lookup (Linux' MAXSYMLINKS), so a loop is an error, not a hang."""

from __future__ import annotations

import errno
import os
import stat

MAX_SYMLINKS = 40
_CHUNK_BYTES = 64 * 1024
# O_NONBLOCK: opening a FIFO without a writer would otherwise wait for one, forever.
# O_NOCTTY: a terminal named by mistake does not become the process' controlling terminal.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


class UnreadableFile(Exception):
    """A file that cannot be had as a regular file within its size cap; `str()` names the
    file and the reason."""

    def __init__(self, path: str, problem: str, *, os_error: bool = False) -> None:
        self.path = path
        self.problem = problem
        text = f"cannot read {path!r}: {problem}" if os_error else f"{path!r} {problem}"
        super().__init__(text)


def file_kind(mode: int) -> str | None:
    """What a file of this mode is, said for a person, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def show_size(limit: int) -> str:
    """A size cap as people write it: 64 KiB, 1 MiB, else bytes."""
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def _os_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"too many levels of symbolic links (a loop, or more than {MAX_SYMLINKS})"
    return exc.strerror or str(exc)


def _check(path: str, info: os.stat_result, limit: int) -> None:
    kind = file_kind(info.st_mode)
    if kind is not None:
        raise UnreadableFile(path, f"is {kind}, not a regular file")
    if info.st_size > limit:
        raise UnreadableFile(path, f"is larger than {show_size(limit)}")


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int, int, int, int]:
    """What changes when the file at `path` (links followed) is replaced or written: device,
    inode, size, modification and change times. Raises UnreadableFile."""
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UnreadableFile(path, _os_problem(exc), os_error=True) from None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them; raises
    UnreadableFile for anything else (its kind, its size, or the system's reason)."""
    path = os.fspath(path)
    try:
        # Looked at before opening, so that a device is not even opened (opening some has
        # effects); looked at again after, on the descriptor, for what was really opened.
        _check(path, os.stat(path), limit)
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise UnreadableFile(path, _os_problem(exc), os_error=True) from None
    try:
        _check(path, os.fstat(fd), limit)
        parts: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(_CHUNK_BYTES, limit + 1 - size))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise UnreadableFile(path, _os_problem(exc), os_error=True) from None
    finally:
        os.close(fd)
    if size > limit:  # it grew since it was looked at
        raise UnreadableFile(path, f"is larger than {show_size(limit)}")
    return b"".join(parts)
