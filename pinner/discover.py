"""Which files are Dockerfiles, when a directory is named on the command line.

Inside a git work tree, what git ignores is skipped (``git ls-files --exclude-standard``
answers that with git's own rules, nested .gitignore files and all); elsewhere the
tree is walked, skipping ``.git``.

Only regular files (or links to them) are taken from a directory, as black takes only
files: a FIFO, a socket or a link to ``/dev/zero`` that happens to be named ``Dockerfile``
is passed over silently. Named on the command line, it is read, and refused there.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from collections.abc import Iterable, Iterator

PATTERNS = (
    "Dockerfile",
    "Containerfile",
    "*.Dockerfile",
    "*.dockerfile",
    "Dockerfile.*",
    "Containerfile.*",
)


def is_dockerfile(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in PATTERNS)


def expand(paths: Iterable[str]) -> list[str]:
    """Files named as they are; directories replaced by the Dockerfiles below them."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            files.extend(sorted(_below(path)))
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def _below(folder: str) -> Iterator[str]:
    tracked = _git_files(folder)
    if tracked is not None:
        for relative in tracked:
            path = os.path.join(folder, relative)
            if is_dockerfile(os.path.basename(relative)) and os.path.isfile(path):
                yield os.path.normpath(path)
        return
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in names:
            path = os.path.join(root, name)
            if is_dockerfile(name) and os.path.isfile(path):
                yield os.path.normpath(path)


def _git_files(folder: str) -> list[str] | None:
    """Files below *folder* that git does not ignore, or None outside a work tree."""
    try:
        result = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=folder,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    names = result.stdout.decode("utf-8", "surrogateescape").split("\0")
    return [name for name in names if name]
