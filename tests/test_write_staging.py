"""Many files are staged at once (issue 9), and still all or nothing: the first file in order
that cannot be staged is the one error, and no file or temporary file is left changed."""

from __future__ import annotations

import os
from pathlib import Path

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


def test_the_first_file_that_cannot_be_staged_is_the_error_and_nothing_is_left(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    paths = [tmp_path / f"{i:02d}.Dockerfile" for i in range(40)]
    for path in paths:
        path.write_text(UNPINNED)
    for index in (31, 12, 25):
        paths[index].chmod(0o444)
    ran = run_pin(*mirror(cgr), *paths)
    assert ran.code == 2
    assert ran.stderr.splitlines() == [
        f"error: {paths[12]}: is read-only; make it writable (chmod u+w) or leave it out of the"
        " run",
        "pin: nothing was written",
    ]
    assert all(p.read_text() == UNPINNED for p in paths)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)  # no temporary file
