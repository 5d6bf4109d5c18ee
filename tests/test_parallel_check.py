"""The offline check of a big tree, read and scanned in forked processes (issue 9): the same
exit code, lines and JSON as one process would give, and the same all-or-nothing errors."""

from __future__ import annotations

import json
import os
import select
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pinner.limits import PARALLEL_CHECK_MIN_FILES
from pinner.parallel import map_chunks

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


def test_a_file_by_two_names_and_the_order_of_errors_as_in_one_process(
    pin_command: str, tmp_path: Path
) -> None:
    paths = _tree(tmp_path / "tree", PARALLEL_CHECK_MIN_FILES + 200)
    paths[1].write_text("FROM cgr.dev/chainguard/go:latest\n")
    # The same file by a second name, sorted last: read, reported and counted once.
    (paths[-1].parent / "z.Dockerfile").symlink_to(paths[1])
    done = _check(pin_command, tmp_path, "tree")
    assert done.returncode == 1
    rel = paths[1].relative_to(tmp_path)
    assert done.stderr.splitlines() == [
        f"{rel}:1: cgr.dev/chainguard/go:latest is not pinned",
        "pin: 1 image in 1 file would change; run `pin` to fix it",
    ]
    # Errors: the files that cannot be read first, then what the scans found, whichever
    # process read them; and no unpinned entry, as in one process.
    paths[5].write_text("FROM alpine@sha256:abc\n")
    paths[-3].write_bytes(b"#" * (4 * 1024 * 1024 + 1))
    done = _check(pin_command, tmp_path, "--json", "tree")
    assert done.returncode == 2
    report = json.loads(done.stdout)
    assert [e.split(":")[0] for e in report["errors"]] == [
        str(paths[-3].relative_to(tmp_path)),
        str(paths[5].relative_to(tmp_path)),
    ]
    assert "larger than 4 MiB" in report["errors"][0]
    assert not [e for e in report["references"] if e["action"] == "unpinned"]
    assert len(report["references"]) == len(paths) - 3


def _pinned_reference(path: str) -> dict[str, object]:
    """The --json reference of PINNED's FROM in the file *path*."""
    return {
        "file": path,
        "line": 1,
        "instruction": "FROM",
        "image": "cgr.dev/chainguard/python:latest@sha256:" + "a" * 64,
        "action": "unchanged",
        "registry": "cgr.dev",
        "repository": "chainguard/python",
        "tag": "latest",
        "old_digest": "sha256:" + "a" * 64,
        "new_digest": None,
        "new_image": None,
        "published": None,
        "reason": "pinned",
        "audited": False,
        "platform": None,
    }


def test_a_pinned_reference_in_json_whether_checked_in_one_process_or_several(
    pin_command: str, tmp_path: Path
) -> None:
    one = _tree(tmp_path / "one", 1)
    report = json.loads(_check(pin_command, tmp_path, "--json", "one").stdout)
    assert report["references"] == [_pinned_reference(str(one[0].relative_to(tmp_path)))]
    many = _tree(tmp_path / "many", PARALLEL_CHECK_MIN_FILES + 200)
    report = json.loads(_check(pin_command, tmp_path, "--json", "many").stdout)
    assert report["references"] == [
        _pinned_reference(str(path.relative_to(tmp_path))) for path in sorted(many)
    ]


def _chunk_with_pid(part: Sequence[int]) -> tuple[int, list[int]]:
    return os.getpid(), list(part)


def test_map_chunks_keeps_the_order_and_works_in_other_processes() -> None:
    parent = os.getpid()
    read, write = os.pipe()

    def work(part: Sequence[int]) -> tuple[int, list[int]]:
        if os.getpid() != parent:
            os.write(write, b".")
        else:  # until some child has taken a chunk: else this process may take them all
            select.select([read], [], [], 30)
        return _chunk_with_pid(part)

    try:
        results = map_chunks(work, range(1000), 3)
    finally:
        os.close(read)
        os.close(write)
    assert [item for _, part in results for item in part] == list(range(1000))
    assert len(results) > 3  # small chunks, taken by whichever process is free
    assert {pid for pid, _ in results} - {os.getpid()}  # some were done by a child


def test_the_chunks_a_child_fails_on_are_worked_on_here() -> None:
    parent = os.getpid()

    def fails_in_a_child(part: Sequence[int]) -> list[int]:
        if os.getpid() != parent:
            raise RuntimeError("a child failed")
        return [item * 2 for item in part]

    results = map_chunks(fails_in_a_child, range(700), 3)
    assert [item for part in results for item in part] == [item * 2 for item in range(700)]


def test_fewer_items_than_chunks() -> None:
    assert map_chunks(list, range(2), 4) == [[0], [1]]
    assert map_chunks(list, [], 2) == [[]]
