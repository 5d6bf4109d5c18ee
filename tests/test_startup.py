"""Start-up of a network run (issue 9): httpx comes without its command-line client (rich's
syntax highlighting, pygments) and httpcore without trio, which pin never uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PYTHON_NEW
from tests.fakeregistry import FakeRegistry

PYTHON = "cgr.dev/chainguard/python:latest"


def test_a_network_run_imports_neither_httpxs_cli_nor_trio(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    pytest.importorskip("trio")  # without them installed, there is nothing to keep out
    pytest.importorskip("pygments")
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {PYTHON}\n")
    code = (
        "import sys\nfrom pinner.cli import main\n"
        f"rc = main(['--mirror', 'cgr.dev={cgr.url}', {str(path)!r}])\n"
        "unused = ('trio', 'pygments', 'rich.syntax', 'click')\n"
        "print(rc, sorted(m for m in unused if m in sys.modules))\n"
        # httpx's command-line module is a stand-in (no file) until httpx.main is called.
        "print(getattr(sys.modules['httpx._main'], '__file__', None))\n"
        "import httpx, trio\n"  # and both still work when asked for
        "print(callable(httpx.main), trio.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == ["0 []", "None", "True trio"]
    assert path.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n"
