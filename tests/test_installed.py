"""The installed ``pin`` command, run as a user runs it: a real process against a fake cgr.dev."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import PYTHON_NEW, mirror
from tests.fakeregistry import FakeRegistry

PYTHON = "cgr.dev/chainguard/python:latest"


def run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_pins_a_file(pin_command: str, cgr: FakeRegistry, tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {PYTHON} AS build\nRUN make\n")
    done = run(pin_command, *mirror(cgr), "Dockerfile", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert path.read_text() == f"FROM {PYTHON}@{PYTHON_NEW} AS build\nRUN make\n"
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1] == "pin: pinned 1 image in 1 file"


def test_check_exit_codes(pin_command: str, tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {PYTHON}\n")
    done = run(pin_command, "--check", cwd=tmp_path)  # no PATH: the current directory
    assert done.returncode == 1, done.stderr
    assert f"Dockerfile:1: {PYTHON} is not pinned" in done.stderr
    assert path.read_text() == f"FROM {PYTHON}\n"
    path.write_text(f"FROM {PYTHON}@{PYTHON_NEW}\n")
    done = run(pin_command, "--check", "Dockerfile", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr


def test_version(pin_command: str, tmp_path: Path) -> None:
    done = run(pin_command, "--version", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"pin {version('pinner')}\n")


def test_help_explains_the_exit_codes(pin_command: str, tmp_path: Path) -> None:
    done = run(pin_command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # the help is wrapped to the terminal's width
    assert text.startswith("Usage: pin [OPTIONS] [PATH]")
    assert "[[" not in text
    assert "Exit codes: 0 done or nothing to do, 1 " in text
    assert "2 error" in text
    for option in ("--check", "--diff", "--update", "--before", "--verify", "--history"):
        assert option in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-such-option"], "No such option"),
        (["--verify", "--update", "Dockerfile"], "error: --verify"),
    ],
)
def test_errors_exit_2_without_a_traceback(
    pin_command: str, tmp_path: Path, argv: list[str], message: str
) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {PYTHON}\n")
    done = run(pin_command, *argv, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert (tmp_path / "Dockerfile").read_text() == f"FROM {PYTHON}\n"


def test_python_dash_m_pinner(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {PYTHON}\n")
    done = run(sys.executable, "-m", "pinner", "--check", path, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"{path}:1: {PYTHON} is not pinned" in done.stderr
