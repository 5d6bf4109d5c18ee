"""``pin`` end to end on Compose, Kubernetes, GitHub Actions and GitLab CI files, through the
real command against the fake cgr.dev (and the CNCF registry for another host)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON_NEW, PYTHON_OLD, mirror, run_pin
from tests.distribution import Distribution
from tests.fakeregistry import FakeRegistry

PYTHON = "cgr.dev/chainguard/python:latest"
NGINX = "cgr.dev/chainguard/nginx:latest"

COMPOSE = f"""\
# café ☕
services:
  web:
    image: {NGINX}   # the front
  api: {{image: '{PYTHON}', ports: ["8000:8000"]}}
  tpl:
    image: cgr.dev/chainguard/python:${{TAG:-latest}}
"""
DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  template:
    spec:
      initContainers:
        - {{name: migrate, image: "{PYTHON}"}}
      containers:
        - name: web
          image: {NGINX}
---
apiVersion: v1
kind: ConfigMap
data: {{image: {NGINX}}}
"""
WORKFLOW = f"""\
on: push
jobs:
  test:
    runs-on: ubuntu-latest
    container: {PYTHON}
    services:
      web: {{image: {NGINX}}}
    steps:
      - uses: docker://{NGINX}
      - uses: actions/checkout@v4
"""
GITLAB = f"""\
image: {PYTHON}
test:
  services:
    - name: {NGINX}
      alias: web
  script: [pytest]
"""
DOCS = "site_name: docs\nextra:\n  image: logo.png\n"


@pytest.fixture
def registry(cgr: FakeRegistry) -> FakeRegistry:
    """cgr.dev with chainguard/python:latest (PYTHON_NEW) and chainguard/nginx:latest."""
    cgr.add_nightly("chainguard/nginx", "latest", 3, datetime.now(UTC) - timedelta(days=3))
    return cgr


def nginx_digest(registry: FakeRegistry) -> str:
    ran = run_pin(*mirror(registry), "--history", NGINX, "--json", "--limit", "1")
    digest: str = json.loads(ran.stdout)["builds"][0]["digest"]
    return digest


def tree(root: Path, files: dict[str, str | bytes]) -> dict[str, Path]:
    paths = {}
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        paths[name] = path
    return paths


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path, and git told not to look for a work tree above it."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    return tmp_path


ALL = {
    "compose.yaml": COMPOSE,
    "k8s/deploy.yaml": DEPLOYMENT,
    ".github/workflows/ci.yml": WORKFLOW,
    ".gitlab-ci.yml": GITLAB,
    "docs/mkdocs.yml": DOCS,
    "Dockerfile": f"FROM {PYTHON}\n",
}


def test_a_directory_pins_every_kind_of_file_in_one_run(
    registry: FakeRegistry, outside_git: Path
) -> None:
    tree(outside_git, ALL)
    nginx = nginx_digest(registry)
    ran = run_pin(*mirror(registry), outside_git)
    assert ran.code == 0, ran.stderr
    assert ran.stdout == ""
    py, ng = f"{PYTHON}@{PYTHON_NEW}", f"{NGINX}@{nginx}"
    after = snapshot(outside_git)
    assert after["compose.yaml"].decode() == COMPOSE.replace(NGINX, ng).replace(PYTHON, py)
    assert after["k8s/deploy.yaml"].decode() == DEPLOYMENT.replace(
        f"image: {NGINX}\n---", f"image: {ng}\n---"
    ).replace(f'"{PYTHON}"', f'"{py}"')
    assert after[".github/workflows/ci.yml"].decode() == WORKFLOW.replace(NGINX, ng).replace(
        PYTHON, py
    )
    assert after[".gitlab-ci.yml"].decode() == GITLAB.replace(NGINX, ng).replace(PYTHON, py)
    assert after["Dockerfile"].decode() == f"FROM {py}\n"
    assert after["docs/mkdocs.yml"].decode() == DOCS  # not pin's: never touched
    assert "pin: pinned 2 images (10 places) in 5 files" in ran.stderr
    assert (
        "compose.yaml:7: skipped cgr.dev/chainguard/python:${TAG:-latest}: made of variables"
        in (ran.stderr)
    )


