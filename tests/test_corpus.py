"""BuildKit's own parser test files (fixtures/buildkit-parser) as a conformance corpus.

Each ``testfiles/NAME/result`` is BuildKit's parse of ``testfiles/NAME/Dockerfile``; its
``(from "...")`` lines are the base images BuildKit sees, which is what pin must find.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pinner.dockerfile import scan
from tests.golden import fake_digest, pin_text

REPO_ROOT = Path(__file__).resolve().parents[1]
# Vendored from moby/buildkit (Apache-2.0): fixtures/buildkit-parser/README.md says from where.
CORPUS = REPO_ROOT / "fixtures" / "buildkit-parser"
_FROM_RE = re.compile(r'^\(from (?:\[[^\]]*\] )?"((?:[^"\\]|\\.)*)"', re.MULTILINE)


def folders(kind: str) -> list[str]:
    return sorted(p.name for p in (CORPUS / kind).iterdir() if (p / "Dockerfile").is_file())


POSITIVE = folders("testfiles")
EVERY = (
    [f"testfiles/{n}" for n in POSITIVE]
    + [f"testfiles-negative/{n}" for n in folders("testfiles-negative")]
    + ["testfile-line"]
)


def test_corpus_is_present() -> None:
    assert len(POSITIVE) >= 30, f"only {len(POSITIVE)} test files under {CORPUS / 'testfiles'}"


def read(folder: str) -> bytes:
    with open(CORPUS / folder / "Dockerfile", "rb") as f:
        return f.read()


def buildkit_images(name: str) -> list[str]:
    result = (CORPUS / "testfiles" / name / "result").read_text(encoding="utf-8")
    # The result quotes with Go's %q; for these ASCII names that is JSON's string syntax.
    images = [json.loads(f'"{m}"') for m in _FROM_RE.findall(result)]
    return [image for image in images if image != "scratch"]  # scratch is no image to pin


@pytest.mark.parametrize("name", POSITIVE)
def test_finds_the_images_buildkit_sees(name: str) -> None:
    text = read(f"testfiles/{name}").decode("utf-8", "surrogateescape")
    # A `# syntax=` image is read by BuildKit's DetectSyntax, not by the parser these results
    # come from: tests/test_dockerfile.py holds its cases.
    found = [f.text for f in scan(text).found if f.where != "# syntax"]
    assert found == buildkit_images(name)


@pytest.mark.parametrize("folder", EVERY)
def test_pinning_changes_only_the_image_tokens(folder: str) -> None:
    data = read(folder)
    text = data.decode("utf-8", "surrogateescape")
    found = [f for f in scan(text).found if f.reference.digest is None]
    pinned = pin_text(text, fake_digest)
    stripped = pinned
    for each in found:
        digest = fake_digest(each.reference)
        added = f"@{digest}" if each.reference.tag is not None else f":latest@{digest}"
        assert added in stripped, f"{each.text} (line {each.line}) was not pinned"
        stripped = stripped.replace(added, "", 1)
    assert stripped.encode("utf-8", "surrogateescape") == data
    if not found:
        assert pinned.encode("utf-8", "surrogateescape") == data


@pytest.mark.parametrize("folder", EVERY)
def test_pinned_file_comes_out_identical(folder: str) -> None:
    once = pin_text(read(folder).decode("utf-8", "surrogateescape"), fake_digest)
    assert pin_text(once, fake_digest) == once


@pytest.mark.parametrize("name", [n for n in POSITIVE if not buildkit_images(n)])
def test_file_without_images_is_identical(name: str) -> None:
    data = read(f"testfiles/{name}")
    text = data.decode("utf-8", "surrogateescape")
    assert pin_text(text, fake_digest).encode("utf-8", "surrogateescape") == data


@pytest.mark.skipif(not EVERY, reason="corpus missing; see test_corpus_is_present")
def test_line_numbers_match_buildkit() -> None:
    # BuildKit's TestLineInformation: the FROM of testfile-line starts on line 5.
    text = read("testfile-line").decode("utf-8", "surrogateescape")
    assert [(f.text, f.line) for f in scan(text).found] == [("brimstone/ubuntu:14.04", 5)]
