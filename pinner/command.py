"""One run of ``pin``: the command line's values in, the output printed, an exit code out.

stdout carries data (diffs, JSON, the history table); stderr carries what people read
(progress, the summary, errors) and GitHub annotations, which the runner reads there too.
Both are written here, without typer: a plain ``pin --check`` never loads it (see pinner.cli).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pinner.errors import PinError, UsageError
from pinner.limits import MAX_TIMEOUT, MIN_TIMEOUT, REQUEST_TIMEOUT
from pinner.pipeline import STDIN, Log, Options, Progress, run
from pinner.registries import mirrors_from
from pinner.report import Report, unified_diff
from pinner.signals import Interrupted, interrupting
from pinner.timestamps import parse_duration, parse_timeout, parse_when

if TYPE_CHECKING:
    from pinner.filters import Prefix
    from pinner.platforms import Platform


class Invocation(NamedTuple):
    """What the command line asked for, as typer (pinner.app) or pinner.cli read it."""

    paths: tuple[str, ...] = ()
    check: bool = False
    diff: bool = False
    update: bool = False
    before: str | None = None
    digest_only: bool = False
    verify: bool = False
    max_age: str | None = None
    history: str | None = None
    limit: int = 20
    json_output: bool = False
    changes: bool = False
    mirror: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    skip_no_history: bool = False
    platform: str | None = None
    timeout: str = str(REQUEST_TIMEOUT)
    verbose: bool = False
    quiet: bool = False
    color: bool | None = None
    # The settings a flag or a PIN_* variable gave: the configuration file does not override them.
    given: frozenset[str] = frozenset()


# click.style's codes, so that output is the same whichever reads the command line.
_FG = {"red": "31", "green": "32", "yellow": "33"}
_RESET = "\x1b[0m"


def _echo(text: str) -> None:
    """One line of data on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _echo_bytes(data: bytes) -> None:
    """Bytes on stdout as they are: a diff holds the file's own bytes."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _colour(choice: bool | None, stream: Any) -> bool:
    """Colour for *stream*: --color/--no-color, else NO_COLOR (no-color.org) and FORCE_COLOR,
    else only on a terminal that is not TERM=dumb."""
    if choice is not None:
        return choice
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(stream.isatty())


def _say(line: str, colour: bool) -> None:
    fg = None
    if line.startswith("error:"):
        fg = "red"
    elif line.startswith("warning:"):
        fg = "yellow"
    elif re.search(r": (would )?(pin|pinned|update|updated) ", line):
        fg = "green"
    elif ": skipped " in line or " is not pinned" in line:
        fg = "yellow"
    _err(line, fg=fg, colour=colour)


# C0 controls, DEL and C1 controls: ESC, CSI (\x9b), BEL, CR, backspace... A file name, an
# image or a registry's answer holding them could move the cursor, rewrite what the user
# sees, or set the terminal's title; printed as \x1b they are plain text.
_CONTROLS_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escaped(line: str) -> str:
    return _CONTROLS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", line)


def _err(line: str, *, fg: str | None = None, colour: bool = False) -> None:
    """Print one line for people on stderr: every line pin prints there goes through here."""
    safe = _escaped(line)
    if colour:
        safe = (f"\x1b[{_FG[fg]}m" if fg else "") + safe + _RESET
    sys.stderr.write(safe + "\n")
    sys.stderr.flush()


class _ProgressBar:
    """A transient progress bar on a terminal, shown once resolving takes a moment (while it
    waits, saying on what), cleared when it ends."""

    DELAY = 0.5

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int, waiting: str = "") -> None:
        if self.bar is None:
            if time.monotonic() - self.started < self.DELAY or done >= total:
                return
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("resolving", total=total)
        # The pipeline calls this while it waits too, saying on what (see pipeline.Progress).
        described = "resolving"
        if waiting and done < total:
            from rich.markup import escape  # a registry may be [::1]:5000: text, not markup

            described = f"resolving: {escape(waiting)}"
        self.bar.update(self.task, completed=done, total=total, description=described)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def execute(invocation: Invocation) -> int:
    """Run pin as *invocation* asks; print its output; return its exit code."""
    colour = _colour(invocation.color, sys.stderr)  # for errors; _print decides per stream
    progress = _ProgressBar() if sys.stderr.isatty() and not invocation.verbose else None
    report: Report | None = None
    with interrupting():
        try:
            try:
                # The configuration file's keys are Invocation's names (pinner.config).
                asked = invocation._replace(**_configured(invocation.given))
                options = _options(asked, progress, _err)
                if asked.history is not None:
                    if asked.paths:
                        raise UsageError("--history takes an image, not files")
                    _show_history(asked.history, options, asked.limit, asked.json_output)
                    return 0
            except PinError as e:
                if invocation.json_output and invocation.history is None:
                    _echo(Report(errors=[str(e)]).to_json())  # scripts always get a document
                _err(f"error: {e}", fg="red", colour=colour)
                return 2
            try:
                report = run(options)
            except Exception as e:  # a bug in pin: one line for the user, the traceback with -v
                if invocation.verbose:
                    raise
                _err(
                    f"error: internal error: {type(e).__name__}: {e} (nothing was written;"
                    " run again with -v for the traceback and please report it)",
                    fg="red",
                    colour=colour,
                )
                return 2
            finally:
                if progress is not None:
                    progress.close()
            # What makes a failed --check pass: the same run without it.
            report.fix = (
                "pin"
                + (" --update" if asked.update else "")
                + (f" --before {asked.before}" if asked.before is not None else "")
            )
            _print(
                report,
                diff=asked.diff,
                json_output=asked.json_output,
                colour=asked.color,
                quiet=asked.quiet,
            )
        except KeyboardInterrupt as e:
            # Exit 128 + the signal's number as a shell reports it (130 for Ctrl-C), not
            # click's 1, which means "--check found changes". pinner.write renames a set of
            # files completely or not at all, so report.written says which it was.
            signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
            # After SIGHUP the terminal may be gone: the exit code still says what happened.
            with contextlib.suppress(OSError):
                if report is None:
                    report = Report(check=invocation.check, interrupted=signum)
                    if invocation.json_output and invocation.history is None:
                        _echo(report.to_json())
                    for line in report.summary():
                        _err(line)
                else:
                    done = "the files were written" if report.written else "nothing was written"
                    _err(f"pin: interrupted ({signal.Signals(signum).name}); {done}")
            return 128 + signum
    return report.exit_code


def _options(asked: Invocation, progress: Progress | None, log: Log) -> Options:
    """The pipeline's options for what was *asked*, the configuration file's defaults in;
    UsageError for a value that cannot be read."""
    if (asked.verify or asked.max_age) and (asked.update or asked.before):
        raise UsageError(
            "--verify and --max-age check existing pins; not with --update or --before"
        )
    if STDIN in asked.paths and (len(asked.paths) > 1 or asked.json_output):
        raise UsageError(
            "- reads a Dockerfile on standard input and prints it pinned: give it"
            " alone, without --json"
        )
    files = _paths(list(asked.paths) or ["."]) if asked.history is None else ()
    return Options(
        paths=files,
        searched=frozenset(files) - set(asked.paths),
        update=asked.update,
        cutoff=parse_when(asked.before) if asked.before is not None else None,
        check=asked.check,
        diff=asked.diff,
        digest_only=asked.digest_only,
        verify=asked.verify,
        max_age=None if asked.max_age is None else parse_duration(asked.max_age, "--max-age"),
        mirrors=mirrors_from(asked.mirror),
        only=_prefixes(asked.only, "--only"),
        exclude=_prefixes(asked.exclude, "--exclude"),
        skip_no_history=asked.skip_no_history,
        changes=asked.changes,
        # Read here, not by click: "nan" and "inf" pass click's float range, and a usage
        # error of ours gets a --json document. The config file gives a number.
        timeout=parse_timeout(str(asked.timeout), MIN_TIMEOUT, MAX_TIMEOUT),
        platform=_platform(asked.platform),
        log=log if asked.verbose else None,
        progress=progress,
    )


def _prefixes(texts: Sequence[str] | None, option: str) -> tuple[Prefix, ...]:
    if not texts:
        return ()
    from pinner.filters import parse_prefix  # not for a run without filters

    return tuple(parse_prefix(text, option) for text in texts)


def _platform(text: str | None) -> Platform | None:
    if text is None:
        return None
    from pinner.platforms import parse_platform

    try:
        return parse_platform(text)
    except ValueError as e:
        raise UsageError(f"--platform {e}") from None


def _configured(given: frozenset[str]) -> dict[str, Any]:
    """The settings of the configuration file that neither a flag nor PIN_* overrides."""
    from pathlib import Path

    from pinner.config import defaults

    return {name: value for name, value in defaults(Path.cwd()).items() if name not in given}


def _paths(paths: list[str]) -> tuple[str, ...]:
    from pinner.discover import expand

    found = expand(paths)
    if not found:
        raise UsageError(f"no Dockerfiles or YAML files in {', '.join(paths)}")
    return tuple(found)


def _print(
    report: Report, *, diff: bool, json_output: bool, colour: bool | None, quiet: bool
) -> None:
    if json_output:
        _echo(report.to_json())
    elif diff and not report.errors:
        coloured = _colour(colour, sys.stdout)
        for outcome in report.files:
            if outcome.changed:
                text = unified_diff(outcome)
                _echo_bytes(_coloured_diff(text) if coloured else text)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        # The runner reads workflow commands from stderr too; stdout stays pure data.
        for line in report.annotations():
            _err(line)
    stdin = report.files and report.files[0].path == STDIN
    if stdin and not (report.errors or diff or report.check):
        sys.stdout.buffer.write(report.files[0].after)  # pinned, or as it came
        sys.stdout.flush()
    if report.sbom and not quiet and not report.errors:
        from pinner.changes import summary

        for line in summary(report.entries):
            _err(line)
    for line in report.summary(quiet=quiet):
        _say(line, _colour(colour, sys.stderr))


_DIFF_COLOURS = ((b"+++", b"1"), (b"---", b"1"), (b"@@", b"36"), (b"+", b"32"), (b"-", b"31"))


# In a diff shown on a terminal, the file's own control characters are escaped as on
# stderr, but for a tab and the CR of a CRLF line end; and a byte 0x80-0x9f that is not
# UTF-8 (a surrogate here), which an 8-bit terminal takes as a C1 control.
# A pattern, compiled (and cached by re) on first use: only a diff on a terminal needs it.
_DIFF_CONTROLS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\udc80-\udc9f]|\r(?!\Z)"


def _coloured_diff(diff: bytes) -> bytes:
    """git's colours: headers bold, hunks cyan, additions green, removals red."""
    lines = []
    for line in diff.split(b"\n"):  # \n only: a diff line may hold a lone \r
        code = next((c for prefix, c in _DIFF_COLOURS if line.startswith(prefix)), None)
        text = re.sub(
            _DIFF_CONTROLS,
            lambda m: f"\\x{ord(m.group()) & 0xFF:02x}",
            line.decode("utf-8", "surrogateescape"),
        )
        line = text.encode("utf-8", "surrogateescape")
        lines.append(line if code is None else b"\x1b[" + code + b"m" + line + b"\x1b[0m")
    return b"\n".join(lines)


