"""Strange files: FIFOs, devices, sockets, huge and read-only files, hostile config files.

Anything that could hang or exhaust memory if pin regressed runs as a real ``pin``
process with a timeout, so that a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinner.limits import MAX_CONFIG_BYTES, MAX_DOCKERFILE_BYTES
from tests.conftest import PYTHON_NEW, mirror, run_pin
from tests.fakeregistry import FakeRegistry

PYTHON = "cgr.dev/chainguard/python:latest"
UNPINNED = f"FROM {PYTHON}\n"
PINNED = f"FROM {PYTHON}@{PYTHON_NEW}\n"
BOUND = 30  # seconds: far beyond what any of these runs takes, yet a hang fails


def pin_process(pin_command: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [pin_command, *map(str, args)], capture_output=True, text=True, timeout=BOUND, check=False
    )


def peak_rss(pin_command: str, *args: str | Path) -> tuple[int, int]:
    """Exit code and peak resident memory (bytes) of ``pin`` run in a fresh parent process.

    RUSAGE_CHILDREN of a parent whose only child is ``pin``: this test process has had
    larger children (the registries) that would hide it.
    """
    script = (
        "import resource, subprocess, sys\n"
        "code = subprocess.run(sys.argv[1:], capture_output=True, timeout=120).returncode\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, pin_command, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=150,
        check=True,
    )
    code, kib = done.stdout.split()
    return int(code), int(kib) * 1024  # ru_maxrss is in KiB on Linux


@pytest.fixture(scope="module")
def baseline_rss(pin_command: str, tmp_path_factory: pytest.TempPathFactory) -> int:
    path = tmp_path_factory.mktemp("baseline") / "Dockerfile"
    path.write_text(PINNED)
    code, rss = peak_rss(pin_command, "--check", path)
    assert code == 0
    return rss


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sock.Dockerfile"
    # AF_UNIX paths are short (108 bytes): bind from inside the folder.
    here = os.getcwd()
    os.chdir(tmp_path)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(path.name)
    finally:
        os.chdir(here)
    yield path
    server.close()


def strange_file(kind: str, path: Path) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")


KINDS = {"fifo": "a named pipe (FIFO)", "zero": "a character device"}


# -- Dockerfiles -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "zero", "socket"])
def test_a_named_file_that_is_not_regular_is_one_error(
    pin_command: str, cgr: FakeRegistry, tmp_path: Path, unix_socket: Path, kind: str
) -> None:
    good = tmp_path / "Dockerfile"
    good.write_text(UNPINNED)
    if kind == "socket":
        strange, described = unix_socket, "a socket"
    else:
        strange, described = tmp_path / "strange.Dockerfile", KINDS[kind]
        strange_file(kind, strange)
    done = pin_process(pin_command, *mirror(cgr), good, strange)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {strange}: is {described}, not a regular file; leave it out of the run",
        "pin: nothing was written",
    ]
    assert good.read_text() == UNPINNED


def test_a_searched_folder_passes_over_files_that_are_not_regular(
    pin_command: str, tmp_path: Path, unix_socket: Path
) -> None:
    (tmp_path / "a").mkdir()
    strange_file("fifo", tmp_path / "a" / "Dockerfile")
    (tmp_path / "b").mkdir()
    strange_file("zero", tmp_path / "b" / "Dockerfile")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "Dockerfile").symlink_to(tmp_path / "nowhere")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "Dockerfile").write_text(UNPINNED)
    done = pin_process(pin_command, "--check", tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"{tmp_path / 'd' / 'Dockerfile'}:1: {PYTHON} is not pinned",
        "pin: 1 image in 1 file would change; run `pin` to fix it",
    ]
    assert unix_socket.exists()  # it was there, and passed over too


def test_a_huge_file_is_refused_without_reading_it(
    pin_command: str, tmp_path: Path, baseline_rss: int
) -> None:
    path = tmp_path / "Dockerfile"
    with path.open("wb") as f:  # 200 MB, sparse: cheap to make, dear to read whole
        f.write(UNPINNED.encode())
        f.truncate(200 * 1000 * 1000)
    code, rss = peak_rss(pin_command, "--check", path)
    assert code == 2
    assert rss < baseline_rss + 4 * MAX_DOCKERFILE_BYTES
    done = pin_process(pin_command, "--check", path)
    assert done.stderr.splitlines() == [
        f"error: {path}: larger than 4 MiB, too big for a Dockerfile; leave it out of the run",
        "pin: nothing was written",
    ]


def test_a_file_at_the_cap_is_read(pin_command: str, tmp_path: Path, baseline_rss: int) -> None:
    path = tmp_path / "Dockerfile"
    comment = b"# a comment, as long as a line of a real Dockerfile tends to be\n"
    body = comment * ((MAX_DOCKERFILE_BYTES - len(UNPINNED)) // len(comment))
    padding = b"#" * (MAX_DOCKERFILE_BYTES - len(body) - len(UNPINNED))
    path.write_bytes(body + UNPINNED.encode() + padding)
    assert path.stat().st_size == MAX_DOCKERFILE_BYTES
    code, rss = peak_rss(pin_command, "--check", path)
    assert code == 1
    assert rss < baseline_rss + 16 * MAX_DOCKERFILE_BYTES


def test_memory_grows_in_proportion_to_the_input(
    pin_command: str, tmp_path: Path, baseline_rss: int
) -> None:
    # Instructions are what the scanner spends most on: about 80 bytes of memory per byte
    # of them (README, Limits). 256 KiB keeps the test quick; the ratio is the point.
    path = tmp_path / "Dockerfile"
    line = f"FROM {PYTHON} AS build\nRUN make && make install\n"
    path.write_text(line * (256 * 1024 // len(line)))
    code, rss = peak_rss(pin_command, "--check", path)
    assert code == 1
    assert rss - baseline_rss < 128 * path.stat().st_size


# -- read-only files -------------------------------------------------------------------------


def test_a_read_only_file_that_would_change_is_refused(cgr: FakeRegistry, tmp_path: Path) -> None:
    writable, read_only = tmp_path / "a.Dockerfile", tmp_path / "b.Dockerfile"
    writable.write_text(UNPINNED)
    read_only.write_text(UNPINNED)
    read_only.chmod(0o444)
    ran = run_pin(*mirror(cgr), writable, read_only)
    assert ran.code == 2  # as root too: the mode bits decide, not os.access
    assert ran.stderr.splitlines() == [
        f"error: {read_only}: is read-only; make it writable (chmod u+w) or leave it out of the"
        " run",
        "pin: nothing was written",
    ]
    assert (writable.read_text(), read_only.read_text()) == (UNPINNED, UNPINNED)
    assert sorted(os.listdir(tmp_path)) == ["a.Dockerfile", "b.Dockerfile"]
    # Reading is fine: --check and --diff write nothing; a file that stays as it is is fine.
    assert run_pin("--check", read_only).code == 1
    diff = run_pin(*mirror(cgr), "--diff", read_only)
    assert diff.code == 0
    assert f"+FROM {PYTHON}@{PYTHON_NEW}" in diff.stdout
    read_only.chmod(0o644)
    read_only.write_text(PINNED)
    read_only.chmod(0o444)
    assert run_pin(*mirror(cgr), writable, read_only).code == 0
    assert writable.read_text() == PINNED


# -- credentials files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "kind"), [("docker", "fifo"), ("docker", "zero"), ("podman", "fifo")]
)
def test_a_config_file_that_is_not_regular_is_one_error(
    pin_command: str,
    cgr: FakeRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    where: str,
) -> None:
    config = tmp_path / "auth.json" if where == "podman" else Path.home() / ".docker/config.json"
    config.parent.mkdir(exist_ok=True)
    strange_file(kind, config)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(config))
    path = tmp_path / "Dockerfile"
    path.write_text(UNPINNED)
    done = pin_process(pin_command, *mirror(cgr), path)
    assert done.returncode == 2
    [error, nothing] = done.stderr.splitlines()
    assert error.startswith(f"error: {path}:1: {PYTHON}: ")
    assert error.endswith(f"{config}: is {KINDS[kind]}, not a regular file; fix or remove it")
    assert nothing == "pin: nothing was written"
    assert path.read_text() == UNPINNED


NESTED = "[" * 100_000 + "]" * 100_000
HUGE = json.dumps({"auths": {}, "padding": "x" * MAX_CONFIG_BYTES})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (NESTED, "JSON nested too deeply to be a registry config"),
        (HUGE, "larger than 1 MiB, too big for a registry config"),
    ],
    ids=["nested", "huge"],
)
@pytest.mark.parametrize("where", ["file", "DOCKER_AUTH_CONFIG"])
def test_a_config_too_big_or_too_deep_is_one_error(
    cgr: FakeRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: str,
    message: str,
    where: str,
) -> None:
    if where == "file":
        config = Path.home() / ".docker/config.json"
        config.parent.mkdir()
        config.write_text(content)
        origin, remedy = str(config), "fix or remove it"
    else:
        monkeypatch.setenv("DOCKER_AUTH_CONFIG", content)
        origin, remedy = "DOCKER_AUTH_CONFIG", "fix or unset it"
    path = tmp_path / "Dockerfile"
    path.write_text(UNPINNED)
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 2
    assert ran.stderr.splitlines() == [
        f"error: {path}:1: {PYTHON}: {origin}: {message}; {remedy}",
        "pin: nothing was written",
    ]
    assert path.read_text() == UNPINNED


# -- credential helpers ----------------------------------------------------------------------


def write_helper(folder: Path, name: str, script: str) -> dict[str, str]:
    """An executable ``docker-credential-<name>`` configured for cgr.dev; the env to find it."""
    helper = folder / f"docker-credential-{name}"
    helper.write_text(f"#!/bin/sh\n{script}")
    helper.chmod(0o755)
    config = Path.home() / ".docker/config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"credHelpers": {"cgr.dev": name}}))
    return {"HOME": str(Path.home()), "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie, dead and waiting to be reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_helper_that_times_out_is_killed_with_its_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pinner import credentials
    from pinner.errors import AuthError

    monkeypatch.setattr(credentials, "HELPER_TIMEOUT_SECONDS", 0.5)
    pids = tmp_path / "pids"
    env = write_helper(
        tmp_path, "stuck", f"sleep 300 &\necho $! > {pids}\necho $$ >> {pids}\nsleep 300\n"
    )
    with pytest.raises(AuthError, match=r"docker-credential-stuck .* did not answer"):
        credentials.find_credential("cgr.dev", "chainguard/python", env=env)
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not [pid for pid in started if alive(pid)]


def test_a_helper_printing_without_end_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pinner import credentials
    from pinner.errors import AuthError

    env = write_helper(tmp_path, "endless", "exec yes\n")
    started = time.monotonic()
    with pytest.raises(AuthError) as caught:
        credentials.find_credential("cgr.dev", "chainguard/python", env=env)
    assert str(caught.value) == (
        f"credential helper docker-credential-endless (from {Path.home()}/.docker/config.json)"
        " printed more than 1 MiB; check the helper"
    )
    assert time.monotonic() - started < credentials.HELPER_TIMEOUT_SECONDS  # not the timeout


# -- what is printed for people --------------------------------------------------------------

CONTROLS = "".join(map(chr, [*range(0x20), 0x7F, *range(0x80, 0xA0)]))


def test_control_characters_from_a_file_reach_no_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "evil\x1b]0;owned\x07.Dockerfile"
    # Skipped references print their text; ESC, CSI (8-bit, as UTF-8), BEL, CR and backspace.
    hostile = "${X}\x1b[2J\u009b31m\x07\r\x08"
    path.write_bytes(f"FROM {hostile}\nFROM {PYTHON}\n".encode())
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    ran = run_pin("--check", "--json", path)
    assert ran.code == 1
    lines = ran.stderr.splitlines()
    assert not [line for line in lines if set(line) & set(CONTROLS)]
    escaped = "evil\\x1b]0;owned\\x07.Dockerfile"
    assert f"{escaped}:1: skipped ${{X}}\\x1b[2J\\x9b31m\\x07\\x0d\\x08: " in ran.stderr
    assert any(line.startswith("::error file=") and escaped in line for line in lines)
    # JSON keeps the text exactly, every control character as an escape.
    assert not set(ran.stdout) & set(CONTROLS.replace("\n", ""))
    [skipped, _] = json.loads(ran.stdout)["references"]
    assert (skipped["file"], skipped["image"]) == (str(path), hostile)


def test_a_diff_for_a_terminal_escapes_the_files_controls_and_a_piped_one_keeps_them(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "Dockerfile"
    data = f"FROM {PYTHON}\r\nRUN echo \x1b[2J\rok\t\u009b\r\n".encode()
    path.write_bytes(data)

    def diff(*more: str) -> bytes:
        done = subprocess.run(
            [sys.executable, "-m", "pinner", *mirror(cgr), "--diff", *more, str(path)],
            capture_output=True,
            timeout=BOUND,
            check=True,
        )
        return done.stdout

    plain = re.sub("\x1b\\[[0-9;]*m", "", diff("--color").decode())  # less the diff's colours
    assert " RUN echo \\x1b[2J\\x0dok\t\\x9b\r\n" in plain
    assert not set(plain) & set(CONTROLS.replace("\n", "").replace("\t", "").replace("\r", ""))
    piped = diff()
    assert b" RUN echo \x1b[2J\rok\t\xc2\x9b\r\n" in piped  # data: git apply takes it


# -- malformed references --------------------------------------------------------------------

MALFORMED = [
    ("cgr.dev/chainguard/python:latest@sha256:short", "'sha256:short' is not a valid digest"),
    ("alpine@sha256:abc", "'sha256:abc' is not a valid digest"),
    ("Python:3", "'Python:3' is not a valid image reference"),
]


@pytest.mark.parametrize(("reference", "why"), MALFORMED)
@pytest.mark.parametrize("mode", [["--check"], [], ["--diff"], ["--check", "--update"], ["--json"]])
def test_a_malformed_reference_is_an_error_in_every_mode(
    cgr: FakeRegistry, tmp_path: Path, reference: str, why: str, mode: list[str]
) -> None:
    path = tmp_path / "Dockerfile"
    text = f"FROM {PYTHON} AS build\nCOPY --from={reference} /a /b\n"
    path.write_text(text)
    ran = run_pin(*mirror(cgr), *mode, path)
    assert ran.code == 2
    message = f"{path}:2: not an image reference ({reference!r}: {why})".replace(
        f"{reference!r}: {reference!r}", repr(reference)
    )
    error = f"{message}; docker build refuses it too: fix the reference"
    assert ran.stderr.splitlines() == [f"error: {error}", "pin: nothing was written"]
    assert path.read_text() == text
    if mode == ["--json"]:
        assert json.loads(ran.stdout)["errors"] == [error]
    else:
        assert ran.stdout == ""


@pytest.mark.parametrize("reference", ["${BASE}", "cgr.dev/x:${V}", '"python:3"'])
def test_templates_and_quoted_references_stay_skipped(tmp_path: Path, reference: str) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {reference}\n")
    ran = run_pin("--check", path)
    assert ran.code == 0, ran.stderr
    assert ran.stderr.startswith(f"{path}:1: skipped {reference}: ")
