"""What the scanner finds and skips, checked against BuildKit's parser (frontend/dockerfile/parser).

Every Found must point at its own characters: ``offsets`` is what the rewriter splices at, so
each case also checks that the text at those offsets is the reference.
"""

from __future__ import annotations

import pytest

from pinner.dockerfile import Scan, scan

PY = "cgr.dev/chainguard/python:latest"
GO = "cgr.dev/chainguard/go:latest"
STATIC = "cgr.dev/chainguard/static:latest"
DIGEST = "sha256:" + "e" * 64


def scanned(src: str) -> Scan:
    result = scan(src)
    for found in result.found:
        assert "".join(src[i] for i in found.offsets) == found.text
        assert list(found.offsets) == sorted(set(found.offsets))
    return result


def found_in(src: str) -> list[tuple[str, int, str]]:
    return [(f.text, f.line, f.where) for f in scanned(src).found]


@pytest.mark.parametrize(
    ("src", "expected"),
    (
        pytest.param(f"FROM {PY}\n", [(PY, 1, "FROM")], id="plain"),
        pytest.param("from python:3.12\n", [("python:3.12", 1, "FROM")], id="lower-case"),
        pytest.param("fRoM python:3.12 aS build\n", [("python:3.12", 1, "FROM")], id="mixed-case"),
        pytest.param(
            "\n\n   FROM python:3.12\n", [("python:3.12", 3, "FROM")], id="indented-after-blanks"
        ),
        pytest.param(
            f"FROM --platform=$BUILDPLATFORM {GO} AS build\n",
            [(GO, 1, "FROM")],
            id="platform-variable",
        ),
        pytest.param(
            f"FROM \t --platform=linux/arm64\t\t{GO}  \tAS\tbuild\n",
            [(GO, 1, "FROM")],
            id="platform-tabs",
        ),
        pytest.param(f"FROM {PY}@{DIGEST}\n", [(f"{PY}@{DIGEST}", 1, "FROM")], id="pinned"),
        pytest.param(
            f"FROM {GO} as Builder\nFROM builder\nFROM Builder AS again\n"
            "FROM BUILDER\nFROM again\n",
            [(GO, 1, "FROM")],
            id="stage-names-any-case",
        ),
        pytest.param(
            f"FROM {GO} AS builder\n"
            "COPY --from=builder /a /b\n"
            "COPY --from=0 /a /b\n"
            f"COPY --from={STATIC} /etc/passwd /etc/passwd\n"
            f"copy --chown=65532:65532 --from={PY} /a /b\n",
            [(GO, 1, "FROM"), (STATIC, 4, "COPY --from"), (PY, 5, "COPY --from")],
            id="copy-from",
        ),
        pytest.param(
            f'FROM {GO} AS build\nCOPY --from={STATIC} ["/a", "/b"]\n',
            [(GO, 1, "FROM"), (STATIC, 2, "COPY --from")],
            id="copy-from-json-form",
        ),
        pytest.param(
            f"FROM {GO} AS build\nFROM {STATIC}\nCOPY --from=1 /a /b\n",
            [(GO, 1, "FROM"), (STATIC, 2, "FROM")],
            id="copy-from-stage-index",
        ),
        # BuildKit's ADD has no --from flag (the build stops with "unknown flag"): an error, see
        # tests/test_conformance_cli.py, and no image.
        pytest.param(f"FROM {GO}\nADD --from={STATIC} /a /b\n", [(GO, 1, "FROM")], id="add-from"),
        # Only COPY --from reads a number as a stage index; FROM 0 and from=0 name the image 0.
        pytest.param(
            "FROM 0\nFROM alpine AS a\nCOPY --from=0 /a /b\n",
            [("0", 1, "FROM"), ("alpine", 2, "FROM")],
            id="from-0-is-an-image",
        ),
        pytest.param(
            "FROM alpine\nFROM busybox\nRUN --mount=from=0 true\n",
            [("alpine", 1, "FROM"), ("busybox", 2, "FROM"), ("0", 3, "RUN --mount")],
            id="mount-from-0-is-an-image",
        ),
        pytest.param(
            "FROM alpine AS Base\nFROM base\nCOPY --from=BASE /a /b\n",
            [("alpine", 1, "FROM")],
            id="stage-names-are-lower-case",
        ),
        pytest.param(
            f"FROM {GO} AS Deps\n"
            "RUN --mount=type=cache,from=cgr.dev/x/y:1,target=/x make\n"
            "RUN --mount=type=bind,from=deps,target=/d --mount=from=DEPS,target=/e true\n"
            f"RUN --network=none --mount=target=/s,from={STATIC} true\n",
            [(GO, 1, "FROM"), ("cgr.dev/x/y:1", 2, "RUN --mount"), (STATIC, 4, "RUN --mount")],
            id="run-mount-from",
        ),
        pytest.param(
            f"FROM scratch\nFROM {STATIC} AS final\nCOPY --from=scratch /a /b\n",
            [(STATIC, 2, "FROM")],
            id="scratch",
        ),
        # Global ARGs feed FROM: the image is the ARG's default, pinned where it is written.
        pytest.param(f"ARG BASE={PY}\nFROM ${{BASE}}\n", [(PY, 1, "ARG BASE")], id="arg-braces"),
        pytest.param(f"ARG BASE={PY}\nFROM $BASE AS b\n", [(PY, 1, "ARG BASE")], id="arg-bare"),
        pytest.param(f'ARG BASE="{PY}"\nFROM $BASE\n', [(PY, 1, "ARG BASE")], id="arg-quoted"),
        pytest.param(f"ARG BASE='{PY}'\nFROM $BASE\n", [(PY, 1, "ARG BASE")], id="arg-single"),
        pytest.param(f"arg BASE={PY}\nfrom $BASE\n", [(PY, 1, "ARG BASE")], id="arg-lower-case"),
        pytest.param(
            f"ARG V=1 BASE={PY}\nFROM $BASE\n", [(PY, 1, "ARG BASE")], id="arg-several-on-a-line"
        ),
        pytest.param(
            f"ARG BASE={PY}\nFROM $BASE AS a\nFROM ${{BASE}} AS b\n",
            [(PY, 1, "ARG BASE")],
            id="arg-used-twice-found-once",
        ),
        pytest.param(
            f"ARG BASE=python:3\nARG BASE={PY}\nFROM $BASE\n",
            [(PY, 2, "ARG BASE")],
            id="arg-redeclared-last-wins",
        ),
        pytest.param(
            f"ARG BASE={PY}\nFROM $BASE AS build\nARG BASE=python:3\nFROM $BASE\n",
            [(PY, 1, "ARG BASE")],
            id="arg-in-stage-does-not-change-global",
        ),
        pytest.param(
            f"# syntax=docker/dockerfile:1\n# a comment\nFROM {PY}\n",
            [("docker/dockerfile:1", 1, "# syntax"), (PY, 3, "FROM")],
            id="comments-before",
        ),
        # Continuations: comment lines and blank lines inside are dropped.
        pytest.param(
            f"FROM \\\n# the base\n\n  {PY} \\\n  AS build\n",
            [(PY, 4, "FROM")],
            id="continuation-comment-blank",
        ),
        pytest.param(
            f"FROM \\   \n\t{PY}\n", [(PY, 2, "FROM")], id="continuation-with-trailing-blanks"
        ),
        pytest.param(
            "FROM cgr.dev/chainguard/\\\n   # note\npython:latest AS build\n",
            [(PY, 1, "FROM")],
            id="continuation-inside-the-reference",
        ),
        pytest.param(
            "RUN echo one \\\n  two\nFROM python:3\n",
            [("python:3", 3, "FROM")],
            id="after-a-continued-instruction",
        ),
        # BuildKit (setEscapeToken): an escape preceded by an escape is no continuation, so
        # the next line is an instruction of its own (testfiles/trailing-backslash).
        pytest.param(
            f"FROM {GO}\nRUN echo C:\\\\\nFROM {STATIC}\n",
            [(GO, 1, "FROM"), (STATIC, 3, "FROM")],
            id="escaped-escape-is-no-continuation",
        ),
        # Heredocs: the body is data, even when a line of it reads like an instruction.
        pytest.param(
            f"FROM {GO}\nRUN <<EOF\nFROM evil:1\nEOF\nFROM {STATIC}\n",
            [(GO, 1, "FROM"), (STATIC, 5, "FROM")],
            id="heredoc",
        ),
        pytest.param(
            f'FROM {GO}\nCOPY <<-"EOT" /x\n\tFROM evil:1\n\t\tEOT\nFROM {STATIC}\n',
            [(GO, 1, "FROM"), (STATIC, 5, "FROM")],
            id="heredoc-chomp-quoted",
        ),
        pytest.param(
            f"FROM {GO}\nRUN <<EOF\nFROM evil:1\n\tEOF\nEOF\nFROM {STATIC}\n",
            [(GO, 1, "FROM"), (STATIC, 6, "FROM")],
            id="heredoc-tab-terminator-needs-chomp",
        ),
        pytest.param(
            f"FROM {GO}\nRUN <<A cat - 3<<'B'\nFROM evil:1\nA\nFROM evil:2\nB\nFROM {STATIC}\n",
            [(GO, 1, "FROM"), (STATIC, 7, "FROM")],
            id="two-heredocs-on-one-line",
        ),
        pytest.param(
            f"FROM {GO}\nrun <<EOF\nFROM evil:1\nEOF\nFROM {STATIC}\n",
            [(GO, 1, "FROM"), (STATIC, 5, "FROM")],
            id="heredoc-lower-case-run",
        ),
        pytest.param(
            f"FROM {GO}\nADD <<EOF /x\nFROM evil:1\nEOF\nFROM {STATIC}\n",
            [(GO, 1, "FROM"), (STATIC, 5, "FROM")],
            id="heredoc-add",
        ),
        pytest.param(
            f"FROM {GO}\r\nRUN <<EOF\r\nFROM evil:1\r\nEOF\r\nFROM {STATIC}\r\n",
            [(GO, 1, "FROM"), (STATIC, 5, "FROM")],
            id="heredoc-crlf",
        ),
        # BuildKit (heredocsFromLine): words are split the way a shell would, quotes kept, and a
        # heredoc word is <<[-]NAME with no '<' in NAME, so none of these start a heredoc.
        pytest.param(
            f'FROM {GO}\nSHELL ["/bin/bash", "-c"]\nRUN read -r a <<< "$X"\nFROM {STATIC}\n',
            [(GO, 1, "FROM"), (STATIC, 4, "FROM")],
            id="here-string-is-no-heredoc",
        ),
        pytest.param(
            f'FROM {GO}\nRUN echo "usage: run <<file>"\nFROM {STATIC}\n',
            [(GO, 1, "FROM"), (STATIC, 3, "FROM")],
            id="quoted-heredoc-marker-is-no-heredoc",
        ),
        pytest.param(
            f'FROM {GO}\nRUN ["sh", "-c", "cat <<EOF"]\nFROM {STATIC}\n',
            [(GO, 1, "FROM"), (STATIC, 3, "FROM")],
            id="json-form-has-no-heredoc",
        ),
        # BuildKit (canContainHeredoc): ONBUILD RUN/COPY/ADD take heredocs too.
        pytest.param(
            f"FROM {GO}\nONBUILD RUN <<EOF\nFROM evil:1\nEOF\nFROM {STATIC}\n",
            [(GO, 1, "FROM"), (STATIC, 5, "FROM")],
            id="onbuild-heredoc",
        ),
        # Parser directives: only at the very top, and the escape changes continuations.
        pytest.param(
            f"# escape=`\nFROM `\n  {PY}\nRUN dir C:\\\nFROM {STATIC}\n",
            [(PY, 3, "FROM"), (STATIC, 5, "FROM")],
            id="escape-backtick",
        ),
        pytest.param(f"#ESCAPE = `\n\nFROM `\n  {PY}\n", [(PY, 4, "FROM")], id="escape-spelling"),
        pytest.param(
            f"# syntax=docker/dockerfile:1\n# escape=`\nFROM `\n{PY}\n",
            [("docker/dockerfile:1", 1, "# syntax"), (PY, 4, "FROM")],
            id="escape-after-syntax",
        ),
        pytest.param(
            f"# a comment\n# escape=`\nFROM {GO}\nRUN echo `\nFROM {STATIC}\n",
            [(GO, 3, "FROM"), (STATIC, 5, "FROM")],
            id="escape-after-comment-ignored",
        ),
        pytest.param(
            f"\n# escape=`\nFROM {GO}\nRUN echo `\nFROM {STATIC}\n",
            [(GO, 3, "FROM"), (STATIC, 5, "FROM")],
            id="escape-after-blank-line-ignored",
        ),
        pytest.param(
            f"FROM {GO}\n# escape=`\nRUN echo `\nFROM {STATIC}\n",
            [(GO, 1, "FROM"), (STATIC, 4, "FROM")],
            id="escape-after-instruction-ignored",
        ),
        # BuildKit (Parse, processLine) trims the leading whitespace of a line, Go's
        # unicode.IsSpace, before it reads a directive there: a Windows Dockerfile's
        # ` # escape=`` holds, and `WORKDIR c:\` does not swallow the next FROM.
        pytest.param(
            f" \t# escape=`\n\nFROM {GO}\nWORKDIR c:\\\nFROM {STATIC}\n",
            [(GO, 3, "FROM"), (STATIC, 5, "FROM")],
            id="escape-after-blanks",
        ),
        pytest.param(
            f"\u00a0# escape=`\n\u00a0FROM `\n{GO}\nWORKDIR c:\\\nFROM {STATIC}\n",
            [(GO, 3, "FROM"), (STATIC, 5, "FROM")],
            id="escape-after-no-break-space",
        ),
        pytest.param(
            f"# syntax=docker/dockerfile:1\n  #  escape = `\n"
            f"FROM {GO}\nRUN dir c:\\\nFROM {STATIC}\n",
            [("docker/dockerfile:1", 1, "# syntax"), (GO, 3, "FROM"), (STATIC, 5, "FROM")],
            id="escape-indented-after-syntax",
        ),
        pytest.param(
            f" # a comment\n # escape=`\nFROM {GO}\nRUN echo `\nFROM {STATIC}\n",
            [(GO, 3, "FROM"), (STATIC, 5, "FROM")],
            id="escape-indented-after-comment-ignored",
        ),
        # BuildKit (possibleParserDirective): a directive with an unknown name ends the
        # directives, like any comment; `# escape` after it is a comment.
        pytest.param(
            f"# maintainer=me\n# escape=`\nFROM {GO}\nRUN dir C:\\\nFROM {STATIC}\n",
            [(GO, 3, "FROM")],
            id="escape-after-unknown-directive-ignored",
        ),
        # `# syntax=` names the frontend image BuildKit pulls (directives.go DetectSyntax): read
        # on the raw lines, `#` in the first column, after a BOM or a `#!` line; the image is the
        # value up to its first space.
        pytest.param(
            f"#!/usr/bin/env docker\n#SYNTAX = docker/dockerfile:1.7 // opts\nFROM {PY}\n",
            [("docker/dockerfile:1.7", 2, "# syntax"), (PY, 3, "FROM")],
            id="syntax-after-shebang-with-options",
        ),
        pytest.param(
            f"# escape=`\n#syntax=docker.io/docker/dockerfile:1\nFROM {PY}\n",
            [("docker.io/docker/dockerfile:1", 2, "# syntax"), (PY, 3, "FROM")],
            id="syntax-after-escape",
        ),
        pytest.param(
            f" # syntax=docker/dockerfile:1\nFROM {PY}\n", [(PY, 2, "FROM")], id="syntax-indented"
        ),
        pytest.param(
            f"# a comment\n# syntax=docker/dockerfile:1\nFROM {PY}\n",
            [(PY, 3, "FROM")],
            id="syntax-after-comment",
        ),
        pytest.param(
            f"FROM {PY}\n# syntax=docker/dockerfile:1\n", [(PY, 1, "FROM")], id="syntax-late"
        ),
        # Line endings and encodings: offsets stay right in the decoded text.
        pytest.param(
            f"FROM {GO} AS build\r\nFROM \\\r\n  {STATIC}\r\nCOPY --from=build /a /b\r\n",
            [(GO, 1, "FROM"), (STATIC, 3, "FROM")],
            id="crlf",
        ),
        pytest.param(f"\ufeffFROM {PY}\n", [(PY, 1, "FROM")], id="bom"),
        pytest.param(f"\ufeff# escape=`\nFROM `\n{PY}\n", [(PY, 3, "FROM")], id="bom-directive"),
        pytest.param(
            b"# caf\xe9 cr\xe8me\nLABEL who=\xff\xfe\nFROM python:3.12\n".decode(
                "utf-8", "surrogateescape"
            ),
            [("python:3.12", 3, "FROM")],
            id="not-utf-8",
        ),
        pytest.param(f"FROM {PY}", [(PY, 1, "FROM")], id="no-final-newline"),
    ),
)
def test_found(src: str, expected: list[tuple[str, int, str]]) -> None:
    assert found_in(src) == expected


