"""Per-platform pins: one platform's manifest out of an index, and the platform of a pin.

A pin is the digest the tag names: on a multi-platform tag, its index. ``--platform`` pins
one platform's manifest instead, and ``--update`` / ``--before`` keep such a pin to its
platform, where peers moved it to the index or to another architecture (Dependabot's "pinned
docker image digest gets updated to wrong ARCH digest"; Renovate's "getDigest should return
image digest, if current digest is an image digest").

Every fetch goes through *call*, the run's once-per-key cache (``pipeline._Work._call``): a
manifest, a config blob or a HEAD is asked for once per digest, however many references need
it, and the lookups of different images run at the same time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pinner.errors import NotFoundError, PinError, RegistryError
from pinner.history import Build, newest_first
from pinner.limits import MAX_IMAGE_CONFIG_BYTES, VERIFY_INDEXES_AT_ONCE, VERIFY_MAX_INDEXES
from pinner.platforms import (
    IMAGE_TYPES,
    INDEX_TYPES,
    Platform,
    children,
    is_index,
    platform_of_config,
    read_document,
    select,
)
from pinner.reference import ImageReference, is_sha256_digest
from pinner.resolve.distribution import DistributionResolver
from pinner.resolve.lookups import ACCEPT
from pinner.resolve.transport import Body

Call = Callable[[tuple[Any, ...], Callable[[], Awaitable[Any]]], Awaitable[Any]]
_CONFIG = Body("an image config", MAX_IMAGE_CONFIG_BYTES)


@dataclass(frozen=True)
class Head:
    """What ``HEAD /v2/<repo>/manifests/<digest>`` says of a manifest, without its body."""

    digest: str | None  # Docker-Content-Digest, when the registry sent one
    media_type: str  # Content-Type without parameters; "" when absent


@dataclass(frozen=True)
class Listed:
    """A pinned manifest found in a build's index."""

    build: Build
    platform: Platform | None  # None: the index entry names no platform


