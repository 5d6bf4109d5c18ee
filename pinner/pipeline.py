"""The whole run: read files, find references, resolve each unique one once, rewrite, write.

All or nothing: every reference is resolved before any file is touched, and a
single failure (or a failed ``--verify``/``--max-age`` check) means no file is
written. Then :mod:`pinner.write` writes the changed files, all or none of them.

The offline path (``--check`` in the default mode) never imports the resolvers,
and so never imports httpx or asyncio: a pre-commit hook starts fast and works
without a network.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import operator
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pinner.errors import FileError, NoBuildError, PinError, UnreachableError
from pinner.files import read_regular
from pinner.limits import (
    CONCURRENCY,
    MAX_DOCKERFILE_BYTES,
    PARALLEL_CHECK_MIN_FILES,
    REQUEST_TIMEOUT,
)
from pinner.report import Entry, FileOutcome, Report, short
from pinner.rewrite import Edit, apply_edits, edit_for
from pinner.scan.kinds import check_rewrite, kind_of, scan_file
from pinner.scan.result import Found
from pinner.timestamps import NS, Cutoff

if TYPE_CHECKING:
    from pinner.filters import Prefix
    from pinner.history import Build, HistoryListing
    from pinner.platforms import Platform
    from pinner.reference import ImageReference
    from pinner.resolve import Resolution
    from pinner.resolve.attestations import Sbom
    from pinner.resolve.chainguard import ChainguardResolver
    from pinner.resolve.client import RegistryClient
    from pinner.resolve.distribution import DistributionResolver
    from pinner.resolve.ping import Lookup, Pings
    from pinner.resolve.platform import Listed, PlatformPins
    from pinner.sbom import Changes

CHAINGUARD = "cgr.dev"
Log = Callable[[str], None]
# (lookups done, lookups in all, what the run waits on: an image, or a registry)
Progress = Callable[[int, int, str], None]
_Key = tuple[str, str, str]  # registry, repository, tag
_SbomKey = tuple[str, str, str]  # registry, repository, digest


# A NamedTuple like every value on the start-up path: a frozen dataclass would import
# dataclasses and inspect, and build its methods, on every run (~10 ms of the offline check).
class Options(NamedTuple):
    paths: tuple[str, ...]
    # Found by searching a directory: a YAML file there that pin does not read is left alone,
    # where a file named on the command line would be an error.
    searched: frozenset[str] = frozenset()
    update: bool = False  # re-resolve references that are pinned already
    cutoff: Cutoff | None = None  # --before: implies update
    check: bool = False
    diff: bool = False
    digest_only: bool = False
    verify: bool = False
    max_age: int | None = None  # nanoseconds
    mirrors: tuple[tuple[str, str], ...] = ()
    only: tuple[Prefix, ...] = ()
    exclude: tuple[Prefix, ...] = ()
    skip_no_history: bool = False
    timeout: float = REQUEST_TIMEOUT
    concurrency: int = CONCURRENCY  # lookups in flight per registry
    changes: bool = False  # --changes: what changed in each moved pin, from the SBOMs
    platform: Platform | None = None  # --platform: pin that platform's manifest
    log: Log | None = None
    progress: Progress | None = None

    @property
    def refresh(self) -> bool:
        return self.update or self.cutoff is not None

    @property
    def audit(self) -> bool:
        """--verify or --max-age: report on the pins as they are; such a run writes nothing."""
        return self.verify or self.max_age is not None

    @property
    def needs_network(self) -> bool:
        return self.refresh or self.diff or not self.check or self.audit


# The values private to a run are NamedTuples too.
class _Source(NamedTuple):
    path: str
    data: bytes
    text: str


class _Target(NamedTuple):
    """A reference that gets a new digest from the registry."""

    source: _Source
    found: Found
    key: _Key


class _Audit(NamedTuple):
    """A pinned reference that --verify or --max-age look at."""

    source: _Source
    found: Found
    entry: Entry


STDIN = "-"  # `pin - < Dockerfile`: read standard input, print the result on standard output


def _read_all(paths: Sequence[str], errors: list[str]) -> list[_Source]:
    """The files that can be read; one line in *errors* for each that cannot."""
    sources: list[_Source] = []
    for path in paths:
        try:
            sources.append(_read(path))
        except FileError as e:
            errors.append(str(e))
    return sources


def _read(path: str) -> _Source:
    if path == STDIN:
        import sys

        data = sys.stdin.buffer.read(MAX_DOCKERFILE_BYTES + 1)
        if len(data) > MAX_DOCKERFILE_BYTES:
            raise FileError("standard input: larger than 4 MiB, too big for a Dockerfile")
        return _Source(path, data, data.decode("utf-8", "surrogateescape"))
    try:
        what = "a Dockerfile" if kind_of(path) == "dockerfile" else "a YAML file"
        data = read_regular(path, MAX_DOCKERFILE_BYTES, what, "leave it out of the run")
    except FileNotFoundError:
        raise FileError(f"{path}: no such file") from None
    except NotADirectoryError:
        raise FileError(f"{path}: no such file (a part of its path is not a folder)") from None
    # surrogateescape: bytes that are not UTF-8 survive the round trip unchanged.
    return _Source(path, data, data.decode("utf-8", "surrogateescape"))


def _entry(source: _Source, found: Found, action: Any, **more: Any) -> Entry:
    ref = found.reference
    registry, repository = _names(ref)
    # Positional: file, line, instruction, image, action, registry, repository, tag and
    # old_digest, in Entry's order (a call by keyword costs a third more, 30,000 times).
    return Entry(
        source.path,
        found.line,
        found.where,
        found.text,
        action,
        registry,
        repository,
        ref.tag,
        ref.digest,
        **more,
    )


# What _entry(source, found, "unchanged", reason="pinned") holds after old_digest, taken from
# an Entry rather than written out: _pinned makes the check's most common entry, 30,000 times
# in a tree of 10,000 files, without the call of Entry's Python __new__ with keywords.
_PINNED_TAIL = Entry("", 0, "", "", "unchanged", reason="pinned")[9:]


def _pinned(source: _Source, found: Found) -> Entry:
    """``_entry(source, found, "unchanged", reason="pinned")``, made faster."""
    ref = found.reference
    registry, repository = _names(ref)
    head = (source.path, found.line, found.where, found.text, "unchanged", registry, repository)
    return tuple.__new__(Entry, (*head, ref.tag, ref.digest, *_PINNED_TAIL))


@functools.lru_cache(maxsize=4096)
def _names(ref: ImageReference) -> tuple[str, str]:
    """The registry and repository of *ref*: worked out once for each of the few images a
    tree names (parse_reference gives the same reference for the same text), not at each of
    its 30,000 places; and one string each, which pickle sends once (pinner.parallel)."""
    return ref.registry, ref.repository


def run(options: Options) -> Report:
    report = Report(check=options.check)
    offline = not options.needs_network and not (options.only or options.exclude)
    if offline and len(options.paths) >= PARALLEL_CHECK_MIN_FILES:
        from pinner.parallel import map_chunks, processes_for  # pickle: not for one file

        processes = processes_for(len(options.paths), PARALLEL_CHECK_MIN_FILES)
        if processes > 1:
            # A filter's "matched nothing" needs every file at once: such runs stay serial.
            work = functools.partial(_check_files, options=options)
            # No cyclic garbage collection meanwhile, here and in the children: the check
            # makes no cycles, and each full collection would walk all it has kept so far
            # (30,000 entries for 10,000 files), ~40% of the merge.
            enabled = gc.isenabled()
            gc.disable()
            try:
                return _checked(report, map_chunks(work, options.paths, processes))
            finally:
                if enabled:
                    gc.enable()
    paths: list[str] = []
    seen: set[object] = set()
    for path in options.paths:
        real = _identity(path)
        if real in seen:
            continue  # the same file by another name: read, resolve and write it once
        seen.add(real)
        paths.append(path)
    sources = _read_all(paths, report.errors)
    targets, audits = _plan(sources, options, report)
    if report.errors:
        return report
    if not options.needs_network:
        for target in targets:
            report.entries.append(
                _entry(target.source, target.found, "unpinned", reason="not pinned")
            )
        report.entries.sort(key=lambda e: (e.file, e.line))
        return report
    results = _resolve(targets, audits, options) if targets or audits else _Results()
    # Lookups finish in any order; errors are reported in file and line order.
    report.errors.extend(message for _, message in sorted(results.errors))
    if report.errors:
        return report
    report.entries.extend(results.entries)
    report.files = _rewrite(
        sources, targets, results.resolutions, options, report, results.platformed
    )
    if report.errors:
        return report
    report.entries.sort(key=lambda e: (e.file, e.line))
    if options.changes:
        from pinner.changes import attach

        report.sbom = True
        report.entries = attach(report.entries, results.sboms)
    if not (options.check or options.diff or options.audit or options.paths == (STDIN,)):
        from pinner.write import write_all

        write_all([o for o in report.files if o.changed], report)
    return report


def _identity(path: str) -> object:
    """The file's (device, inode), by one stat where realpath would lstat every component of
    the path; the path itself when it cannot be read (_read says what is wrong with it)."""
    try:
        status = os.stat(path)
    except OSError:
        return path
    return status.st_dev, status.st_ino


# What the offline check of one file sends back from a forked process (pinner.parallel): its
# identity, the error that it could not be read, or else the errors of its scan, its entries
# (skipped and unchanged) and its unpinned references. Entries as plain tuples: pickle writes
# and reads those in C, where each NamedTuple costs a call of its __reduce_ex__ and __new__.
_FileChecked = tuple[object, str | None, list[str], list[tuple[Any, ...]], list[tuple[Any, ...]]]


def _check_files(paths: Sequence[str], options: Options) -> list[_FileChecked]:
    """The offline check of each of *paths* (without --only/--exclude), as run() does it."""
    checked: list[_FileChecked] = []
    report = Report(check=options.check)
    for path in paths:
        real = _identity(path)
        try:
            source = _read(path)
        except FileError as e:
            checked.append((real, str(e), [], [], []))
            continue
        targets, _ = _plan([source], options, report)
        unpinned = [_entry(t.source, t.found, "unpinned", reason="not pinned") for t in targets]
        entries = list(map(tuple, report.entries))
        checked.append((real, None, report.errors, entries, list(map(tuple, unpinned))))
        report.errors, report.entries = [], []
    return checked


def _checked(report: Report, parts: list[list[_FileChecked]]) -> Report:
    """The report of an offline check made in parts, as run() makes it in one: each file
    once (the first of its names), read errors before scan errors, and, with errors, the
    entries unsorted and no unpinned ones."""
    seen: set[object] = set()
    errors: list[str] = []
    entries: list[tuple[Any, ...]] = []
    unpinned: list[tuple[Any, ...]] = []
    for part in parts:
        for real, unread, scan_errors, found, not_pinned in part:
            if real in seen:
                continue
            seen.add(real)
            if unread is not None:
                report.errors.append(unread)
                continue
            errors += scan_errors
            entries += found
            unpinned += not_pinned
    report.errors += errors
    if not report.errors:
        entries += unpinned
    # tuple.__new__ through map: an Entry again, without a Python call for each.
    report.entries = list(map(functools.partial(tuple.__new__, Entry), entries))
    if not report.errors:
        report.entries.sort(key=operator.itemgetter(0, 1))  # file, line: as run() sorts
    return report


def _plan(
    sources: list[_Source], options: Options, report: Report
) -> tuple[list[_Target], list[_Audit]]:
    """Decide, for every reference, whether it is resolved, audited, skipped or left alone."""
    targets: list[_Target] = []
    audits: list[_Audit] = []
    used: set[Prefix] = set()  # the filters that matched some reference
    filtered = False  # whether any reference met the filters at all
    for source in sources:
        try:
            result = scan_file(source.path, source.text, searched=source.path in options.searched)
        except FileError as e:
            report.errors.append(str(e))
            continue
        for skipped in result.skipped:
            if skipped.malformed:
                # Its reason says what the build or the runtime does with it, and the fix.
                report.errors.append(f"{source.path}:{skipped.line}: {skipped.reason}")
                continue
            report.entries.append(
                Entry(
                    source.path,
                    skipped.line,
                    skipped.where,
                    skipped.text,
                    "skipped",
                    reason=skipped.reason,
                )
            )
        for found in result.found:
            ref = found.reference
            if options.only or options.exclude:
                filtered = True
                only = [p for p in options.only if p.matches(ref)]
                exclude = [p for p in options.exclude if p.matches(ref)]
                used.update(only, exclude)
                if (options.only and not only) or exclude:
                    continue
            if ref.digest is not None and options.audit:
                entry = _entry(source, found, "unchanged", audited=True)
                audits.append(_Audit(source, found, entry))
                continue
            if ref.digest is not None and not options.refresh:
                report.entries.append(_pinned(source, found))
                continue
            if ref.digest is not None and ref.tag is None:
                reason = "pinned by digest alone; there is no tag to follow"
                report.entries.append(_entry(source, found, "skipped", reason=reason))
                continue
            if options.cutoff is not None and ref.registry != CHAINGUARD:
                if options.skip_no_history or options.cutoff.cooldown:
                    reason = f"{ref.registry} keeps no tag history for --before"
                    report.entries.append(_entry(source, found, "skipped", reason=reason))
                    continue
                report.errors.append(
                    f"{source.path}:{found.line}: {found.text}: {ref.registry} keeps no tag"
                    " history, so --before cannot be answered for it"
                    " (--skip-no-history leaves such images alone)"
                )
                continue
            key = (ref.registry, ref.repository, ref.effective_tag)
            targets.append(_Target(source, found, key))
    if filtered:
        _unused_filters(options, used, report)
    return targets, audits


def _unused_filters(options: Options, used: set[Prefix], report: Report) -> None:
    """A filter that matched none of the images found is most likely a typo: say so. When --only
    let no image through at all, a check checked nothing: that fails it, so that a typo cannot
    turn CI green. (Files without any image say nothing: a pre-commit batch may be such.)"""
    only = options.only
    if options.check and only and not used.intersection(only):
        names = " ".join(p.text for p in only)
        report.errors.append(
            f"--only {names} matched no image in the files read, so nothing was checked;"
            " check the spelling"
        )
        only = ()
    for option, prefixes in (("--only", only), ("--exclude", options.exclude)):
        for prefix in prefixes:
            if prefix not in used:
                report.warnings.append(f"{option} {prefix.text} matched no image in the files read")


class _Once:
    """Run each keyed coroutine once, however many references ask for it."""

    def __init__(self) -> None:
        self._results: dict[tuple[Any, ...], Any] = {}

    async def get(self, key: tuple[Any, ...], make: Callable[[], Awaitable[Any]]) -> Any:
        import asyncio

        if key not in self._results:
            self._results[key] = asyncio.ensure_future(make())
        return await self._results[key]


class _Results:
    """What the registry work of a run found (a plain class: see _Source)."""

    def __init__(self) -> None:
        self.resolutions: dict[_Key, Resolution] = {}
        self.entries: list[Entry] = []  # audited, or skipped by a cooldown
        self.errors: list[tuple[tuple[str, int], str]] = []  # (place, message)
        # Per-platform pins: (tag, the digest the reference has) -> the manifest chosen, its
        # platform.
        self.platformed: dict[tuple[_Key, str | None], tuple[Resolution, Platform]] = {}
        self.sboms: dict[tuple[str, str, str], Sbom] = {}  # --changes


def _resolve(targets: list[_Target], audits: list[_Audit], options: Options) -> _Results:
    registries = {t.key[0] for t in targets} | {a.found.reference.registry for a in audits}
    # First: they go out while asyncio and httpx load.
    pings = _ping(options, registries, _lookups_ahead(targets, options))

    from pinner.signals import run_async

    return run_async(_resolve_async(targets, audits, options, registries, pings))


async def _resolve_async(
    targets: list[_Target],
    audits: list[_Audit],
    options: Options,
    registries: set[str],
    pings: Pings | None,
) -> _Results:
    import asyncio

    from pinner.resolve.chainguard import ChainguardResolver
    from pinner.resolve.distribution import DistributionResolver

    async with _registry_client(options, registries, pings) as client:
        # Known up front, so that one token request can cover many repositories.
        wanted = [t.key[:2] for t in targets]
        wanted += [(a.found.reference.registry, a.found.reference.repository) for a in audits]
        # And how many lookups will be in flight at once: each needs its own connection.
        lookups: dict[str, int] = {}
        audited = {(a.found.reference.registry, a.found.reference.digest) for a in audits}
        for registry, *_ in {t.key for t in targets} | audited:
            lookups[registry] = min(lookups.get(registry, 0) + 1, options.concurrency)
        for registry in registries:
            repositories = [repo for reg, repo in wanted if reg == registry]
            client.expect(registry, repositories, lookups.get(registry, 0))
        work = _Work(ChainguardResolver(client), DistributionResolver(client), options)
        # One job per image and the digest it is pinned to (if any), not per place: a monorepo
        # names each image in many files, and every job is a task the event loop runs (and
        # the progress bar counts).
        places: dict[tuple[_Key, str | None], list[_Target]] = {}
        for target in targets:
            places.setdefault((target.key, target.found.reference.digest), []).append(target)
        jobs = [(same[0].found.reference, work.pin(same)) for same in places.values()]
        jobs += [(a.found.reference, work.audit(a)) for a in audits]
        done = 0
        pending: dict[tuple[str, str], int] = {}  # (registry, image): its jobs not done yet
        for reference, _ in jobs:
            image = (reference.registry, f"{reference.registry}/{reference.repository}")
            pending[image] = pending.get(image, 0) + 1

        def report_progress() -> None:
            if options.progress is not None:
                options.progress(done, len(jobs), _waiting_on(pending))

        async def tick(reference: ImageReference, job: Awaitable[None]) -> None:
            nonlocal done
            await job
            done += 1
            image = (reference.registry, f"{reference.registry}/{reference.repository}")
            pending[image] -= 1
            if not pending[image]:
                del pending[image]
            report_progress()

        async def keep_reporting() -> None:
            # The display must move while nothing finishes: one slow image is one long wait.
            while True:
                report_progress()
                await asyncio.sleep(_PROGRESS_TICK)

        ticker = asyncio.ensure_future(keep_reporting()) if options.progress else None
        try:
            await asyncio.gather(*(tick(reference, job) for reference, job in jobs))
        finally:
            if ticker is not None:
                ticker.cancel()
        if options.changes and not work.results.errors:
            # After every pin is resolved: an SBOM never holds one up, nor fails it.
            from pinner.changes import read_sboms
            from pinner.resolve.attestations import AttestationReader

            reader = AttestationReader(client, work.distribution)
            moved = _moved(targets, work.results)
            work.results.sboms = await read_sboms(reader, moved, options.platform, work._call)
    return work.results


def _moved(targets: list[_Target], results: _Results) -> list[_SbomKey]:
    """Both digests of every pin that moves: the SBOMs --changes compares. A per-platform pin
    moves to its platform's manifest of the new build, not to the build's index."""
    keys: list[_SbomKey] = []
    for target in targets:
        ref = target.found.reference
        resolution = results.resolutions.get(target.key)
        chosen = results.platformed.get((target.key, ref.digest))
        if chosen is not None:
            resolution = chosen[0]
        if ref.digest is not None and resolution is not None and resolution.digest != ref.digest:
            keys += [(ref.registry, ref.repository, d) for d in (ref.digest, resolution.digest)]
    return keys


_PROGRESS_TICK = 0.1  # seconds between two updates of the progress display


def _waiting_on(pending: dict[tuple[str, str], int]) -> str:
    """What the lookups still running wait on: the image, or the registry, or how many."""
    if len(pending) == 1:
        return f"waiting on {next(iter(pending))[1]}"
    registries = {registry for registry, _ in pending}
    if len(registries) == 1:
        return f"waiting on {next(iter(registries))} ({len(pending)} images)"
    return f"waiting on {len(registries)} registries ({len(pending)} images)"


def _ping(
    options: Options, registries: Iterable[str], ahead: dict[str, list[Lookup]]
) -> Pings | None:
    """Each registry's GET /v2/, sent now on threads, and the lookups *ahead* of those that
    answer 200 (see pinner.resolve.ping); None when an environment proxy is set, which only
    httpx's own transport honours."""
    if _proxied():
        return None
    from pinner.registries import base_url
    from pinner.resolve.ping import Pings

    mirrors = dict(options.mirrors)
    urls = {registry: base_url(registry, mirrors) for registry in registries}
    return Pings(urls, timeout=options.timeout, user_agent=_user_agent(), ahead=ahead)