@pytest.mark.parametrize(
    "src",
    (
        pytest.param("", id="empty"),
        pytest.param("# just a comment\n\n", id="comments-only"),
        pytest.param("FROM scratch\n", id="scratch"),
        pytest.param("FROM\n", id="from-without-image"),
        pytest.param(f"# FROM {PY}\n  # FROM {PY}\n", id="commented-out"),
        pytest.param(
            f"FROM scratch\nENV IMAGE={PY}\nLABEL base={PY}\nRUN docker pull {PY}\n"
            f'CMD ["FROM", "{PY}"]\nUSER {PY}\n',
            id="references-outside-images",
        ),
        pytest.param(f"FROM scratch\nRUN echo \\\nFROM {PY}\n", id="inside-a-continuation"),
        pytest.param(f"FROM scratch\nRUN <<EOF\nFROM {PY}\nEOF\n", id="inside-a-heredoc"),
        pytest.param(
            f"FROM scratch\nCOPY <<-EOT /x\n\tFROM {PY}\n\tEOT\n", id="inside-a-chomped-heredoc"
        ),
        pytest.param(f"ARG BASE={PY}\nFROM scratch\n", id="arg-not-used-by-from"),
        pytest.param(f"FROM scratch\nENV BASE={PY}\nFROM $BASE\n", id="env-does-not-feed-from"),
    ),
)
def test_nothing_found(src: str) -> None:
    assert scanned(src).found == ()


