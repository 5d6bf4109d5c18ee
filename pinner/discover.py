"""Which files pin reads when a directory is named on the command line: Dockerfiles by
these names, and YAML files (:mod:`pinner.scan.kinds` decides which of them are pin's).

Inside a git work tree, what git ignores is skipped (``git ls-files --exclude-standard``
answers that with git's own rules, nested .gitignore files and all); elsewhere the
tree is walked, skipping ``.git``.

Only regular files (or links to them) are taken from a directory, as black takes only
files: a FIFO, a socket or a link to ``/dev/zero`` that happens to be named ``Dockerfile``
is passed over silently. Named on the command line, it is read, and refused there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence

from pinner.limits import PARALLEL_WALK_MIN_FOLDERS
from pinner.scan.kinds import KUSTOMIZATION_NAMES, is_yaml

PATTERNS = (
    "Dockerfile",
    "Containerfile",
    "*.Dockerfile",
    "*.dockerfile",
    "Dockerfile.*",
    "Containerfile.*",
)


# PATTERNS as one expression (fnmatch's "*" is any text, newlines included): one match a
# name instead of six, which a tree of 10,000 Dockerfiles notices.
_DOCKERFILE_RE = re.compile(r"(?:Dockerfile|Containerfile)(?:\..*)?|.*\.[Dd]ockerfile", re.DOTALL)


def is_dockerfile(name: str) -> bool:
    return _DOCKERFILE_RE.fullmatch(name) is not None


def _wanted(name: str) -> bool:
    return is_dockerfile(name) or is_yaml(name) or name in KUSTOMIZATION_NAMES


def expand(paths: Iterable[str]) -> list[str]:
    """Files named as they are; directories replaced by the files pin reads below them."""
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
            if _wanted(os.path.basename(relative)) and os.path.isfile(path):
                yield os.path.normpath(path)
        return
    yield from _walk(os.path.normpath(folder))


def _walk(folder: str) -> list[str]:
    """The wanted regular files below *folder*, skipping .git, in no particular order (expand
    sorts them). A list of folders to read, not recursion: a file found 3 levels down is not
    passed up through 3 generators (a tree of 10,000 Dockerfiles notices). Past
    PARALLEL_WALK_MIN_FOLDERS folders, those left to read are shared out between processes
    (pinner.parallel): a big tree is walked on every core, a repository's in this one."""
    found: list[str] = []
    folders = [folder]
    for _ in range(PARALLEL_WALK_MIN_FOLDERS):
        if not folders:
            break
        _read_folder(folders.pop(), found, folders)
    else:
        if folders:
            from pinner.parallel import map_chunks, usable_processes

            processes = usable_processes()
            if processes > 1:
                for part in map_chunks(_walk_all, folders, processes):
                    found += part
                folders = []
            found += _walk_all(folders)
    # "./Dockerfile" is "Dockerfile": all that normpath would change below a normal folder.
    return [path[2:] for path in found] if folder == "." else found


def _walk_all(folders: Sequence[str]) -> list[str]:
    """The wanted regular files below each of *folders*, walked in this process."""
    found: list[str] = []
    left = list(folders)
    while left:
        _read_folder(left.pop(), found, left)
    return found


def _read_folder(folder: str, found: list[str], folders: list[str]) -> None:
    """Add the wanted regular files of *folder* to *found*, and its folders but .git to
    *folders*. scandir's entries know their type without a stat (but for links, which is_file
    follows)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return  # unreadable: os.walk passed over such folders too
    wanted = _wanted
    for entry in entries:
        if entry.name == ".git":
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            elif wanted(entry.name) and entry.is_file():
                found.append(entry.path)
        except OSError:
            continue


def _git_files(folder: str) -> list[str] | None:
    """Files below *folder* that git does not ignore, or None outside a work tree."""
    import subprocess  # here: a run that names its files does not search a folder

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
