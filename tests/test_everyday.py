"""Everyday use: filters read as image names, and audits that never write."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pinner.filters import parse_prefix
from pinner.reference import parse_reference
from tests.conftest import PYTHON_NEW, PYTHON_OLD, mirror, run_pin
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
    assert "warning" not in ran.stderr
    ran = run_pin("--check", "--json", "--only", "cgr.dve", path)
    assert ran.code == 2
    assert document(ran)["errors"] == [
        "--only cgr.dve matched no image in the files read, so nothing was checked;"
        " check the spelling"
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


def test_an_only_that_lets_some_image_through_is_a_warning_under_check(tmp_path: Path) -> None:
    path = write(tmp_path / "Dockerfile")
    ran = run_pin("--check", "--only", "cgr.dve", "--only", "cgr.dev", path)
    assert ran.code == 1  # python:latest is checked, and is not pinned
    assert "warning: --only cgr.dve matched no image in the files read" in ran.stderr
    # A file without images (a pre-commit batch may have only such) checks nothing, rightly.
    empty = write(tmp_path / "empty.Dockerfile", "FROM scratch\n")
    assert run_pin("--check", "--only", "cgr.dve", empty).code == 0


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
    assert f"{path}:2: would pin {PYTHON} to {PYTHON_NEW[:19]} (built" in ran.stderr
    # With --check, the unpinned reference fails the run as it would without the audit.
    assert run_pin(*mirror(cgr), *audit, "--check", path).code == 1
    assert path.read_text() == original


# -- a cooldown (--before AGE) never blocks ----------------------------------------------------


def test_a_cooldown_keeps_what_an_image_has_when_no_build_is_old_enough(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    young = cgr.add_nightly("chainguard/go", "latest", 3, now - timedelta(days=3))
    old = cgr.add_nightly("chainguard/node", "latest", 30, now - timedelta(days=30))
    go, node = "cgr.dev/chainguard/go:latest", "cgr.dev/chainguard/node:latest"
    original = f"FROM {go} AS a\nFROM {go}@{young[-1][1]} AS b\nFROM {node}\n"
    path = write(tmp_path / "Dockerfile", original)
    ran = run_pin(*mirror(cgr), "--before", "7d", "--json", path)
    assert ran.code == 0, ran.stderr
    # node gets the newest build at least a week old; go has none, and keeps what it had.
    assert path.read_text() == original.replace(f"FROM {node}\n", f"FROM {node}@{old[-7][1]}\n")
    for line in (1, 2):
        assert re.search(
            rf"{path}:{line}: skipped {go}\S*: no build of this tag is old enough for"
            r" --before 7d ago \(.*\); its oldest is 3d old",
            ran.stderr,
        ), ran.stderr
    actions = [(e["line"], e["action"]) for e in document(ran)["references"]]
    assert actions == [(1, "skipped"), (2, "skipped"), (3, "pinned")]


def test_an_image_named_in_many_files_is_looked_up_once_and_answers_each_place(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    # go has no build old enough: every place that names it is skipped, in every file; node's
    # build is pinned in every file.
    now = datetime.now(UTC)
    cgr.add_nightly("chainguard/go", "latest", 3, now - timedelta(days=3))
    old = cgr.add_nightly("chainguard/node", "latest", 30, now - timedelta(days=30))
    go, node = "cgr.dev/chainguard/go:latest", "cgr.dev/chainguard/node:latest"
    original = f"FROM {go} AS a\nFROM {node}\n"
    history = "/_chainguard/history/"
    one = write(tmp_path / "one" / "Dockerfile", original)
    assert run_pin(*mirror(cgr), "--before", "7d", one).code == 0
    asked_for_one = len(cgr.requests_to(history))
    paths = [write(tmp_path / f"{n}.Dockerfile", original) for n in range(3)]
    ran = run_pin(*mirror(cgr), "--before", "7d", "--json", *paths)
    assert ran.code == 0, ran.stderr
    pinned = original.replace(f"FROM {node}\n", f"FROM {node}@{old[-7][1]}\n")
    assert [path.read_text() for path in paths] == [pinned] * 3
    actions = [(e["file"], e["line"], e["action"]) for e in document(ran)["references"]]
    assert actions == [(str(p), n, a) for p in paths for n, a in ((1, "skipped"), (2, "pinned"))]
    assert len(cgr.requests_to(history)) == 2 * asked_for_one


def test_a_cooldown_leaves_registries_without_a_history_alone(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    path = hub(cgr, tmp_path)
    original = path.read_text()
    ran = run_pin(*mirror(cgr, "docker.io"), "--before", "7d", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == original
    assert f"{path}:1: skipped golang:1.23: docker.io keeps no tag history" in ran.stderr


def test_a_rollback_to_a_date_still_fails_without_a_build_that_old(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    original = f"FROM {PYTHON}\n"
    path = write(tmp_path / "Dockerfile", original)
    ran = run_pin(*mirror(cgr), "--before", "2020-01-01", path)
    assert ran.code == 2
    assert "no build at or before 2020-01-01" in ran.stderr
    assert path.read_text() == original


# -- --history IMAGE@digest: where a pin sits ---------------------------------------------------


def test_history_marks_the_pin_and_counts_the_builds_since(cgr: FakeRegistry) -> None:
    builds = cgr.add_nightly("chainguard/go", "latest", 40, datetime(2024, 1, 1, tzinfo=UTC))
    image = f"cgr.dev/chainguard/go:latest@{builds[35][1]}"
    ran = run_pin(*mirror(cgr), "--history", image, "--limit", "5")
    assert ran.code == 0, ran.stderr
    rows = ran.stdout.splitlines()[1:]
    assert [row.endswith("<- pinned") for row in rows] == [False, False, False, False, True]
    assert rows[4].split()[:2] == list(builds[35])
    assert ran.stderr == (
        f"pin: the pin is 4 builds behind the newest (built {builds[35][0]}, "
        f"{rows[4].split()[2]} ago)\n"
    )
    ran = run_pin(*mirror(cgr), "--history", image, "--json")
    assert document(ran)["pinned"] == {
        "published": builds[35][0],
        "digest": builds[35][1],
        "behind": 4,
    }


def test_history_finds_a_pin_older_than_the_rows_shown(cgr: FakeRegistry) -> None:
    builds = cgr.add_nightly("chainguard/go", "latest", 2500, datetime(2019, 1, 1, tzinfo=UTC))
    ran = run_pin(
        *mirror(cgr), "--history", f"cgr.dev/chainguard/go:latest@{builds[3][1]}", "--limit", "2"
    )
    assert ran.code == 0, ran.stderr
    assert "<- pinned" not in ran.stdout
    assert "pin: the pin is 2496 builds behind the newest" in ran.stderr


def test_history_of_a_digest_the_tag_never_had(cgr: FakeRegistry) -> None:
    other = "sha256:" + "e" * 64
    ran = run_pin(*mirror(cgr), "--history", f"{PYTHON}@{other}", "--json")
    assert ran.code == 0, ran.stderr
    assert document(ran)["pinned"] is None
    ran = run_pin(*mirror(cgr), "--history", f"{PYTHON}@{other}")
    assert ran.stderr == f"pin: {other} is not in this tag's history\n"


def test_history_suggests_the_cgr_dev_name(cgr: FakeRegistry) -> None:
    ran = run_pin(*mirror(cgr), "--history", "chainguard/python:latest")
    assert ran.code == 2
    assert ran.stderr == (
        "error: --history chainguard/python:latest: only cgr.dev keeps a tag history;"
        " did you mean cgr.dev/chainguard/python:latest?\n"
    )


def test_a_misspelt_image_reads_as_missing_or_private_not_as_a_login_problem(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    cgr.add_private("chainguard/pyhton")  # cgr.dev answers an unknown name as a private one
    path = write(tmp_path / "Dockerfile", "FROM cgr.dev/chainguard/pyhton:latest\n")
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 2
    assert (
        f"{path}:1: cgr.dev/chainguard/pyhton:latest: this image does not exist, or needs"
        " credentials: check its name, or run `docker login cgr.dev`"
    ) in ran.stderr


# -- a summary people can scan ------------------------------------------------------------------


def test_the_summary_says_pinned_or_updated_and_counts_images_once(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    path = write(tmp_path / "Dockerfile", f"FROM {PYTHON}@{PYTHON_OLD} AS a\nFROM {PYTHON}\n")
    ran = run_pin(*mirror(cgr), "--update", path)
    assert ran.code == 0, ran.stderr
    built = "(built 2023-05-12T20:50:19.702Z)"
    assert ran.stderr.splitlines() == [
        f"{path}:1: updated {PYTHON} from {PYTHON_OLD[:19]} to {PYTHON_NEW[:19]} {built}",
        f"{path}:2: pinned {PYTHON} to {PYTHON_NEW[:19]} {built}",
        "pin: pinned 1 image and updated 1 image (2 places) in 1 file",
    ]


# -- `pin -`: standard input to standard output -------------------------------------------------


def test_pin_dash_reads_stdin_and_prints_it_pinned(cgr: FakeRegistry, tmp_path: Path) -> None:
    original = f"# syntax check\r\nFROM {PYTHON}\r\nRUN echo hi\r\n".encode()
    ran = subprocess.run(
        [sys.executable, "-m", "pinner", *mirror(cgr), "-q", "-"],
        input=original,
        capture_output=True,
        cwd=tmp_path,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == original.replace(PYTHON.encode(), f"{PYTHON}@{PYTHON_NEW}".encode())
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere
    check = subprocess.run(
        [sys.executable, "-m", "pinner", "--check", "-"], input=original, capture_output=True
    )
    assert (check.returncode, check.stdout) == (1, b"")
    assert b"-:2: cgr.dev/chainguard/python:latest is not pinned" in check.stderr


@pytest.mark.parametrize("args", [["-", "Dockerfile"], ["--json", "-"]])
def test_pin_dash_goes_alone(args: list[str]) -> None:
    ran = run_pin(*args)
    assert ran.code == 2
    assert "error: - reads a Dockerfile on standard input" in ran.stderr