def _lookups_ahead(targets: list[_Target], options: Options) -> dict[str, list[Lookup]]:
    """The requests the first lookups of each registry other than cgr.dev will send (the
    tag's manifest HEAD, see DistributionResolver), as many as go at once: sent at start-up
    if the registry's ping is answered 200, and taken by the lookups that send the same."""
    from pinner.resolve.lookups import ACCEPT, manifest_path

    ahead: dict[str, list[Lookup]] = {}
    if options.cutoff is not None:
        return ahead  # no lookup of a registry without a tag history goes
    headers = (*_client_headers().items(), ("Accept", ACCEPT))
    seen: set[_Key] = set()
    for target in targets:
        registry, repository, tag = target.key
        if registry == CHAINGUARD or target.key in seen:
            continue
        seen.add(target.key)
        lookups = ahead.setdefault(registry, [])
        if len(lookups) < options.concurrency:
            lookups.append((manifest_path(repository, tag), headers))
    return ahead


@contextlib.asynccontextmanager
async def _registry_client(
    options: Options, registries: Iterable[str], pings: Pings | None
) -> AsyncIterator[RegistryClient]:
    """The one RegistryClient of a run, over one pooled HTTP client, for these registries,
    told what their pings learnt (and closing those still out when it is done)."""
    try:
        async with _client(options, registries, pings) as client:
            yield client
    finally:
        if pings is not None:
            pings.close()


