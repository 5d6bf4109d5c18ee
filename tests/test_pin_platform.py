"""Per-platform pins (--platform, and --update / --before / --verify keeping them), end to end.

On the fake cgr.dev, whose history digests name real indexes stored with ``put_index``, and on
the real CNCF registry with multi-platform indexes the tests push.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import dockerfile, error_lines, mirror, run_pin
from tests.distribution import Distribution, MediaKind
from tests.fakeregistry import FakeRegistry, format_rfc3339, running_registry

REPO = "chainguard/multi"
IMAGE = f"cgr.dev/{REPO}:latest"
OLD_DAY = "2024-03-01"


@dataclass(frozen=True)
class Builds:
    """Two builds of cgr.dev/chainguard/multi:latest, each an index over amd64 and arm64."""

    old: str
    new: str
    old_children: dict[str, str]
    new_children: dict[str, str]


@pytest.fixture
def cgr() -> Iterator[FakeRegistry]:
    with running_registry() as registry:
        yield registry


@pytest.fixture
def builds(cgr: FakeRegistry) -> Builds:
    old, old_children = cgr.put_index(REPO, seed="old")
    new, new_children = cgr.put_index(REPO, seed="new")
    recent = format_rfc3339(datetime.now(UTC) - timedelta(hours=5))
    cgr.add_history(REPO, "latest", [(f"{OLD_DAY}T10:00:00.000Z", old), (recent, new)])
    return Builds(old, new, old_children, new_children)


def references(stdout: str) -> list[dict[str, object]]:
    document = json.loads(stdout)
    found: list[dict[str, object]] = document["references"]
    return found


# --- --platform ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["linux/arm64", "linux/arm64/v8", "linux/aarch64"])
def test_platform_pins_that_platforms_manifest_of_the_newest_build(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path, spelling: str
) -> None:
    path = dockerfile(tmp_path, f"FROM {IMAGE}\n")
    ran = run_pin(*mirror(cgr), "--platform", spelling, path)
    assert ran.code == 0, ran.stderr
    arm64 = builds.new_children["linux/arm64"]
    assert path.read_text() == f"FROM {IMAGE}@{arm64}\n"
    assert f"pinned {IMAGE} to {arm64[:19]} (linux/arm64) (built " in ran.stderr


def test_platform_with_before_takes_the_build_of_that_day_then_its_manifest(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    path = dockerfile(tmp_path, f"FROM {IMAGE}\n")
    ran = run_pin(*mirror(cgr), "--platform", "linux/amd64", "--before", OLD_DAY, path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {IMAGE}@{builds.old_children['linux/amd64']}\n"


def test_a_platform_the_index_lacks_is_one_error_naming_image_platform_and_those_it_has(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    original = f"FROM {IMAGE}\nCOPY --from={IMAGE} /a /a\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(*mirror(cgr), "--platform", "linux/s390x", path)
    assert ran.code == 2
    assert path.read_text() == original
    [error] = error_lines(ran.stderr)
    assert error.startswith(f"error: {path}:1: {IMAGE}: linux/s390x was asked for with --platform")
    assert "has no linux/s390x manifest (its index lists linux/amd64, linux/arm64)" in error
    assert "nothing was written" in ran.stderr
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize("text", ["linux", "linux/arm64/v8/x", "/arm64", "linux/ arm64"])
def test_a_malformed_platform_is_a_usage_error_naming_the_form(
    cgr: FakeRegistry, tmp_path: Path, text: str
) -> None:
    path = dockerfile(tmp_path, f"FROM {IMAGE}\n")
    ran = run_pin(*mirror(cgr), "--platform", text, path)
    assert ran.code == 2
    [error] = error_lines(ran.stderr)
    assert error.startswith("error: --platform ")
    assert "os/architecture[/variant]" in error
    assert cgr.requests == []


def test_a_single_platform_tag_is_pinned_when_its_config_names_the_platform(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    image = cgr.put_image("chainguard/single", "linux/arm64", seed="one")
    cgr.add_history("chainguard/single", "latest", [("2024-03-01T10:00:00Z", image)])
    name = "cgr.dev/chainguard/single:latest"
    path = dockerfile(tmp_path, f"FROM {name}\n")
    ran = run_pin(*mirror(cgr), "--platform", "linux/amd64", path)
    assert ran.code == 2
    assert path.read_text() == f"FROM {name}\n"
    [error] = error_lines(ran.stderr)
    assert f"{path}:1: {name}: " in error
    assert f"build {image} is a single-platform image for linux/arm64, not an index" in error
    ran = run_pin(*mirror(cgr), "--platform", "linux/arm64", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {name}@{image}\n"


def test_a_literal_from_platform_still_pins_the_index(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    path = dockerfile(tmp_path, f"FROM --platform=linux/arm64 {IMAGE}\n")
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM --platform=linux/arm64 {IMAGE}@{builds.new}\n"


def test_json_says_the_platform_of_a_per_platform_pin_and_null_otherwise(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    path = dockerfile(tmp_path, f"FROM {IMAGE}\n")
    ran = run_pin(*mirror(cgr), "--json", "--diff", "--platform", "linux/arm64", path)
    assert ran.code == 0, ran.stderr
    [entry] = references(ran.stdout)
    assert entry["platform"] == "linux/arm64"
    assert entry["new_digest"] == builds.new_children["linux/arm64"]
    ran = run_pin(*mirror(cgr), "--json", "--diff", path)
    [entry] = references(ran.stdout)
    assert entry["platform"] is None
    assert entry["new_digest"] == builds.new


def test_platform_is_read_from_pin_toml_and_from_pin_platform(
    cgr: FakeRegistry,
    builds: Builds,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".pin.toml").write_text('platform = "linux/arm64"\n')
    path = dockerfile(tmp_path, f"FROM {IMAGE}\n")
    ran = run_pin(*mirror(cgr), "Dockerfile")
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {IMAGE}@{builds.new_children['linux/arm64']}\n"
    path.write_text(f"FROM {IMAGE}\n")
    monkeypatch.setenv("PIN_PLATFORM", "linux/amd64")  # the environment beats the file
    ran = run_pin(*mirror(cgr), "Dockerfile")
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {IMAGE}@{builds.new_children['linux/amd64']}\n"


def test_a_bad_platform_in_pin_toml_names_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".pin.toml").write_text('platform = "arm64"\n')
    dockerfile(tmp_path, f"FROM {IMAGE}\n")
    ran = run_pin("--check")
    assert ran.code == 2
    [error] = error_lines(ran.stderr)
    assert ".pin.toml: platform must be a platform, os/architecture[/variant]" in error


# --- --update and --before keep a per-platform pin per-platform ---------------------------------


def test_update_keeps_an_arm64_pin_arm64_and_an_index_pin_an_index(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    old_arm64 = builds.old_children["linux/arm64"]
    path = dockerfile(tmp_path, f"FROM {IMAGE}@{old_arm64} AS a\nFROM {IMAGE}@{builds.old} AS b\n")
    ran = run_pin(*mirror(cgr), "--update", "--json", path)
    assert ran.code == 0, ran.stderr
    new_arm64 = builds.new_children["linux/arm64"]
    assert path.read_text() == f"FROM {IMAGE}@{new_arm64} AS a\nFROM {IMAGE}@{builds.new} AS b\n"
    arm, index = references(ran.stdout)
    assert (arm["action"], arm["platform"], arm["old_digest"]) == (
        "updated",
        "linux/arm64",
        old_arm64,
    )
    assert (index["action"], index["platform"]) == ("updated", None)
    assert f"from {old_arm64[:19]} to {new_arm64[:19]} (linux/arm64)" in ran.stderr


def test_before_moves_a_per_platform_pin_back_to_the_same_platform(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    path = dockerfile(tmp_path, f"FROM {IMAGE}@{builds.new_children['linux/amd64']}\n")
    ran = run_pin(*mirror(cgr), "--before", OLD_DAY, path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {IMAGE}@{builds.old_children['linux/amd64']}\n"


def test_update_of_a_pin_whose_platform_the_new_build_lacks_names_image_and_platform(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    old, old_children = cgr.put_index(REPO, ("linux/amd64", "linux/arm64"), seed="old")
    new, _ = cgr.put_index(REPO, ("linux/amd64",), seed="new")
    cgr.add_history(REPO, "latest", [("2024-03-01T10:00:00Z", old), ("2024-03-02T10:00:00Z", new)])
    original = f"FROM {IMAGE}@{old_children['linux/arm64']}\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(*mirror(cgr), "--update", path)
    assert ran.code == 2
    assert path.read_text() == original
    [error] = error_lines(ran.stderr)
    assert error.startswith(f"error: {path}:1: {IMAGE}@{old_children['linux/arm64']}: ")
    assert (
        f"the pin is to its linux/arm64 manifest, and build {new} has no linux/arm64 manifest"
        " (its index lists linux/amd64)" in error
    )


def test_update_leaves_a_pin_at_the_newest_build_without_asking_what_it_is(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    path = dockerfile(tmp_path, f"FROM {IMAGE}@{builds.new}\n")
    ran = run_pin(*mirror(cgr), "--update", path)
    assert ran.code == 0, ran.stderr
    assert cgr.requests_to("/manifests/") == []
    assert cgr.requests_to("/blobs/") == []


# --- requests ----------------------------------------------------------------------------------


def test_without_platform_and_per_platform_pins_no_manifest_or_blob_is_asked_for(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    arm64 = builds.old_children["linux/arm64"]
    path = dockerfile(tmp_path, f"FROM {IMAGE} AS a\nFROM {IMAGE}@{arm64} AS b\n")
    ran = run_pin(*mirror(cgr), path)  # the pinned reference is left alone: nothing asked of it
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {IMAGE}@{builds.new} AS a\nFROM {IMAGE}@{arm64} AS b\n"
    assert cgr.requests_to("/manifests/") == []
    assert cgr.requests_to("/blobs/") == []
    cgr.clear_log()
    # --update of an index pin: one HEAD says it is an index, nothing more.
    path.write_text(f"FROM {IMAGE}@{builds.old}\n")
    ran = run_pin(*mirror(cgr), "--update", path)
    assert ran.code == 0, ran.stderr
    assert [(r.method, r.path) for r in cgr.requests_to("/manifests/")] == [
        ("HEAD", f"/v2/{REPO}/manifests/{builds.old}")
    ]
    assert cgr.requests_to("/blobs/") == []


def test_each_manifest_and_blob_is_fetched_once_however_many_places_need_it(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    arm64 = builds.old_children["linux/arm64"]
    pinned = f"FROM {IMAGE}@{arm64}\nCOPY --from={IMAGE}@{arm64} /a /a\n"
    files = [dockerfile(tmp_path, pinned, f"{n}.Dockerfile") for n in range(3)]
    ran = run_pin(*mirror(cgr), "--update", *files)
    assert ran.code == 0, ran.stderr
    new_arm64 = builds.new_children["linux/arm64"]
    assert files[2].read_text() == pinned.replace(arm64, new_arm64)
    asked = [(r.method, r.path.rpartition("/")[2]) for r in cgr.requests]
    wanted = [a for a in asked if a[1].startswith("sha256:")]
    assert len(wanted) == len(set(wanted))  # each HEAD, manifest and blob once
    # The old pin: a HEAD, its manifest, its config; the new build: its index.
    assert sorted(m for m, _ in wanted) == ["GET", "GET", "GET", "HEAD"]


# --- --verify ---------------------------------------------------------------------------------


def test_verify_accepts_a_platform_manifest_of_a_build_in_the_history_and_says_which(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    arm64 = builds.old_children["linux/arm64"]
    path = dockerfile(tmp_path, f"FROM {IMAGE}@{arm64}\n")
    ran = run_pin(*mirror(cgr), "--verify", "--json", path)
    assert ran.code == 0, ran.stderr
    [entry] = references(ran.stdout)
    assert entry["platform"] == "linux/arm64"
    assert entry["published"] == f"{OLD_DAY}T10:00:00.000Z"
    reason = f"the linux/arm64 manifest of build {builds.old[:19]}, built {OLD_DAY}T10:00:00.000Z"
    assert str(entry["reason"]).startswith(reason)
    assert reason in ran.stderr
    assert "pin: 1 pin checked, all good" in ran.stderr


def test_verify_still_fails_a_manifest_no_build_of_the_tag_lists(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    stray = cgr.put_image(REPO, "linux/arm64", seed="not-a-build")
    path = dockerfile(tmp_path, f"FROM {IMAGE}@{stray}\n")
    ran = run_pin(*mirror(cgr), "--verify", path)
    assert ran.code == 1
    assert (
        f"{stray} is not in the history of tag latest, nor in the index of the newest 2 builds"
        in ran.stderr
    )


# --- the real registry -------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", ["oci", "docker"])
def test_on_a_real_registry_platform_pins_and_update_keeps_the_platform(
    distribution: Distribution, tmp_path: Path, media_type: MediaKind
) -> None:
    image = f"{distribution.host}/team/multi:2"
    _, old = distribution.push_index("team/multi", "2", seed="old", media_type=media_type)
    path = dockerfile(tmp_path, f"FROM {image}\n")
    ran = run_pin("--platform", "linux/arm64", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {image}@{old['linux/arm64']}\n"
    index, new = distribution.push_index("team/multi", "2", seed="new", media_type=media_type)
    ran = run_pin("--update", "--json", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {image}@{new['linux/arm64']}\n"
    [entry] = references(ran.stdout)
    assert entry["platform"] == "linux/arm64"
    assert new["linux/arm64"] != index


def test_on_a_real_registry_verify_names_the_platform_of_a_child_of_the_current_index(
    distribution: Distribution, tmp_path: Path
) -> None:
    image = f"{distribution.host}/team/multi:2"
    _, children = distribution.push_index("team/multi", "2")
    path = dockerfile(tmp_path, f"FROM {image}@{children['linux/amd64']}\n")
    ran = run_pin("--verify", "--json", path)
    assert ran.code == 0, ran.stderr
    [entry] = references(ran.stdout)
    assert entry["platform"] == "linux/amd64"
    assert entry["reason"] == "verified: the linux/amd64 manifest of the tag's current index"


def test_on_a_real_registry_a_missing_platform_and_a_single_platform_tag(
    distribution: Distribution, tmp_path: Path
) -> None:
    distribution.push_index("team/multi", "2", platforms=("linux/amd64", "linux/arm/v7"))
    single = distribution.push_image("team/single", "1", platform="linux/arm64")
    multi, one = f"{distribution.host}/team/multi:2", f"{distribution.host}/team/single:1"
    original = f"FROM {multi} AS a\nFROM {one}\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin("--platform", "linux/arm64", path)
    assert ran.code == 2
    assert path.read_text() == original
    [error] = error_lines(ran.stderr)
    assert f"{path}:1: {multi}: " in error
    assert "has no linux/arm64 manifest (its index lists linux/amd64, linux/arm/v7)" in error
    path.write_text(f"FROM {one}\n")
    ran = run_pin("--platform", "linux/arm64", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {one}@{single}\n"


def test_per_platform_lookups_finish_with_one_lookup_in_flight_per_registry(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    # A per-platform pin is several fetches in a row; each holds the registry's slot only
    # while it runs, or one slot (and a registry's 64) would wait on itself for ever.
    from pinner.pipeline import Options, run
    from pinner.platforms import parse_platform

    arm64 = builds.old_children["linux/arm64"]
    path = dockerfile(tmp_path, f"FROM {IMAGE}@{arm64} AS a\nFROM {IMAGE}\n")
    options = Options(
        paths=(str(path),),
        update=True,
        mirrors=(("cgr.dev", cgr.url),),
        concurrency=1,
        platform=None,
    )
    report = run(options)
    assert report.errors == []
    assert path.read_text() == (
        f"FROM {IMAGE}@{builds.new_children['linux/arm64']} AS a\nFROM {IMAGE}@{builds.new}\n"
    )
    path.write_text(f"FROM {IMAGE}\n")
    report = run(options._replace(platform=parse_platform("linux/amd64")))
    assert report.errors == []
    assert path.read_text() == f"FROM {IMAGE}@{builds.new_children['linux/amd64']}\n"


def test_max_age_dates_a_per_platform_pin_by_the_build_whose_index_lists_it(
    cgr: FakeRegistry, builds: Builds, tmp_path: Path
) -> None:
    path = dockerfile(tmp_path, f"FROM {IMAGE}@{builds.old_children['linux/amd64']}\n")
    ran = run_pin(*mirror(cgr), "--check", "--max-age", "14d", path)
    assert ran.code == 1
    assert (
        f"the linux/amd64 manifest of build {builds.old[:19]}, built {OLD_DAY}T10:00:00.000Z ("
        in ran.stderr
    )
    assert "a newer build exists" in ran.stderr
    path.write_text(f"FROM {IMAGE}@{builds.new_children['linux/amd64']}\n")
    ran = run_pin(*mirror(cgr), "--check", "--max-age", "14d", path)
    assert ran.code == 0, ran.stderr
