"""Chainguard tag history: validate what the registry sent before anything uses it.

The endpoint answers ``{"history": [{"updateTimestamp": ..., "digest": ...}, ...]}``.
Early responses used ``UpdateTimestamp``/``Digest``. The documented order is oldest
first, but the docs themselves mislabel which end is newest, so nothing here
relies on order: every choice is made by timestamp, and between builds with the same
timestamp by digest (:func:`newest_first`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from pinner.errors import RegistryError
from pinner.limits import MAX_FUTURE_SKEW_NS
from pinner.reference import is_sha256_digest
from pinner.timestamps import parse_rfc3339

if TYPE_CHECKING:
    from pinner.sbom import Changes


class Build(NamedTuple):
    """One entry of a tag's history: the tag pointed at ``digest`` from ``ns`` on.

    Ordered by (timestamp, digest, spelling of the timestamp), as tuples are: a total order,
    so that a choice among builds never depends on the order a registry listed them in. (A
    NamedTuple, not a frozen dataclass: see Resolution in pinner/resolve/__init__.py.)
    """

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


def newest_first(builds: Iterable[Build]) -> list[Build]:
    """Each build once, newest first. Of two builds with the same timestamp, the one whose
    digest sorts last comes first: an arbitrary rule, but the same on every run (a set's order
    changes with PYTHONHASHSEED, and a registry's listing order is not documented)."""
    return sorted(set(builds), reverse=True)


def refuse_future(builds: Iterable[Build], now_ns: int) -> None:
    """RegistryError if a build is dated more than MAX_FUTURE_SKEW_NS past *now_ns*.

    Such a build would be "the newest" until that date, and so pinned by every run: a history
    that claims one is wrong (or this machine's clock is), and neither can be trusted to
    choose a digest. Skipping the entry instead would pin silently around bad data.
    """
    limit = now_ns + MAX_FUTURE_SKEW_NS
    for build in builds:
        if build.ns > limit:
            raise RegistryError(
                f"the tag history has a build dated {build.published}, more than a day after"
                " this machine's clock; refusing the history (check this machine's clock)"
            )


class HistoryListing(NamedTuple):
    """``pin --history IMAGE``: the builds of a tag, newest first, and where a pin is."""

    image: str
    builds: list[Build]
    digest: str | None  # the digest of IMAGE@sha256:..., if one was given
    pinned: Build | None  # the build of that digest, if it is in the history
    behind: int  # how many builds of the tag are newer than the pinned one
    # --changes: per build's digest, what changed since the build before it, or why unknown
    changes: dict[str, tuple[Changes | None, str | None]]
