"""The offline check of a big tree, read and scanned in forked processes (issue 9): the same
exit code, lines and JSON as one process would give, and the same all-or-nothing errors."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pinner.limits import PARALLEL_CHECK_MIN_FILES
from pinner.parallel import map_slices

PINNED = "FROM cgr.dev/chainguard/python:latest@sha256:" + "a" * 64 + " AS build\nRUN make\n"


def _tree(root: Path, files: int) -> list[Path]:
    paths = []
    for i in range(files):
        folder = root / f"team{i // 100:02d}" / f"service{i % 100:02d}"
        folder.mkdir(parents=True)
        paths.append(folder / "Dockerfile")
        paths[-1].write_text(PINNED)
    return paths


def _check(pin_command: str, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [pin_command, "--check", *argv], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_a_big_tree_reports_what_one_process_would(pin_command: str, tmp_path: Path) -> None:
    paths = _tree(tmp_path / "tree", PARALLEL_CHECK_MIN_FILES + 200)
    first, last = paths[3], paths[-2]  # in the first slice and in the last
    first.write_text("FROM cgr.dev/chainguard/go:latest\n")
    last.write_text('FROM cgr.dev/chainguard/python:latest\nFROM "python:3"\n')
    done = _check(pin_command, tmp_path, "tree")
    assert done.returncode == 1
    assert done.stdout == ""
    rel = [str(p.relative_to(tmp_path)) for p in (first, last)]
    lines = done.stderr.splitlines()
    assert lines[0] == f"{rel[0]}:1: cgr.dev/chainguard/go:latest is not pinned"
    assert lines[1] == f"{rel[1]}:1: cgr.dev/chainguard/python:latest is not pinned"
    assert lines[2].startswith(f'{rel[1]}:2: skipped "python:3"')
    assert lines[-1] == "pin: 2 images in 2 files would change; run `pin` to fix it"
    report = json.loads(_check(pin_command, tmp_path, "--json", "tree").stdout)
    entries = [e for e in report["references"] if e["action"] != "unchanged"]
    assert [(e["file"], e["line"], e["action"]) for e in entries] == [
        (rel[0], 1, "unpinned"),
        (rel[1], 1, "unpinned"),
        (rel[1], 2, "skipped"),
    ]
    unchanged = [e for e in report["references"] if e["action"] == "unchanged"]
    assert len(unchanged) == len(paths) - 2


def test_an_error_in_any_slice_fails_the_check_naming_the_file(
    pin_command: str, tmp_path: Path
) -> None:
    paths = _tree(tmp_path / "tree", PARALLEL_CHECK_MIN_FILES + 200)
    paths[-1].write_text("FROM alpine@sha256:abc\n")
    done = _check(pin_command, tmp_path, "tree")
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith(
        f"error: {paths[-1].relative_to(tmp_path)}:1: not an image reference"
    )
    assert "Traceback" not in done.stderr


def _slice_with_pid(part: Sequence[int]) -> tuple[int, list[int]]:
    return os.getpid(), list(part)


def test_map_slices_keeps_the_order_and_works_in_other_processes() -> None:
    results = map_slices(_slice_with_pid, range(10), 3)
    assert [item for _, part in results for item in part] == list(range(10))
    assert results[0][0] == os.getpid()
    assert all(pid != os.getpid() for pid, _ in results[1:])


def test_a_slice_whose_child_fails_is_worked_on_here() -> None:
    parent = os.getpid()

    def fails_in_a_child(part: Sequence[int]) -> list[int]:
        if os.getpid() != parent:
            raise RuntimeError("a child failed")
        return [item * 2 for item in part]

    assert map_slices(fails_in_a_child, range(7), 3) == [[0, 2, 4], [6, 8, 10], [12]]
