"""What a person at a terminal sees: colour, and a progress bar when resolving takes a while."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import mirror, run_pin
from tests.fakeregistry import FakeRegistry

ESC = "\x1b["


@pytest.mark.parametrize(
    ("env", "flags", "coloured"),
    [
        ({}, [], False),
        ({"FORCE_COLOR": "1"}, [], True),
        ({"NO_COLOR": "1"}, [], False),
        ({}, ["--color"], True),
        ({"NO_COLOR": "1"}, ["--color"], True),
        ({"FORCE_COLOR": "1"}, ["--no-color"], False),
    ],
)
def test_colour_only_where_asked_for(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    flags: list[str],
    coloured: bool,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "Dockerfile"
    path.write_text("FROM cgr.dev/chainguard/python:latest\n")
    ran = run_pin("--check", *flags, path)
    assert ran.code == 1
    assert (ESC in ran.stderr) is coloured
    assert "is not pinned" in ran.stderr


def stderr_on_a_terminal(pin_command: str, args: list[str], term: str = "xterm") -> bytes:
    """Run the installed ``pin`` with its stderr on a pseudo-terminal; what it wrote there."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    with subprocess.Popen(
        [pin_command, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**env, "TERM": term, "COLUMNS": "100"},
    ) as process:
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=60)
    os.close(master)
    return b"".join(chunks)


def test_no_colour_on_a_dumb_terminal(tmp_path: Path, pin_command: str) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM cgr.dev/chainguard/python:latest\n")
    assert ESC.encode() in stderr_on_a_terminal(pin_command, ["--check", str(path)])
    shown = stderr_on_a_terminal(pin_command, ["--check", str(path)], term="dumb")
    assert b"is not pinned" in shown
    assert ESC.encode() not in shown


def test_the_diff_is_coloured_only_when_asked_for(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM cgr.dev/chainguard/python:latest\n")
    plain = run_pin(*mirror(cgr), "--diff", path).stdout
    assert ESC not in plain
    coloured = run_pin(*mirror(cgr), "--diff", "--color", path).stdout
    assert f"{ESC}31m-FROM cgr.dev/chainguard/python:latest{ESC}0m\n" in coloured
    assert f"{ESC}32m+FROM cgr.dev/chainguard/python:latest@sha256:" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_quiet_says_only_what_failed(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM cgr.dev/chainguard/python:latest AS a\nFROM scratch\n")
    ran = run_pin("--check", "-q", path)
    assert ran.code == 1
    assert ran.stderr == f"{path}:1: cgr.dev/chainguard/python:latest is not pinned\n"
    ran = run_pin(*mirror(cgr), "--quiet", path)
    assert (ran.code, ran.stderr) == (0, "")
    assert "@sha256:" in path.read_text()
    ran = run_pin("--check", "-q", path)
    assert (ran.code, ran.stderr) == (0, "")


def test_a_slow_resolution_shows_a_progress_bar_on_a_terminal_only(
    cgr: FakeRegistry, tmp_path: Path, pin_command: str
) -> None:
    names = [f"chainguard/slow{i}" for i in range(16)]
    for name in names:
        cgr.add_nightly(name, "latest", 2, datetime.now(UTC) - timedelta(days=1))
    # Longer than the bar waits before it shows (0.5 s): the 16 lookups go out together.
    cgr.delay(0.8, times=1000, path_contains="/_chainguard/history/")
    path = tmp_path / "Dockerfile"
    path.write_text("".join(f"FROM cgr.dev/{n}:latest\n" for n in names))
    shown = stderr_on_a_terminal(pin_command, [*mirror(cgr), "--check", "--update", str(path)])
    assert b"resolving" in shown
    assert ESC.encode() in shown  # colour on a terminal
    piped = subprocess.run(
        [pin_command, *mirror(cgr), "--check", "--update", str(path)],
        capture_output=True,
        check=False,
    )
    assert piped.returncode == 1
    assert b"resolving" not in piped.stderr
    assert ESC.encode() not in piped.stderr


def test_ctrl_c_while_resolving_exits_130_and_writes_nothing(
    cgr: FakeRegistry, tmp_path: Path, pin_command: str
) -> None:
    import signal
    import time

    cgr.delay(5, times=10, path_contains="/_chainguard/history/")
    path = tmp_path / "Dockerfile"
    path.write_text("FROM cgr.dev/chainguard/python:latest\n")
    with subprocess.Popen(
        [pin_command, *mirror(cgr), str(path)], stderr=subprocess.PIPE, text=True
    ) as process:
        deadline = time.monotonic() + 10
        while not cgr.requests_to("/_chainguard/history/") and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "pin: interrupted (SIGINT); nothing was written"
    assert "Traceback" not in stderr
    assert path.read_text() == "FROM cgr.dev/chainguard/python:latest\n"


def test_shell_completion_completes_options(pin_command: str) -> None:
    script = subprocess.run(
        [pin_command, "--show-completion", "bash"], capture_output=True, text=True, check=False
    )
    assert script.returncode == 0
    assert "complete" in script.stdout and "_PIN_COMPLETE" in script.stdout
    env = {
        **os.environ,
        "_PIN_COMPLETE": "complete_bash",
        "COMP_WORDS": "pin --che",
        "COMP_CWORD": "1",
    }
    completed = subprocess.run([pin_command], env=env, capture_output=True, text=True, check=False)
    assert completed.stdout.split() == ["--check"]


def test_one_slow_image_shows_what_pin_waits_on_while_it_waits(
    cgr: FakeRegistry, tmp_path: Path, pin_command: str
) -> None:
    # One image: nothing finishes until the end, so only a display that moves while it waits
    # shows anything at all.
    cgr.delay(1.5, times=5, path_contains="/_chainguard/history/")
    path = tmp_path / "Dockerfile"
    path.write_text("FROM cgr.dev/chainguard/python:latest\n")
    args = [*mirror(cgr), "--check", "--update", str(path)]
    shown = stderr_on_a_terminal(pin_command, args)
    assert b"resolving: waiting on cgr.dev/chainguard/python" in shown
    piped = subprocess.run([pin_command, *args], capture_output=True, check=False)
    assert piped.returncode == 1
    assert b"waiting" not in piped.stderr
    assert b"resolving" not in piped.stderr
    assert ESC.encode() not in piped.stderr