@contextlib.asynccontextmanager
async def _client(
    options: Options, registries: Iterable[str], pings: Pings | None
) -> AsyncIterator[RegistryClient]:
    import httpx  # only here: the offline path must not pay for this import

    from pinner.registries import base_url
    from pinner.resolve.client import RegistryClient
    from pinner.resolve.http11 import Transport
    from pinner.resolve.lean import without_trio
    from pinner.resolve.tls import trusted_certificates
    from pinner.resolve.transport import Client

    mirrors = dict(options.mirrors)
    tls = any(base_url(r, mirrors).startswith("https:") for r in registries)
    # The pings' context, if they built one for https (CA bundles are slow to load).
    verify = pings.certificates() if tls and pings else trusted_certificates(needed=tls)
    # pin's own HTTP/1.1 transport (see http11.py), unless an environment proxy is set: httpx
    # honours HTTPS_PROXY, NO_PROXY and the like only with its own transport (httpcore's).
    transport = None
    if not _proxied():
        # Those of a registry that wants a token were never sent: no request looks for them.
        sent = (a for each in pings.ahead.values() for a in each if not a.dropped) if pings else ()
        transport = Transport(verify, keep_alive=options.concurrency, ahead=sent)
    preconnect = None
    if transport is not None:
        preconnect = functools.partial(transport.preconnect, timeout=options.timeout)
    with without_trio():
        http = Client(
            transport=transport,
            verify=verify,
            timeout=httpx.Timeout(options.timeout),
            # Connections are bounded by the lookups in flight (per registry, see _Work.limits).
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=options.concurrency
            ),
            follow_redirects=False,
            headers=_client_headers(),
        )
    async with http:
        yield RegistryClient(
            http,
            mirrors=dict(options.mirrors),
            log=options.log,
            timeout=options.timeout,
            preconnect=preconnect,
            pings=pings.each if pings is not None else None,
        )


