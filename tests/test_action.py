"""The GitHub Action, run the way the runner runs it: action.yml's own step, in bash.

The step's ``run`` and ``env`` are read from action.yml, its ``${{ inputs.* }}`` filled in,
and run with GITHUB_ACTIONS, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY pointing at files, as on a
runner. What is asserted is what a workflow and a person see: the exit code, the step's
outputs, the annotations and the summary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import PYTHON_NEW
from tests.fakeregistry import FakeRegistry
from tests.test_workflows import PYTHON, write

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
_INPUT = re.compile(r"\$\{\{ inputs\.([a-z-]+) \}\}")


@dataclass(frozen=True)
class Step:
    code: int
    stderr: str
    outputs: dict[str, str]
    summary: str


def run_step(workspace: Path, tmp_path: Path, **inputs: str) -> Step:
    """action.yml's `pin` step with these inputs (defaults from action.yml), in *workspace*."""
    [step] = [s for s in ACTION["runs"]["steps"] if s.get("id") == "pin"]
    values = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    values.update({name.replace("_", "-"): value for name, value in inputs.items()})
    env = {
        name: _INPUT.sub(lambda m: values[m.group(1)], value) for name, value in step["env"].items()
    }
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    output.write_text(""), summary.write_text("")
    ran = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=workspace,
        env={
            **os.environ,
            **env,
            # setup-python puts its interpreter first on PATH; here, the one running the tests.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION_PATH": str(ROOT),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return Step(ran.returncode, ran.stderr, outputs, summary.read_text())


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root / "Dockerfile", f"FROM {PYTHON}\n")
    return root


def test_check_fails_on_an_unpinned_image_with_an_annotation_and_a_summary(
    workspace: Path, tmp_path: Path
) -> None:
    step = run_step(workspace, tmp_path)
    assert step.code == 1
    assert "::error file=Dockerfile,line=1,title=pin::" in step.stderr
    assert step.outputs["changed"] == "true"
    report = json.loads(Path(step.outputs["report"]).read_text())
    assert [e["action"] for e in report["references"]] == ["unpinned"]
    assert "### pin --check: 1 image in 1 file would change" in step.summary
    assert (
        f"| `Dockerfile` | 1 | `{PYTHON}` | `not looked up: --check is offline` |" in step.summary
    )
    assert (workspace / "Dockerfile").read_text() == f"FROM {PYTHON}\n"


def test_update_leaves_the_pins_in_the_work_tree(
    cgr: FakeRegistry, workspace: Path, tmp_path: Path
) -> None:
    step = run_step(workspace, tmp_path, mode="update", args=f"--mirror cgr.dev={cgr.url}")
    assert step.code == 0, step.stderr
    assert (workspace / "Dockerfile").read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n"
    assert step.outputs["changed"] == "true"
    assert "### pin --update: 1 image in 1 file changed" in step.summary
    assert f"| `{PYTHON_NEW}` | 2023-05-12T20:50:19.702Z |" in step.summary
    # Then the check passes, and says so.
    step = run_step(workspace, tmp_path)
    assert (step.code, step.outputs["changed"]) == (0, "false")
    assert "every image is pinned" in step.summary


def test_paths_and_args_are_shell_words(cgr: FakeRegistry, tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    spaced = write(workspace / "my app" / "Dockerfile", f"FROM {PYTHON}\n")
    other = write(workspace / "other" / "Dockerfile", f"FROM {PYTHON}\n")
    step = run_step(
        workspace,
        tmp_path,
        mode="update",
        paths="'my app'",
        args=f"--mirror 'cgr.dev={cgr.url}' --digest-only",
    )
    assert step.code == 0, step.stderr
    assert spaced.read_text() == f"FROM cgr.dev/chainguard/python@{PYTHON_NEW}\n"
    assert other.read_text() == f"FROM {PYTHON}\n"


def test_a_failure_is_in_the_summary_and_nothing_is_written(
    cgr: FakeRegistry, workspace: Path, tmp_path: Path
) -> None:
    write(workspace / "Dockerfile", "FROM cgr.dev/chainguard/python:3.99\n")
    step = run_step(workspace, tmp_path, mode="update", args=f"--mirror cgr.dev={cgr.url}")
    assert step.code == 2
    assert "### pin --update: failed, nothing was written" in step.summary
    assert "cgr.dev/chainguard/python:3.99" in step.summary
    assert step.outputs["changed"] == "false"
    assert (workspace / "Dockerfile").read_text() == "FROM cgr.dev/chainguard/python:3.99\n"


def test_an_unknown_mode_is_an_error(workspace: Path, tmp_path: Path) -> None:
    step = run_step(workspace, tmp_path, mode="fix")
    assert step.code == 2
    assert "::error title=pin::mode must be check or update, not 'fix'" in step.stderr


def test_the_action_installs_pinner_from_its_own_checkout() -> None:
    [install] = [s for s in ACTION["runs"]["steps"] if s.get("name") == "Install pinner"]
    assert '"$GITHUB_ACTION_PATH"' in install["run"]
    assert ACTION["outputs"]["changed"]["value"] == "${{ steps.pin.outputs.changed }}"
