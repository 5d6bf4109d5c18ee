"""The ``pin`` command: options in, one call to the pipeline, its report out.

stdout carries data (diffs, JSON, the history table); stderr carries what people read
(progress, the summary, errors) and GitHub annotations, which the runner reads there too.
"""

# No ``from __future__ import annotations`` here, unlike every other module: typer reads the
# options from pin()'s annotations, and string annotations it would compile and evaluate on
# every run (~4 ms of the offline check's start-up); real ones are built once, from the .pyc.

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pinner.errors import PinError, UsageError
from pinner.limits import MAX_TIMEOUT, MIN_TIMEOUT, REQUEST_TIMEOUT
from pinner.pipeline import STDIN, Options, run
from pinner.registries import mirrors_from
from pinner.report import Report, unified_diff
from pinner.signals import Interrupted, interrupting
from pinner.timestamps import parse_duration, parse_timeout, parse_when

if TYPE_CHECKING:
    from pinner.filters import Prefix
    from pinner.platforms import Platform

app = typer.Typer(add_completion=True, rich_markup_mode=None, pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        from pinner import __version__

        typer.echo(f"pin {__version__}")
        raise typer.Exit()


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


def _err(line: str, *, fg: str | None = None, colour: bool = False) -> None:
    """Print one line for people on stderr: every line pin prints there goes through here."""
    safe = _CONTROLS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", line)
    typer.secho(safe, err=True, fg=fg, color=colour)


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


@app.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 done or nothing to do, 1 --check, --verify or --max-age found"
    " something, 2 error.",
)
def pin(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[PATH]...",
            help="Dockerfiles, Compose files, Kubernetes manifests, GitHub Actions workflows,"
            " .gitlab-ci.yml, or directories to search for them. Default: the current directory.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Write nothing; exit 1 if any file would change. Offline by default."
        ),
    ] = False,
    diff: Annotated[
        bool,
        typer.Option(
            "--diff", help="Write nothing; print a unified diff of the changes on stdout."
        ),
    ] = False,
    update: Annotated[
        bool,
        typer.Option(
            "--update", help="Re-resolve every reference, pinned ones too, to the newest build."
        ),
    ] = False,
    before: Annotated[
        str | None,
        typer.Option(
            "--before",
            metavar="WHEN",
            help="Pin every reference to the newest build at or before WHEN: a date (2023-05-12,"
            " the whole UTC day), an RFC 3339 time, or an age (7d, 12h, 2w).",
        ),
    ] = None,
    digest_only: Annotated[
        bool,
        typer.Option(
            "--digest-only",
            envvar="PIN_DIGEST_ONLY",
            help="Write name@sha256:... instead of name:tag@sha256:...",
        ),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Check every pinned digest: in its tag's history (cgr.dev), or in its"
            " repository (other registries). Exit 1 naming each failure.",
        ),
    ] = False,
    max_age: Annotated[
        str | None,
        typer.Option(
            "--max-age",
            metavar="DURATION",
            help="Fail cgr.dev pins whose build is older than DURATION (7d, 2w) while a newer"
            " build of the tag exists.",
        ),
    ] = None,
    history: Annotated[
        str | None,
        typer.Option(
            "--history",
            metavar="IMAGE",
            help="Show the tag history of a cgr.dev IMAGE, newest first (with --before,"
            " --limit, --json), instead of pinning.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="How many builds --history shows.")
    ] = 20,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout (see README).")
    ] = False,
    changes: Annotated[
        bool,
        typer.Option(
            "--changes",
            help="For each pin that moves (and with --history, each build): the packages"
            " added, removed and changed, from the images' SBOMs (signatures not checked).",
        ),
    ] = False,
    mirror: Annotated[
        list[str] | None,
        typer.Option(
            "--mirror",
            metavar="HOST=URL",
            envvar="PIN_MIRROR",
            help="Send requests for registry HOST to URL (repeatable). http:// only on loopback.",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="PREFIX",
            envvar="PIN_ONLY",
            help="Pin only images under this registry or repository prefix (repeatable),"
            " e.g. cgr.dev or docker.io/library.",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            metavar="PREFIX",
            envvar="PIN_EXCLUDE",
            help="Leave images under this prefix alone (repeatable).",
        ),
    ] = None,
    skip_no_history: Annotated[
        bool,
        typer.Option(
            "--skip-no-history",
            envvar="PIN_SKIP_NO_HISTORY",
            help="With --before, leave images whose registry keeps no tag history alone"
            " instead of failing.",
        ),
    ] = False,
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            metavar="OS/ARCH[/VARIANT]",
            envvar="PIN_PLATFORM",
            help="Pin that platform's manifest (linux/arm64) instead of the multi-platform index.",
        ),
    ] = None,
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            envvar="PIN_TIMEOUT",
            help="Seconds each registry request may take in all (connecting, headers, body).",
        ),
    ] = str(REQUEST_TIMEOUT),
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Show each registry request and its outcome.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("-q", "--quiet", help="Print errors, warnings and failed checks only."),
    ] = False,
    color: Annotated[
        bool | None,
        typer.Option(
            "--color/--no-color",
            help="Colour the output. Default: on a terminal, unless NO_COLOR or TERM=dumb.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Pin the images of Dockerfiles, Compose, Kubernetes and CI files to @sha256: digests."""
    colour = _colour(color, sys.stderr)  # for errors; _print decides per stream
    progress = _ProgressBar() if sys.stderr.isatty() and not verbose else None
    report: Report | None = None

    def log(message: str) -> None:
        _err(message)

    with interrupting():
        try:
            try:
                configured = _configured(ctx)
                mirror = configured.get("mirror", mirror)
                only = configured.get("only", only)
                exclude = configured.get("exclude", exclude)
                digest_only = configured.get("digest_only", digest_only)
                skip_no_history = configured.get("skip_no_history", skip_no_history)
                timeout = configured.get("timeout", timeout)
                platform = configured.get("platform", platform)
                if (verify or max_age) and (update or before):
                    raise UsageError(
                        "--verify and --max-age check existing pins; not with --update or --before"
                    )
                if STDIN in (paths or ()) and (len(paths or ()) > 1 or json_output):
                    raise UsageError(
                        "- reads a Dockerfile on standard input and prints it pinned: give it"
                        " alone, without --json"
                    )
                files = _paths(paths or ["."]) if history is None else ()
                options = Options(
                    paths=files,
                    searched=frozenset(files) - set(paths or ()),
                    update=update,
                    cutoff=parse_when(before) if before is not None else None,
                    check=check,
                    diff=diff,
                    digest_only=digest_only,
                    verify=verify,
                    max_age=parse_duration(max_age, "--max-age") if max_age is not None else None,
                    mirrors=mirrors_from(mirror or []),
                    only=_prefixes(only, "--only"),
                    exclude=_prefixes(exclude, "--exclude"),
                    skip_no_history=skip_no_history,
                    changes=changes,
                    # Read here, not by click: "nan" and "inf" pass click's float range, and a
                    # usage error of ours gets a --json document. The config file gives a number.
                    timeout=parse_timeout(str(timeout), MIN_TIMEOUT, MAX_TIMEOUT),
                    platform=_platform(platform),
                    log=log if verbose else None,
                    progress=progress,
                )
                if history is not None:
                    if paths:
                        raise UsageError("--history takes an image, not files")
                    _show_history(history, options, limit, json_output)
                    raise typer.Exit(0)
            except PinError as e:
                if json_output and history is None:
                    typer.echo(Report(errors=[str(e)]).to_json())  # scripts always get a document
                _err(f"error: {e}", fg="red", colour=colour)
                raise typer.Exit(2) from None
            try:
                report = run(options)
            except Exception as e:  # a bug in pin: one line for the user, the traceback with -v
                if verbose:
                    raise
                _err(
                    f"error: internal error: {type(e).__name__}: {e} (nothing was written;"
                    " run again with -v for the traceback and please report it)",
                    fg="red",
                    colour=colour,
                )
                raise typer.Exit(2) from None
            finally:
                if progress is not None:
                    progress.close()
            # What makes a failed --check pass: the same run without it.
            report.fix = (
                "pin"
                + (" --update" if update else "")
                + (f" --before {before}" if before is not None else "")
            )
            _print(report, diff=diff, json_output=json_output, colour=color, quiet=quiet)
        except KeyboardInterrupt as e:
            # Exit 128 + the signal's number as a shell reports it (130 for Ctrl-C), not
            # click's 1, which means "--check found changes". pinner.write renames a set of
            # files completely or not at all, so report.written says which it was.
            signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
            # After SIGHUP the terminal may be gone: the exit code still says what happened.
            with contextlib.suppress(OSError):
                if report is None:
                    report = Report(check=check, interrupted=signum)
                    if json_output and history is None:
                        typer.echo(report.to_json())
                    for line in report.summary():
                        _err(line)
                else:
                    done = "the files were written" if report.written else "nothing was written"
                    _err(f"pin: interrupted ({signal.Signals(signum).name}); {done}")
            raise typer.Exit(128 + signum) from None
    # typer.Exit, not a return value: click drops return values in standalone mode.
    raise typer.Exit(report.exit_code)


def _prefixes(texts: list[str] | None, option: str) -> "tuple[Prefix, ...]":
    if not texts:
        return ()
    from pinner.filters import parse_prefix  # not for a run without filters

    return tuple(parse_prefix(text, option) for text in texts)


def _platform(text: str | None) -> "Platform | None":
    if text is None:
        return None
    from pinner.platforms import parse_platform

    try:
        return parse_platform(text)
    except ValueError as e:
        raise UsageError(f"--platform {e}") from None


def _configured(ctx: typer.Context) -> dict[str, Any]:
    """The settings of the configuration file that neither a flag nor PIN_* overrides."""
    from pathlib import Path

    from pinner.config import defaults

    def unset(name: str) -> bool:
        source = ctx.get_parameter_source(name)
        return source is None or source.name == "DEFAULT"

    return {name: value for name, value in defaults(Path.cwd()).items() if unset(name)}


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
        typer.echo(report.to_json())
    elif diff and not report.errors:
        coloured = _colour(colour, sys.stdout)
        for outcome in report.files:
            if outcome.changed:
                text = unified_diff(outcome)
                typer.echo(_coloured_diff(text) if coloured else text, nl=False)
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
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(f"{'BUILT':<30}  {'DIGEST':<71}  AGE")
    for build in listing.builds:
        mark = "  <- pinned" if build == pinned else ""
        typer.echo(f"{build.published:<30}  {build.digest:<71}  {age(build.ns)}{mark}")
        if options.changes:
            for line in _build_changes(listing.changes.get(build.digest, (None, _OLDEST))):
                typer.echo(_CONTROLS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", line))
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pin`` with *argv* (default: the process arguments); return the exit code."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="pin")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return 0