class PlatformPins:
    def __init__(self, distribution: DistributionResolver, call: Call) -> None:
        self.distribution = distribution
        self.client = distribution.client
        self.call = call

    async def head(self, reference: ImageReference, digest: str) -> Head:
        key = ("head", reference.registry, reference.repository, digest)
        result: Head = await self.call(key, lambda: self._head(reference, digest))
        return result

    async def _head(self, reference: ImageReference, digest: str) -> Head:
        reply = await self.client.request(
            "HEAD",
            reference.registry,
            reference.repository,
            f"/v2/{reference.repository}/manifests/{digest}",
            headers={"Accept": ACCEPT},
        )
        media_type = reply.headers.get("Content-Type", "").partition(";")[0].strip()
        return Head(reply.headers.get("Docker-Content-Digest") or None, media_type)

    async def document(self, reference: ImageReference, digest: str) -> dict[str, object]:
        """The manifest or index *digest* names, parsed (its body checked against the digest)."""
        key = ("manifest", reference.registry, reference.repository, digest)
        body: bytes = await self.call(key, lambda: self.distribution.manifest(reference, digest))
        document = read_document(body)
        if document is None:  # DistributionResolver.manifest has checked it is a JSON object
            raise RegistryError(f"the manifest {digest} is not a JSON object")
        return document

    async def platform_of_image(
        self, reference: ImageReference, digest: str, document: dict[str, object]
    ) -> Platform | None:
        """The platform an image manifest's config blob declares."""
        config = document.get("config")
        blob = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(blob, str) or not is_sha256_digest(blob):
            raise RegistryError(f"the manifest {digest} names no valid config blob")
        key = ("config", reference.registry, reference.repository, blob)
        data: bytes = await self.call(key, lambda: self.distribution.blob(reference, blob, _CONFIG))
        return platform_of_config(data)

    async def pinned_platform(self, reference: ImageReference, digest: str) -> Platform | None:
        """The platform the pin *digest* is to, or None when it is to an index: a pin of the
        tag's digest, which moves to the tag's new digest as before. A HEAD tells an index
        from an image manifest; only an image manifest costs its body and config blob."""
        try:
            head = await self.head(reference, digest)
        except NotFoundError:
            # Gone from the registry: nothing says it was one platform's; the tag's digest
            # (the index) is what pin wrote before per-platform pins existed.
            return None
        if head.media_type in INDEX_TYPES:
            return None
        document = await self.document(reference, digest)
        if head.media_type not in IMAGE_TYPES and is_index(document):
            return None  # a registry that labels every manifest application/json
        platform = await self.platform_of_image(reference, digest, document)
        if platform is None:
            raise RegistryError(
                f"cannot tell which platform the pinned manifest {digest} is for (its config"
                " names none); pin it again with --platform"
            )
        return platform

    async def child(
        self, reference: ImageReference, digest: str, platform: Platform, why: str, fix: str
    ) -> str:
        """The digest of *platform*'s manifest in the index *digest* names; a single-platform
        image is its own answer when its config says *platform*. *why* begins the error and
        *fix* ends it."""
        document = await self.document(reference, digest)
        if is_index(document):
            chosen = select(document, platform)
            if chosen is None:
                held = ", ".join(platforms_in(document)) or "no platform"
                raise RegistryError(
                    f"{why}, and build {digest} has no {platform} manifest"
                    f" (its index lists {held}); {fix}"
                )
            if not is_sha256_digest(chosen.digest):
                raise RegistryError(
                    f"the index {digest} lists an invalid digest {chosen.digest[:80]!r}"
                    f" for {platform}"
                )
            return chosen.digest
        own = await self.platform_of_image(reference, digest, document)
        if own != platform:
            raise RegistryError(
                f"{why}, and build {digest} is a single-platform image for"
                f" {own or 'no named platform'}, not an index; {fix}"
            )
        return digest

    async def listed_in(
        self, reference: ImageReference, digest: str, builds: Sequence[Build]
    ) -> tuple[Listed | None, int]:
        """The newest of *builds* whose index lists the manifest *digest*, reading at most
        VERIFY_MAX_INDEXES indexes, newest first, a few at a time; and how many were read."""
        by_digest: dict[str, Build] = {}
        for build in newest_first(builds):
            by_digest.setdefault(build.digest, build)  # a digest listed twice: its newest build
        candidates = list(by_digest.values())[:VERIFY_MAX_INDEXES]
        for start in range(0, len(candidates), VERIFY_INDEXES_AT_ONCE):
            batch = candidates[start : start + VERIFY_INDEXES_AT_ONCE]
            found = await asyncio.gather(*(self._lists(reference, b, digest) for b in batch))
            for listed in found:
                if listed is not None:
                    return listed, start + len(batch)
        return None, len(candidates)

    async def _lists(self, reference: ImageReference, build: Build, digest: str) -> Listed | None:
        try:
            document = await self.document(reference, build.digest)
        except NotFoundError:
            return None  # a build the registry no longer holds lists nothing
        if not is_index(document):
            return None
        for entry in children(document):
            if entry.digest == digest:
                return Listed(build, entry.platform)
        return None

    async def current_child(
        self, reference: ImageReference, tag_digest: str, digest: str
    ) -> Listed | None:
        """*digest* as a manifest listed by the tag's current index *tag_digest*."""
        try:
            document = await self.document(reference, tag_digest)
        except PinError:
            return None  # the tag's own manifest cannot be read: say no more than before
        for entry in children(document) if is_index(document) else []:
            if entry.digest == digest:
                return Listed(Build(0, tag_digest, ""), entry.platform)
        return None


def platforms_in(document: dict[str, object]) -> list[str]:
    """The platforms an index lists, as people write them; attestation entries
    (``unknown/unknown``) are not platforms one can run."""
    named = {c.platform for c in children(document) if c.platform is not None}
    return [str(p) for p in sorted(named) if p.os != "unknown"]
