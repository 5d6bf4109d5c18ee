"""Defaults for the command line: ``.pin.toml`` or ``[tool.pin]`` in ``pyproject.toml``.

A corporate ``--mirror``, an ``--exclude`` or ``--digest-only`` would otherwise be repeated in
every pre-commit ``args:``, CI step and local run. Precedence, highest first: flags on the
command line, then ``PIN_*`` environment variables (click reads those), then the file. The file
is the nearest one found from the current directory upwards, stopping at the top of the git
work tree (or of the file system): in each folder ``.pin.toml`` first, then a
``pyproject.toml`` that has a ``[tool.pin]`` table (as ruff and black look for theirs).

The values are checked here, so that a bad one is an error naming the file and the key rather
than a complaint about a flag the user never typed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pinner.errors import FileError, UsageError
from pinner.files import read_regular
from pinner.limits import MAX_CONFIG_BYTES, MAX_TIMEOUT, MIN_TIMEOUT

# The key "pin", bare or quoted, wherever TOML lets the table be named: `[tool.pin]`,
# `[ tool . "pin" ]`, `pin.timeout = 5` under `[tool]`, `tool = { pin = {...} }`; not a longer
# bare key that contains it (pinned, spinner). A quoted key may spell it with \u escapes, so a
# file with any such escape is parsed too.
_PIN_KEY = re.compile(rb"(?<![A-Za-z0-9_-])pin(?![A-Za-z0-9_-])|\\[uU]")


def _strings(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _boolean(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _platform(value: object) -> str | None:
    from pinner.platforms import parse_platform

    if not isinstance(value, str):
        return None
    try:
        parse_platform(value)
    except ValueError:
        return None
    return value


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    ok = math.isfinite(value) and MIN_TIMEOUT <= value <= MAX_TIMEOUT
    return float(value) if ok else None


#: key in the file -> (the parameter it sets, how to read it, what it must be)
_KEYS: dict[str, tuple[str, Callable[[object], Any], str]] = {
    "mirror": ("mirror", _strings, "a list of HOST=URL strings"),
    "only": ("only", _strings, "a list of image name prefixes"),
    "exclude": ("exclude", _strings, "a list of image name prefixes"),
    "digest-only": ("digest_only", _boolean, "true or false"),
    "skip-no-history": ("skip_no_history", _boolean, "true or false"),
    "platform": ("platform", _platform, "a platform, os/architecture[/variant]: linux/arm64"),
    "timeout": ("timeout", _seconds, f"a number of seconds, {MIN_TIMEOUT:g} to {MAX_TIMEOUT:g}"),
}


def find_config(start: Path) -> tuple[Path, dict[str, object]] | None:
    """The nearest configuration at or above *start*, and its pin table."""
    folder = start.resolve()
    while True:
        dotfile = folder / ".pin.toml"
        if dotfile.is_file():
            return dotfile, _parse(dotfile, _read(dotfile))
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            data = _read(pyproject)
            # Most pyproject.toml files have no pin table: spare them the TOML parser (~10 ms
            # to import it and read a project's settings, on every run).
            table = _parse(pyproject, data).get("tool", {}) if _PIN_KEY.search(data) else {}
            if isinstance(table, dict) and isinstance(table.get("pin"), dict):
                return pyproject, table["pin"]
        if (folder / ".git").exists() or folder.parent == folder:
            return None
        folder = folder.parent


def _read(path: Path) -> bytes:
    try:
        return read_regular(path, MAX_CONFIG_BYTES, "a pin configuration", "fix or remove it")
    except (FileError, OSError) as e:  # OSError: it went away since is_file() saw it
        raise UsageError(str(e) if isinstance(e, FileError) else f"{path}: {e.strerror}") from None


def _parse(path: Path, data: bytes) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML ({e})") from None


def defaults(start: Path) -> dict[str, object]:
    """The command's parameters the configuration file sets (by parameter name), checked."""
    found = find_config(start)
    if found is None:
        return {}
    path, table = found
    where = "[tool.pin] " if path.name == "pyproject.toml" else ""
    values: dict[str, object] = {}
    for key, value in table.items():
        if key not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise UsageError(f"{path}: {where}unknown key {key!r} ({known})")
        parameter, read, expected = _KEYS[key]
        converted = read(value)
        if converted is None:
            raise UsageError(f"{path}: {where}{key} must be {expected}")
        values[parameter] = converted
    return values
