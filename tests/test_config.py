"""Defaults from .pin.toml or [tool.pin], and PIN_* variables: flags > environment > file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PYTHON_NEW, run_pin
from tests.fakeregistry import FakeRegistry
from tests.test_workflows import PYTHON, document, write


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree to run pin in, with one unpinned Dockerfile."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    write(root / "Dockerfile")
    monkeypatch.chdir(root)
    return root


def test_a_mirror_in_pin_toml_is_used_without_the_flag(cgr: FakeRegistry, project: Path) -> None:
    write(project / ".pin.toml", f'mirror = ["cgr.dev={cgr.url}"]\ndigest-only = true\n')
    ran = run_pin("Dockerfile")
    assert ran.code == 0, ran.stderr
    assert (project / "Dockerfile").read_text() == f"FROM cgr.dev/chainguard/python@{PYTHON_NEW}\n"


def test_tool_pin_in_pyproject_is_read_from_a_subfolder(
    cgr: FakeRegistry, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = f'[project]\nname = "x"\n\n[tool.pin]\nmirror = "cgr.dev={cgr.url}"\n'
    write(project / "pyproject.toml", settings)
    sub = write(project / "services" / "Dockerfile").parent
    monkeypatch.chdir(sub)
    ran = run_pin()
    assert ran.code == 0, ran.stderr
    assert (sub / "Dockerfile").read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n"


def test_pin_toml_comes_before_pyproject_in_the_same_folder(project: Path) -> None:
    write(project / "pyproject.toml", '[tool.pin]\nexclude = ["docker.io"]\n')
    write(project / ".pin.toml", 'exclude = ["cgr.dev"]\n')
    assert run_pin("--check").code == 0  # cgr.dev excluded: nothing left to check


def test_flags_beat_the_environment_which_beats_the_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project / ".pin.toml", 'exclude = ["cgr.dev"]\n')
    assert run_pin("--check").code == 0
    monkeypatch.setenv("PIN_EXCLUDE", "docker.io")
    assert run_pin("--check").code == 1  # the environment replaced the file's list
    assert run_pin("--check", "--exclude", "cgr.dev").code == 0  # and the flag the environment's


def test_the_search_stops_at_the_top_of_the_work_tree(project: Path) -> None:
    # A .pin.toml above the repository is someone else's: not read.
    write(project.parent / ".pin.toml", "this is not = = toml\n")
    assert run_pin("--check").code == 1


@pytest.mark.parametrize(
    "table",
    [
        '[tool.pin]\nexclude = ["cgr.dev"]\n',
        '[ tool . "pin" ]\nexclude = ["cgr.dev"]\n',
        "[tool.'pin']\nexclude = ['cgr.dev']\n",
        '[tool."\\u0070in"]\nexclude = ["cgr.dev"]\n',
        '[tool]\npin.exclude = ["cgr.dev"]\n',
        '[tool]\npin = { exclude = ["cgr.dev"] }\n',
        'tool.pin.exclude = ["cgr.dev"]\n',
        'tool = { pin = { exclude = ["cgr.dev"] } }\n',
        '[\ttool\t.pin]\nexclude = ["cgr.dev"]\n',
    ],
)
def test_the_pin_table_is_read_however_toml_spells_it(project: Path, table: str) -> None:
    # pin looks at a pyproject.toml's text before it parses it; every spelling must get through.
    write(project / "pyproject.toml", f'{table}[project]\nname = "spinner"\n')
    assert run_pin("--check").code == 0  # cgr.dev excluded: nothing left to check


def test_a_pyproject_without_the_key_pin_is_not_read(project: Path) -> None:
    # "pinned", "spinner", "[tool.pinner]": the key pin is not there, and the file is not read,
    # as it never was without those letters: a TOML error in it is not pin's to report.
    write(project / "pyproject.toml", '[tool.pinner]\nimages = "pinned" = "spinner"\n')
    ran = run_pin("--check")
    assert ran.code == 1, ran.stderr  # the Dockerfile is unpinned: checked, not an error
    write(project / "pyproject.toml", '[tool.pin]\nimages = "pinned" = "spinner"\n')
    ran = run_pin("--check")
    assert ran.code == 2
    assert "pyproject.toml: not valid TOML" in ran.stderr


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (".pin.toml", "timout = 3\n", "unknown key 'timout'"),
        (".pin.toml", 'timeout = "3"\n', "timeout must be a number of seconds"),
        (".pin.toml", "timeout = nan\n", "timeout must be a number of seconds"),
        (".pin.toml", "timeout = 7200\n", "timeout must be a number of seconds, 0.1 to 3600"),
        (".pin.toml", "digest-only = 1\n", "digest-only must be true or false"),
        (".pin.toml", "only = [1]\n", "only must be a list of image name prefixes"),
        (".pin.toml", "only = [\n", "not valid TOML"),
        ("pyproject.toml", "[tool.pin]\nmirrors = []\n", "[tool.pin] unknown key 'mirrors'"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_file_and_key(
    project: Path, name: str, content: str, message: str
) -> None:
    config = write(project / name, content)
    ran = run_pin("--check", "--json")
    assert ran.code == 2
    [error] = document(ran)["errors"]
    assert error.startswith(f"{config}: ")
    assert message in error
    assert ran.stderr.splitlines()[0] == f"error: {error}"
    assert "Traceback" not in ran.stderr


def test_every_setting_of_the_file_is_a_value_of_the_command_line() -> None:
    """pinner.command puts the file's settings in place of the command line's defaults by
    name: one that named no option would stop every run in that folder."""
    from pinner.command import Invocation
    from pinner.config import _KEYS

    assert {parameter for parameter, _, _ in _KEYS.values()} <= set(Invocation._fields)
