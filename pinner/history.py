"""Chainguard tag history: validate what the registry sent before anything uses it.

The endpoint answers ``{"history": [{"updateTimestamp": ..., "digest": ...}, ...]}``.
Early responses used ``UpdateTimestamp``/``Digest``. The documented order is oldest
first, but the docs themselves mislabel which end is newest, so nothing here
relies on order: every choice is made by timestamp.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pinner.errors import RegistryError
from pinner.reference import is_sha256_digest
from pinner.timestamps import parse_rfc3339


@dataclass(frozen=True, order=True)
class Build:
    """One entry of a tag's history: the tag pointed at ``digest`` from ``ns`` on."""

    ns: int
    digest: str
    published: str  # the timestamp exactly as the registry wrote it


def parse_history(body: bytes) -> list[Build]:
    """The builds in a history response; RegistryError for anything not exactly as expected."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise RegistryError("the tag history is not valid JSON") from None
    entries = document.get("history") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise RegistryError("the tag history answer has no 'history' list")
    builds: list[Build] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise RegistryError("the tag history has an entry that is not an object")
        stamp = entry.get("updateTimestamp", entry.get("UpdateTimestamp"))
        digest = entry.get("digest", entry.get("Digest"))
        if not isinstance(digest, str) or not is_sha256_digest(digest):
            # Never echo much of an untrusted value: it may be anything.
            shown = repr(digest)[:80]
            raise RegistryError(f"the tag history has an invalid digest {shown}")
        ns = parse_rfc3339(stamp) if isinstance(stamp, str) else None
        if ns is None or not isinstance(stamp, str):
            raise RegistryError(f"the tag history has an invalid timestamp {repr(stamp)[:80]}")
        builds.append(Build(ns, digest, stamp))
    return builds
