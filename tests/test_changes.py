"""``--changes``: what changed in each moved pin, from the images' SBOM attestations.

Against the fake cgr.dev (tag history, indexes, cosign's ``.att`` tags, the referrers API) and
the real CNCF registry (``docker-registry``, to which the attestations are pushed as cosign
pushes them). What is asserted is what a reviewer sees: the pin happening, the lines on stderr,
the JSON fields, and which requests were made.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pinner.limits import MAX_SBOM_BYTES
from pinner.pipeline import Options, run
from pinner.platforms import parse_platform
from tests.attest import (
    CYCLONEDX_TYPE,
    SPDX_TYPE,
    att_tag,
    attach,
    attach_sbom,
    envelope,
    refer,
    sbom_envelope,
    spdx,
    statement,
)
from tests.conftest import Ran, mirror, run_pin
from tests.distribution import Distribution
from tests.fakeregistry import FakeRegistry, format_rfc3339, running_registry

REPO = "chainguard/python"
IMAGE = f"cgr.dev/{REPO}:latest"
OLD = [("openssl", "3.3.1-r0"), ("ncurses", "6.4-r1"), ("glibc", "2.40-r3")]
NEW = [("openssl", "3.3.2-r0"), ("libcrypt1", "2.40-r3"), ("glibc", "2.40-r3")]
OLD_ARM = [("openssl", "3.3.0-r0")]
NEW_ARM = [("openssl", "3.3.2-r0"), ("zlib", "1.3.1-r0")]
AMD64_LINES = [
    f"{IMAGE}: 1 changed, 1 added, 1 removed (linux/amd64)",
    "  + libcrypt1 2.40-r3",
    "  - ncurses 6.4-r1",
    "  openssl 3.3.1-r0 -> 3.3.2-r0",
]
AMD64_JSON = {
    "platform": "linux/amd64",
    "added": [{"name": "libcrypt1", "version": "2.40-r3"}],
    "removed": [{"name": "ncurses", "version": "6.4-r1"}],
    "changed": [{"name": "openssl", "from": "3.3.1-r0", "to": "3.3.2-r0"}],
}
SBOM_PATHS = (".att", "/referrers/", "/blobs/")


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with running_registry() as fake:
        yield fake


def ago(days: int) -> str:
    return format_rfc3339(datetime.now(UTC) - timedelta(days=days))


def builds(
    registry: FakeRegistry, *sboms: tuple[list[tuple[str, str]], list[tuple[str, str]]]
) -> list[str]:
    """One nightly index per (amd64 packages, arm64 packages), oldest first, each platform's
    image with its SPDX attestation, as Chainguard publishes; their index digests."""
    digests = []
    for number, (amd64, arm64) in enumerate(sboms):
        index, children = registry.put_index(REPO, seed=f"build{number}")
        attach_sbom(registry, REPO, children["linux/amd64"], amd64)
        attach_sbom(registry, REPO, children["linux/arm64"], arm64)
        registry.add_history(REPO, "latest", [(ago(len(sboms) - number), index)])
        digests.append(index)
    return digests


def dockerfile(tmp_path: Path, digest: str, times: int = 1) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text("".join(f"FROM {IMAGE}@{digest} AS s{i}\n" for i in range(times)))
    return path


def changes_lines(ran: Ran) -> list[str]:
    """The --changes block of stderr: the lines before the summary's."""
    return [
        line
        for line in ran.stderr.splitlines()
        if line.startswith("  ") or " changed, " in line or ": changes unknown:" in line
    ]


def sbom_requests(registry: FakeRegistry) -> list[str]:
    return [r.path for r in registry.requests if any(p in r.path for p in SBOM_PATHS)]


# --- a moved pin, through the fake cgr.dev's history -----------------------------------------