@pytest.mark.parametrize(
    ("src", "expected", "reason"),
    (
        pytest.param(
            "ARG BASE\nFROM $BASE\n",
            ("$BASE", 2, "FROM"),
            "build argument BASE has no default value",
            id="arg-without-default",
        ),
        pytest.param(
            "FROM ${NOPE}\n",
            ("${NOPE}", 1, "FROM"),
            "build argument NOPE has no default value",
            id="arg-undeclared",
        ),
        pytest.param(
            f"FROM {GO}\nARG BASE={PY}\nFROM $BASE\n",
            ("$BASE", 3, "FROM"),
            "no default value before the first FROM",
            id="arg-after-first-from",
        ),
        pytest.param(
            "ARG V=latest\nFROM cgr.dev/chainguard/python:${V}\n",
            ("cgr.dev/chainguard/python:${V}", 2, "FROM"),
            "built from build arguments",
            id="partial-variable",
        ),
        pytest.param(
            "ARG R=cgr.dev\nFROM $R/chainguard/python:latest\n",
            ("$R/chainguard/python:latest", 2, "FROM"),
            "built from build arguments",
            id="partial-variable-registry",
        ),
        pytest.param(
            f"ARG BASE={PY}\nFROM ${{BASE:-python:3}}\n",
            ("${BASE:-python:3}", 2, "FROM"),
            "built from build arguments",
            id="variable-with-default",
        ),
        pytest.param(
            f"ARG BASE={PY}\nFROM {GO}\nCOPY --from=$BASE /a /b\n",
            ("$BASE", 3, "COPY --from"),
            "built from build arguments",
            id="variable-in-copy-from",
        ),
        pytest.param(
            "ARG BASE=cgr.dev/chainguard/${FLAVOUR}:latest\nFROM $BASE\n",
            ("cgr.dev/chainguard/${FLAVOUR}:latest", 1, "ARG BASE"),
            "not a plain image reference",
            id="arg-default-with-variable",
        ),
        pytest.param(
            "ARG BASE=\nFROM $BASE\n",
            ("", 1, "ARG BASE"),
            "not a plain image reference",
            id="arg-empty-default",
        ),
        pytest.param(
            "FROM Python:3\n",
            ("Python:3", 1, "FROM"),
            "not an image reference",
            id="invalid-reference",
        ),
    ),
)
def test_skipped(src: str, expected: tuple[str, int, str], reason: str) -> None:
    result = scanned(src)
    # Never both: what is skipped is not pinned, and nothing built from variables is found.
    assert not [f for f in result.found if "$" in f.text or f.line == expected[1]]
    assert [(s.text, s.line, s.where) for s in result.skipped] == [expected]
    assert reason in result.skipped[0].reason


