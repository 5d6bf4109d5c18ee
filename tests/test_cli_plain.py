"""pinner.cli reads a plain command line itself, without typer (issue 9's start-up): it must
give the very Invocation typer gives for it, and leave everything else to typer."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import typer.main

from pinner.app import app, invocation
from pinner.cli import _FLAGS, _LISTS, _VALUES, plain
from tests.conftest import PYTHON_NEW, dockerfile, imported_by_main
from tests.fakeregistry import FakeRegistry

PYTHON = "cgr.dev/chainguard/python:latest"


def typer_reads(args: list[str]) -> object:
    """The Invocation typer builds for *args*, from the environment of the test."""
    command = typer.main.get_command(app)
    with command.make_context("pin", list(args)) as ctx:
        return invocation(ctx)  # type: ignore[arg-type]  # typer's Context is click's


PLAIN = [
    [],
    ["Dockerfile"],
    ["--check", "a", "b/Dockerfile"],
    ["a", "--check", "-q", "b"],  # options after paths, as click allows
    ["--diff", "--check", "--quiet", "--verbose", "-v", "--check"],
    ["--color", "--no-color"],
    ["--no-color", "--color", "x"],
    ["--mirror", "cgr.dev=http://127.0.0.1:1", "--mirror=docker.io=http://[::1]:5000", "f"],
    ["--before", "2023-05-12", "--before=7d", "Dockerfile"],  # the last one counts
    ["--only", "cgr.dev", "--exclude", "docker.io/library", "--exclude=ghcr.io", "."],
    ["--timeout", "3.5"],
    ["--timeout=nan"],  # refused later, by the same code on both paths
    ["--platform", "linux/arm64", "--update"],
    ["--max-age=7d", "--verify"],
    ["--update", "--digest-only", "--json", "--changes", "--skip-no-history"],
    ["déjà vu/Dockerfile", "a=b", "ünïcode.yaml"],
    ["--mirror", "a==b"],
]


@pytest.mark.parametrize("args", PLAIN)
def test_a_plain_command_line_reads_as_typer_reads_it(args: list[str]) -> None:
    read = plain(args, {})
    assert read is not None
    assert read == typer_reads(args)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["-h"],
        ["--version"],
        ["--history", "cgr.dev/chainguard/python"],
        ["--limit", "3"],
        ["-qv", "Dockerfile"],  # a cluster of short flags
        ["--", "-Dockerfile"],
        ["-"],  # standard input
        ["--check=yes"],  # a flag with a value: typer explains the error
        ["--before"],  # the value is missing
        ["--before", "--check"],
        ["--mirror", ""],
        ["--chek", "Dockerfile"],  # a typo: typer suggests --check
    ],
)
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert plain(args, {}) is None


@pytest.mark.parametrize("name", ["PIN_ONLY", "PIN_TIMEOUT", "PIN_SOMETHING_NEW", "_PIN_COMPLETE"])
def test_a_pin_variable_leaves_the_command_line_to_typer(name: str) -> None:
    assert plain(["--check", "Dockerfile"], {name: "x"}) is None


def test_every_option_typer_declares_is_read_the_same_or_left_to_typer() -> None:
    """A new option in pinner.app is typer's until it is added to pinner.cli's tables, and
    one added there must be what typer declares: a flag, one value, or a repeatable value."""
    typers_own = {"--help", "-h", "--version", "--history", "--limit"}
    typers_own |= {"--install-completion", "--show-completion"}
    declared: set[str] = set()
    for param in typer.main.get_command(app).params:
        if param.param_type_name == "argument":
            continue
        envvar = param.envvar
        assert all(
            v.startswith("PIN_") for v in ([envvar] if isinstance(envvar, str) else envvar or ())
        )
        for opt, value in [(o, True) for o in param.opts] + [
            (o, False) for o in param.secondary_opts
        ]:
            declared.add(opt)
            if opt in _FLAGS:
                assert param.is_flag and _FLAGS[opt] == (param.name, value)  # type: ignore[attr-defined]
            elif opt in _VALUES:
                assert not param.is_flag and not param.multiple  # type: ignore[attr-defined]
                assert _VALUES[opt] == param.name
            elif opt in _LISTS:
                assert param.multiple and _LISTS[opt] == param.name
            else:
                assert opt in typers_own, f"{opt}: read it in pinner.cli or list it here"
    assert {*_FLAGS, *_VALUES, *_LISTS} <= declared


def test_the_installed_pin_checks_a_file_without_loading_typer(tmp_path: Path) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}@{PYTHON_NEW}\n")
    assert imported_by_main(["--check", "-q", str(path)], ("typer", "click")) == (0, [], "")


def test_typer_still_answers_what_it_reads(pin_command: str, tmp_path: Path) -> None:
    """--help and a typo go through main() to typer, as the console script runs them."""
    pin = pin_command
    helped = subprocess.run([pin, "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert helped.returncode == 0
    assert helped.stdout.startswith("Usage: pin [OPTIONS] [PATH]...")
    typo = subprocess.run([pin, "--chek", "."], capture_output=True, text=True, cwd=tmp_path)
    assert typo.returncode == 2
    assert "No such option: --chek" in typo.stderr
    assert "Traceback" not in typo.stderr


def test_a_reader_that_goes_away_ends_the_run_quietly(
    pin_command: str, cgr: FakeRegistry, tmp_path: Path
) -> None:
    """`pin --diff | head -1`: exit 1 without a traceback, as click does on typer's path; and
    --diff writes nothing."""
    text = f"FROM {PYTHON}\n"
    path = dockerfile(tmp_path, text)
    process = subprocess.Popen(
        [pin_command, "--diff", "--mirror", f"cgr.dev={cgr.url}", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # gone long before pin has resolved the image and writes the diff
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert "Traceback" not in stderr
    assert path.read_text() == text
