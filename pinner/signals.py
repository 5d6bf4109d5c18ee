"""What SIGINT, SIGTERM and SIGHUP do to a run: stop it the way Ctrl-C does.

CI cancels a job with SIGTERM, a closed terminal sends SIGHUP. Each stops pin with exit code
128 + its number, as a shell reports a process a signal ended (130, 143, 129), and never
half-way through writing a set of files:

- in plain code (finding files, scanning, printing) the signal raises :class:`Interrupted`;
- while the registries are asked, it cancels the asyncio tasks, which unwind and close their
  connections, and then raises :class:`Interrupted` (asyncio.Runner does this for SIGINT;
  an exception raised at an arbitrary point inside the event loop would leave coroutines
  never awaited);
- while files are written, it is held (:func:`held`) and the writer looks at it between
  files (see :mod:`pinner.write`).

A second signal, once pin is stopping, ends it at once, as it would any program.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
T = TypeVar("T")

# Signals that reached the handler while held: pthread_sigmask blocks them on this thread
# only, and one delivered to another thread (rich's progress bar refreshes on one) still
# runs the handler here.
_held: list[int] | None = None


class Interrupted(KeyboardInterrupt):
    """A signal stopped the run; a KeyboardInterrupt, so that all that handles Ctrl-C copes."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stop(signum: int) -> Interrupted:
    """The exception that stops the run; from now on, a second signal ends it at once."""
    if _main_thread():
        for each in SIGNALS:
            signal.signal(each, signal.SIG_DFL)
    return Interrupted(signum)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _held is not None:
        _held.append(signum)
        return
    raise stop(signum)


def _main_thread() -> bool:
    # Only the main thread may set handlers, and only it runs them.
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def interrupting() -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted`."""
    if not _main_thread():
        yield
        return
    previous = {each: signal.getsignal(each) for each in SIGNALS}
    for each in SIGNALS:
        signal.signal(each, _on_signal)
    try:
        yield
    finally:
        _restore(previous)


def _restore(handlers: dict[signal.Signals, Any]) -> None:
    for each, handler in handlers.items():
        if handler is not None:  # None: set outside Python, cannot be restored
            signal.signal(each, handler)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, where a signal cancels *main* and then raises Interrupted."""
    import asyncio

    with asyncio.Runner() as runner:
        loop = runner.get_loop()
        task = loop.create_task(main)
        arrived: list[int] = []

        def cancel(signum: int) -> None:
            if arrived:  # a second signal while the tasks unwind: stop at once
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)
            arrived.append(signum)
            task.cancel()

        previous = {each: signal.getsignal(each) for each in SIGNALS}
        listening = _main_thread()
        if listening:
            for each in SIGNALS:
                loop.add_signal_handler(each, cancel, each)
        try:
            result = runner.run(_wait(task))
        except asyncio.CancelledError:
            if not arrived:
                raise
        finally:
            if listening:
                _stop_listening(runner, previous)
        if arrived:  # also one that came with the task's last step, or just after it
            raise stop(arrived[0])
        return result


def _stop_listening(runner: asyncio.Runner, previous: dict[signal.Signals, Any]) -> None:
    """Hand the signals back to *previous* without losing one that arrived as the task ended.

    The loop learns of a signal through its self-pipe, on its next turn: one that came after
    its last turn would be dropped with the loop's handlers. So the signals are blocked, the
    loop turned once more to read the pipe, the handlers restored, and only then the signals
    unblocked: one held meanwhile goes to the restored handler.
    """
    loop = runner.get_loop()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        runner.run(_turns(2))  # the pipe read in the first, the handler run by the second
        for each in SIGNALS:
            loop.remove_signal_handler(each)
        _restore(previous)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


async def _turns(count: int) -> None:
    import asyncio

    for _ in range(count):
        await asyncio.sleep(0)


async def _wait(task: asyncio.Task[T]) -> T:
    return await task


@contextlib.contextmanager
def held() -> Iterator[Callable[[], int | None]]:
    """Hold the signals back; yield a function that says which arrived (and consumes it)."""
    global _held
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    _held = []

    def arrived() -> int | None:
        taken = list(_held or [])
        # sigwait returns at once for a pending signal, and takes it off the pending set.
        taken += [signal.sigwait({each}) for each in sorted(signal.sigpending() & set(SIGNALS))]
        if _held:
            _held.clear()
        return taken[0] if taken else None

    try:
        yield arrived
    finally:
        _held = None
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
