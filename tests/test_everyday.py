"""Everyday use: filters read as image names, and audits that never write."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinner.filters import parse_prefix
from pinner.reference import parse_reference
from tests.conftest import PYTHON_NEW, mirror, run_pin
from tests.fakeregistry import FakeRegistry, nightly_digest
from tests.test_workflows import PYTHON, document, write

HUB_IMAGES = ("golang:1.23", "alpine:3.20", "bitnami/redis:7")


@pytest.mark.parametrize(
    ("prefix", "image", "matches"),
    [
        ("golang", "golang:1.23", True),
        ("library/golang", "golang:1.23", True),
        ("docker.io/golang", "golang:1.23", True),
        ("docker.io/library/golang", "golang:1.23", True),
        ("index.docker.io/golang", "docker.io/library/golang", True),
        ("golang", "golangci/golangci-lint:1", False),
        ("golang", "ghcr.io/golang:1", False),
        ("library", "alpine", True),  # every official image
        ("docker.io", "bitnami/redis", True),
        ("bitnami", "bitnami/redis", True),
        ("cgr.dev", PYTHON, True),
        ("cgr.dev/chainguard", PYTHON, True),
        ("cgr.dev/chainguard/", PYTHON, True),
        ("CGR.DEV/Chainguard", PYTHON, True),
        ("cgr.dev/chain", PYTHON, False),  # whole components only
        ("cgr.dve", PYTHON, False),
        ("localhost:5000/team", "localhost:5000/team/app:1", True),
        ("localhost:5000", "localhost:5001/team/app:1", False),
    ],
)
def test_a_prefix_is_read_the_way_docker_reads_an_image_name(
    prefix: str, image: str, matches: bool
) -> None:
    assert parse_prefix(prefix, "--only").matches(parse_reference(image)) is matches


def hub(cgr: FakeRegistry, tmp_path: Path) -> Path:
    """A Dockerfile of Docker Hub images, which the fake registry answers through --mirror."""
    for image in HUB_IMAGES:
        ref = parse_reference(image)
        digest = nightly_digest(ref.repository, ref.effective_tag, 0)
        cgr.add_history(ref.repository, ref.effective_tag, [("2024-01-01T00:00:00Z", digest)])
    text = "".join(f"FROM {image} AS s{i}\n" for i, image in enumerate(HUB_IMAGES))
    return write(tmp_path / "Dockerfile", text)


def pinned(image: str) -> str:
    ref = parse_reference(image)
    return ref.with_digest(nightly_digest(ref.repository, ref.effective_tag, 0))


@pytest.mark.parametrize("spelling", ["golang", "library/golang", "docker.io/golang"])
def test_exclude_golang_leaves_golang_alone(
    cgr: FakeRegistry, tmp_path: Path, spelling: str
) -> None:
    path = hub(cgr, tmp_path)
    ran = run_pin(*mirror(cgr, "docker.io"), "--exclude", spelling, path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == (
        f"FROM golang:1.23 AS s0\nFROM {pinned('alpine:3.20')} AS s1\n"
        f"FROM {pinned('bitnami/redis:7')} AS s2\n"
    )
    assert "warning" not in ran.stderr


def test_only_alpine_pins_alpine_alone(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = hub(cgr, tmp_path)
    ran = run_pin(*mirror(cgr, "docker.io"), "--only", "alpine", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == (
        f"FROM golang:1.23 AS s0\nFROM {pinned('alpine:3.20')} AS s1\nFROM bitnami/redis:7 AS s2\n"
    )


def test_a_misspelt_only_fails_the_check_instead_of_passing_it(tmp_path: Path) -> None:
    path = write(tmp_path / "Dockerfile")
    ran = run_pin("--check", "--only", "cgr.dve", path)
    assert ran.code == 2
    assert "error: --only cgr.dve matched no image in the files read" in ran.stderr
    assert "nothing to change" not in ran.stderr
    ran = run_pin("--check", "--json", "--only", "cgr.dve", path)
    assert ran.code == 2
    assert document(ran)["errors"] == [
        "--only cgr.dve matched no image in the files read, so nothing was checked;"
        " check its spelling"
    ]


def test_a_filter_that_matches_nothing_is_a_warning_outside_check(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    path = write(tmp_path / "Dockerfile")
    ran = run_pin(*mirror(cgr), "--exclude", "cgr.dve", "--json", path)
    assert ran.code == 0, ran.stderr
    assert "warning: --exclude cgr.dve matched no image in the files read" in ran.stderr
    assert document(ran)["warnings"] == ["--exclude cgr.dve matched no image in the files read"]
    assert path.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n"
    # --exclude only ever narrows what is checked: a typo in it cannot turn CI green.
    ran = run_pin("--check", "--exclude", "cgr.dve", path)
    assert ran.code == 0, ran.stderr
    assert "warning: --exclude cgr.dve matched no image" in ran.stderr


@pytest.mark.parametrize("value", ["", "  ", "cgr.dev/chainguard/python@sha256:abc", "a b"])
def test_a_prefix_that_is_no_name_is_a_usage_error(tmp_path: Path, value: str) -> None:
    ran = run_pin("--check", "--only", value, write(tmp_path / "Dockerfile"))
    assert ran.code == 2
    assert "--only" in ran.stderr
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize(
    "audit", [["--verify"], ["--max-age", "30d"], ["--verify", "--max-age", "30d"]]
)
def test_an_audit_writes_nothing_even_when_every_pin_passes(
    cgr: FakeRegistry, tmp_path: Path, audit: list[str]
) -> None:
    original = f"FROM {PYTHON}@{PYTHON_NEW} AS a\nFROM {PYTHON}\n"
    path = write(tmp_path / "Dockerfile", original)
    ran = run_pin(*mirror(cgr), *audit, path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == original
    assert f"{path}:2: {PYTHON} would become {PYTHON}@{PYTHON_NEW}" in ran.stderr
    # With --check, the unpinned reference fails the run as it would without the audit.
    assert run_pin(*mirror(cgr), *audit, "--check", path).code == 1
    assert path.read_text() == original