def _proxied() -> bool:
    """Whether an environment proxy (HTTPS_PROXY and the like) may carry some request.

    On Linux, urllib.request.getproxies() (which httpx follows) reads only the environment:
    any ``<scheme>_proxy`` variable, in either case, but ``no_proxy``. Read here without
    importing urllib.request (~40 ms, before the pings could go); a variable it would ignore
    (an empty lower-case one overriding, HTTP_PROXY under CGI) only costs the pings and pin's
    own transport. macOS and Windows also have system settings: urllib reads them.
    """
    if sys.platform in ("darwin", "win32"):
        import urllib.request

        return any(scheme != "no" for scheme in urllib.request.getproxies())
    return any(
        value and name[-6:].lower() == "_proxy" and name.lower() != "no_proxy"
        for name, value in os.environ.items()
    )


class _Work:
    """The registry work of a run: each lookup made once, its outcome kept in ``results``."""

    def __init__(
        self,
        chainguard: ChainguardResolver,
        distribution: DistributionResolver,
        options: Options,
    ) -> None:
        self.chainguard = chainguard
        self.distribution = distribution
        self.options = options
        self.once = _Once()
        # Lookups in flight, per registry (asyncio.Semaphore, made inside the event loop): the
        # cap is a politeness to each registry, not a limit of this process.
        self.limits: dict[str, Any] = {}
        self.results = _Results()
        self._failed: dict[tuple[Any, ...], int] = {}  # key: its index in errors

    @functools.cached_property
    def platforms(self) -> PlatformPins:
        """Per-platform pins and --verify of pins: imported only by a run that has them."""
        from pinner.resolve.platform import PlatformPins

        return PlatformPins(self.distribution, self._call)

    async def _call(self, key: tuple[Any, ...], make: Callable[[], Awaitable[Any]]) -> Any:
        """*make()*, once per key; every key names its registry second."""
        import asyncio

        registry = key[1]
        if registry not in self.limits:
            self.limits[registry] = asyncio.Semaphore(self.options.concurrency)

        async def limited() -> Any:
            async with self.limits[registry]:
                return await make()

        return await self.once.get(key, limited)

    def _fail(self, key: tuple[Any, ...], source: _Source, found: Found, error: PinError) -> None:
        """One error line per failed lookup, at the first place (in file and line order) that
        needed it; for a registry that cannot be used at all, one line whatever number of its
        images failed."""
        if isinstance(error, UnreachableError):
            key = ("unreachable", error.registry)
        place = (source.path, found.line)
        line = (place, f"{source.path}:{found.line}: {found.text}: {error}")
        if key not in self._failed:
            self._failed[key] = len(self.results.errors)
            self.results.errors.append(line)
        elif place < self.results.errors[self._failed[key]][0]:
            # Lookups fail in any order; the line goes to the first place, on every run.
            self.results.errors[self._failed[key]] = line

    async def pin(self, places: list[_Target]) -> None:
        """Look up one image (registry, repository, tag) for all the places that name it pinned
        to the same digest, or to none. They ask the registry the same things (the tag's build;
        for a per-platform pin, that digest's platform), so each is answered from the first
        one's requests; places pinned to other digests are jobs of their own, which run at the
        same time."""
        from pinner.reference import ImageReference

        registry, repository, tag = image = places[0].key
        reference = ImageReference(registry, repository, tag, None)
        resolver = self.chainguard if registry == CHAINGUARD else self.distribution
        key = ("resolve", *image)
        try:
            resolution = await self._call(
                key, lambda: resolver.resolve(reference, self.options.cutoff)
            )
        except NoBuildError as e:
            cutoff = self.options.cutoff
            if cutoff is None or not cutoff.cooldown:
                for target in places:
                    self._fail(key, target.source, target.found, e)
                return
            # A cooldown asks for builds at least this old; an image with none keeps what it
            # has rather than failing the run.
            oldest = "" if e.oldest_ns is None else f"; its oldest is {age(e.oldest_ns)} old"
            reason = f"no build of this tag is old enough for --before {cutoff.label}{oldest}"
            for target in places:
                entry = _entry(target.source, target.found, "skipped", reason=reason)
                self.results.entries.append(entry)
            return
        except PinError as e:
            for target in places:
                self._fail(key, target.source, target.found, e)
            return
        self.results.resolutions[image] = resolution
        for target in places:
            await self._pin_platform(target, reference, resolution)

    async def _pin_platform(
        self, target: _Target, reference: ImageReference, resolution: Resolution
    ) -> None:
        """--platform, or a per-platform pin being refreshed: that platform's manifest of the
        chosen build instead of the build's index."""
        from pinner.resolve import Resolution

        registry, repository, _ = target.key
        old = target.found.reference.digest
        platform = self.options.platform
        why = f"{platform} was asked for with --platform"
        fix = "choose another platform, or leave --platform out to pin the index"
        key: tuple[Any, ...] = ("pinned-platform", registry, repository, old)
        # self.once, not self._call: these are several fetches in a row, each of which takes
        # the registry's slot (a lookup holding one while waiting for another could wait on
        # itself for ever).
        try:
            # A pin already at the chosen build stays as it is: no request to learn its kind.
            if platform is None and old is not None and old != resolution.digest:
                pinned = old
                platform = await self.once.get(
                    key, lambda: self.platforms.pinned_platform(reference, pinned)
                )
                why = f"the pin is to its {platform} manifest"
                fix = "to pin the index instead, delete the digest and run pin"
            if platform is None:
                return
            want: Platform = platform
            key = ("child", registry, repository, resolution.digest, str(want))
            child: str = await self.once.get(
                key, lambda: self.platforms.child(reference, resolution.digest, want, why, fix)
            )
        except PinError as e:
            self._fail(key, target.source, target.found, e)
            return
        self.results.platformed[(target.key, old)] = (
            Resolution(child, resolution.published),
            want,
        )

    async def audit(self, audit: _Audit) -> None:
        """--verify and --max-age for one pinned reference."""
        found, entry = audit.found, audit.entry
        ref = found.reference
        digest = ref.digest or ""
        try:
            if ref.registry == CHAINGUARD and ref.tag is not None:
                key = ("builds", ref.registry, ref.repository, ref.tag)
                builds: list[Build] = await self._call(key, lambda: self.chainguard.all_builds(ref))
                finding = _audit_history(entry, digest, builds, self.options)
                if finding.action == "unverified":
                    finding = await self._audit_listed(ref, entry, finding, digest, builds)
            else:
                key = ("exists", ref.registry, ref.repository, digest)
                finding = await self._audit_manifest(key, entry, digest)
        except PinError as e:
            self._fail(key, audit.source, found, e)
            return
        self.results.entries.append(finding)

    async def _audit_listed(
        self, ref: ImageReference, entry: Entry, finding: Entry, digest: str, builds: list[Build]
    ) -> Entry:
        """A pin not in the tag's history may be one platform's manifest of a build that is:
        found in the indexes of the newest builds, read only for a pin that is an image
        manifest (a HEAD says), newest first and bounded."""
        from pinner.errors import NotFoundError
        from pinner.platforms import INDEX_TYPES

        try:
            head = await self.platforms.head(ref, digest)
        except NotFoundError:
            return finding
        if head.media_type in INDEX_TYPES:
            return finding
        listed, read = await self.platforms.listed_in(ref, digest, builds)
        if listed is None:
            newest = f"the newest {read} builds" if read > 1 else "its build"
            return finding._replace(
                reason=f"{digest} is not in the history of tag {finding.tag}, nor in the index"
                f" of {newest}",
            )
        dated = _audit_history(entry, listed.build.digest, builds, self.options)
        build = short(listed.build.digest)
        return _listed(dated, listed, "", f" of build {build}, {dated.reason}")

    async def _audit_manifest(self, key: tuple[Any, ...], entry: Entry, digest: str) -> Entry:
        from pinner.errors import NotFoundError
        from pinner.platforms import INDEX_TYPES
        from pinner.reference import ImageReference

        if self.options.max_age is not None and not self.options.verify:
            if entry.registry == CHAINGUARD:
                return entry._replace(action="skipped", reason="no tag to date this pin by")
            return entry._replace(
                action="skipped",
                reason=f"{entry.registry} keeps no history to date this pin",
            )
        reference = ImageReference(entry.registry, entry.repository or "", None, None)
        try:
            # A HEAD says whether the digest exists and, by its type, whether it is an index.
            head = await self.platforms.head(reference, digest)
            found = head.digest or await self._call(
                key, lambda: self.distribution.manifest_digest(reference, digest)
            )
        except NotFoundError:
            return entry._replace(
                action="unverified",
                reason=f"{digest} does not exist in {entry.registry}/{entry.repository}",
            )
        if found != digest:
            return entry._replace(
                action="unverified", reason=f"the registry answers {found} for {digest}"
            )
        verified = entry._replace(reason="verified: the digest exists in the repository")
        if entry.tag is None or head.media_type in INDEX_TYPES:
            return verified
        # One platform's manifest: say which, when the tag's current index lists it.
        tagged = ImageReference(entry.registry, entry.repository or "", entry.tag, None)
        try:
            current = await self._call(
                ("resolve", entry.registry, entry.repository, entry.tag),
                lambda: self.distribution.resolve(tagged, None),
            )
        except PinError:
            return verified  # the tag cannot be read: the digest exists, as said
        if current.digest == digest:
            return verified
        listed = await self.platforms.current_child(reference, current.digest, digest)
        if listed is None:
            return verified
        return _listed(verified, listed, "verified: ", " of the tag's current index")


