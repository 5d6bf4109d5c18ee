"""Signals sent to the installed ``pin`` at each phase of a many-file run.

CI cancels a job with SIGTERM, a closed terminal sends SIGHUP, a person presses Ctrl-C.
Whenever it comes, the files afterwards are all pinned or all as they were, byte for byte,
no temporary file is left, and the exit code is 128 + the signal's number.

To know which phase a signal met, the test freezes ``pin`` with SIGSTOP at the moment it
sees the phase begin, looks at the files, sends the signal, and lets ``pin`` go on with
SIGCONT: the signal is then delivered in exactly the state the test saw.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import PYTHON_NEW, mirror
from tests.fakeregistry import FakeRegistry

FILES = 500
IMAGE = "cgr.dev/chainguard/python:latest"
BEFORE = f"FROM {IMAGE}\nRUN make\n"
AFTER = f"FROM {IMAGE}@{PYTHON_NEW}\nRUN make\n"
DEADLINE = 60.0  # seconds any one wait below may take; each loop stops by itself


def many_dockerfiles(folder: Path) -> list[Path]:
    paths = [folder / f"svc{i:04d}.Dockerfile" for i in range(FILES)]
    for path in paths:
        path.write_text(BEFORE)
    return paths  # sorted: pin stages and renames them in this order


def temp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".pin")]


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert process.poll() is None, "pin ended before the phase under test"
        assert time.monotonic() < deadline, "the phase under test never began"
        time.sleep(0.001)


@contextmanager
def pin_running(
    pin_command: str, registry: FakeRegistry, folder: Path, *more: str
) -> Iterator[Pinning]:
    process = subprocess.Popen(
        [pin_command, *mirror(registry), *more, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield Pinning(process)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=DEADLINE)


class Pinning:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.stdout = ""

    def signal_frozen(self, signum: int) -> tuple[int, str]:
        """Send *signum* to the stopped process, let it go on; its exit code and stderr."""
        self.process.send_signal(signum)
        self.process.send_signal(signal.SIGCONT)
        self.stdout, stderr = self.process.communicate(timeout=DEADLINE)
        return self.process.returncode, stderr


def contents(paths: list[Path]) -> set[str]:
    return {path.read_text() for path in paths}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_resolving_writes_nothing(
    cgr: FakeRegistry, tmp_path: Path, pin_command: str, signum: int
) -> None:
    cgr.delay(30, times=10, path_contains="/_chainguard/history/")
    paths = many_dockerfiles(tmp_path)
    with pin_running(pin_command, cgr, tmp_path, "--json") as pinning:
        wait_until(lambda: bool(cgr.requests_to("/_chainguard/history/")), pinning.process)
        pinning.process.send_signal(signal.SIGSTOP)
        code, stderr = pinning.signal_frozen(signum)
    name = signal.Signals(signum).name
    assert code == 128 + signum
    assert stderr.splitlines() == [f"pin: interrupted ({name}); nothing was written"]
    document = json.loads(pinning.stdout)  # scripts get a document all the same
    assert (document["exit_code"], document["written"]) == (128 + signum, False)
    assert contents(paths) == {BEFORE}
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_staging_writes_nothing_and_leaves_no_temp_file(
    cgr: FakeRegistry, tmp_path: Path, pin_command: str, signum: int
) -> None:
    paths = many_dockerfiles(tmp_path)
    with pin_running(pin_command, cgr, tmp_path) as pinning:
        wait_until(lambda: bool(temp_files(tmp_path)), pinning.process)
        pinning.process.send_signal(signal.SIGSTOP)
        assert temp_files(tmp_path), "frozen while staging"
        assert contents(paths) == {BEFORE}
        code, stderr = pinning.signal_frozen(signum)
    name = signal.Signals(signum).name
    assert code == 128 + signum
    assert stderr.splitlines() == [f"pin: interrupted ({name}); nothing was written"]
    assert contents(paths) == {BEFORE}
    assert temp_files(tmp_path) == []


def test_a_signal_during_the_renames_lets_them_finish_as_a_set(
    cgr: FakeRegistry, tmp_path: Path, pin_command: str
) -> None:
    paths = many_dockerfiles(tmp_path)
    first = paths[0]
    # The renames of 1,000 files take a few milliseconds; should this run be frozen just
    # after them, try again: the point is to send SIGTERM when some files are written and
    # others not.
    attempts = 3
    for _ in range(attempts):
        for path in paths:
            path.write_text(BEFORE)
        with pin_running(pin_command, cgr, tmp_path) as pinning:
            wait_until(lambda: first.read_text() != BEFORE, pinning.process)
            pinning.process.send_signal(signal.SIGSTOP)
            seen = [path.read_text() for path in paths]
            code, stderr = pinning.signal_frozen(signal.SIGTERM)
        assert set(contents(paths)) == {AFTER}, stderr
        assert temp_files(tmp_path) == []
        if AFTER in seen and BEFORE in seen:  # frozen half-way through the renames
            assert code == 143, stderr
            assert stderr.splitlines()[-1] == (
                "pin: interrupted (SIGTERM) while writing; the renames had begun, so every"
                " file was written"
            )
            assert f"pin: pinned 1 image ({FILES} places) in {FILES} files" in stderr
            return
        # Frozen after the write stage: 143 (or 0 if pin was done), saying it wrote them.
        assert code in (0, 143), stderr
        assert "nothing was written" not in stderr
    pytest.fail(f"not once in {attempts} runs was pin frozen during its renames")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_that_comes_as_the_lookups_end_still_stops_the_run(signum: int) -> None:
    """The last lookup answers, and CI's SIGTERM arrives in the same instant: pin must stop
    (nothing is written after it), not carry on to write the files as if it had not come."""
    from pinner.signals import Interrupted, run_async

    async def last_step() -> str:
        os.kill(os.getpid(), signum)  # as the task's last step: the loop has not read it yet
        return "resolved"

    handlers = {
        each: signal.getsignal(each) for each in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        with pytest.raises(Interrupted) as stopped:
            run_async(last_step())
        assert stopped.value.signum == signum
    finally:
        for each, handler in handlers.items():
            signal.signal(each, handler)
