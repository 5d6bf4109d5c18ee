"""What a run found and did, and the exit code that follows from it.

Like black's Report: the pipeline records one :class:`Entry` per reference found,
the CLI prints them. Exit codes: 0 done or nothing to do, 1 ``--check`` (or
``--verify``) found something, 2 any error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from pinner.sbom import Changes

JSON_VERSION = 1

#: pinned: gets a digest it did not have; updated: its digest moves; unchanged: stays;
#: unpinned: has no digest (offline --check, nothing looked up); skipped: left alone, see
#: reason; error: could not be resolved, see reason; stale / unverified: failed --max-age
#: or --verify, see reason.
Action = Literal[
    "pinned", "updated", "unchanged", "unpinned", "skipped", "error", "stale", "unverified"
]
_CHANGES = ("pinned", "updated", "unpinned")
# Past this many changes the summary gives one line per image, not one per place.
GROUP_OVER = 30
_FINDINGS = ("stale", "unverified")
# A pattern, compiled (and cached by re) on first use: only --json needs it.
_UNSAFE_IN_JSON = r"[\x7f-\x9f\ud800-\udfff]"


# A NamedTuple, not a frozen dataclass: as immutable and compared by value, and each
# dataclass costs ~1 ms of every start-up to build (an offline check is ~0.1 s in all); one
# Entry is made per reference, and a tuple is made and pickled (pinner.parallel) faster.
class Entry(NamedTuple):
    """One image reference in one file, and what became of it."""

    file: str
    line: int
    instruction: str  # where it was found: FROM, COPY --from, RUN --mount, ARG NAME
    image: str  # as written in the file
    action: Action
    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    old_digest: str | None = None
    new_digest: str | None = None
    new_image: str | None = None  # the text written (or that would be) in place of image
    published: str | None = None  # build time of new_digest (or of old_digest for checks)
    reason: str | None = None
    audited: bool = False  # looked at by --verify or --max-age
    platform: str | None = None  # a per-platform pin: the platform of its manifest (linux/arm64)
    # --changes: what the SBOMs say changed between old_digest and new_digest, or why unknown
    # (``changes`` and ``changes_reason`` in --json).
    sbom_changes: Changes | None = None
    sbom_reason: str | None = None

    @property
    def changes(self) -> bool:
        return self.action in _CHANGES


class FileOutcome(NamedTuple):  # a NamedTuple: see Entry
    path: str
    before: bytes
    after: bytes

    @property
    def changed(self) -> bool:
        return self.before != self.after


class Report:
    """What a run found and did (a plain class, not a dataclass: see Entry)."""

    def __init__(
        self,
        check: bool = False,
        errors: list[str] | None = None,
        interrupted: int | None = None,
    ) -> None:
        self.check = check
        self.entries: list[Entry] = []
        self.errors: list[str] = errors if errors is not None else []  # each one line
        self.warnings: list[str] = []  # each one line, for the user; the run goes on
        self.files: list[FileOutcome] = []
        self.written = False
        self.interrupted = interrupted  # the signal that stopped the run (pinner.signals)
        self.fix = "pin"  # the command that makes a failed --check pass (the CLI sets it)
        self.sbom = False  # --changes: each reference in --json says what changed, or why not

    def _notable(self) -> list[Entry]:
        """Every entry but the pins left as they are and not audited: all that the summary
        and the exit code are about, in one pass over a tree's (mostly such) entries."""
        return [e for e in self.entries if e.action != "unchanged" or e.audited]

    @property
    def changes(self) -> list[Entry]:
        return [e for e in self._notable() if e.action in _CHANGES]

    @property
    def findings(self) -> list[Entry]:
        return [e for e in self._notable() if e.action in _FINDINGS]

    @property
    def changed_paths(self) -> list[str]:
        return sorted({e.file for e in self.changes})

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return 128 + self.interrupted  # as a shell reports a process a signal ended
        if self.errors:
            return 2
        notable = self._notable()
        if any(e.action in _FINDINGS or (self.check and e.action in _CHANGES) for e in notable):
            return 1
        return 0

    def summary(self, *, quiet: bool = False) -> list[str]:
        """Lines for people (stderr); *quiet*: only what went wrong or failed a check."""
        if self.interrupted is not None and not self.written:
            return [f"pin: interrupted ({_signal_name(self.interrupted)}); nothing was written"]
        warnings = [f"warning: {message}" for message in self.warnings]
        # pinner.write lets the renames it has begun finish: then every file was written.
        stopped = (
            [
                f"pin: interrupted ({_signal_name(self.interrupted)}) while writing;"
                " the renames had begun, so every file was written"
            ]
            if self.interrupted is not None
            else []
        )
        if self.errors:
            lines = warnings + [f"error: {message}" for message in self.errors]
            if not self.written:
                lines.append("pin: nothing was written")
            return lines
        hypothetical = self.check or not self.written
        notable = self._notable()
        changes = [e for e in notable if e.action in _CHANGES]
        findings = [e for e in notable if e.action in _FINDINGS]
        if quiet:
            failed = [_describe(e, hypothetical) for e in changes] if self.check else []
            return failed + [_finding(e) for e in findings] + warnings + stopped
        if len(changes) <= GROUP_OVER:
            lines = [_describe(e, hypothetical) for e in changes]
        else:
            lines = _grouped(changes, hypothetical)
        # --verify and --max-age: every pin they looked at, with its build date and age.
        lines += [
            _finding(e)
            for e in notable
            if e.action in _FINDINGS or (e.action == "unchanged" and e.audited)
        ]
        lines += [
            f"{e.file}:{e.line}: skipped {e.image}: {e.reason}"
            for e in notable
            if e.action == "skipped"
        ]
        lines += warnings
        count, files = len(changes), len({e.file for e in changes})
        audited = [e for e in notable if e.audited]
        if findings:
            lines.append(
                f"pin: {_plural(len(findings), 'pin')} of {len(audited)} failed the checks"
            )
        elif audited:
            lines.append(f"pin: {_plural(len(audited), 'pin')} checked, all good")
        if not count:
            if not audited:
                lines.append("pin: nothing to change")
        elif self.written:
            lines.append(f"pin: {_counted(changes, written=True)} in {_plural(files, 'file')}")
        else:
            fix = f"; run `{self.fix}` to fix it" if self.check else ""
            lines.append(
                f"pin: {_counted(changes, written=False)} in {_plural(files, 'file')}"
                f" would change{fix}"
            )
        return lines + stopped

    def to_json(self) -> str:
        """The ``--json`` document; its shape is documented in the README and versioned."""
        document = {
            "version": JSON_VERSION,
            "written": self.written,
            "exit_code": self.exit_code,
            "references": [self._reference(e) for e in self.entries],
            "errors": self.errors,
            "warnings": self.warnings,
        }
        import json  # here: the offline check prints no JSON unless asked

        text = json.dumps(document, indent=2, ensure_ascii=False)
        # json.dumps escapes C0 controls only. DEL and C1 controls (CSI is \x9b) would reach
        # a terminal that shows the document, and a lone surrogate (a byte of a file that is
        # not UTF-8) cannot be encoded as UTF-8: both as \u escapes, which stay valid JSON.
        return re.sub(_UNSAFE_IN_JSON, lambda m: f"\\u{ord(m.group()):04x}", text)

    def _reference(self, entry: Entry) -> dict[str, object]:
        fields = entry._asdict()
        del fields["sbom_changes"], fields["sbom_reason"]
        if self.sbom:
            changes = entry.sbom_changes
            fields["changes"] = None if changes is None else changes.to_json()
            fields["changes_reason"] = entry.sbom_reason
        return fields

    def annotations(self) -> list[str]:
        """GitHub Actions workflow commands that put each finding on its line in a PR."""
        lines = [f"::error title=pin::{_escape(message)}" for message in self.errors]
        lines += [f"::warning title=pin::{_escape(message)}" for message in self.warnings]
        for entry in self._notable():
            if entry.changes and self.check:
                message = (
                    f"{entry.image} is not pinned"
                    if entry.new_digest is None
                    else f"{entry.image} should be {entry.new_image}"
                )
            elif entry.action in _FINDINGS:
                message = f"{entry.image}: {entry.reason}"
            else:
                continue
            lines.append(
                f"::error file={_property(entry.file)},line={entry.line},"
                f"title=pin::{_escape(message)}"
            )
        return lines