def test_arg_found_at_its_value() -> None:
    src = f'ARG BASE="{PY}"\nFROM ${{BASE}}\n'
    (found,) = scanned(src).found
    # The quotes stay outside: the rewrite happens between them.
    assert src[found.start - 1] == '"'
    assert src[found.end] == '"'
    assert found.reference.registry == "cgr.dev"


def test_reference_split_over_a_continuation() -> None:
    src = "FROM cgr.dev/chainguard/\\\n# comment\n\npython:latest\n"
    (found,) = scanned(src).found
    assert found.text == PY
    assert found.start == src.index("cgr.dev")
    assert found.end == src.index(":latest") + len(":latest")
    assert found.line == 1


def test_crlf_offsets_point_into_the_text() -> None:
    src = f"# escape=`\r\nFROM `\r\n  {GO} AS build\r\nCOPY --from={STATIC} /a /b\r\n"
    go, static = scanned(src).found
    assert src[go.start : go.end] == GO
    assert src[static.start : static.end] == STATIC
    assert (go.line, static.line) == (3, 4)


def test_bom_is_not_part_of_the_reference() -> None:
    src = "\ufeffFROM python:3.12\n"
    (found,) = scanned(src).found
    assert found.start == len("\ufeffFROM ")
    assert found.reference.path == "python"
