"""What a run found and did, and the exit code that follows from it.

Like black's Report: the pipeline records outcomes here, the CLI prints them.
Exit codes: 0 done or nothing to do, 1 ``--check`` found changes, 2 any error.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Change:
    """A reference that was (or would be) rewritten. ``new`` is None in an offline check."""

    path: str
    line: int
    where: str
    old: str
    new: str | None
    published: str | None = None


@dataclass(frozen=True)
class Skip:
    path: str
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class Failure:
    """One error, already phrased as the line the user will read."""

    message: str


@dataclass(frozen=True)
class FileOutcome:
    path: str
    before: bytes
    after: bytes

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass
class Report:
    check: bool = False
    changes: list[Change] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    files: list[FileOutcome] = field(default_factory=list)
    written: bool = False

    @property
    def changed_paths(self) -> list[str]:
        return sorted({c.path for c in self.changes})

    @property
    def exit_code(self) -> int:
        if self.failures:
            return 2
        if self.check and self.changes:
            return 1
        return 0

    def summary(self) -> list[str]:
        """Lines for people (stderr)."""
        lines = [f"error: {f.message}" for f in self.failures]
        if self.failures:
            lines.append("pin: nothing was written" if not self.written else "")
            return [line for line in lines if line]
        for change in self.changes:
            lines.append(_describe(change, self.check or not self.written))
        for skip in self.skips:
            lines.append(f"{skip.path}:{skip.line}: skipped {skip.text}: {skip.reason}")
        count, files = len(self.changes), len(self.changed_paths)
        if not count:
            lines.append(
                "pin: every image is pinned" if not self.skips else "pin: nothing to change"
            )
        elif self.written:
            lines.append(f"pin: pinned {_plural(count, 'image')} in {_plural(files, 'file')}")
        else:
            lines.append(f"pin: {_plural(count, 'image')} in {_plural(files, 'file')} would change")
        return lines


def _describe(change: Change, hypothetical: bool) -> str:
    where = f"{change.path}:{change.line}"
    if change.new is None:
        return f"{where}: {change.old} is not pinned"
    built = f" (built {change.published})" if change.published else ""
    verb = "would become" if hypothetical else "->"
    return f"{where}: {change.old} {verb} {change.new}{built}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def unified_diff(outcome: FileOutcome) -> bytes:
    """A ``diff -u`` of one file, a/ and b/ prefixed so ``git apply`` takes it."""
    before, after = _lines(outcome.before), _lines(outcome.after)
    out: list[str] = []
    for line in difflib.unified_diff(before, after, f"a/{outcome.path}", f"b/{outcome.path}"):
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n\\ No newline at end of file\n")
    return "".join(out).encode("utf-8", "surrogateescape")


def _lines(data: bytes) -> list[str]:
    """Lines split at \n only (str.splitlines would also split at \f, \x1c, U+2028 ...)."""
    parts = data.decode("utf-8", "surrogateescape").split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
