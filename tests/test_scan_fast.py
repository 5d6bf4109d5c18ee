"""The scanner's fast path against its exact, character-by-character path.

``scan`` reads a one-line instruction with a few string operations and leaves the lines that
continue to the exact scanner; ``scan_exact`` reads every line the exact way. They must agree on
everything a user can see: each reference, its line, where it was found, the offsets the
rewriter splices at, and each skip with its reason. Checked on the BuildKit corpus, the golden
files, and generated Dockerfiles.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given

from pinner.dockerfile import scan, scan_exact
from tests.test_corpus import CORPUS, EVERY
from tests.test_properties import any_text, dockerfiles, examples

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
DIGEST = "@sha256:" + "0123456789abcdef" * 4


def assert_same_scan(text: str) -> None:
    fast, exact = scan(text), scan_exact(text)
    assert fast == exact  # Found compares its offsets too
    assert [f.offsets for f in fast.found] == [f.offsets for f in exact.found]


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("folder", EVERY)
def test_corpus_file(folder: str) -> None:
    assert_same_scan(read(CORPUS / folder / "Dockerfile"))


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("*.Dockerfile")))
def test_golden_file(name: str) -> None:
    assert_same_scan(read(GOLDEN / name))


# The lines where the two paths part: what ends a line, what opens a heredoc, where flags end.
@examples(150)
@given(dockerfiles())
@example("FROM a\\\\\nFROM b\n")  # an escaped escape does not continue (BuildKit)
@example("FROM a \\  \t\n  b AS c\nCOPY --from=c / /\n")  # blanks after the escape
@example("# escape=`\nFROM a\\\nFROM b`\n:1\n")  # with ` as escape, \ is a plain character
@example("FROM a\nRUN cat <<EOF\nFROM b\nEOF\nFROM c\n")  # heredoc bodies are no instructions
@example("FROM a\nONBUILD COPY <<-EOF /x\nFROM b\n\tEOF\nFROM c\n")
@example("FROM a\nRUN \\\n  cat <<EOF\nFROM b\nEOF\nFROM c\n")  # continued, then a heredoc
@example("# pin: ignore\n \\\n\nFROM a\n")  # an escape alone is no instruction
@example("FROM a\nRUN echo '<<EOF'\nFROM b\nRUN x <<<y\nFROM c\n")  # quoted, here-string
@example('FROM a\nRUN ["sh", "<<EOF"]\nFROM b\n')  # the JSON form has no heredocs
@example("COPY -- --from=a / /\nCOPY --link --from=b --from=c / /\nADD --FROM=d x y\n")
@example("RUN --mount=from=a --mount=type=cache,from=b -- --mount=from=c\n")
@example("\ufeffFROM a\r\nFROM\tb\rc AS d\r\nCOPY --from=D / /\r\n")
@example("ARG B=x\n# pin: ignore\nFROM $B\n# pin: ignore\n\nFROM c\nFROM \\\n d" + DIGEST)
@example("FROM 0\nFROM as x\nFROM a AS 1x\nADD --from=b c d\nRUN --mount=from=0 x\n")
@example(" # escape=`\n# ESCAPE=\\\nFROM a\n")  # a repeated directive
@example("# escape=x\nFROM a\\\nFROM b\n")  # an escape BuildKit refuses
def test_generated_dockerfile(text: str) -> None:
    assert_same_scan(text)


@examples(150)
@given(any_text)
def test_any_text(text: str) -> None:
    assert_same_scan(text)
