"""Work on many files spread over the machine's cores, in forked processes.

The offline ``pin --check`` of a big tree is CPU work in pure Python (reading and scanning
each file), so one process uses one core. Above a number of files where it pays for itself
(``PARALLEL_CHECK_MIN_FILES``), the files are cut into contiguous slices: this process works
on the first, a forked child on each other one, and each child sends its results back
pickled through a pipe. fork, not spawn: a child starts with pin already imported and the
work already defined, for a few milliseconds instead of a new interpreter's start-up.

Best effort and invisible: where fork is missing or unsafe (another thread is running, as in
a test runner), or a child fails in any way, its slice is worked on here instead, so the
results, and any error, are the same as without it.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from pinner.limits import PARALLEL_CHECK_MAX_PROCESSES

T = TypeVar("T")
R = TypeVar("R")
# A forked child: (pid, read end of its pipe), or None: none could be forked.
_Child = tuple[int, int] | None


def processes_for(items: int, threshold: int) -> int:
    """How many processes (this one included) are worth using for *items* items."""
    if items < threshold or not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, PARALLEL_CHECK_MAX_PROCESSES, items // max(1, threshold // 2)))


def map_slices(work: Callable[[Sequence[T]], R], items: Sequence[T], processes: int) -> list[R]:
    """``work(slice)`` for *processes* contiguous slices of *items*, in order."""
    size = -(-len(items) // max(1, processes))
    slices = [items[i : i + size] for i in range(0, len(items), size)] or [items]
    children = [_fork(work, part) for part in slices[1:]]
    try:
        results = [work(slices[0])]
        for index, part in enumerate(slices[1:]):
            child, children[index] = children[index], None  # reaped by _collect, whatever it says
            sent = _collect(child)
            results.append(work(part) if sent is _FAILED else sent)  # type: ignore[arg-type]
        return results
    finally:
        for child in children:
            _end(child)  # interrupted: stop those still running


_FAILED = object()


def _fork(work: Callable[[Sequence[T]], R], part: Sequence[T]) -> _Child:
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return None
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(read)
            # A signal ends a child at once; the parent says what it means (pinner.signals).
            for each in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(each, signal.SIG_DFL)
            data = pickle.dumps(work(part), protocol=pickle.HIGHEST_PROTOCOL)
            view = memoryview(data)
            while view:
                view = view[os.write(write, view) :]
            code = 0
        finally:
            os._exit(code)  # no cleanup of the parent's state: stdio buffers, atexit
    os.close(write)
    return pid, read


def _collect(child: _Child) -> object:
    """What the child sent, or _FAILED."""
    if child is None:
        return _FAILED
    pid, read = child
    chunks = []
    try:
        while chunk := os.read(read, 1 << 20):
            chunks.append(chunk)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(read)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return _FAILED
    try:
        return pickle.loads(b"".join(chunks))
    except Exception:
        return _FAILED


def _end(child: _Child) -> None:
    """Stop and reap a child not collected yet (the parent was interrupted or failed)."""
    if child is None:
        return
    pid, read = child
    os.kill(pid, signal.SIGKILL)  # not reaped yet, so the pid is still this child's
    os.waitpid(pid, 0)
    os.close(read)
