"""The conformance set: YAML files written in the shapes the Compose specification, the
Kubernetes documentation and GitHub's and GitLab's syntax references document (the README
beside them says where each comes from). A trailing ``# expect: found`` or ``# expect: skipped``
marks every line pin must pin or skip; no other line may be touched."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pinner.scan.kinds import kind_of, scan_file
from tests.golden import fake_digest, pin_text

CONFORMANCE = Path(__file__).resolve().parents[1] / "fixtures" / "yaml-conformance"
_EXPECT_RE = re.compile(r"#\s*expect:\s*(found|skipped)\s*$")


def conformance_files() -> list[str]:
    files = [p for p in CONFORMANCE.rglob("*") if p.suffix in (".yml", ".yaml")]
    return sorted(str(p.relative_to(CONFORMANCE)) for p in files)


def expected(text: str, what: str) -> list[int]:
    return [
        number
        for number, line in enumerate(text.split("\n"), 1)
        if (match := _EXPECT_RE.search(line)) and match[1] == what
    ]


def test_the_set_covers_every_kind() -> None:
    kinds = {kind_of(str(CONFORMANCE / name)) for name in conformance_files()}
    assert kinds == {"compose", "kubernetes", "github", "gitlab"}


@pytest.mark.parametrize("name", conformance_files())
def test_found_and_skipped_exactly_where_marked(name: str) -> None:
    path = CONFORMANCE / name
    text = path.read_text(encoding="utf-8")
    scan = scan_file(str(path), text)
    assert sorted(f.line for f in scan.found) == expected(text, "found")
    assert sorted(s.line for s in scan.skipped) == expected(text, "skipped")
    assert expected(text, "found")


@pytest.mark.parametrize("name", conformance_files())
def test_pinning_touches_only_the_marked_lines(name: str) -> None:
    path = CONFORMANCE / name
    text = path.read_text(encoding="utf-8")
    after = pin_text(text, fake_digest, path=str(path))  # re-parsed and compared inside
    changed = [
        number
        for number, (old, new) in enumerate(
            zip(text.split("\n"), after.split("\n"), strict=True), 1
        )
        if old != new
    ]
    pinned_already = [n for n in expected(text, "found") if "@sha256:" in text.split("\n")[n - 1]]
    assert changed == [n for n in expected(text, "found") if n not in pinned_already]
    # Where an anchor's scalar is pinned, every alias of it follows.
    assert pin_text(after, fake_digest, path=str(path)) == after
