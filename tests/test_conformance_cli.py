"""Where BuildKit reads a Dockerfile differently from the obvious, through the ``pin`` command."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_pin


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
