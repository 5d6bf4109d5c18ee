"""Reading the files pin is given: regular files only, each with a size cap.

A FIFO named ``Dockerfile`` would block a plain ``open()`` forever and a link to
``/dev/zero`` would be read until memory runs out, so a file is opened with
``O_NONBLOCK`` (opening a FIFO then returns at once), checked with ``fstat`` on the open
descriptor (no race with a rename in between) and read to at most its cap plus one byte.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pinner.errors import FileError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_CHUNK = 1024 * 1024


def size_text(size: int) -> str:
    """``4 MiB``, ``64 KiB``, ``100 bytes``: a limit as the README writes it."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _not_regular(path: str | Path, mode: int, remedy: str) -> FileError:
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return FileError(f"{path}: is {kind}, not a regular file; {remedy}")


def read_regular(path: str | Path, limit: int, what: str, remedy: str) -> bytes:
    """The bytes of the regular file *path*, which must be at most *limit* bytes long.

    FileNotFoundError and NotADirectoryError propagate (a missing file means different
    things to different callers); anything else is a FileError naming *path*, *what* it
    should have been, and the *remedy*.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as e:
        try:  # a socket cannot be opened at all (ENXIO): say what it is
            mode = os.stat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode, remedy) from None
        raise FileError(f"{path}: cannot read it ({e.strerror}); {remedy}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode, remedy)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise FileError(f"{path}: cannot read it ({e.strerror}); {remedy}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise FileError(f"{path}: larger than {size_text(limit)}, too big for {what}; {remedy}")
    return b"".join(chunks)
