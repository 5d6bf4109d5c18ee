"""The ``pin`` command's entry: the console script and ``python -m pinner`` start here.

typer declares the command line (pinner.app), but importing typer and click and building the
command from pin()'s 24 options is ~60-75 ms here: more than half of what an offline
``pin --check`` of one file costs above a bare Python start-up (issue 9). A command line of
plain flags and paths, what pre-commit hooks and CI steps run, is read here instead, into
the same Invocation typer would build; everything else (--help, --version, --history,
completion, a PIN_* variable, anything unusual) goes to typer. tests/test_cli_plain.py holds
the two readers to the same answers.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from pinner.command import Invocation, execute
from pinner.limits import GC_ALLOCATIONS

# What this reader knows: each option as typer declares it in pinner.app (same spelling, same
# Invocation field, same kind). A flag sets its field; a value takes the next argument or
# follows "="; a list value may repeat. Anything else is typer's to read or to refuse.
_FLAGS: dict[str, tuple[str, bool]] = {
    "--check": ("check", True),
    "--diff": ("diff", True),
    "--update": ("update", True),
    "--digest-only": ("digest_only", True),
    "--verify": ("verify", True),
    "--json": ("json_output", True),
    "--changes": ("changes", True),
    "--skip-no-history": ("skip_no_history", True),
    "-v": ("verbose", True),
    "--verbose": ("verbose", True),
    "-q": ("quiet", True),
    "--quiet": ("quiet", True),
    "--color": ("color", True),
    "--no-color": ("color", False),
}
_VALUES = {
    "--before": "before",
    "--max-age": "max_age",
    "--timeout": "timeout",
    "--platform": "platform",
}
_LISTS = {"--mirror": "mirror", "--only": "only", "--exclude": "exclude"}


def plain(args: Sequence[str], environ: Mapping[str, str]) -> Invocation | None:
    """*args* read as typer reads them, when they hold only the options above and paths;
    None for anything else, which typer must read."""
    if any(name.startswith(("PIN_", "_PIN_")) for name in environ):
        return None  # typer reads options from PIN_*; _PIN_COMPLETE asks it for completions
    fields: dict[str, Any] = {}
    lists: dict[str, list[str]] = {}
    paths: list[str] = []
    given: set[str] = set()
    remaining = list(args)
    remaining.reverse()
    while remaining:
        arg = remaining.pop()
        if not arg.startswith("-"):
            paths.append(arg)
            continue
        if arg in _FLAGS:
            name, value = _FLAGS[arg]
            fields[name] = value
            given.add(name)
            continue
        option, equals, text = arg.partition("=")
        known = _VALUES.get(option) or _LISTS.get(option)
        if known is None:
            return None  # -h, --help, --version, --history, -qv, "-", "--", an unknown option
        if not equals:
            if not remaining:
                return None  # a value is missing: typer says so
            text = remaining.pop()
        if not text or text.startswith("-"):
            return None  # click would take it as the value; left to typer to be sure
        if option in _LISTS:
            lists.setdefault(known, []).append(text)
        else:
            fields[known] = text  # click keeps the last of a repeated option
        given.add(known)
    if paths:
        given.add("paths")
    fields.update((name, tuple(values)) for name, values in lists.items())
    return Invocation(paths=tuple(paths), given=frozenset(given), **fields)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pin`` with *argv* (default: the process arguments); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    invocation = plain(args, os.environ)
    if invocation is None:
        from pinner.app import run

        return run(args)
    try:
        return execute(invocation)
    except KeyboardInterrupt:  # before or after execute() handles signals itself
        return 128 + signal.SIGINT
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        # The reader went away (`pin --diff | head -1`): exit 1 without a word, as click does
        # for the command lines typer reads.
        sys.stdout = sys.stderr = _Closed()
        return 1


class _Closed:
    """A stream whose reader is gone: writes and flushes go nowhere."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def entry() -> NoReturn:
    """The console script: main(), then exit without tearing the interpreter down.

    Freeing every module (typer, httpx, asyncio) and object one by one took 20-130 ms here
    after everything was written and printed; the kernel frees the process at once. Files
    are written and closed before main() returns, threads joined, temporary files removed:
    nothing is left for the interpreter's exit to do but flush stdout and stderr.

    The cyclic garbage collector runs every 100,000 allocations instead of every 700: a run
    imports ~250 modules (asyncio, httpx) whose classes and functions are all kept, and at
    the default it walked them ~60 times in a 200-file run, ~25 ms of CPU that found nothing
    to free. It still runs, so the cycles of a long run (retries' tracebacks) are freed.
    """
    gc.set_threshold(GC_ALLOCATIONS, *gc.get_threshold()[1:])
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # e.g. a closed pipe: Python's own exit reports it, as before
        raise SystemExit(code) from None
    os._exit(code)
