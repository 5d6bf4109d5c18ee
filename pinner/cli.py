"""The ``pin`` command: options in, one call to the pipeline, its report out."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from pinner.errors import PinError
from pinner.pipeline import Options, run
from pinner.registries import mirrors_from
from pinner.report import unified_diff
from pinner.timestamps import parse_when

app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"pin {version('pinner')}")
        raise typer.Exit()


@app.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 done or nothing to do, 1 --check found changes, 2 error.",
)
def pin(
    paths: Annotated[list[str], typer.Argument(metavar="DOCKERFILE", show_default=False)],
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
        typer.Option("--digest-only", help="Write name@sha256:... instead of name:tag@sha256:..."),
    ] = False,
    mirror: Annotated[
        list[str] | None,
        typer.Option(
            "--mirror",
            metavar="HOST=URL",
            help="Send requests for registry HOST to URL (repeatable). http:// only on loopback.",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="PREFIX",
            help="Pin only images under this registry or repository prefix (repeatable),"
            " e.g. cgr.dev or docker.io/library.",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", metavar="PREFIX", help="Leave images under this prefix alone (repeatable)."
        ),
    ] = None,
    skip_no_history: Annotated[
        bool,
        typer.Option(
            "--skip-no-history",
            help="With --before, leave images whose registry keeps no tag history alone"
            " instead of failing.",
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", metavar="SECONDS", min=0.1, help="Timeout of each registry request."
        ),
    ] = 10.0,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Show each registry request and its outcome.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Pin the base images of Dockerfiles to immutable @sha256: digests."""

    def log(message: str) -> None:
        typer.echo(message, err=True)

    try:
        options = Options(
            paths=tuple(paths),
            update=update,
            cutoff=parse_when(before) if before is not None else None,
            check=check,
            diff=diff,
            digest_only=digest_only,
            mirrors=mirrors_from(mirror or []),
            only=tuple(p.lower() for p in only or []),
            exclude=tuple(p.lower() for p in exclude or []),
            skip_no_history=skip_no_history,
            timeout=timeout,
            log=log if verbose else None,
        )
    except PinError as e:
        typer.echo(f"pin: {e}", err=True)
        raise typer.Exit(2) from None
    report = run(options)
    if diff and not report.failures:
        for outcome in report.files:
            if outcome.changed:
                sys.stdout.flush()
                typer.echo(unified_diff(outcome), nl=False)
    for line in report.summary():
        typer.echo(line, err=True)
    # typer.Exit, not a return value: click drops return values in standalone mode.
    raise typer.Exit(report.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pin`` with *argv* (default: the process arguments); return the exit code."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="pin")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return 0
