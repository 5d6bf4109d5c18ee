"""The whole run: read files, find references, resolve each unique one once, rewrite, write.

All or nothing: every reference is resolved before any file is touched, and a
single failure means no file is written. Files are then written atomically
(a temporary file in the same folder, renamed over the original, its mode kept).

The offline path (``--check`` in the default mode) never imports the resolvers,
and so never imports httpx: a pre-commit hook starts fast and works without a
network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pinner.dockerfile import Found, scan
from pinner.errors import FileError, PinError
from pinner.report import Change, Failure, FileOutcome, Report, Skip
from pinner.rewrite import Edit, apply_edits, edit_for
from pinner.timestamps import Cutoff

if TYPE_CHECKING:
    from pinner.resolve import Resolution, Resolver

CHAINGUARD = "cgr.dev"
Log = Callable[[str], None]
_Key = tuple[str, str, str]  # registry, repository, tag


@dataclass(frozen=True)
class Options:
    paths: tuple[str, ...]
    update: bool = False  # re-resolve references that are pinned already
    cutoff: Cutoff | None = None  # --before: implies update
    check: bool = False
    diff: bool = False
    digest_only: bool = False
    mirrors: tuple[tuple[str, str], ...] = ()
    only: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    skip_no_history: bool = False
    timeout: float = 10.0
    concurrency: int = 8
    log: Log | None = field(default=None, compare=False)

    @property
    def refresh(self) -> bool:
        return self.update or self.cutoff is not None

    @property
    def needs_network(self) -> bool:
        return self.refresh or self.diff or not self.check


@dataclass(frozen=True)
class _Source:
    path: str
    data: bytes
    text: str


@dataclass(frozen=True)
class _Target:
    source: _Source
    found: Found
    key: _Key


def _read(path: str) -> _Source:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FileError(f"{path}: is a directory; name the Dockerfiles in it") from None
    except OSError as e:
        raise FileError(f"{path}: cannot read it ({e.strerror})") from None
    # surrogateescape: bytes that are not UTF-8 survive the round trip unchanged.
    return _Source(path, data, data.decode("utf-8", "surrogateescape"))


def _matches(prefixes: Iterable[str], found: Found) -> bool:
    full = f"{found.reference.registry}/{found.reference.repository}"
    return any(full == p or full.startswith(p.rstrip("/") + "/") for p in prefixes)


def run(options: Options) -> Report:
    report = Report(check=options.check)
    sources: list[_Source] = []
    for path in dict.fromkeys(options.paths):
        try:
            sources.append(_read(path))
        except FileError as e:
            report.failures.append(Failure(str(e)))
    targets = _targets(sources, options, report)
    if report.failures:
        return report
    if not options.needs_network:
        for target in targets:
            found = target.found
            report.changes.append(
                Change(target.source.path, found.line, found.where, found.text, None)
            )
        return report
    resolved, errors = _resolve_all({t.key for t in targets}, options)
    if errors:
        _report_errors(errors, targets, report)
        return report
    outcomes = _rewrite(sources, targets, resolved, options, report)
    if report.failures:
        return report
    report.files = outcomes
    if not options.check and not options.diff:
        _write_all([o for o in outcomes if o.changed], report)
    return report


def _targets(sources: list[_Source], options: Options, report: Report) -> list[_Target]:
    targets: list[_Target] = []
    for source in sources:
        result = scan(source.text)
        for skipped in result.skipped:
            report.skips.append(Skip(source.path, skipped.line, skipped.text, skipped.reason))
        for found in result.found:
            ref = found.reference
            if options.only and not _matches(options.only, found):
                continue
            if options.exclude and _matches(options.exclude, found):
                continue
            if ref.digest is not None and not options.refresh:
                continue  # pinned already
            if ref.digest is not None and ref.tag is None:
                reason = "pinned by digest alone; there is no tag to follow"
                report.skips.append(Skip(source.path, found.line, found.text, reason))
                continue
            if options.cutoff is not None and ref.registry != CHAINGUARD:
                if options.skip_no_history:
                    reason = f"{ref.registry} keeps no tag history for --before"
                    report.skips.append(Skip(source.path, found.line, found.text, reason))
                    continue
                report.failures.append(
                    Failure(
                        f"{source.path}:{found.line}: {found.text}: {ref.registry} keeps no tag"
                        " history, so --before cannot be answered for it"
                        " (--skip-no-history leaves such images alone)"
                    )
                )
                continue
            key = (ref.registry, ref.repository, ref.effective_tag)
            targets.append(_Target(source, found, key))
    return targets


def _resolve_all(
    keys: set[_Key], options: Options
) -> tuple[dict[_Key, Resolution], dict[_Key, PinError]]:
    """Resolve every unique (registry, repository, tag) once, concurrently."""
    if not keys:
        return {}, {}
    return asyncio.run(_resolve_keys(sorted(keys), options))


async def _resolve_keys(
    keys: list[_Key], options: Options
) -> tuple[dict[_Key, Resolution], dict[_Key, PinError]]:
    import httpx  # the offline path must not pay for this import

    from pinner.reference import ImageReference
    from pinner.resolve.chainguard import ChainguardResolver
    from pinner.resolve.client import RegistryClient
    from pinner.resolve.distribution import DistributionResolver

    limit = asyncio.Semaphore(options.concurrency)
    results: dict[_Key, Resolution] = {}
    errors: dict[_Key, PinError] = {}
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(options.timeout),
        limits=httpx.Limits(max_connections=options.concurrency * 2),
        follow_redirects=True,  # httpx drops Authorization on a redirect to another origin
        headers={"User-Agent": _user_agent()},
    ) as http:
        client = RegistryClient(http, mirrors=dict(options.mirrors), log=options.log)
        chainguard, distribution = ChainguardResolver(client), DistributionResolver(client)

        async def one(key: _Key) -> None:
            registry, repository, tag = key
            reference = ImageReference(registry, repository, tag, None)
            resolver: Resolver = chainguard if registry == CHAINGUARD else distribution
            async with limit:
                try:
                    results[key] = await resolver.resolve(reference, options.cutoff)
                except PinError as e:
                    errors[key] = e

        await asyncio.gather(*(one(key) for key in keys))
    return results, errors


def _report_errors(errors: dict[_Key, PinError], targets: list[_Target], report: Report) -> None:
    """One line per failed image, at the first place it is used, so the user knows what to fix."""
    places: dict[_Key, list[_Target]] = {}
    for target in targets:
        places.setdefault(target.key, []).append(target)
    for key, error in errors.items():
        first, *others = places[key]
        more = f" (also used in {len(others)} more places)" if others else ""
        report.failures.append(
            Failure(f"{first.source.path}:{first.found.line}: {first.found.text}: {error}{more}")
        )


def _rewrite(
    sources: list[_Source],
    targets: list[_Target],
    resolved: dict[_Key, Resolution],
    options: Options,
    report: Report,
) -> list[FileOutcome]:
    by_source: dict[str, list[_Target]] = {}
    for target in targets:
        by_source.setdefault(target.source.path, []).append(target)
    outcomes: list[FileOutcome] = []
    for source in sources:
        edits: list[Edit] = []
        for target in by_source.get(source.path, []):
            resolution = resolved[target.key]
            found = target.found
            new = found.reference.with_digest(resolution.digest, keep_tag=not options.digest_only)
            if found.reference.digest == resolution.digest and found.reference.tag is not None:
                continue  # already at that build; keep the spelling as it is
            try:
                edit = edit_for(found, new)
            except PinError as e:
                report.failures.append(Failure(f"{source.path}: {e}"))
                continue
            if edit is None:
                continue
            edits.append(edit)
            report.changes.append(
                Change(source.path, found.line, found.where, found.text, new, resolution.published)
            )
        text = apply_edits(source.text, edits)
        outcomes.append(
            FileOutcome(source.path, source.data, text.encode("utf-8", "surrogateescape"))
        )
    return outcomes


def _write_all(outcomes: list[FileOutcome], report: Report) -> None:
    """Stage every file next to its original, then rename them all into place."""
    staged: list[tuple[str, str]] = []
    try:
        for outcome in outcomes:
            staged.append((_stage(outcome), os.path.realpath(outcome.path)))
    except FileError as e:
        for temp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        report.failures.append(Failure(str(e)))
        return
    for temp, target in staged:
        os.replace(temp, target)
    report.written = True


def _stage(outcome: FileOutcome) -> str:
    target = os.path.realpath(outcome.path)
    folder, name = os.path.split(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".pin", dir=folder)
    except OSError as e:
        raise FileError(f"{outcome.path}: cannot write next to it ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(outcome.after)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise FileError(f"{outcome.path}: cannot write it ({e.strerror})") from None
    return temp


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"pinner/{version('pinner')}"
    except PackageNotFoundError:
        return "pinner"
