"""Work on many files spread over the machine's cores, in forked processes.

The offline ``pin --check`` of a big tree is CPU work in pure Python (reading and scanning
each file), so one process uses one core. Above a number of files where it pays for itself
(``PARALLEL_CHECK_MIN_FILES``), the files are cut into small consecutive chunks, and this
process and a forked child per other core each take the next chunk nobody has taken yet,
until none is left: a process that gets less of the machine (a shared CI runner, a laptop
on battery) takes fewer chunks instead of holding up the others. Each child sends its
results back pickled through a pipe, once it has no more to do. fork, not spawn: a child
starts with pin already imported and the work already defined, for a few milliseconds
instead of a new interpreter's start-up.

Best effort and invisible: where fork is missing or unsafe (another thread is running, as in
a test runner), or a child fails in any way, the chunks it took are worked on here instead,
so the results, and any error, are the same as without it.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pinner.limits import PARALLEL_CHECK_CHUNKS_PER_PROCESS, PARALLEL_CHECK_MAX_PROCESSES

T = TypeVar("T")
R = TypeVar("R")
# A forked child: (pid, read end of its pipe), or None: none could be forked.
_Child = tuple[int, int] | None
# The queue of chunks holds each chunk's number as one byte: a read of one byte takes one
# whole number, whatever the other processes read at the same moment.
_MAX_CHUNKS = 255


def processes_for(items: int, threshold: int) -> int:
    """How many processes (this one included) are worth using for *items* items."""
    if items < threshold:
        return 1
    return max(1, min(usable_processes(), items // max(1, threshold // 2)))


def usable_processes() -> int:
    """One a core, at most PARALLEL_CHECK_MAX_PROCESSES; 1 where fork is missing or unsafe."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, PARALLEL_CHECK_MAX_PROCESSES))


def map_chunks(work: Callable[[Sequence[T]], R], items: Sequence[T], processes: int) -> list[R]:
    """``work(chunk)`` for consecutive chunks of *items*, in order, shared out between this
    process and ``processes - 1`` forked children as each becomes free."""
    count = max(1, min(_MAX_CHUNKS, processes * PARALLEL_CHECK_CHUNKS_PER_PROCESS, len(items)))
    size = max(1, -(-len(items) // count))
    chunks = [items[i : i + size] for i in range(0, len(items), size)] or [items]
    # The queue: a pipe holding every chunk's number, its write end closed, so that a read
    # past the last number answers "no more" (b"") in every process. 255 bytes always fit.
    queue, fill = os.pipe()
    try:
        os.write(fill, bytes(range(len(chunks))))
    finally:
        os.close(fill)
    children: list[_Child] = []
    try:
        children = [_fork(work, chunks, queue) for _ in range(processes - 1)]
        done = _take(work, chunks, queue)
        for index, child in enumerate(children):
            children[index] = None  # reaped by _collect, whatever it says
            done.update(_collect(child))
        # What a failed child had taken, or no child could take.
        return [done[i] if i in done else work(chunk) for i, chunk in enumerate(chunks)]
    finally:
        os.close(queue)
        for child in children:
            _end(child)  # interrupted: stop those still running


def _take(work: Callable[[Sequence[T]], R], chunks: list[Sequence[T]], queue: int) -> dict[int, R]:
    """``work`` for each chunk taken from *queue*, until it is empty: {chunk number: result}."""
    done: dict[int, R] = {}
    while taken := os.read(queue, 1):
        done[taken[0]] = work(chunks[taken[0]])
    return done


def _fork(work: Callable[[Sequence[T]], R], chunks: list[Sequence[T]], queue: int) -> _Child:
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
            # Sent once all is done: the parent reads only when it has no more to do, and a
            # child blocked on a full pipe in the middle would take no more chunks.
            data = pickle.dumps(_take(work, chunks, queue), protocol=pickle.HIGHEST_PROTOCOL)
            view = memoryview(data)
            while view:
                view = view[os.write(write, view) :]
            code = 0
        finally:
            os._exit(code)  # no cleanup of the parent's state: stdio buffers, atexit
    os.close(write)
    return pid, read


def _collect(child: _Child) -> dict[int, Any]:
    """What the child sent, {chunk number: result}; nothing if it failed."""
    if child is None:
        return {}
    pid, read = child
    chunks = []
    try:
        while chunk := os.read(read, 1 << 20):
            chunks.append(chunk)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(read)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return {}
    try:
        sent = pickle.loads(b"".join(chunks))
    except Exception:
        return {}
    return sent if isinstance(sent, dict) else {}


def _end(child: _Child) -> None:
    """Stop and reap a child not collected yet (the parent was interrupted or failed)."""
    if child is None:
        return
    pid, read = child
    os.kill(pid, signal.SIGKILL)  # not reaped yet, so the pid is still this child's
    os.waitpid(pid, 0)
    os.close(read)
