"""Where BuildKit reads a Dockerfile differently from the obvious, through the ``pin`` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import mirror, run_pin
from tests.fakeregistry import FakeRegistry


def test_an_indented_escape_directive_holds_so_the_next_from_is_checked(tmp_path: Path) -> None:
    # A Windows Dockerfile: BuildKit reads ` # escape=`` as a directive (it trims the line
    # first), so `WORKDIR c:\` ends there and the FROM after it is an instruction to check.
    digest = "sha256:" + "e" * 64
    path = tmp_path / "Dockerfile"
    path.write_bytes(
        b" # escape=`\r\n\r\n"
        + f"FROM mcr.microsoft.com/windows/servercore:ltsc2022@{digest}\r\n".encode()
        + b"WORKDIR c:\\\r\n"
        + b"FROM mcr.microsoft.com/powershell:lts\r\n"
    )
    ran = run_pin("--check", path)
    assert ran.code == 1
    assert ran.stderr.splitlines()[0] == (
        f"{path}:5: mcr.microsoft.com/powershell:lts is not pinned"
    )


# What BuildKit refuses: pin --check names the file and line and fails, and writes nothing.
@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "FROM alpine AS a\nFROM as x\n",
            2,
            "FROM as x is not `FROM IMAGE` nor `FROM IMAGE AS NAME`; docker build refuses it too",
        ),
        (
            "FROM alpine AS 1st\n",
            1,
            "the stage name '1st' must start with a letter and hold only letters, digits,"
            " '-', '_' and '.'; docker build refuses it too",
        ),
        (
            "FROM alpine\nADD --from=alpine /a /b\n",
            2,
            "ADD has no --from flag; docker build refuses it too: use COPY --from",
        ),
        (
            "# escape=`\n# escape=\\\nFROM alpine\n",
            2,
            "a second `# escape=` directive; docker build refuses it too: keep one",
        ),
        (
            "# escape=x\nFROM alpine\n",
            1,
            "the escape directive sets 'x'; docker build refuses it too: use \\ or `",
        ),
    ],
    ids=["from-as-x", "stage-name", "add-from", "escape-twice", "escape-invalid"],
)
def test_what_buildkit_refuses_fails_the_check(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    ran = run_pin("--check", path)
    assert ran.code == 2
    assert ran.stderr.splitlines() == [
        f"error: {path}:{line}: {message}",
        "pin: nothing was written",
    ]
    assert path.read_text() == text


def test_from_0_is_the_image_0_not_stage_0(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM alpine" + "@sha256:" + "e" * 64 + "\nFROM 0\nCOPY --from=0 /a /b\n")
    ran = run_pin("--check", path)
    assert ran.code == 1
    assert ran.stderr.splitlines()[0] == f"{path}:2: 0 is not pinned"


def test_from_names_a_stage_only_in_lower_case(tmp_path: Path) -> None:
    # BuildKit lower-cases stage names; COPY --from lower-cases too, FROM does not, so
    # `FROM Base` is the image Base, which docker build refuses (upper-case repository).
    path = tmp_path / "Dockerfile"
    text = "FROM alpine" + "@sha256:" + "e" * 64 + " AS Base\nCOPY --from=BASE /a /b\nFROM Base\n"
    path.write_text(text)
    ran = run_pin("--check", path)
    assert ran.code == 2
    assert ran.stderr.splitlines()[0].startswith(f"error: {path}:3: ")
    assert path.read_text() == text


def test_the_syntax_directive_names_an_image_and_is_pinned(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    # BuildKit pulls the frontend that `# syntax=` names before it reads the file: an image
    # like any other, so a pinned Dockerfile pins it too (the `// opts` after it stay).
    frontend = "sha256:" + "5" * 64
    cgr.add_history("docker/dockerfile", "1", [("2026-11-01T00:00:00Z", frontend)])
    text = "# syntax = docker/dockerfile:1 // opts\r\nFROM scratch\r\n"
    path = tmp_path / "Dockerfile"
    path.write_bytes(text.encode())
    assert run_pin("--check", path).code == 1
    excluded = run_pin("--check", "--exclude", "docker/dockerfile", path)
    assert excluded.code == 0, excluded.stderr
    ran = run_pin(*mirror(cgr, "docker.io"), path)
    assert ran.code == 0, ran.stderr
    pinned = text.replace("docker/dockerfile:1", f"docker/dockerfile:1@{frontend}")
    assert path.read_bytes() == pinned.encode()
    assert run_pin("--check", path).code == 0
