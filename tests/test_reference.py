"""Image references parsed by Docker's rules (distribution/reference, normalize.go)."""

from __future__ import annotations

import pytest

from pinner.errors import PinError, ReferenceError_
from pinner.reference import is_sha256_digest, parse_reference

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    (
        # Docker Hub: no registry written, or one of its aliases; official images get library/.
        ("python", "docker.io", "library/python", None, None),
        ("python:3.12", "docker.io", "library/python", "3.12", None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
        ("docker.io/python", "docker.io", "library/python", None, None),
        ("docker.io/library/python:3", "docker.io", "library/python", "3", None),
        ("index.docker.io/x/y", "docker.io", "x/y", None, None),
        # The first component is a registry only with '.', ':', 'localhost' or upper case.
        ("cgr.dev/chainguard/python:latest", "cgr.dev", "chainguard/python", "latest", None),
        ("localhost/a", "localhost", "a", None, None),
        ("localhost:5000/a/b:1", "localhost:5000", "a/b", "1", None),
        ("Example/app", "example", "app", None, None),  # host names ignore case
        ("chainguard/python", "docker.io", "chainguard/python", None, None),
        ("localhost", "docker.io", "library/localhost", None, None),
        ("[::1]:5000/a:1", "[::1]:5000", "a", "1", None),
        ("[::1]/a", "[::1]", "a", None, None),
        ("host:65535/a", "host:65535", "a", None, None),
        # Tag and digest: the tag is after the last ':' that follows the last '/'.
        ("a:1@" + A, "docker.io", "library/a", "1", A),
        ("host:5000/a@" + A, "host:5000", "a", None, A),
        ("host:5000/a:5000@" + A, "host:5000", "a", "5000", A),
        (
            "gcr.io/distroless/static-debian12:nonroot",
            "gcr.io",
            "distroless/static-debian12",
            "nonroot",
            None,
        ),
        ("a/b__c.d-e--f", "docker.io", "a/b__c.d-e--f", None, None),
        ("python:3.12-slim_v1.0", "docker.io", "library/python", "3.12-slim_v1.0", None),
    ),
)
def test_parse_reference(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    reference = parse_reference(text)
    assert (reference.registry, reference.repository, reference.tag, reference.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


@pytest.mark.parametrize(
    "text",
    (
        "python",
        "python:3.12",
        "docker.io/library/python:3",
        "index.docker.io/x/y",
        "localhost:5000/a/b:1@" + A,
        "cgr.dev/chainguard/python@" + A,
    ),
)
def test_spelling_is_kept(text: str) -> None:
    # The written form is never expanded to docker.io/library/...: that is the user's text.
    assert str(parse_reference(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    (
        ("python", "latest"),
        ("python:3.12", "3.12"),
        ("localhost:5000/a", "latest"),
        ("localhost:5000/a:1", "1"),
        ("python@" + A, "latest"),
    ),
)
def test_effective_tag(text: str, expected: str) -> None:
    assert parse_reference(text).effective_tag == expected


@pytest.mark.parametrize(
    ("text", "keep_tag", "expected"),
    (
        ("python:3.12", True, "python:3.12@" + B),
        ("python", True, "python:latest@" + B),
        ("python", False, "python@" + B),
        ("python:3.12", False, "python@" + B),
        ("docker.io/library/python:3", True, "docker.io/library/python:3@" + B),
        ("localhost:5000/a/b", True, "localhost:5000/a/b:latest@" + B),
        ("localhost:5000/a/b:1", False, "localhost:5000/a/b@" + B),
        # Re-pinning replaces the old digest, keeps the tag.
        ("cgr.dev/chainguard/python:latest@" + A, True, "cgr.dev/chainguard/python:latest@" + B),
    ),
)
def test_with_digest(text: str, keep_tag: bool, expected: str) -> None:
    assert parse_reference(text).with_digest(B, keep_tag=keep_tag) == expected


@pytest.mark.parametrize(
    "text",
    (
        pytest.param("", id="empty"),
        pytest.param("Python:3", id="upper-case-repository"),
        pytest.param("cgr.dev/Chainguard/python", id="upper-case-path"),
        pytest.param("python:3.12!", id="bad-tag-char"),
        pytest.param("python:.3", id="tag-starts-with-dot"),
        pytest.param("python:-3", id="tag-starts-with-dash"),
        pytest.param("python:" + "a" * 129, id="tag-too-long"),
        # Go's \w in distribution/reference's tag grammar is ASCII only.
        pytest.param("python:3.12é", id="non-ascii-tag"),
        pytest.param("a:b:c", id="two-colons"),
        pytest.param("a//b", id="empty-component"),
        pytest.param("a___b", id="three-underscores"),
        pytest.param("a.-b", id="mixed-separators"),
        pytest.param("host:port/a", id="port-not-a-number"),
        # No pull reaches these (a connect would raise OverflowError, not an OSError).
        pytest.param("127.0.0.1:70000/a:1", id="port-past-65535"),
        pytest.param("[::1]:65536/a", id="ipv6-port-past-65535"),
        pytest.param("localhost:0/a", id="port-0"),
        pytest.param("-host/a", id="registry-starts-with-dash"),
        pytest.param("python:", id="empty-tag"),
        pytest.param("python@", id="empty-digest"),
        pytest.param("python@sha256:abc", id="digest-too-short-for-any-algorithm"),
        # go-digest validates a sha256 encoding as exactly 64 lowercase hex characters.
        pytest.param("python@sha256:" + "a" * 40, id="sha256-digest-not-64-hex"),
        pytest.param("python@sha256:" + "A" * 64, id="sha256-digest-upper-case"),
        pytest.param("python:3 AS build", id="blank-inside"),
    ),
)
def test_invalid_reference(text: str) -> None:
    with pytest.raises(ReferenceError_):
        parse_reference(text)


def test_reference_error_is_a_pin_error() -> None:
    # The CLI turns every PinError into one line and exit code 2.
    with pytest.raises(PinError, match="Python"):
        parse_reference("Python:3")


@pytest.mark.parametrize(
    ("value", "expected"),
    (
        ("sha256:" + "0123456789abcdef" * 4, True),
        (A, True),
        ("sha256:" + "A" * 64, False),
        ("sha256:" + "a" * 63, False),
        ("sha256:" + "a" * 65, False),
        ("sha512:" + "a" * 128, False),
        ("sha384:" + "a" * 96, False),
        ("SHA256:" + "a" * 64, False),
        ("a" * 64, False),
        ("sha256:" + "g" * 64, False),
        (" " + A, False),
        (A + "\n", False),
        ("", False),
    ),
)
def test_is_sha256_digest(value: str, expected: bool) -> None:
    assert is_sha256_digest(value) is expected
