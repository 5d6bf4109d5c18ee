"""Workflow features through the CLI: directories, pre-commit, GitHub, --json, history, audits."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pinner.discover import is_dockerfile
from pinner.scan.kinds import kind_of
from tests.conftest import PYTHON_NEW, PYTHON_OLD, Ran, mirror, run_pin
from tests.fakeregistry import FakeRegistry

PYTHON = "cgr.dev/chainguard/python:latest"
NEW_BUILT = "2023-05-12T20:50:19.702Z"
OLD_BUILT = "2023-05-12T13:46:10.555Z"
FOREIGN = "sha256:" + "f" * 64
ROOT = Path(__file__).resolve().parent.parent
JSON_KEYS = {
    "file",
    "line",
    "instruction",
    "image",
    "action",
    "registry",
    "repository",
    "tag",
    "old_digest",
    "new_digest",
    "new_image",
    "published",
    "reason",
    "audited",
    "platform",
}


def write(path: Path, text: str = f"FROM {PYTHON}\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def document(ran: Ran) -> dict[str, Any]:
    """The --json document: the whole of stdout, nothing else."""
    parsed: dict[str, Any] = json.loads(ran.stdout)
    return parsed


def reported_files(ran: Ran) -> list[str]:
    return [entry["file"] for entry in document(ran)["references"]]


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


# -- directories ---------------------------------------------------------------------------

DOCKERFILES = [
    "Dockerfile",
    "Containerfile",
    "Dockerfile.dev",
    "Containerfile.prod",
    "x.dockerfile",
    "app/Dockerfile",
    "svc/api/build.Dockerfile",
]
NOT_DOCKERFILES = [
    "README.md",
    "notes.txt",
    "dockerfile_parse.py",
    "Dockerfiles/readme.txt",
    "app/Dockerfile-notes",
    "app/my.Dockerfile.txt",
]


@pytest.fixture
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path, and git told not to look for a work tree above it."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    return tmp_path


def test_a_directory_is_searched_for_dockerfiles_by_name(outside_git: Path) -> None:
    for name in DOCKERFILES + NOT_DOCKERFILES:
        write(outside_git / name)
    write(outside_git / ".git" / "Dockerfile")  # not a repository; skipped all the same
    ran = run_pin("--check", "--json", outside_git)
    assert ran.code == 1, ran.stderr
    assert sorted(reported_files(ran)) == sorted(str(outside_git / n) for n in DOCKERFILES)
    for name in NOT_DOCKERFILES:
        assert name not in ran.stderr


def test_files_and_directories_mix_and_each_file_counts_once(outside_git: Path) -> None:
    one = write(outside_git / "app" / "Dockerfile")
    other = write(outside_git / "other.txt")  # named explicitly: taken as a Dockerfile
    ran = run_pin("--check", "--json", outside_git, one, other)
    assert ran.code == 1, ran.stderr
    assert sorted(reported_files(ran)) == sorted([str(one), str(other)])


def test_inside_a_git_work_tree_ignored_files_are_skipped(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo / ".gitignore", "build/\n*.generated.Dockerfile\n")
    write(repo / "svc" / ".gitignore", "Dockerfile.local\n")
    tracked = write(repo / "Dockerfile")
    git(repo, "add", "Dockerfile", ".gitignore")
    untracked = write(repo / "app" / "Dockerfile")  # neither tracked nor ignored: found
    nested = write(repo / "svc" / "Dockerfile")
    for ignored in ("build/Dockerfile", "x.generated.Dockerfile", "svc/Dockerfile.local"):
        write(repo / ignored)
    write(repo / ".git" / "Dockerfile")
    ran = run_pin("--check", "--json", repo)
    assert ran.code == 1, ran.stderr
    assert sorted(reported_files(ran)) == sorted(str(p) for p in (tracked, untracked, nested))


def test_a_work_tree_as_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(tmp_path, "init", "-q")
    write(tmp_path / ".gitignore", "out/\n")
    write(tmp_path / "Dockerfile")
    write(tmp_path / "gone" / "Dockerfile")
    write(tmp_path / "out" / "Dockerfile")
    git(tmp_path, "add", "-A")
    (tmp_path / "gone" / "Dockerfile").unlink()  # tracked, deleted in the work tree: not an error
    monkeypatch.chdir(tmp_path)
    ran = run_pin("--check", "--json")
    assert ran.code == 1, ran.stderr
    assert reported_files(ran) == ["Dockerfile"]


def test_a_subdirectory_of_a_work_tree_gives_paths_below_it(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    write(tmp_path / ".gitignore", "*.local.Dockerfile\n")
    found = write(tmp_path / "app" / "api" / "Dockerfile")
    write(tmp_path / "app" / "api" / "dev.local.Dockerfile")
    write(tmp_path / "Dockerfile")  # above the directory named
    ran = run_pin("--check", "--json", tmp_path / "app")
    assert ran.code == 1, ran.stderr
    assert reported_files(ran) == [str(found)]


def test_no_path_means_the_current_directory(
    outside_git: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(outside_git / "Dockerfile")
    write(outside_git / "app" / "Containerfile", f"FROM {PYTHON}@{PYTHON_NEW}\n")
    write(outside_git / "web" / "Dockerfile.prod")
    monkeypatch.chdir(outside_git)
    ran = run_pin("--check", "--json")
    assert ran.code == 1, ran.stderr
    assert sorted(reported_files(ran)) == ["Dockerfile", "app/Containerfile", "web/Dockerfile.prod"]
    assert "Dockerfile:1: cgr.dev/chainguard/python:latest is not pinned" in ran.stderr


@pytest.mark.parametrize("contents", [[], ["README.md", "src/main.py"]])
def test_a_directory_without_dockerfiles_is_a_usage_error(
    outside_git: Path, contents: list[str]
) -> None:
    for name in contents:
        write(outside_git / name)
    ran = run_pin("--check", outside_git)
    assert ran.code == 2
    assert f"no Dockerfiles or YAML files in {outside_git}" in ran.stderr
    assert "Traceback" not in ran.stderr


# -- pre-commit ------------------------------------------------------------------------------


def pre_commit_hooks() -> dict[str, dict[str, str]]:
    """The hooks in .pre-commit-hooks.yaml: a flat list of `key: scalar` maps, read by hand."""
    hooks: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in (ROOT / ".pre-commit-hooks.yaml").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"(- |  )([a-z_]+): (.*)", line)
        assert match is not None, f"unexpected line in .pre-commit-hooks.yaml: {line!r}"
        if match[1] == "- ":
            current = {}
        assert current is not None
        value = match[3]
        if value.startswith("'") and value.endswith("'"):
            value = value[1:-1].replace("''", "'")  # YAML single quotes: no backslash escapes
        current[match[2]] = value
        if match[2] == "id":
            hooks[value] = current
    return hooks


def test_pre_commit_offers_a_pin_and_a_check_hook() -> None:
    hooks = pre_commit_hooks()
    assert set(hooks) == {"pin", "pin-check"}
    assert hooks["pin"]["entry"] == "pin"
    assert hooks["pin-check"]["entry"] == "pin --check"
    for hook in hooks.values():
        assert hook["language"] == "python"
        # One process for all the files, so one summary: otherwise pre-commit runs a hook in
        # as many processes as there are CPUs, each printing its own.
        assert hook["require_serial"] == "true"


@pytest.mark.parametrize("hook", ["pin", "pin-check"])
@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("Dockerfile", True),
        ("app/Dockerfile", True),
        ("Dockerfile.dev", True),
        ("deploy/Dockerfile.prod", True),
        ("Containerfile", True),
        ("app/Containerfile.dev", True),
        ("build.Dockerfile", True),
        ("x.dockerfile", True),
        ("a/b/x.dockerfile", True),
        ("overlays/prod/kustomization.yaml", True),
        ("kustomization.yml", True),
        ("base/Kustomization", True),
        ("my-kustomization.yaml", False),
        ("README.md", False),
        ("dockerfile_parse.py", False),
        ("src/Dockerfiles/readme.txt", False),
        ("Dockerfile-notes", False),
        ("docs/Dockerfile.d/README", False),
    ],
)
def test_the_hooks_file_pattern(hook: str, path: str, matches: bool) -> None:
    # pre-commit tests `files` with re.search against the repository-relative path.
    pattern = re.compile(pre_commit_hooks()[hook]["files"])
    assert bool(pattern.search(path)) is matches


@pytest.mark.parametrize(
    "path",
    [
        "Dockerfile",
        "a/Dockerfile.dev",
        "Containerfile.prod",
        "b/x.Dockerfile",
        "x.dockerfile",
        "Dockerfile.md",
        "Dockerfilex",
        "xDockerfile",
        "a/dockerfile",
        "CONTAINERFILE",
        "x.Containerfile",
        "x.DOCKERFILE",
    ],
)
def test_the_hooks_and_directory_search_agree_on_names(path: str) -> None:
    pattern = re.compile(pre_commit_hooks()["pin-check"]["files"])
    assert bool(pattern.search(path)) is is_dockerfile(path.rsplit("/", 1)[-1])


@pytest.mark.parametrize(
    "path",
    [
        "compose.yaml",
        "a/compose.yml",
        "docker-compose.yml",
        "docker-compose.prod.yaml",
        "compose.override.yml",
        ".gitlab-ci.yml",
        ".github/workflows/ci.yml",
        "sub/.github/workflows/release.yaml",
        # Not by name: a manifest is known by its content, and a named file pin does not read
        # is an error, so the hooks leave other YAML out (a `files:` override adds folders).
        "k8s/deploy.yaml",
        "mkdocs.yml",
        "mycompose.yaml",
        ".github/dependabot.yml",
        ".gitlab-ci.yaml",
    ],
)
def test_the_hooks_pass_the_yaml_files_pin_knows_by_name(path: str) -> None:
    pattern = re.compile(pre_commit_hooks()["pin-check"]["files"])
    assert bool(pattern.search(path)) is (kind_of(path) in ("compose", "github", "gitlab"))


# -- GitHub annotations --------------------------------------------------------------------


def test_check_in_github_actions_annotates_each_unpinned_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = "we,ird:name.Dockerfile"
    write(
        tmp_path / name,
        f"FROM {PYTHON} AS a\nRUN true\nFROM {PYTHON}@{PYTHON_NEW}\n"
        "FROM cgr.dev/chainguard/go:latest\n",
    )
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    ran = run_pin("--check", name)
    assert ran.code == 1
    annotations = [line for line in ran.stderr.splitlines() if line.startswith("::")]
    where = "file=we%2Cird%3Aname.Dockerfile"
    assert annotations == [
        f"::error {where},line=1,title=pin::{PYTHON} is not pinned",
        f"::error {where},line=4,title=pin::cgr.dev/chainguard/go:latest is not pinned",
    ]
    assert ran.stdout == ""


@pytest.mark.parametrize("value", [None, "false"])
def test_no_annotations_outside_github_actions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("GITHUB_ACTIONS", value)
    path = write(tmp_path / "Dockerfile")
    ran = run_pin("--check", path)
    assert ran.code == 1
    assert "::error" not in ran.stderr + ran.stdout


def test_annotations_for_failed_audits_and_errors(
    cgr: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    path = write(tmp_path / "Dockerfile", f"FROM {PYTHON}@{FOREIGN}\n")
    ran = run_pin(*mirror(cgr), "--check", "--verify", path)
    assert ran.code == 1
    [annotation] = [line for line in ran.stderr.splitlines() if line.startswith("::")]
    assert annotation.startswith(f"::error file={str(path).replace(':', '%3A')},line=1,title=pin::")
    assert f"{PYTHON}@{FOREIGN}" in annotation
    ran = run_pin("--check", tmp_path / "missing")
    assert ran.code == 2
    [annotation] = [line for line in ran.stderr.splitlines() if line.startswith("::")]
    assert annotation.startswith("::error title=pin::")
    assert "no such file" in annotation


def test_annotations_leave_the_json_on_stdout_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    path = write(tmp_path / "Dockerfile")
    ran = run_pin("--check", "--json", path)
    assert ran.code == 1
    assert document(ran)["references"][0]["action"] == "unpinned"
    assert f"::error file={path},line=1,title=pin::{PYTHON} is not pinned" in ran.stderr


# -- --json ----------------------------------------------------------------------------------


def test_json_describes_every_reference(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = write(
        tmp_path / "Dockerfile",
        "ARG V=latest\n"
        "FROM cgr.dev/chainguard/python:${V} AS a\n"
        f"FROM {PYTHON} AS b\n"
        f"FROM {PYTHON}@{PYTHON_OLD}\n",
    )
    ran = run_pin(*mirror(cgr), "--json", path)
    assert ran.code == 0, ran.stderr
    doc = document(ran)
    assert set(doc) == {"version", "written", "exit_code", "errors", "warnings", "references"}
    assert (doc["version"], doc["written"], doc["exit_code"]) == (1, True, 0)
    assert (doc["errors"], doc["warnings"]) == ([], [])
    skipped, pinned, unchanged = doc["references"]
    for entry in doc["references"]:
        assert set(entry) == JSON_KEYS
        assert (entry["file"], entry["instruction"]) == (str(path), "FROM")
    assert skipped["reason"]
    assert skipped == {
        **dict.fromkeys(JSON_KEYS),
        "audited": False,
        "file": str(path),
        "line": 2,
        "instruction": "FROM",
        "image": "cgr.dev/chainguard/python:${V}",
        "action": "skipped",
        "reason": skipped["reason"],
    }
    assert pinned == {
        "file": str(path),
        "line": 3,
        "instruction": "FROM",
        "image": PYTHON,
        "action": "pinned",
        "registry": "cgr.dev",
        "repository": "chainguard/python",
        "tag": "latest",
        "old_digest": None,
        "new_digest": PYTHON_NEW,
        "new_image": f"{PYTHON}@{PYTHON_NEW}",
        "published": NEW_BUILT,
        "reason": None,
        "audited": False,
        "platform": None,
    }
    assert unchanged == {
        **pinned,
        "line": 4,
        "image": f"{PYTHON}@{PYTHON_OLD}",
        "action": "unchanged",
        "old_digest": PYTHON_OLD,
        "new_digest": None,
        "new_image": None,
        "published": None,
        "reason": "pinned",
    }
    assert path.read_text().count(PYTHON_NEW) == 1


def test_json_written_says_whether_files_were_written(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = write(tmp_path / "Dockerfile")
    ran = run_pin(*mirror(cgr), "--json", "--diff", path)
    assert (ran.code, document(ran)["written"]) == (0, False)
    ran = run_pin(*mirror(cgr), "--json", path)
    assert (ran.code, document(ran)["written"]) == (0, True)
    ran = run_pin(*mirror(cgr), "--json", path)  # all pinned now: nothing to write
    assert ran.stderr == "pin: nothing to change\n"
    assert (ran.code, document(ran)["written"]) == (0, False)


def test_json_of_an_offline_check(tmp_path: Path) -> None:
    path = write(
        tmp_path / "Dockerfile", f"FROM {PYTHON}\nCOPY --from=cgr.dev/chainguard/go /a /b\n"
    )
    ran = run_pin("--check", "--json", path)
    assert ran.code == 1
    doc = document(ran)
    assert (doc["written"], doc["exit_code"], doc["errors"]) == (False, 1, [])
    first, second = doc["references"]
    assert first == {
        **dict.fromkeys(JSON_KEYS),
        "audited": False,
        "file": str(path),
        "line": 1,
        "instruction": "FROM",
        "image": PYTHON,
        "action": "unpinned",
        "registry": "cgr.dev",
        "repository": "chainguard/python",
        "tag": "latest",
        "reason": "not pinned",
    }
    assert (second["instruction"], second["action"], second["tag"]) == (
        "COPY --from",
        "unpinned",
        None,
    )


def test_json_of_a_failed_run_is_still_a_document(cgr: FakeRegistry, tmp_path: Path) -> None:
    original = f"FROM {PYTHON}\nFROM cgr.dev/chainguard/nope:latest\n"
    path = write(tmp_path / "Dockerfile", original)
    ran = run_pin(*mirror(cgr), "--json", path)
    assert ran.code == 2
    doc = document(ran)
    assert (doc["version"], doc["written"], doc["exit_code"]) == (1, False, 2)
    [error] = doc["errors"]
    assert f"{path}:2: cgr.dev/chainguard/nope:latest" in error
    assert path.read_text() == original
    assert "nothing was written" in ran.stderr

    ran = run_pin("--json", tmp_path / "missing")
    assert ran.code == 2
    doc = document(ran)
    assert doc["exit_code"] == 2
    assert doc["references"] == []
    assert doc["errors"] == [f"{tmp_path / 'missing'}: no such file"]


# -- --history -------------------------------------------------------------------------------


def history_rows(ran: Ran) -> list[str]:
    header, *rows = ran.stdout.splitlines()
    assert header.split() == ["BUILT", "DIGEST", "AGE"]
    return rows


def test_history_lists_builds_newest_first(cgr: FakeRegistry) -> None:
    ran = run_pin(*mirror(cgr), "--history", PYTHON)
    assert ran.code == 0, ran.stderr
    newer, older = history_rows(ran)
    assert newer.split()[:2] == [NEW_BUILT, PYTHON_NEW]
    assert older.split()[:2] == [OLD_BUILT, PYTHON_OLD]
    assert re.fullmatch(r"\d+d", newer.split()[2])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--limit", "1"], [PYTHON_NEW]),
        (["--before", "2023-05-12T14:00:00Z"], [PYTHON_OLD]),
        (["--before", "2023-05-12"], [PYTHON_NEW, PYTHON_OLD]),
        (["--before", "2023-05-12T20:50:19.702Z", "--limit", "1"], [PYTHON_NEW]),
    ],
)
def test_history_limit_and_before(
    cgr: FakeRegistry, options: list[str], expected: list[str]
) -> None:
    ran = run_pin(*mirror(cgr), "--history", PYTHON, *options)
    assert ran.code == 0, ran.stderr
    assert [row.split()[1] for row in history_rows(ran)] == expected


def test_history_as_json(cgr: FakeRegistry) -> None:
    ran = run_pin(*mirror(cgr), "--history", PYTHON, "--json")
    assert ran.code == 0, ran.stderr
    assert document(ran) == {
        "version": 1,
        "image": PYTHON,
        "builds": [
            {"published": NEW_BUILT, "digest": PYTHON_NEW},
            {"published": OLD_BUILT, "digest": PYTHON_OLD},
        ],
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--history", "docker.io/library/python:3.12"],
        ["--history", "python:3.12"],
        ["--history", "ghcr.io/org/app:1"],
        ["--history", f"cgr.dev/chainguard/python@{PYTHON_NEW}"],
        ["--history", PYTHON, "Dockerfile"],
    ],
)
def test_history_usage_errors(cgr: FakeRegistry, args: list[str]) -> None:
    ran = run_pin(*mirror(cgr), *args)
    assert ran.code == 2
    assert ran.stderr.startswith("error: ")
    assert "--history" in ran.stderr
    assert ran.stdout == ""
    assert cgr.requests == []


def test_history_of_an_unknown_tag_is_an_error(cgr: FakeRegistry) -> None:
    ran = run_pin(*mirror(cgr), "--history", "cgr.dev/chainguard/python:3.99")
    assert ran.code == 2
    assert "cgr.dev/chainguard/python:3.99" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_history_of_a_long_nightly_tag_shows_the_newest(cgr: FakeRegistry) -> None:
    now = datetime.now(UTC)
    builds = cgr.add_nightly("chainguard/node", "latest", 2500, now - timedelta(days=2500))
    ran = run_pin(*mirror(cgr), "--history", "cgr.dev/chainguard/node:latest", "--limit", "5")
    assert ran.code == 0, ran.stderr
    assert [row.split()[:2] for row in history_rows(ran)] == [list(b) for b in builds[:-6:-1]]
    assert len(cgr.requests_to("/_chainguard/history/")) <= 3


# -- --verify --------------------------------------------------------------------------------


@pytest.mark.parametrize("digest", [PYTHON_OLD, PYTHON_NEW])
@pytest.mark.parametrize("check", [[], ["--check"]])
def test_verify_passes_a_digest_from_the_tags_history(
    cgr: FakeRegistry, tmp_path: Path, digest: str, check: list[str]
) -> None:
    original = f"FROM {PYTHON}@{digest}\n"
    path = write(tmp_path / "Dockerfile", original)
    ran = run_pin(*mirror(cgr), "--verify", *check, path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == original


def test_verify_fails_a_digest_the_tag_never_had(cgr: FakeRegistry, tmp_path: Path) -> None:
    other = "sha256:" + "e" * 64
    cgr.add_history("chainguard/python", "3.12", [("2024-01-01T00:00:00Z", other)])
    original = (
        f"FROM {PYTHON}@{FOREIGN} AS a\n"
        f"FROM {PYTHON}@{PYTHON_NEW} AS b\n"
        f"FROM {PYTHON}@{other}\n"  # a digest of python:3.12, not of :latest
        f"FROM {PYTHON}\n"  # would be pinned, but nothing is written
    )
    path = write(tmp_path / "Dockerfile", original)
    ran = run_pin(*mirror(cgr), "--verify", path)
    assert ran.code == 1
    assert path.read_text() == original
    assert f"{path}:1: {PYTHON}@{FOREIGN}" in ran.stderr
    assert f"{path}:3: {PYTHON}@{other}" in ran.stderr
    # The genuine pin is listed with its build date, not as a failure.
    assert f"{path}:2: {PYTHON}@{PYTHON_NEW}: built 2023-05-12T20:50:19.702Z" in ran.stderr
    assert "2 pins of 3 failed the checks" in ran.stderr
    assert sorted(tmp_path.iterdir()) == [path]

    ran = run_pin(*mirror(cgr), "--verify", "--check", "--json", path)
    assert ran.code == 1
    actions = {e["line"]: e["action"] for e in document(ran)["references"]}
    assert actions == {1: "unverified", 2: "unchanged", 3: "unverified", 4: "pinned"}
    assert path.read_text() == original


def test_verify_reads_the_whole_of_a_long_history(cgr: FakeRegistry, tmp_path: Path) -> None:
    start = datetime(2019, 1, 1, tzinfo=UTC)
    builds = cgr.add_nightly("chainguard/static", "latest", 2500, start)
    image = "cgr.dev/chainguard/static:latest"
    lines = [f"FROM {image}@{builds[i][1]} AS s{i}\n" for i in (0, 1234, 2499)]
    path = write(tmp_path / "Dockerfile", "".join(lines))
    ran = run_pin(*mirror(cgr), "--verify", "--check", path)
    assert ran.code == 0, ran.stderr
    assert len(cgr.requests_to("/_chainguard/history/")) <= 4


# -- --max-age -------------------------------------------------------------------------------


def test_max_age_fails_an_old_pin_when_a_newer_build_exists(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    original = f"FROM {PYTHON}@{PYTHON_OLD}\n"
    path = write(tmp_path / "Dockerfile", original)
    ran = run_pin(*mirror(cgr), "--max-age", "30d", "--check", path)
    assert ran.code == 1
    [line] = [line for line in ran.stderr.splitlines() if line.startswith(f"{path}:1:")]
    assert OLD_BUILT in line
    assert re.search(r"\b\d+d ago\b", line)
    ran = run_pin(*mirror(cgr), "--max-age", "30d", "--check", "--json", path)
    [entry] = document(ran)["references"]
    assert (entry["action"], entry["published"]) == ("stale", OLD_BUILT)
    assert path.read_text() == original


def test_max_age_passes_the_newest_build_however_old(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = write(tmp_path / "Dockerfile", f"FROM {PYTHON}@{PYTHON_NEW}\n")
    ran = run_pin(*mirror(cgr), "--max-age", "30d", "--check", path)
    assert ran.code == 0, ran.stderr


def test_max_age_measures_from_now(cgr: FakeRegistry, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    builds = cgr.add_nightly("chainguard/go", "latest", 30, now - timedelta(days=29))
    image = "cgr.dev/chainguard/go:latest"
    fresh = write(tmp_path / "fresh.Dockerfile", f"FROM {image}@{builds[-4][1]}\n")  # 3 days
    stale = write(tmp_path / "stale.Dockerfile", f"FROM {image}@{builds[-10][1]}\n")  # 9 days
    assert run_pin(*mirror(cgr), "--max-age", "7d", "--check", fresh).code == 0
    ran = run_pin(*mirror(cgr), "--max-age", "7d", "--check", fresh, stale)
    assert ran.code == 1
    stale_line = next(x for x in ran.stderr.splitlines() if x.startswith(f"{stale}:1:"))
    fresh_line = next(x for x in ran.stderr.splitlines() if x.startswith(f"{fresh}:1:"))
    assert "9d ago" in stale_line
    assert "a newer build exists" in stale_line
    assert "3d ago" in fresh_line
    assert "newer build" not in fresh_line


def test_a_failed_audit_blocks_every_write(cgr: FakeRegistry, tmp_path: Path) -> None:
    original = f"FROM {PYTHON}\nFROM {PYTHON}@{PYTHON_OLD}\n"
    path = write(tmp_path / "Dockerfile", original)
    ran = run_pin(*mirror(cgr), "--max-age", "30d", path)
    assert ran.code == 1
    assert path.read_text() == original


@pytest.mark.parametrize(
    "args",
    [
        ["--verify", "--update"],
        ["--max-age", "7d", "--update"],
        ["--verify", "--before", "2023-05-12"],
        ["--max-age", "7d", "--before", "7d"],
        ["--max-age", "a week"],
    ],
)
def test_audit_usage_errors(cgr: FakeRegistry, tmp_path: Path, args: list[str]) -> None:
    original = f"FROM {PYTHON}\n"
    path = write(tmp_path / "Dockerfile", original)
    ran = run_pin(*mirror(cgr), *args, path)
    assert ran.code == 2
    assert ran.stderr.startswith("error: ")
    assert "Traceback" not in ran.stderr
    assert cgr.requests == []
    assert path.read_text() == original


# -- stdout and stderr -----------------------------------------------------------------------


def test_the_summary_goes_to_stderr_only(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = write(tmp_path / "Dockerfile")
    ran = run_pin(*mirror(cgr), path)
    assert (ran.code, ran.stdout) == (0, "")
    assert ran.stderr.splitlines()[-1] == "pin: pinned 1 image in 1 file"
    ran = run_pin(*mirror(cgr), path)
    assert (ran.code, ran.stdout, ran.stderr) == (0, "", "pin: nothing to change\n")


def test_diff_alone_is_on_stdout(cgr: FakeRegistry, tmp_path: Path) -> None:
    one = write(tmp_path / "a.Dockerfile")
    two = write(tmp_path / "b.Dockerfile", f"FROM {PYTHON}@{PYTHON_NEW}\n")
    ran = run_pin(*mirror(cgr), "--diff", one, two)
    assert ran.code == 0, ran.stderr
    assert ran.stdout == (
        f"--- a/{one}\n+++ b/{one}\n@@ -1 +1 @@\n-FROM {PYTHON}\n+FROM {PYTHON}@{PYTHON_NEW}\n"
    )
    assert "pin: 1 image in 1 file would change" in ran.stderr
    assert "---" not in ran.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [([], 0), (["--check"], 1), (["--diff"], 0), (["--check", "--diff"], 1), (["--json"], 0)],
)
def test_exit_codes(cgr: FakeRegistry, tmp_path: Path, args: list[str], code: int) -> None:
    path = write(tmp_path / "Dockerfile")
    ran = run_pin(*mirror(cgr), *args, path)
    assert ran.code == code, ran.stderr
    assert ("pin: pinned" in ran.stderr) is (args in ([], ["--json"]))
    assert "pin:" not in ran.stdout


def test_json_is_printed_for_a_usage_error_too(tmp_path: Path) -> None:
    ran = run_pin("--json", "--before", "yesterday", write(tmp_path / "Dockerfile"))
    assert ran.code == 2
    doc = json.loads(ran.stdout)
    assert (doc["version"], doc["exit_code"], doc["references"]) == (1, 2, [])
    assert "--before" in doc["errors"][0]
