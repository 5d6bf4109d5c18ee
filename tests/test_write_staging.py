"""Many files are staged at once (issue 9), and still all or nothing: the first file in order
that cannot be staged is the one error, and no file or temporary file is left changed."""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinner.limits import STAGED_AT_ONCE
from tests.conftest import PYTHON_NEW, mirror, run_pin
from tests.fakeregistry import FakeRegistry

PYTHON = "cgr.dev/chainguard/python:latest"
UNPINNED = f"FROM {PYTHON}\n"


def test_many_files_are_all_written(cgr: FakeRegistry, tmp_path: Path) -> None:
    paths = [tmp_path / f"{i:02d}.Dockerfile" for i in range(40)]
    for path in paths:
        path.write_text(UNPINNED)
    paths[7].chmod(0o640)
    ran = run_pin(*mirror(cgr), *paths)
    assert ran.code == 0, ran.stderr
    assert all(p.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n" for p in paths)
    assert (paths[7].stat().st_mode & 0o777) == 0o640  # each keeps its own mode
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)


@pytest.mark.parametrize(
    ("files", "read_only"),
    [
        (40, (31, 12, 25)),
        # In the second batch: the first one's files were all staged and fsynced, and go.
        (STAGED_AT_ONCE + 20, (STAGED_AT_ONCE + 15, STAGED_AT_ONCE + 5)),
    ],
)
def test_the_first_file_that_cannot_be_staged_is_the_error_and_nothing_is_left(
    cgr: FakeRegistry, tmp_path: Path, files: int, read_only: tuple[int, ...]
) -> None:
    paths = [tmp_path / f"{i:03d}.Dockerfile" for i in range(files)]
    for path in paths:
        path.write_text(UNPINNED)
    for index in read_only:
        paths[index].chmod(0o444)
    ran = run_pin(*mirror(cgr), *paths)
    assert ran.code == 2
    assert ran.stderr.splitlines() == [
        f"error: {paths[min(read_only)]}: is read-only; make it writable (chmod u+w) or leave it"
        " out of the run",
        "pin: nothing was written",
    ]
    assert all(p.read_text() == UNPINNED for p in paths)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)  # no temporary file


@pytest.fixture
def few_descriptors() -> Iterator[None]:
    """A soft limit on open files that leaves room for one batch of staged files, not two."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + STAGED_AT_ONCE + 64, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_more_files_than_may_be_open_at_once_are_all_written(
    cgr: FakeRegistry, tmp_path: Path, few_descriptors: None
) -> None:
    # Staged files stay open until they are fsynced: never more than a batch of them, however
    # many files a run writes ("Too many open files" otherwise).
    paths = [tmp_path / f"{i:03d}.Dockerfile" for i in range(2 * STAGED_AT_ONCE + 10)]
    for path in paths:
        path.write_text(UNPINNED)
    ran = run_pin(*mirror(cgr), *paths)
    assert ran.code == 0, ran.stderr
    assert all(p.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n" for p in paths)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)


def test_a_file_the_disk_cannot_take_is_the_error_and_nothing_is_left(
    cgr: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fsync of a staged file fails (a disk error, a full quota on NFS): the first such file
    # in order is named, and no file is replaced. The fault is injected in os.fsync, which the
    # file systems here do not fail on demand.
    paths = [tmp_path / f"{i:02d}.Dockerfile" for i in range(40)]
    for path in paths:
        path.write_text(UNPINNED)
    fsync = os.fsync

    def failing(descriptor: int) -> None:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{descriptor}"))
        if name.startswith((".27.Dockerfile.", ".09.Dockerfile.")):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", failing)
    ran = run_pin(*mirror(cgr), *paths)
    assert ran.code == 2
    assert ran.stderr.splitlines() == [
        f"error: {paths[9]}: cannot write it (Input/output error)",
        "pin: nothing was written",
    ]
    assert all(p.read_text() == UNPINNED for p in paths)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)  # no temporary file


# The name pin first tries for the temporary file beside a Dockerfile when os.urandom answers
# zeros (the tests below fix its answers).
ZEROS = f".Dockerfile.{bytes(6).hex()}.pin"


@pytest.fixture
def unpinned(tmp_path: Path) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(UNPINNED)
    return path


def test_a_temporary_name_that_is_taken_is_passed_over_and_never_followed(
    cgr: FakeRegistry, tmp_path: Path, unpinned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Taken by a link to a file someone else owns; only the first answers are fixed.
    victim = tmp_path / "victim"
    victim.write_text("not pin's\n")
    (tmp_path / ZEROS).symlink_to(victim)
    urandom = os.urandom
    fixed = iter([bytes(6)] * 3)
    monkeypatch.setattr(os, "urandom", lambda size: next(fixed, None) or urandom(size))
    ran = run_pin(*mirror(cgr), unpinned)
    assert ran.code == 0, ran.stderr
    assert unpinned.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n"
    assert victim.read_text() == "not pin's\n"
    assert (tmp_path / ZEROS).is_symlink()
    assert sorted(os.listdir(tmp_path)) == sorted(["Dockerfile", "victim", ZEROS])


def test_a_file_with_no_free_temporary_name_beside_it_is_one_error(
    cgr: FakeRegistry, tmp_path: Path, unpinned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ZEROS).write_text("")
    monkeypatch.setattr(os, "urandom", lambda size: bytes(size))  # every name is that one
    ran = run_pin(*mirror(cgr), unpinned)
    assert ran.code == 2
    assert ran.stderr.splitlines() == [
        f"error: {unpinned}: cannot write next to it (no free name for a temporary file)",
        "pin: nothing was written",
    ]
    assert unpinned.read_text() == UNPINNED
    assert sorted(os.listdir(tmp_path)) == sorted(["Dockerfile", ZEROS])
