"""The ``pin`` command line as typer declares it: every option, its help, its variable.

pinner.cli reads a command line of plain flags and paths itself and runs it; this module,
and typer with it, load for everything else (--help, --version, --history, shell completion,
values it must check, a usage error to explain). Both hand the same Invocation to
pinner.command.execute.
"""

# No ``from __future__ import annotations`` here, unlike every other module: typer reads the
# options from pin()'s annotations, and string annotations it would compile and evaluate on
# every run (~4 ms of start-up); real ones are built once, from the .pyc.

from collections.abc import Sequence
from typing import Annotated

import typer

from pinner.command import Invocation, execute
from pinner.limits import REQUEST_TIMEOUT

app = typer.Typer(add_completion=True, rich_markup_mode=None, pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        from pinner import __version__

        typer.echo(f"pin {__version__}")
        raise typer.Exit()


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
    # typer.Exit, not a return value: click drops return values in standalone mode.
    raise typer.Exit(execute(invocation(ctx)))


_LISTED = ("paths", "mirror", "only", "exclude")  # None when not given


def invocation(ctx: typer.Context) -> Invocation:
    """The Invocation of the command line typer has read into *ctx*."""
    values = {name: value for name, value in ctx.params.items() if name != "version"}
    values.update((name, tuple(values[name] or ())) for name in _LISTED)
    given = frozenset(
        name
        for name in values
        if (source := ctx.get_parameter_source(name)) is not None and source.name != "DEFAULT"
    )
    return Invocation(**values, given=given)


def run(args: Sequence[str]) -> int:
    """Read *args* with typer and run them; return the exit code."""
    try:
        app(args=list(args), prog_name="pin")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return 0