def _show_history(image: str, options: Options, limit: int, json_output: bool) -> None:
    import json

    from pinner.pipeline import age, history

    listing = history(image, options, limit)
    pinned, digest = listing.pinned, listing.digest
    if json_output:
        builds: list[dict[str, Any]] = [
            {"published": b.published, "digest": b.digest} for b in listing.builds
        ]
        if options.changes:
            for row in builds:
                found, reason = listing.changes.get(row["digest"], (None, _OLDEST))
                row["changes"] = None if found is None else found.to_json()
                row["changes_reason"] = reason
        document: dict[str, Any] = {"version": 1, "image": image, "builds": builds}
        if digest is not None and pinned is None:
            document["pinned"] = None  # the digest is not in the tag's history
        elif pinned is not None:
            document["pinned"] = {
                "published": pinned.published,
                "digest": pinned.digest,
                "behind": listing.behind,
            }
        _echo(json.dumps(document, indent=2))
        return
    _echo(f"{'BUILT':<30}  {'DIGEST':<71}  AGE")
    for build in listing.builds:
        mark = "  <- pinned" if build == pinned else ""
        _echo(f"{build.published:<30}  {build.digest:<71}  {age(build.ns)}{mark}")
        if options.changes:
            for line in _build_changes(listing.changes.get(build.digest, (None, _OLDEST))):
                _echo(_escaped(line))
    if digest is None:
        return
    if pinned is None:
        _err(f"pin: {digest} is not in this tag's history")
    elif listing.behind == 0:
        _err(f"pin: the pin is the newest build ({pinned.published})")
    else:
        _err(
            f"pin: the pin is {listing.behind} build{'s' if listing.behind != 1 else ''} behind"
            f" the newest (built {pinned.published}, {age(pinned.ns)} ago)"
        )


_OLDEST = "no earlier build read to compare with"


def _build_changes(found: tuple[Any, str | None]) -> list[str]:
    """``--history --changes``: the lines under a build's row."""
    changes, reason = found
    if changes is None:
        return [f"    changes unknown: {reason}"]
    platform = f" ({changes.platform})" if changes.platform else ""
    return [f"    {changes.counts()} since the build before{platform}"] + [
        f"      {line}" for line in changes.lines()
    ]
