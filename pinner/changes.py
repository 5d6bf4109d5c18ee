"""``--changes``: which SBOMs a run reads, and what each moved pin gets from them.

The pipeline hands over the digests a pin moves from and to; each digest's SBOM is read once,
all at the same time (within the per-registry limit of the run), after every reference has
been resolved: an SBOM never holds up or fails a pin. Then each moved entry gets the diff of
its two builds' packages, or the reason there is none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from pinner.report import Entry
from pinner.sbom import Changes, diff

if TYPE_CHECKING:
    from pinner.history import Build
    from pinner.platforms import Platform
    from pinner.resolve.attestations import AttestationReader, Sbom

Key = tuple[str, str, str]  # registry, repository, digest
Call = Callable[[tuple[Any, ...], Callable[[], Awaitable[Any]]], Awaitable[Any]]
NOT_MOVED = "the pin did not move"
NEW_PIN = "no earlier pin to compare with"


async def read_sboms(
    reader: AttestationReader, keys: Iterable[Key], platform: Platform | None, call: Call
) -> dict[Key, Sbom]:
    """The SBOM of each digest, read once; *call(key, make)* runs *make* once per key within
    the registry's limit (key[1] is the registry)."""
    import asyncio

    unique = sorted(set(keys))

    async def one(key: Key) -> Sbom:
        registry, repository, digest = key
        result: Sbom = await call(
            ("sbom", registry, repository, digest),
            lambda: reader.sbom(registry, repository, digest, platform),
        )
        return result

    found = await asyncio.gather(*(one(key) for key in unique))
    return dict(zip(unique, found, strict=True))


async def history_changes(
    reader: AttestationReader,
    repository: str,
    builds: list[Build],
    platform: Platform | None,
    concurrency: int,
) -> dict[str, tuple[Changes | None, str | None]]:
    """``--history --changes`` (cgr.dev): for each build (newest first), what changed since
    the one listed after it; the last build read has nothing to compare with."""
    import asyncio
    from itertools import pairwise

    limit = asyncio.Semaphore(concurrency)

    async def call(key: tuple[Any, ...], make: Callable[[], Awaitable[Any]]) -> Any:
        async with limit:
            return await make()

    keys = [("cgr.dev", repository, b.digest) for b in builds]
    sboms = await read_sboms(reader, keys, platform, call)
    return {
        newer.digest: compared(sboms[("cgr.dev", repository, older.digest)], sboms[key])
        for (newer, older), key in zip(pairwise(builds), keys, strict=False)
    }


def compared(old: Sbom | None, new: Sbom | None) -> tuple[Changes | None, str | None]:
    """The changes from *old* to *new*, or None and why not."""
    if old is None or new is None:
        return None, "no SBOM was read"
    for side, sbom in (("old", old), ("new", new)):
        if sbom.packages is None:
            where = f", {sbom.platform}" if sbom.platform else ""
            return None, f"{sbom.reason} (the {side} build{where})"
    assert old.packages is not None and new.packages is not None
    return diff(old.packages, new.packages, new.platform or old.platform), None


def attach(entries: list[Entry], sboms: dict[Key, Sbom]) -> list[Entry]:
    """*entries*, each moved one with its changes (or the reason there are none)."""
    attached: list[Entry] = []
    for entry in entries:
        if entry.action == "updated" and entry.old_digest and entry.new_digest:
            registry, repository = entry.registry or "", entry.repository or ""
            old = sboms.get((registry, repository, entry.old_digest))
            new = sboms.get((registry, repository, entry.new_digest))
            changes, reason = compared(old, new)
            entry = entry._replace(sbom_changes=changes, sbom_reason=reason)
        elif entry.action == "pinned":
            entry = entry._replace(sbom_reason=NEW_PIN)
        attached.append(entry)
    return attached


def summary(entries: Iterable[Entry]) -> list[str]:
    """Lines for people, one block per image whose pin moved (however many places name it):
    ``python:latest: 3 changed, 1 added, 0 removed (linux/amd64)``, then each package."""
    lines: list[str] = []
    seen: set[tuple[str, str | None, str | None]] = set()
    for entry in entries:
        if entry.action != "updated":
            continue
        name = entry.image.partition("@")[0]
        key = (name, entry.old_digest, entry.new_digest)
        if key in seen:
            continue
        seen.add(key)
        changes = entry.sbom_changes
        if changes is None:
            lines.append(f"{name}: changes unknown: {entry.sbom_reason}")
            continue
        platform = f" ({changes.platform})" if changes.platform else ""
        lines.append(f"{name}: {changes.counts()}{platform}")
        lines += [f"  {line}" for line in changes.lines()]
    return lines