def test_update_shows_what_changed_in_the_image(registry: FakeRegistry, tmp_path: Path) -> None:
    old, new = builds(registry, (OLD, OLD_ARM), (NEW, NEW_ARM))
    path = dockerfile(tmp_path, old)
    ran = run_pin("--update", "--changes", *mirror(registry), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {IMAGE}@{new} AS s0\n"
    assert changes_lines(ran) == AMD64_LINES
    # After the diff, before the summary's last line.
    assert ran.stderr.splitlines()[-1] == "pin: updated 1 image in 1 file"


def test_json_has_the_changes_of_each_moved_entry(registry: FakeRegistry, tmp_path: Path) -> None:
    old, _ = builds(registry, (OLD, OLD_ARM), (NEW, NEW_ARM))
    path = dockerfile(tmp_path, old)
    ran = run_pin("--update", "--changes", "--json", *mirror(registry), path)
    [entry] = json.loads(ran.stdout)["references"]
    assert entry["action"] == "updated"
    assert entry["changes"] == AMD64_JSON
    assert entry["changes_reason"] is None


def test_without_changes_no_sbom_is_asked_for(registry: FakeRegistry, tmp_path: Path) -> None:
    old, _ = builds(registry, (OLD, OLD_ARM), (NEW, NEW_ARM))
    ran = run_pin("--update", "--json", *mirror(registry), dockerfile(tmp_path, old))
    assert ran.code == 0
    assert sbom_requests(registry) == []
    assert "changes" not in json.loads(ran.stdout)["references"][0]
    assert "changed" not in ran.stderr


def test_each_digest_is_read_once(registry: FakeRegistry, tmp_path: Path) -> None:
    old, new = builds(registry, (OLD, OLD_ARM), (NEW, NEW_ARM))
    path = dockerfile(tmp_path, old, times=3)
    (tmp_path / "compose.yaml").write_text(f"services:\n  web:\n    image: {IMAGE}@{old}\n")
    ran = run_pin("--update", "--changes", *mirror(registry), path, tmp_path / "compose.yaml")
    assert ran.code == 0, ran.stderr
    assert changes_lines(ran) == AMD64_LINES  # one block for the image, four places
    paths = sbom_requests(registry)
    assert len(paths) == len(set(paths))
    # Each index: its own .att (none), its referrers (none); its amd64 image's .att and SBOM.
    assert sum(att_tag(old) in p for p in paths) == 1
    assert sum(att_tag(new) in p for p in paths) == 1
    assert sum("/blobs/" in p for p in paths) == 2


def test_an_sbom_on_the_index_itself_is_used(registry: FakeRegistry, tmp_path: Path) -> None:
    old, new = builds(registry, ([], []), ([], []))
    attach_sbom(registry, REPO, old, OLD)
    attach_sbom(registry, REPO, new, NEW)
    ran = run_pin("--update", "--changes", *mirror(registry), dockerfile(tmp_path, old))
    assert changes_lines(ran)[0] == f"{IMAGE}: 1 changed, 1 added, 1 removed"  # no platform


def test_platform_chooses_the_child(registry: FakeRegistry, tmp_path: Path) -> None:
    old, _ = builds(registry, (OLD, OLD_ARM), (NEW, NEW_ARM))
    path = dockerfile(tmp_path, old)
    options = Options(
        paths=(str(path),),
        update=True,
        changes=True,
        mirrors=(("cgr.dev", registry.url),),
        platform=parse_platform("linux/arm64"),
    )
    [entry] = run(options).entries
    assert entry.sbom_changes is not None
    assert entry.sbom_changes.to_json() == {
        "platform": "linux/arm64",
        "added": [{"name": "zlib", "version": "1.3.1-r0"}],
        "removed": [],
        "changed": [{"name": "openssl", "from": "3.3.0-r0", "to": "3.3.2-r0"}],
    }


def test_the_referrers_api_is_read_when_there_is_no_att_tag(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    old, new = builds(registry, ([], []), ([], []))
    for index, packages in ((old, OLD), (new, NEW)):
        refer(registry, REPO, index, packages)
    ran = run_pin("--update", "--changes", *mirror(registry), dockerfile(tmp_path, old))
    assert changes_lines(ran)[1:] == AMD64_LINES[1:]
    assert any(f"/referrers/{old}" in p for p in sbom_requests(registry))


def test_history_lists_what_each_build_changed(registry: FakeRegistry) -> None:
    mid = [("openssl", "3.3.1-r0"), ("glibc", "2.40-r3"), ("libcrypt1", "2.40-r3")]
    first, second, third = builds(registry, (OLD, []), (mid, []), (NEW, []))
    ran = run_pin("--history", IMAGE, "--changes", "--limit", "2", *mirror(registry))
    assert ran.code == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[1].split()[1] == third
    assert lines[2:4] == [
        "    1 changed, 0 added, 0 removed since the build before (linux/amd64)",
        "      openssl 3.3.1-r0 -> 3.3.2-r0",
    ]
    assert lines[4].split()[1] == second
    assert lines[5:] == [
        "    0 changed, 1 added, 1 removed since the build before (linux/amd64)",
        "      + libcrypt1 2.40-r3",
        "      - ncurses 6.4-r1",
    ]
    assert not any(first in p for p in (lines[1], lines[4]))
    # The SBOMs of the three builds read, once each: two rows and the build before them.
    assert sum(first[7:] in p for p in sbom_requests(registry)) == 2  # its .att, its referrers
    registry.clear_log()
    json_ran = run_pin("--history", IMAGE, "--changes", "--json", *mirror(registry))
    rows = json.loads(json_ran.stdout)["builds"]
    assert [r["digest"] for r in rows] == [third, second, first]
    assert rows[0]["changes"]["changed"] == [
        {"name": "openssl", "from": "3.3.1-r0", "to": "3.3.2-r0"}
    ]
    assert rows[2]["changes"] is None
    assert rows[2]["changes_reason"] == "no earlier build read to compare with"


def test_check_diff_update_fails_and_shows_the_changes(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    old, new = builds(registry, (OLD, OLD_ARM), (NEW, NEW_ARM))
    path = dockerfile(tmp_path, old)
    ran = run_pin("--check", "--diff", "--update", "--changes", *mirror(registry), path)
    assert ran.code == 1
    assert f"+FROM {IMAGE}@{new} AS s0" in ran.stdout  # the diff on stdout, the changes on stderr
    assert "libcrypt1" not in ran.stdout
    assert changes_lines(ran) == AMD64_LINES
    assert path.read_text() == f"FROM {IMAGE}@{old} AS s0\n"
    quiet = run_pin("--check", "--update", "--changes", "-q", *mirror(registry), path)
    assert quiet.code == 1 and changes_lines(quiet) == []


def test_a_cyclonedx_sbom_is_compared_too(registry: FakeRegistry, tmp_path: Path) -> None:
    old, new = builds(registry, ([], []), ([], []))
    for index, version in ((old, "3.3.1-r0"), (new, "3.3.2-r0")):
        bom = {"components": [{"type": "library", "name": "openssl", "version": version}]}
        blob = envelope(statement(index, CYCLONEDX_TYPE, bom))
        attach(registry, REPO, index, (blob, CYCLONEDX_TYPE))
    ran = run_pin("--update", "--changes", *mirror(registry), dockerfile(tmp_path, old))
    assert changes_lines(ran) == [
        f"{IMAGE}: 1 changed, 0 added, 0 removed",
        "  openssl 3.3.1-r0 -> 3.3.2-r0",
    ]


def test_control_characters_from_an_sbom_are_shown_escaped(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    old, _ = builds(registry, (OLD, []), ([("evil\x1b]0;owned\x07", "1\x9b2J")], []))
    ran = run_pin("--update", "--changes", *mirror(registry), dockerfile(tmp_path, old))
    assert ran.code == 0
    assert "\x1b" not in ran.stderr and "\x9b" not in ran.stderr
    assert "  + evil\\x1b]0;owned\\x07 1\\x9b2J" in ran.stderr.splitlines()


# --- no SBOM, or one that cannot be read: the pin still happens ------------------------------


def moved_with(registry: FakeRegistry, tmp_path: Path, old_layers: list[tuple[bytes, str]]) -> Ran:
    """An old build whose amd64 image carries *old_layers* as its attestations."""
    old_index, old_children = registry.put_index(REPO, seed="old")
    new_index, new_children = registry.put_index(REPO, seed="new")
    registry.add_history(REPO, "latest", [(ago(2), old_index), (ago(1), new_index)])
    if old_layers:
        attach(registry, REPO, old_children["linux/amd64"], *old_layers)
    attach_sbom(registry, REPO, new_children["linux/amd64"], NEW)
    path = dockerfile(tmp_path, old_index)
    ran = run_pin("--update", "--changes", "--json", *mirror(registry), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {IMAGE}@{new_index} AS s0\n"
    assert "Traceback" not in ran.stderr
    [entry] = json.loads(ran.stdout)["references"]
    assert entry["action"] == "updated" and entry["changes"] is None
    assert changes_lines(ran) == [f"{IMAGE}: changes unknown: {entry['changes_reason']}"]
    return ran


def reason(ran: Ran) -> str:
    return str(json.loads(ran.stdout)["references"][0]["changes_reason"])


@pytest.mark.parametrize("referrers", [True, False], ids=["referrers-api", "no-referrers-api"])
def test_no_sbom_attached(registry: FakeRegistry, tmp_path: Path, referrers: bool) -> None:
    registry.referrers = referrers
    ran = moved_with(registry, tmp_path, [])
    assert reason(ran) == "no SBOM attached (the old build, linux/amd64)"


def test_only_other_attestations_attached(registry: FakeRegistry, tmp_path: Path) -> None:
    provenance = envelope(statement("sha256:" + "1" * 64, "https://slsa.dev/provenance/v1", {}))
    ran = moved_with(registry, tmp_path, [(provenance, "https://slsa.dev/provenance/v1")])
    assert reason(ran) == "no SBOM attached (the old build, linux/amd64)"


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (b"<html>oops</html>", "the attestation is not valid JSON"),
        (
            b'{"payloadType": "application/vnd.in-toto+json", "payload": "%%"}',
            "the DSSE payload is not valid base64",
        ),
        (
            envelope(statement("sha256:" + "1" * 64, SPDX_TYPE, {"packages": "all of them"})),
            "the SPDX document has no packages list",
        ),
    ],
    ids=["not-json", "bad-base64", "no-packages"],
)
def test_a_malformed_sbom(registry: FakeRegistry, tmp_path: Path, blob: bytes, why: str) -> None:
    ran = moved_with(registry, tmp_path, [(blob, SPDX_TYPE)])
    assert reason(ran) == f"SBOM unreadable: {why} (the old build, linux/amd64)"


def test_an_sbom_about_another_image(registry: FakeRegistry, tmp_path: Path) -> None:
    other = "sha256:" + "2" * 64
    ran = moved_with(registry, tmp_path, [(sbom_envelope(other, OLD), SPDX_TYPE)])
    assert reason(ran).startswith("SBOM unreadable: the SBOM attached to sha256:")
    assert reason(ran).endswith("another image as its subject (the old build, linux/amd64)")


def test_an_oversized_sbom(registry: FakeRegistry, tmp_path: Path) -> None:
    ran = moved_with(registry, tmp_path, [(b" " * (MAX_SBOM_BYTES + 1), SPDX_TYPE)])
    assert reason(ran) == (
        "SBOM unreadable: cgr.dev sent an SBOM attestation larger than 64 MiB; refusing it"
        " (the old build, linux/amd64)"
    )


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ("gzip-bomb", "cgr.dev sent an SBOM attestation larger than 64 MiB; refusing it"),
        ("drip-body", "sent its answer too slowly: not all of it within 0.5 s"),
        ("reset", "the connection was reset by"),
    ],
)
def test_a_hostile_answer_for_the_sbom(
    registry: FakeRegistry, tmp_path: Path, fault: str, why: str
) -> None:
    """Each SBOM request has the run's deadline, retries and cap; whatever the registry does
    with it, the pin is made and the reason said."""
    old, new = builds(registry, (OLD, []), (NEW, []))
    # Every SBOM blob is answered with the fault, on every attempt.
    registry.misbehave(fault, times=20, path_contains="/blobs/")  # type: ignore[arg-type]
    path = dockerfile(tmp_path, old)
    ran = run_pin("--update", "--changes", "--json", "--timeout", "0.5", *mirror(registry), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {IMAGE}@{new} AS s0\n"
    assert "Traceback" not in ran.stderr
    assert reason(ran).startswith("SBOM unreadable: ")
    assert why in reason(ran)


def test_a_new_pin_has_nothing_to_compare(registry: FakeRegistry, tmp_path: Path) -> None:
    builds(registry, (OLD, []), (NEW, []))
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {IMAGE}\n")
    ran = run_pin("--changes", "--json", *mirror(registry), path)
    [entry] = json.loads(ran.stdout)["references"]
    assert entry["action"] == "pinned"
    assert entry["changes"] is None
    assert entry["changes_reason"] == "no earlier pin to compare with"
    assert sbom_requests(registry) == []


# --- the real CNCF registry, attestations pushed as cosign pushes them ------------------------


def test_docker_registry_index_with_per_platform_attestations(
    distribution: Distribution, tmp_path: Path
) -> None:
    old, old_children = distribution.push_index("team/app", "latest", seed="old")
    attach_sbom(distribution, "team/app", old_children["linux/amd64"], OLD)
    attach_sbom(distribution, "team/app", old_children["linux/arm64"], OLD_ARM)
    new, new_children = distribution.push_index("team/app", "latest", seed="new")
    attach_sbom(distribution, "team/app", new_children["linux/amd64"], NEW)
    attach_sbom(distribution, "team/app", new_children["linux/arm64"], NEW_ARM)
    image = f"{distribution.host}/team/app:latest"
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {image}@{old}\n")
    ran = run_pin("--update", "--changes", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {image}@{new}\n"
    assert changes_lines(ran) == [line.replace(IMAGE, image) for line in AMD64_LINES]


def test_docker_registry_single_image(distribution: Distribution, tmp_path: Path) -> None:
    old = distribution.push_image("team/tool", "1", seed="old")
    attach_sbom(distribution, "team/tool", old, OLD)
    new = distribution.push_image("team/tool", "1", seed="new")
    image = f"{distribution.host}/team/tool:1"
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {image}@{old}\n")
    # No SBOM for the new build: the pin moves, the reason says which side had none.
    ran = run_pin("--update", "--changes", "--json", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {image}@{new}\n"
    assert reason(ran) == "no SBOM attached (the new build)"
    attach_sbom(distribution, "team/tool", new, NEW)
    path.write_text(f"FROM {image}@{old}\n")
    ran = run_pin("--update", "--changes", "--json", path)
    changes = json.loads(ran.stdout)["references"][0]["changes"]
    assert changes == {**AMD64_JSON, "platform": None}


def test_spdx_helper_matches_what_apko_marks() -> None:
    # The shape the end-to-end tests push: what apko's SBOMs mark, read by pinner.sbom.
    from pinner.sbom import spdx_packages

    assert set(spdx_packages(spdx("sha256:" + "3" * 64, OLD))) == {
        "openssl",
        "ncurses",
        "glibc",
        "wolfi",
    }


# --- memory: a large SBOM is read in stages -----------------------------------------------------


def test_a_large_sbom_in_bounded_memory(pin_command: str, tmp_path: Path) -> None:
    """A 46 MB envelope (an SPDX document of 30,000 packages) read in a fresh process: its
    peak RSS stays within 3 times the envelope's size above the same run without --changes
    (measured: about 2.2 times)."""
    from tests.test_faults_network import run_measured

    with running_registry() as registry:
        old, old_children = registry.put_index(REPO, seed="old")
        new, new_children = registry.put_index(REPO, seed="new")
        registry.add_history(REPO, "latest", [(ago(2), old), (ago(1), new)])
        attach_sbom(registry, REPO, new_children["linux/amd64"], NEW)
        subject = old_children["linux/amd64"]
        document = spdx(subject, [(f"package-{i}", f"{i}.0-r0") for i in range(10_000)])
        for package in document["packages"]:  # type: ignore[attr-defined]
            package["description"] = "x" * 800  # licence texts and descriptions weigh most
        blob = envelope(statement(subject, SPDX_TYPE, document))
        del document
        attach(registry, REPO, subject, (blob, SPDX_TYPE))
        size_mib = len(blob) // 2**20
        del blob
        path = tmp_path / "Dockerfile"
        runs: dict[str, int] = {}
        for flags in ("--changes", "--no-color"):
            path.write_text(f"FROM {IMAGE}@{old}\n")
            ran, runs[flags] = run_measured(
                [pin_command, "--update", flags, *mirror(registry), str(path)], tmp_path
            )
            assert ran.code == 0, ran.stderr
            assert path.read_text() == f"FROM {IMAGE}@{new}\n"
            assert ("10000 removed (linux/amd64)" in ran.stderr) == (flags == "--changes")
    assert size_mib >= 40
    peak, baseline = runs["--changes"], runs["--no-color"]
    assert peak - baseline < 3 * size_mib, (peak, baseline, size_mib)


# --- the GitHub Action's step summary ---------------------------------------------------------


def test_the_action_summary_counts_the_changes_per_image(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    from tests.test_action import run_step

    old, new = builds(registry, (OLD, OLD_ARM), (NEW, NEW_ARM))
    workspace = tmp_path / "repo"
    workspace.mkdir()
    (workspace / "Dockerfile").write_text(f"FROM {IMAGE}@{old}\n")
    (workspace / "compose.yaml").write_text(
        f"services:\n  a:\n    image: {IMAGE}@{old}\n  b:\n    image: {IMAGE}@{old}\n"
    )
    args = f"--changes --mirror cgr.dev={registry.url}"
    step = run_step(workspace, tmp_path, mode="update", args=args)
    assert step.code == 0, step.stderr
    assert (workspace / "Dockerfile").read_text() == f"FROM {IMAGE}@{new}\n"
    assert "### What changed in the images (from their SBOMs; signatures not checked)" in (
        step.summary
    )
    rows = [line for line in step.summary.splitlines() if line.startswith(f"| `{IMAGE}` |")]
    assert rows == [f"| `{IMAGE}` | 1 | 1 | 1 | linux/amd64 |"]  # once for three places
