"""Which files a directory gives: a big tree, whose walk is shared out between processes, gives
the same files as a small one walked in one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pinner.discover import expand
from pinner.limits import PARALLEL_WALK_MIN_FOLDERS


def _tree(root: Path, folders: int) -> None:
    """*folders* folders over two levels, each with a Dockerfile, a file pin does not read,
    and some with a .git folder, a folder named Dockerfile, a link to a file and an empty
    folder."""
    for i in range(folders):
        folder = root / f"team{i // 20:02d}" / f"service{i % 20:02d}"
        (folder / "empty").mkdir(parents=True)
        (folder / "Dockerfile").write_text("FROM a\n")
        (folder / "README.md").write_text("not read\n")
        if i % 7 == 0:
            (folder / ".git").mkdir()
            (folder / ".git" / "Dockerfile").write_text("FROM skipped\n")
            (folder / "api.Dockerfile").mkdir()  # a folder, whatever its name
            (folder / "Containerfile").symlink_to(folder / "Dockerfile")


def _walked(root: str) -> list[str]:
    """What expand gives, found with os.walk in this process."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name != ".git"]
        for name in names:
            path = os.path.normpath(os.path.join(folder, name))
            if name in ("Dockerfile", "Containerfile") and os.path.isfile(path):
                found.append(path)
    return sorted(found)


@pytest.mark.parametrize("folders", [10, PARALLEL_WALK_MIN_FOLDERS * 3 // 2])
def test_a_tree_gives_each_file_once_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folders: int
) -> None:
    _tree(tmp_path / "tree", folders)
    monkeypatch.chdir(tmp_path)
    expected = _walked("tree")
    assert len(expected) == folders + len(range(0, folders, 7))
    assert expand(["tree"]) == expected
    assert expand(["tree/"]) == expected
    monkeypatch.chdir(tmp_path / "tree")
    assert expand(["."]) == [os.path.relpath(path, "tree") for path in expected]
