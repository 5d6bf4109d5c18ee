"""Shared fixtures: loopback registries, an isolated environment, and a way to run ``pin``."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pinner.cli import main
from tests.distribution import Distribution, running_distribution
from tests.fakeregistry import FakeRegistry, running_registry

PYTHON_OLD = "sha256:81c334de6dd4583897f9e8d0691cbb75ad41613474360740824d8a7fa6a8fecb"
PYTHON_NEW = "sha256:a8724b7a80cae14263a3b55f7acb5d195fcbb24afbc8067aa5198aa2a9131cde"


@pytest.fixture(autouse=True)
def isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No test reads the developer's registry credentials, or runs in GitHub's annotation mode."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "DOCKER_CONFIG",
        "DOCKER_AUTH_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "GITHUB_ACTIONS",
        "NO_COLOR",
        "FORCE_COLOR",
        *(f"PIN_{name}" for name in ("MIRROR", "ONLY", "EXCLUDE", "DIGEST_ONLY", "TIMEOUT")),
        "PIN_SKIP_NO_HISTORY",
        "PIN_PLATFORM",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def cgr() -> Iterator[FakeRegistry]:
    """A fake cgr.dev holding the seed history of chainguard/python:latest."""
    with running_registry() as registry:
        registry.load_fixture("python-latest.json")
        yield registry


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[Distribution]:
    """The real CNCF distribution registry on loopback, without auth."""
    with running_distribution(tmp_path) as registry:
        yield registry


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def run_pin(*args: str | Path) -> Ran:
    """Run ``pin`` in-process as the console script does (pinner.cli reads a plain command
    line itself, typer the rest), with stdin empty and stdout and stderr captured."""
    with CliRunner().isolation() as (stdout, stderr, _):
        code = main([str(a) for a in args])
        sys.stdout.flush()
        sys.stderr.flush()
        return Ran(code, _text(stdout.getvalue()), _text(stderr.getvalue()))


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\r\n", "\n")  # as typer's Result does


def dockerfile(tmp_path: Path, text: str | bytes, name: str = "Dockerfile") -> Path:
    """A file *name* in *tmp_path* holding exactly *text* (UTF-8 when it is a str)."""
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def error_lines(stderr: str) -> list[str]:
    """The lines of *stderr* that report an error."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def mirror(registry: FakeRegistry | Distribution, host: str = "cgr.dev") -> list[str]:
    return ["--mirror", f"{host}={registry.url}"]


@pytest.fixture(scope="session")
def pin_command() -> str:
    """The console script pip installed: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("pin")
    found = str(beside) if beside.is_file() else shutil.which("pin")
    if found is None:
        pytest.fail("no `pin` command: install the project first, pip install -e '.[test]'")
    return found


def imported_by_main(args: list[str], modules: tuple[str, ...]) -> tuple[int, list[str], str]:
    """Run ``pinner.cli.main(args)`` in a fresh interpreter: its exit code, which of *modules*
    it imported (start-up cost is what is not loaded), and its stderr."""
    code = (
        "import sys\nfrom pinner.cli import main\n"
        f"rc = main({args!r})\n"
        f"print(rc, *sorted(m for m in {modules!r} if m in sys.modules))\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rc, *loaded = ran.stdout.split()
    return int(rc), loaded, ran.stderr


def interrupted_while(argv: list[str], waiting: Callable[[], bool]) -> tuple[int, str]:
    """Run *argv*, send it SIGINT once *waiting()* holds (or after 10 s) and a little more:
    its exit status and its stderr. With a deadline of a minute in *argv*, a run that waited
    for whatever hangs to give up would not end within the 20 s it is given."""
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as process:
        deadline = time.monotonic() + 10
        while not waiting() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the run is waiting on it by now
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    return process.returncode, stderr