def _listed(finding: Entry, listed: Listed, before: str, after: str) -> Entry:
    """*finding* for a pin that is one platform's manifest of an index: its reason says which
    platform's, between *before* and *after*."""
    platform = listed.platform
    name = f"the {platform} manifest" if platform is not None else "a manifest"
    return finding._replace(
        platform=None if platform is None else str(platform),
        reason=f"{before}{name}{after}",
    )


def _audit_history(entry: Entry, digest: str, builds: list[Build], options: Options) -> Entry:
    mine = [b for b in builds if b.digest == digest]
    if not mine:
        return entry._replace(
            action="unverified", reason=f"{digest} is not in the history of tag {entry.tag}"
        )
    build, newest = max(mine), max(builds)  # Build's order: by timestamp, then digest
    described = f"built {build.published} ({age(build.ns)} ago)"
    too_old = options.max_age is not None and time.time_ns() - build.ns > options.max_age
    if too_old and newest.ns > build.ns:
        return entry._replace(
            action="stale",
            published=build.published,
            reason=f"{described}; a newer build exists ({newest.published}); run pin --update",
        )
    return entry._replace(published=build.published, reason=described)


def age(ns: int) -> str:
    """How long ago *ns* was, in the largest whole unit: ``3d``, ``5h``, ``12m``, ``40s``."""
    seconds = max(0, (time.time_ns() - ns) // NS)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _rewrite(
    sources: list[_Source],
    targets: list[_Target],
    resolutions: dict[_Key, Resolution],
    options: Options,
    report: Report,
    platformed: dict[tuple[_Key, str | None], tuple[Resolution, Platform]] | None = None,
) -> list[FileOutcome]:
    by_source: dict[str, list[_Target]] = {}
    for target in targets:
        by_source.setdefault(target.source.path, []).append(target)
    outcomes: list[FileOutcome] = []
    for source in sources:
        edits: list[Edit] = []
        for target in by_source.get(source.path, []):
            resolution = resolutions.get(target.key)
            if resolution is None:
                continue  # skipped while resolving (a cooldown no build is old enough for)
            found = target.found
            platform = None
            chosen = (platformed or {}).get((target.key, found.reference.digest))
            if chosen is not None:
                resolution, platform = chosen
            new = found.reference.with_digest(resolution.digest, keep_tag=not options.digest_only)
            old_digest = found.reference.digest
            same = old_digest == resolution.digest and found.reference.tag is not None
            try:
                edit = None if same else edit_for(found, new)
            except PinError as e:
                report.errors.append(f"{source.path}: {e}")
                continue
            action = "unchanged" if edit is None else "updated" if old_digest else "pinned"
            report.entries.append(
                _entry(
                    source,
                    found,
                    action,
                    new_digest=resolution.digest,
                    new_image=new if edit is not None else None,
                    published=resolution.published,
                    platform=None if platform is None else str(platform),
                )
            )
            if edit is not None:
                edits.append(edit)
        text = apply_edits(source.text, edits)
        try:
            check_rewrite(source.path, source.text, text, edits)
        except PinError as e:
            report.errors.append(str(e))
            continue
        after = text.encode("utf-8", "surrogateescape")
        outcomes.append(FileOutcome(source.path, source.data, after))
    return outcomes


