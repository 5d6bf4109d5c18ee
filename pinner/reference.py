"""Image references, parsed by Docker's rules (distribution/reference).

A reference keeps the user's spelling (``python:3.12`` stays that, it is never
expanded to ``docker.io/library/python``); the normalised registry and
repository are derived for talking to the registry only.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from pinner.errors import ReferenceError_

DOCKER_HUB = "docker.io"
# Docker Hub answers the distribution API on this host, not on docker.io.
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # ASCII only, as Docker's
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
# opencontainers/go-digest: the registered algorithms have a fixed lower-case hex length.
_HEX_RES = {
    name: re.compile(f"[0-9a-f]{{{n}}}")
    for name, n in (("sha256", 64), ("sha384", 96), ("sha512", 128))
}


def is_sha256_digest(value: str) -> bool:
    """Whether *value* is exactly ``sha256:`` and 64 lowercase hex digits."""
    return SHA256_RE.fullmatch(value) is not None


# A NamedTuple, not a frozen dataclass: as immutable and compared by value, and each
# dataclass costs ~1 ms of every start-up to build (an offline check is ~0.1 s in all).
class ImageReference(NamedTuple):
    """One image reference as written: ``[registry/]path[:tag][@digest]``."""

    written_registry: str | None  # the registry part as the user wrote it, or None
    path: str  # the repository path as written (no registry)
    tag: str | None
    digest: str | None

    @property
    def registry(self) -> str:
        """The registry name used for credentials and ``--mirror``: ``docker.io`` for Hub."""
        # Host names ignore case: GHCR.IO is ghcr.io for --mirror, --only and credentials.
        registry = (self.written_registry or DOCKER_HUB).lower()
        return DOCKER_HUB if registry in _HUB_ALIASES else registry

    @property
    def repository(self) -> str:
        """The repository name the registry API uses (``library/`` added on Docker Hub)."""
        if self.registry == DOCKER_HUB and "/" not in self.path:
            return f"library/{self.path}"
        return self.path

    @property
    def name(self) -> str:
        """The name as written, without tag or digest."""
        if self.written_registry is None:
            return self.path
        return f"{self.written_registry}/{self.path}"

    @property
    def effective_tag(self) -> str:
        """The tag Docker pulls: the written one, else ``latest``."""
        return self.tag or "latest"

    def with_digest(self, digest: str, *, keep_tag: bool = True) -> str:
        """The pinned spelling: ``name:tag@digest`` (tag added when absent) or ``name@digest``."""
        if keep_tag:
            return f"{self.name}:{self.effective_tag}@{digest}"
        return f"{self.name}@{digest}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


# A repository's Dockerfiles name the same few base images again and again: each is parsed
# once. An ImageReference is frozen, so sharing one is safe.
@functools.lru_cache(maxsize=4096)
def parse_reference(text: str) -> ImageReference:
    """Parse *text* as Docker does; raise ReferenceError_ when it is not a reference."""
    rest = text
    digest: str | None = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        algorithm, _, encoded = digest.partition(":")
        hex_re = _HEX_RES.get(algorithm)
        valid = (
            hex_re.fullmatch(encoded) is not None
            if hex_re is not None
            else _DIGEST_RE.fullmatch(digest) is not None
        )
        if not valid:
            raise ReferenceError_(f"{text!r}: {digest!r} is not a valid digest")
    tag: str | None = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise ReferenceError_(f"{text!r}: {tag!r} is not a valid tag")
    registry: str | None = None
    first, sep, remainder = rest.partition("/")
    # docker/distribution splitDockerDomain: the first component names a registry only
    # when it has a '.' or ':', is 'localhost', or has upper-case letters.
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if not _DOMAIN_RE.fullmatch(first):
            raise ReferenceError_(f"{text!r}: {first!r} is not a valid registry name")
        # The grammar takes any digits; no pull can reach a port outside 1-65535.
        port = first.rpartition("]")[2].partition(":")[2]
        if port and not 0 < int(port) < 65536:
            raise ReferenceError_(f"{text!r}: port {port} is not a port (1-65535)")
        registry, rest = first, remainder
    if not _PATH_RE.fullmatch(rest):
        raise ReferenceError_(f"{text!r} is not a valid image reference")
    return ImageReference(written_registry=registry, path=rest, tag=tag, digest=digest)
