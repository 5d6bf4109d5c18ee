"""Resolvers: from an image reference to the digest it should be pinned to.

One module per kind of registry, each a small class with the :class:`Resolver`
shape. ``chainguard`` reads cgr.dev's tag history; ``distribution`` asks any
registry that speaks the distribution API for the tag's current manifest digest.
Nothing in this package is imported on the offline path: most of it pulls in httpx (the
ping, lookups and TLS modules do not: they run while httpx is being imported).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from pinner.reference import ImageReference
from pinner.resolve.lean import leave_out_httpx_cli
from pinner.timestamps import Cutoff

leave_out_httpx_cli()  # before any module of this package imports httpx (see lean.py)


# The value types of a network run are NamedTuples, not frozen dataclasses: as immutable,
# and building each dataclass costs ~1.4 ms of every run's start-up (~0.2 ms a NamedTuple).
class Resolution(NamedTuple):
    """The digest chosen for a reference, and when that build was published if known."""

    digest: str
    published: str | None = None


class Resolver(Protocol):
    async def resolve(self, reference: ImageReference, cutoff: Cutoff | None) -> Resolution:
        """The digest of the newest build of the reference's tag (at or before *cutoff*)."""
        ...