def _escape(text: str) -> str:
    """Workflow command data escaping (actions/toolkit, command.ts escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _escape(text).replace(":", "%3A").replace(",", "%2C")


def short(digest: str | None) -> str:
    """``sha256:a8724b7a80ca``: a digest as people read it, as ``docker images`` shortens
    IDs; the whole one is in the file, the diff and ``--json``."""
    return (digest or "")[: len("sha256:") + 12]


def _name(entry: Entry) -> str:
    """The reference as written, without the digest it had."""
    return entry.image.partition("@")[0]


def _describe(entry: Entry, hypothetical: bool, *, located: bool = True) -> str:
    prefix = f"{entry.file}:{entry.line}: " if located else ""
    if entry.new_digest is None:
        return f"{prefix}{entry.image} is not pinned"
    built = f" (built {entry.published})" if entry.published else ""
    # A per-platform pin says so: the digest is that platform's manifest, not the index.
    platform = f" ({entry.platform})" if entry.platform else ""
    if entry.action == "updated":
        verb = "would update" if hypothetical else "updated"
        moved = f"from {short(entry.old_digest)} to {short(entry.new_digest)}{platform}"
        return f"{prefix}{verb} {_name(entry)} {moved}{built}"
    verb = "would pin" if hypothetical else "pinned"
    return f"{prefix}{verb} {_name(entry)} to {short(entry.new_digest)}{platform}{built}"


def _counted(changes: list[Entry], *, written: bool) -> str:
    """``pinned 2 images (400 places)``: images counted once however many places name them."""
    images = {_name(e) for e in changes}
    places = f" ({len(changes)} places)" if len(images) < len(changes) else ""
    if not written:
        return f"{_plural(len(images), 'image')}{places}"
    done = [
        f"{verb} {_plural(len(names), 'image')}"
        for verb, names in (
            ("pinned", {_name(e) for e in changes if e.action != "updated"}),
            ("updated", {_name(e) for e in changes if e.action == "updated"}),
        )
        if names
    ]
    return " and ".join(done) + places


def _finding(entry: Entry) -> str:
    return f"{entry.file}:{entry.line}: {entry.image}: {entry.reason}"


def _grouped(changes: list[Entry], hypothetical: bool) -> list[str]:
    """One line per (image, new image): how many places, and the first few of them."""
    groups: dict[tuple[str, str | None], list[Entry]] = {}
    for entry in changes:
        groups.setdefault((entry.image, entry.new_image), []).append(entry)
    lines = []
    for group in groups.values():
        places = ", ".join(f"{e.file}:{e.line}" for e in group[:3])
        more = f" and {len(group) - 3} more" if len(group) > 3 else ""
        lines.append(f"{_describe(group[0], hypothetical, located=False)} at {places}{more}")
    return lines


def _signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def unified_diff(outcome: FileOutcome) -> bytes:
    """A ``diff -u`` of one file, a/ and b/ prefixed so ``git apply`` takes it."""
    import difflib  # here: only --diff needs it

    before, after = _lines(outcome.before), _lines(outcome.after)
    out: list[str] = []
    for line in difflib.unified_diff(before, after, f"a/{outcome.path}", f"b/{outcome.path}"):
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n\\ No newline at end of file\n")
    return "".join(out).encode("utf-8", "surrogateescape")


def _lines(data: bytes) -> list[str]:
    """Lines split at \\n only (str.splitlines would also split at \\f, \\x1c, U+2028 ...)."""
    parts = data.decode("utf-8", "surrogateescape").split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
