"""``--only`` and ``--exclude``: image-name prefixes, read the way Docker reads an image name.

``golang``, ``library/golang`` and ``docker.io/golang`` all name Docker Hub's
``library/golang``, so each of them matches ``FROM golang:1.23``; ``cgr.dev`` is a whole
registry and ``cgr.dev/chainguard`` a path in it. A prefix matches whole path components:
``cgr.dev/chainguard`` does not match ``cgr.dev/chainguardx/app``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pinner.errors import UsageError
from pinner.reference import DOCKER_HUB, ImageReference

_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True)
class Prefix:
    """One ``--only``/``--exclude`` value: a registry and a repository path prefix in it."""

    text: str  # as the user typed it, for messages
    registry: str
    paths: tuple[str, ...]  # repository prefixes; () matches the whole registry

    def matches(self, reference: ImageReference) -> bool:
        if reference.registry != self.registry:
            return False
        repository = reference.repository
        return not self.paths or any(
            repository == path or repository.startswith(path + "/") for path in self.paths
        )


def parse_prefix(text: str, option: str) -> Prefix:
    """Read a prefix as Docker reads the name part of a reference (splitDockerDomain)."""
    value = text.strip().strip("/").lower()
    if not value or any(c.isspace() for c in value) or "@" in value:
        raise UsageError(
            f"{option} {text!r}: expected an image name prefix, e.g. cgr.dev, cgr.dev/chainguard"
            " or python"
        )
    first, _, rest = value.partition("/")
    if "." in first or ":" in first or first == "localhost":
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, value
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    if registry != DOCKER_HUB or not path:
        return Prefix(text, registry, (path,) if path else ())
    if "/" in path:
        return Prefix(text, registry, (path,))
    # One component on Docker Hub: `golang` is the official image library/golang (what
    # `docker pull golang` pulls), and also names the namespace golang/ (`--exclude library`
    # leaves every official image alone).
    return Prefix(text, registry, (f"library/{path}", path))
