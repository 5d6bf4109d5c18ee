"""The rewriter: golden files byte for byte, and the splicing primitives under them."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from pinner.dockerfile import Found, scan
from pinner.errors import PinError
from pinner.reference import ImageReference
from pinner.rewrite import Edit, apply_edits, edit_for
from tests.golden import fake_digest, pin_text

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
OLD = "sha256:" + "0" * 64
NEW = "sha256:" + "f" * 64


def golden_names() -> list[str]:
    return sorted(p.name.removesuffix(".in.Dockerfile") for p in GOLDEN.glob("*.in.Dockerfile"))


def read_pair(name: str) -> tuple[bytes, bytes]:
    with open(GOLDEN / f"{name}.in.Dockerfile", "rb") as f:
        before = f.read()
    with open(GOLDEN / f"{name}.out.Dockerfile", "rb") as f:
        after = f.read()
    return before, after


def pin_bytes(data: bytes, *, digest_only: bool = False) -> bytes:
    """What ``pin`` writes for *data*: decoded and encoded the way pinner.pipeline does."""
    text = data.decode("utf-8", "surrogateescape")
    return pin_text(text, fake_digest, digest_only=digest_only).encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("name", golden_names())
def test_golden(name: str) -> None:
    before, after = read_pair(name)
    assert pin_bytes(before, digest_only=name.startswith("digest-only")) == after


@pytest.mark.parametrize("name", golden_names())
def test_golden_output_is_pinned_already(name: str) -> None:
    # A second run has nothing to do: the file comes out byte-identical.
    _, after = read_pair(name)
    assert pin_bytes(after, digest_only=name.startswith("digest-only")) == after


# What each golden file claims to hold, checked on the bytes, so that an editor or a git
# setting that normalises line endings, strips a BOM or re-encodes cannot empty a case.
FIXTURE_BYTES: dict[str, Callable[[bytes], bool]] = {
    "plain": lambda b: b.startswith(b"FROM cgr.dev/chainguard/python:latest"),
    "platform-spacing": lambda b: b"FROM  --platform=$BUILDPLATFORM \t " in b and b"\tAS   " in b,
    "crlf": lambda b: b.count(b"\r\n") == b.count(b"\n") == 8 and b"\\\r\n" in b,
    "bom": lambda b: b.startswith(b"\xef\xbb\xbfFROM ") and b.count(b"\xef\xbb\xbf") == 1,
    "latin1-comment": lambda b: b"Ren\xe9 M\xfcller" in b and b"caf\xe9" in b and not _is_utf8(b),
    "trailing-whitespace": lambda b: b"   \nRUN true \t\n" in b and b.endswith(b"\t\n  \n"),
    "no-final-newline": lambda b: not b.endswith((b"\n", b"\r")) and b.count(b"\n") == 2,
    "as-case": lambda b: b" AS Build\n" in b and b" as Final\n" in b and b"--from=Build " in b,
    "comments": lambda b: b"\n    # an indented comment\n" in b and b"\n#FROM debian:12\n" in b,
    "continuation": lambda b: b"FROM \\\n# the toolchain\n\n  " in b and b"chainguard/\\\n#" in b,
    "multi-stage": lambda b: b.count(b"\nFROM ") == 2 and b"COPY --from=0 " in b,
    "heredoc": lambda b: b"\nFROM alpine:3.19\nEOF\n" in b and b"\n\tFROM debian:12\n\tEOT\n" in b,
    "escape-backtick": lambda b: b.startswith(b"# escape=`\n") and b"RUN dir C:\\\n" in b,
    "arg-default": lambda b: b.startswith(b"ARG PYTHON=cgr.dev/") and b'ARG STATIC="cgr' in b,
    "digest-only": lambda b: b"FROM cgr.dev/chainguard/static:latest@sha256:" in b,
    "already-pinned": lambda b: b"cgr.dev/chainguard/static@sha256:" + b"2" * 64 in b,
    "nothing-to-pin": lambda b: b"FROM scratch\n" in b and b"${TAG}" in b,
}


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_every_golden_case_is_there() -> None:
    assert set(golden_names()) == set(FIXTURE_BYTES)
    for name in FIXTURE_BYTES:
        assert (GOLDEN / f"{name}.out.Dockerfile").is_file(), name


@pytest.mark.parametrize("name", sorted(FIXTURE_BYTES))
def test_fixture_holds_the_bytes_it_claims(name: str) -> None:
    before, after = read_pair(name)
    claim = FIXTURE_BYTES[name]
    assert claim(before), f"{name}.in.Dockerfile lost the bytes this case is about"
    assert claim(after), f"{name}.out.Dockerfile lost the bytes this case is about"


def test_nothing_to_pin_is_identical() -> None:
    before, after = read_pair("nothing-to-pin")
    assert before == after
    assert pin_bytes(before) == before


# apply_edits


@pytest.mark.parametrize(
    ("text", "edits", "expected"),
    (
        ("FROM a\nFROM b\n", [Edit(5, 6, "aa:1"), Edit(12, 13, "b:22")], "FROM aa:1\nFROM b:22\n"),
        ("FROM a\nFROM b\n", [Edit(12, 13, "b:22"), Edit(5, 6, "aa:1")], "FROM aa:1\nFROM b:22\n"),
        ("FROM a\n", [Edit(6, 6, ":1")], "FROM a:1\n"),  # an insertion
        ("FROM a:1 AS x\n", [Edit(5, 8, "b")], "FROM b AS x\n"),  # shorter
        ("ab", [Edit(0, 1, "xx"), Edit(1, 2, "yy")], "xxyy"),  # adjacent, not overlapping
    ),
)
def test_apply_edits(text: str, edits: list[Edit], expected: str) -> None:
    assert apply_edits(text, edits) == expected


def test_apply_edits_order_does_not_matter() -> None:
    text = "".join(f"FROM img{i}\n" for i in range(20))
    ends = [text.index(f"img{i}\n") + len(f"img{i}") for i in range(20)]
    edits = [Edit(end, end, f":{i}" * (i % 3 + 1)) for i, end in enumerate(ends)]
    expected = "".join(f"FROM img{i}{f':{i}' * (i % 3 + 1)}\n" for i in range(20))
    shuffled = edits[:]
    random.Random(7).shuffle(shuffled)
    assert apply_edits(text, edits) == expected
    assert apply_edits(text, shuffled) == expected


@pytest.mark.parametrize("text", ("", "FROM a\n", "FROM a\r\n\ufeff\udce9"))
def test_apply_edits_without_edits_returns_the_input(text: str) -> None:
    assert apply_edits(text, []) == text
    assert apply_edits(text, iter(())) == text


@pytest.mark.parametrize(
    "edits",
    (
        [Edit(5, 8, "x"), Edit(7, 9, "y")],
        [Edit(7, 9, "y"), Edit(5, 8, "x")],
        [Edit(0, 10, "x"), Edit(3, 4, "y")],
    ),
)
def test_apply_edits_refuses_overlap(edits: list[Edit]) -> None:
    with pytest.raises(ValueError, match="overlapping"):
        apply_edits("FROM abcdef ghij\n", edits)


# edit_for


def only_found(src: str) -> Found:
    (found,) = scan(src).found
    return found


def test_edit_for_equal_text_is_none() -> None:
    found = only_found("FROM python:3.12\n")
    assert edit_for(found, "python:3.12") is None


def test_edit_for_replaces_only_the_old_digest() -> None:
    src = f"FROM python:3.12@{OLD} AS build\n"
    found = only_found(src)
    edit = edit_for(found, f"python:3.12@{NEW}")
    assert edit == Edit(src.index(OLD) + len("sha256:"), src.index(" AS"), "f" * 64)
    assert apply_edits(src, [edit]) == f"FROM python:3.12@{NEW} AS build\n"


def test_edit_for_appends_to_an_untagged_reference() -> None:
    src = "FROM python AS build\n"
    found = only_found(src)
    edit = edit_for(found, found.reference.with_digest(NEW))
    assert edit == Edit(len("FROM python"), len("FROM python"), f":latest@{NEW}")


def test_edit_for_a_reference_split_at_its_start() -> None:
    src = "FROM cgr.dev/chainguard/\\\n  # the runtime\npython:latest\n"
    found = only_found(src)
    edit = edit_for(found, found.reference.with_digest(NEW))
    assert edit is not None
    assert apply_edits(src, [edit]) == (
        f"FROM cgr.dev/chainguard/\\\n  # the runtime\npython:latest@{NEW}\n"
    )


@pytest.mark.parametrize(
    ("src", "new"),
    (
        # --digest-only drops a tag that begins before the continuation.
        pytest.param("FROM python:\\\n3.12\n", f"python@{NEW}", id="digest-only-split-tag"),
        # A new digest whose first differing character is before the continuation.
        pytest.param(
            f"FROM python:3.12@sha256:0\\\n{OLD[8:]}\n", f"python:3.12@{NEW}", id="split-digest"
        ),
    ),
)
def test_edit_for_refuses_a_change_across_a_continuation(src: str, new: str) -> None:
    found = only_found(src)
    with pytest.raises(PinError, match="line continuation"):
        edit_for(found, new)


def test_pin_text_leaves_references_with_a_digest_alone() -> None:
    src = f"FROM python:3.12@{OLD}\nFROM python@{OLD}\n"
    assert pin_text(src, fake_digest) == src


def test_pin_text_pins_each_reference_with_its_own_digest() -> None:
    seen: list[ImageReference] = []

    def digest_for(reference: ImageReference) -> str:
        seen.append(reference)
        return NEW

    src = "FROM python:3.12 AS a\nFROM cgr.dev/chainguard/go AS b\n"
    assert pin_text(src, digest_for) == (
        f"FROM python:3.12@{NEW} AS a\nFROM cgr.dev/chainguard/go:latest@{NEW} AS b\n"
    )
    assert [str(r) for r in seen] == ["python:3.12", "cgr.dev/chainguard/go"]