def _client_headers() -> dict[str, str]:
    """The fields every request of the run carries, besides httpx's ``Host`` and
    ``Connection``. gzip is the only encoding the transport inflates (with a cap), so it is the
    only one asked for."""
    return {"User-Agent": _user_agent(), "Accept-Encoding": "gzip"}


def _user_agent() -> str:
    from pinner import __version__

    return f"pinner/{__version__}"


def history(image: str, options: Options, limit: int) -> HistoryListing:
    """``pin --history IMAGE``: the newest *limit* builds of a cgr.dev tag (at or before)."""
    from pinner.errors import UsageError
    from pinner.history import HistoryListing
    from pinner.reference import parse_reference

    reference = parse_reference(image)
    if reference.registry != CHAINGUARD:
        hint = ""
        if reference.written_registry is None and reference.path.startswith("chainguard/"):
            hint = f"; did you mean cgr.dev/{image}?"
        raise UsageError(f"--history {image}: only cgr.dev keeps a tag history{hint}")
    if reference.digest is not None and reference.tag is None:
        raise UsageError(f"--history {image}: name a tag, not a digest")

    changes: dict[str, tuple[Changes | None, str | None]] = {}

    async def fetch() -> tuple[list[Build], list[Build]]:
        from pinner.resolve.chainguard import ChainguardResolver

        async with _registry_client(options, [CHAINGUARD], pings) as client:
            resolver = ChainguardResolver(client)
            # --changes compares the oldest row shown with the build before it, too.
            wanted = limit + 1 if options.changes else limit
            recent = await resolver.recent_builds(reference, options.cutoff, wanted)
            if options.changes:
                from pinner.changes import history_changes
                from pinner.resolve.attestations import AttestationReader
                from pinner.resolve.distribution import DistributionResolver

                reader = AttestationReader(client, DistributionResolver(client))
                changes.update(
                    await history_changes(
                        reader, reference.repository, recent, options.platform, options.concurrency
                    )
                )
                recent = recent[:limit]
            if reference.digest is None:
                return recent, []
            # Where the pin sits needs the whole history: it may be older than any row shown.
            return recent, await resolver.all_builds(reference)

    pings = _ping(options, [CHAINGUARD], {})  # first: it goes out while asyncio and httpx load

    from pinner.signals import run_async

    try:
        builds, every = run_async(fetch())
    except PinError as e:
        raise type(e)(f"{image}: {e}") from None
    mine = [b for b in every if b.digest == reference.digest]
    if not mine:
        return HistoryListing(
            image, builds, reference.digest, pinned=None, behind=0, changes=changes
        )
    pinned = max(mine)
    behind = sum(1 for b in every if b.ns > pinned.ns)
    return HistoryListing(image, builds, reference.digest, pinned, behind, changes)