def test_check_is_offline_and_fails_on_an_unpinned_compose_image(tmp_path: Path) -> None:
    (path,) = tree(tmp_path, {"compose.yaml": COMPOSE}).values()
    ran = run_pin("--check", path)  # no --mirror: a request would fail
    assert ran.code == 1
    assert ran.stdout == ""
    assert f"{path}:4: {NGINX} is not pinned" in ran.stderr
    assert f"{path}:5: {PYTHON} is not pinned" in ran.stderr
    assert path.read_text() == COMPOSE


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("compose.yaml", "services:\n  web:\n    image: Python:3\n", 3),
        (
            "deploy.yaml",
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: a@sha256:ab\n",
            5,
        ),
        ("kustomization.yaml", "images:\n- {name: Alpine, newTag: '3'}\n", 2),
    ],
)
def test_a_reference_no_runtime_can_pull_fails_the_check_in_yaml_too(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    (path,) = tree(tmp_path, {name: text}).values()
    ran = run_pin("--check", path)
    assert ran.code == 2
    (error,) = [x for x in ran.stderr.splitlines() if x.startswith("error:")]
    assert error.startswith(f"error: {path}:{line}: not an image reference (")
    assert error.endswith(": fix the reference")
    assert path.read_text() == text


def test_check_passes_once_pinned(registry: FakeRegistry, tmp_path: Path) -> None:
    (path,) = tree(tmp_path, {"deploy.yaml": DEPLOYMENT}).values()
    assert run_pin(*mirror(registry), path).code == 0
    ran = run_pin("--check", path)
    assert (ran.code, ran.stdout) == (0, ""), ran.stderr


def test_diff_prints_the_change_and_writes_nothing(registry: FakeRegistry, tmp_path: Path) -> None:
    (path,) = tree(tmp_path, {".gitlab-ci.yml": GITLAB}).values()
    ran = run_pin(*mirror(registry), "--diff", path)
    assert ran.code == 0, ran.stderr
    assert f"-image: {PYTHON}\n+image: {PYTHON}@{PYTHON_NEW}\n" in ran.stdout
    assert ran.stdout.startswith(f"--- a/{path}\n+++ b/{path}\n")
    assert path.read_text() == GITLAB


def test_update_moves_a_pin_in_place(registry: FakeRegistry, tmp_path: Path) -> None:
    text = f'services:\n  api:\n    image: "{PYTHON}@{PYTHON_OLD}"\n'
    (path,) = tree(tmp_path, {"docker-compose.prod.yml": text}).values()
    assert run_pin(*mirror(registry), path).stderr == "pin: nothing to change\n"
    ran = run_pin(*mirror(registry), "--update", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == text.replace(PYTHON_OLD, PYTHON_NEW)


def test_before_and_verify_work_on_yaml(registry: FakeRegistry, tmp_path: Path) -> None:
    (path,) = tree(tmp_path, {"compose.yml": f"services: {{a: {{image: {PYTHON}}}}}\n"}).values()
    ran = run_pin(*mirror(registry), "--before", "2023-05-12T14:00:00Z", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"services: {{a: {{image: {PYTHON}@{PYTHON_OLD}}}}}\n"
    ran = run_pin(*mirror(registry), "--check", "--verify", path)
    assert ran.code == 0, ran.stderr
    assert "1 pin checked, all good" in ran.stderr


def test_json_names_where_in_the_file(registry: FakeRegistry, tmp_path: Path) -> None:
    (path,) = tree(tmp_path, {".github/workflows/ci.yml": WORKFLOW}).values()
    ran = run_pin(*mirror(registry), "--json", "--diff", path)
    assert ran.code == 0, ran.stderr
    references: list[dict[str, Any]] = json.loads(ran.stdout)["references"]
    assert [(r["line"], r["instruction"], r["image"], r["action"]) for r in references] == [
        (5, "jobs.test.container", PYTHON, "pinned"),
        (7, "jobs.test.services.web.image", NGINX, "pinned"),
        (9, "jobs.test.steps[0].uses", NGINX, "pinned"),
    ]
    assert references[2]["new_image"] == f"{NGINX}@{nginx_digest(registry)}"


def test_all_or_nothing_across_dockerfiles_and_yaml(
    registry: FakeRegistry, outside_git: Path
) -> None:
    files = dict(ALL)
    files["k8s/job.yaml"] = (
        "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n"
        "      containers: [{image: cgr.dev/chainguard/no-such-image:latest}]\n"
    )
    tree(outside_git, files)
    before = snapshot(outside_git)
    ran = run_pin(*mirror(registry), outside_git)
    assert ran.code == 2
    assert f"{outside_git / 'k8s/job.yaml'}:6: cgr.dev/chainguard/no-such-image:latest" in (
        ran.stderr
    )
    assert "pin: nothing was written" in ran.stderr
    assert snapshot(outside_git) == before


def test_a_named_file_pin_does_not_read_is_an_error(tmp_path: Path) -> None:
    paths = tree(tmp_path, {"mkdocs.yml": DOCS, "Dockerfile": f"FROM {PYTHON}\n"})
    ran = run_pin(paths["Dockerfile"], paths["mkdocs.yml"])
    assert ran.code == 2
    assert ran.stderr.splitlines()[0] == (
        f"error: {paths['mkdocs.yml']}: not a file pin reads: not named like a Compose, GitHub"
        " Actions or GitLab CI file, and no document has apiVersion and kind"
    )
    assert paths["Dockerfile"].read_text() == f"FROM {PYTHON}\n"


@pytest.mark.parametrize("name", ["compose.yaml", "deploy.yaml"])
def test_yaml_that_does_not_parse_is_one_error_line_naming_it(tmp_path: Path, name: str) -> None:
    (path,) = tree(tmp_path, {name: "apiVersion: v1\nkind: Pod\nspec: [\n"}).values()
    ran = run_pin("--check", path)
    assert ran.code == 2
    assert ran.stderr.splitlines()[0].startswith(
        f"error: {path}: not valid YAML (line 4, column 1)"
    )
    assert "Traceback" not in ran.stderr


def test_a_found_yaml_file_that_does_not_parse_is_left_alone(outside_git: Path) -> None:
    helm = "apiVersion: v1\nkind: Pod\n{{- if .Values.on }}\nspec: {{ .Values.spec }}\n"
    tree(outside_git, {"chart/templates/pod.yaml": helm, "Dockerfile": f"FROM {PYTHON}\n"})
    ran = run_pin("--check", outside_git)
    assert ran.code == 1, ran.stderr
    assert "pod.yaml" not in ran.stderr


def test_crlf_and_bom_survive_the_command(registry: FakeRegistry, tmp_path: Path) -> None:
    data = f"\ufeff# é\r\nservices:\r\n  a:\r\n    image: '{PYTHON}'\r\n".encode()
    (path,) = tree(tmp_path, {"compose.yaml": data}).values()
    ran = run_pin(*mirror(registry), path)
    assert ran.code == 0, ran.stderr
    assert path.read_bytes() == data.replace(PYTHON.encode(), f"{PYTHON}@{PYTHON_NEW}".encode())


def test_other_registries_are_pinned_in_yaml_too(
    distribution: Distribution, tmp_path: Path
) -> None:
    digest = distribution.push_image("team/app", "1.2")
    image = f"{distribution.host}/team/app:1.2"
    (path,) = tree(tmp_path, {"compose.yaml": f"services:\n  a:\n    image: {image}\n"}).values()
    ran = run_pin(path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"services:\n  a:\n    image: {image}@{digest}\n"


# -- the offline check does not import yaml ----------------------------------------------------

PROBE = (
    "import sys; from pinner.cli import main; code = main(['--check', sys.argv[1]]);"
    "print(code, 'yaml' in sys.modules)"
)


def probe(folder: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip()


def test_an_offline_check_of_dockerfiles_does_not_import_yaml(outside_git: Path) -> None:
    # A YAML file that cannot be a manifest with an image is not even parsed.
    tree(outside_git, {"Dockerfile": f"FROM {PYTHON}\n", ".pre-commit-config.yaml": "repos: []\n"})
    assert probe(outside_git) == "1 False"


def test_an_offline_check_imports_yaml_when_it_reads_yaml(outside_git: Path) -> None:
    # The control for the test above: the probe does see yaml when it is imported.
    tree(outside_git, {"compose.yaml": COMPOSE})
    assert probe(outside_git) == "1 True"


def test_digest_only_only_and_exclude_work_on_yaml(registry: FakeRegistry, tmp_path: Path) -> None:
    (path,) = tree(tmp_path, {"compose.yaml": COMPOSE}).values()
    ran = run_pin(*mirror(registry), "--digest-only", "--exclude", "cgr.dev/chainguard/nginx", path)
    assert ran.code == 0, ran.stderr
    expected = COMPOSE.replace(f"'{PYTHON}'", f"'cgr.dev/chainguard/python@{PYTHON_NEW}'")
    assert path.read_text() == expected
    ran = run_pin(*mirror(registry), "--only", "cgr.dev/chainguard/nginx", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == expected.replace(NGINX, f"{NGINX}@{nginx_digest(registry)}")


def test_a_huge_yaml_file_is_an_error_naming_it(tmp_path: Path) -> None:
    text = "services:\n" + "".join(f"  s{i}: {{image: 'nginx:1'}}\n" for i in range(200_000))
    (path,) = tree(tmp_path, {"compose.yaml": text}).values()
    ran = run_pin("--check", path)
    assert ran.code == 2
    assert f"error: {path}: larger than 4 MiB, too big for a YAML file;" in ran.stderr


def test_a_rewrite_that_would_change_more_than_the_image_writes_nothing(
    registry: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-parse check is in the command's path: a splice gone wrong (simulated here by an
    edit that also closes the flow mapping early) is an error, and no file is written."""
    import pinner.pipeline
    from pinner.rewrite import Edit, edit_for

    def broken(found: Any, new: str) -> Edit | None:
        edit = edit_for(found, new)
        return None if edit is None else Edit(edit.start, edit.end, edit.replacement + ", x: y")

    monkeypatch.setattr(pinner.pipeline, "edit_for", broken)
    paths = tree(tmp_path, {"compose.yaml": COMPOSE, "Dockerfile": f"FROM {PYTHON}\n"})
    ran = run_pin(*mirror(registry), *paths.values())
    assert ran.code == 2
    assert f"{paths['compose.yaml']}: the rewrite breaks the YAML: not valid YAML" in ran.stderr
    assert paths["compose.yaml"].read_text() == COMPOSE
    assert paths["Dockerfile"].read_text() == f"FROM {PYTHON}\n"


# One line ends in CRLF: the digest line added after it takes that line's ending.
KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
images:
  - name: nginx
    newName: cgr.dev/chainguard/nginx
    newTag: latest\r
  - {name: cgr.dev/chainguard/python, newTag: latest}
  - name: alpine
    newName: my/alpine
"""


def test_kustomize_entries_gain_a_digest_field_and_update_moves_it(
    registry: FakeRegistry, outside_git: Path
) -> None:
    tree(outside_git, {"overlays/prod/kustomization.yaml": KUSTOMIZATION})
    path = outside_git / "overlays/prod/kustomization.yaml"
    ran = run_pin(*mirror(registry), "--json", outside_git)
    assert ran.code == 0, ran.stderr
    nginx = nginx_digest(registry)
    assert path.read_bytes().decode() == KUSTOMIZATION.replace(
        "newTag: latest\r\n", f"newTag: latest\r\n    digest: {nginx}\r\n", 1
    ).replace("newTag: latest}", f"newTag: latest, digest: {PYTHON_NEW}}}")
    references: list[dict[str, Any]] = json.loads(ran.stdout)["references"]
    assert [(r["line"], r["instruction"], r["action"]) for r in references] == [
        (4, "images[0]", "pinned"),
        (7, "images[1]", "pinned"),
        (8, "images[2]", "skipped"),
    ]
    assert references[1]["new_image"] == f"{PYTHON}@{PYTHON_NEW}"
    assert run_pin("--check", path).code == 0
    pinned = path.read_bytes().decode()
    path.write_bytes(pinned.replace(PYTHON_NEW, PYTHON_OLD).encode())
    ran = run_pin(*mirror(registry), "--update", path)
    assert ran.code == 0, ran.stderr
    assert path.read_bytes().decode() == pinned


def test_check_fails_on_a_kustomize_entry_without_digest(tmp_path: Path) -> None:
    (path,) = tree(tmp_path, {"Kustomization": KUSTOMIZATION}).values()
    ran = run_pin("--check", path)  # offline
    assert ran.code == 1
    assert f"{path}:4: {NGINX} is not pinned" in ran.stderr
    assert f"{path}:7: {PYTHON} is not pinned" in ran.stderr
    assert path.read_bytes().decode() == KUSTOMIZATION
