"""Platforms: ``linux/arm64/v8`` as a value, and the child of an image index that runs on one.

The rules are containerd's (``containerd/platforms``: ``Normalize`` and the default matcher),
which is what ``docker pull --platform`` applies: names are normalised on both sides
(``aarch64`` is ``arm64``, ``x86_64`` is ``amd64``, ``arm`` without a variant is ``arm/v7``,
``arm64/v8`` is plain ``arm64``, ``macos`` is ``darwin``), then os, architecture and variant
must be equal. The entries an index lists for attestations (``unknown/unknown``) match nothing.

Pure: no I/O. The resolvers fetch the index and hand its body here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
IMAGE_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


@dataclass(frozen=True, order=True)
class Platform:
    """A normalised platform: compare with ``==`` to match as containerd does."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


def normalize(os: str, architecture: str, variant: str = "") -> Platform:
    """containerd's ``Normalize``: the spellings one platform goes by, made one."""
    os = os.lower()
    if os == "macos":
        os = "darwin"
    architecture = architecture.lower()
    variant = variant.lower()
    if architecture in ("i386", "i486", "i586", "i686"):
        architecture, variant = "386", ""
    elif architecture in ("x86_64", "x86-64", "amd64"):
        architecture = "amd64"
        if variant == "v1":
            variant = ""
    elif architecture in ("aarch64", "arm64"):
        architecture = "arm64"
        if variant in ("8", "v8", "v8.0"):
            variant = ""
    elif architecture == "armhf":
        architecture, variant = "arm", "v7"
    elif architecture == "armel":
        architecture, variant = "arm", "v6"
    elif architecture == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return Platform(os, architecture, variant)


def parse_platform(text: str) -> Platform:
    """``os/architecture[/variant]``, as ``docker build --platform`` takes it; ValueError
    with a message a user can act on otherwise."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts) or any(" " in p for p in parts):
        raise ValueError(
            f"{text!r} is not a platform: write it as os/architecture[/variant],"
            " as in linux/amd64 or linux/arm64/v8"
        )
    return normalize(*parts)


@dataclass(frozen=True)
class Child:
    """One manifest an index lists."""

    digest: str
    media_type: str
    platform: Platform | None  # None: the entry names no platform


def read_document(body: bytes) -> dict[str, object] | None:
    """The JSON object of a manifest or index body, or None when it is not one."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def is_index(document: dict[str, object]) -> bool:
    """An index (OCI) or a manifest list (Docker). OCI allows leaving ``mediaType`` out: an
    object with ``manifests`` and no ``layers`` is then an index."""
    media_type = document.get("mediaType")
    if media_type is not None:
        return media_type in INDEX_TYPES
    return isinstance(document.get("manifests"), list) and "layers" not in document


def children(document: dict[str, object]) -> list[Child]:
    """The manifests an index lists, in its order; entries that are not well formed are left
    out (they cannot be pinned to)."""
    found: list[Child] = []
    manifests = document.get("manifests")
    if not isinstance(manifests, list):
        return found
    for item in manifests:
        if not isinstance(item, dict):
            continue
        digest, media_type = item.get("digest"), item.get("mediaType", "")
        if not isinstance(digest, str) or not isinstance(media_type, str):
            continue
        found.append(Child(digest, media_type, _platform_of(item.get("platform"))))
    return found


def select(document: dict[str, object], want: Platform) -> Child | None:
    """The first child of the index whose platform is *want*, as containerd picks it."""
    for child in children(document):
        if child.platform == want:
            return child
    return None


def platform_of_config(body: bytes) -> Platform | None:
    """The platform an image's config blob declares (``os``, ``architecture``, ``variant``)."""
    document = read_document(body)
    return None if document is None else _platform_of(document)


def _platform_of(value: object) -> Platform | None:
    if not isinstance(value, dict):
        return None
    os, architecture, variant = (value.get(k, "") for k in ("os", "architecture", "variant"))
    if not (isinstance(os, str) and isinstance(architecture, str) and isinstance(variant, str)):
        return None
    if not os or not architecture:
        return None
    return normalize(os, architecture, variant)
