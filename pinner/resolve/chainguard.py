"""cgr.dev: choose a build from Chainguard's tag history.

``GET /v2/<repo>/_chainguard/history/<tag>?start=&end=`` returns at most 1,000
entries, the oldest of the window first. A nightly tag outgrows that in three
years, and its newest builds are then the ones cut off. So the window is narrowed
to the recent past first and widened only while it holds no eligible build; if a
window comes back full, the next page starts at the newest timestamp seen. The
cost is one request in the common case and a bounded number in every case.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from pinner.errors import NoBuildError, NotFoundError, RegistryError
from pinner.history import Build, newest_first, parse_history, refuse_future
from pinner.limits import HISTORY_MAX_PAGES as MAX_PAGES
from pinner.limits import HISTORY_PAGE_ENTRIES as PAGE_CAP
from pinner.limits import MAX_HISTORY_PAGE_BYTES
from pinner.reference import ImageReference
from pinner.resolve import Resolution
from pinner.resolve.client import RegistryClient
from pinner.resolve.transport import Body
from pinner.timestamps import NS, Cutoff, format_instant

_DAY = 86400 * NS
# Look this far back from the anchor (now, or the cut-off) before widening; None: all time.
WINDOWS: tuple[int | None, ...] = (3 * _DAY, 45 * _DAY, 400 * _DAY, 4000 * _DAY, None)
_PAGE = Body("a tag history", MAX_HISTORY_PAGE_BYTES)


class ChainguardResolver:
    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    async def resolve(self, reference: ImageReference, cutoff: Cutoff | None) -> Resolution:
        build = await self.newest_build(reference, cutoff)
        return Resolution(build.digest, build.published)

    async def newest_build(self, reference: ImageReference, cutoff: Cutoff | None) -> Build:
        return (await self.recent_builds(reference, cutoff, 1))[0]

    async def recent_builds(
        self, reference: ImageReference, cutoff: Cutoff | None, limit: int
    ) -> list[Build]:
        """Up to *limit* builds, newest first, all at or before *cutoff*; widens the window
        only while it holds fewer than *limit*."""
        anchor = cutoff.ns if cutoff is not None else time.time_ns()
        # end= is only a hint to the server (whole seconds, rounded up); the exact
        # cut-off is applied here, to the nanosecond.
        end = None if cutoff is None else format_instant(cutoff.ns + NS - 1)
        eligible: list[Build] = []
        for window in WINDOWS:
            start = None if window is None else format_instant(anchor - window)
            builds = await self._window(reference, start, end)
            eligible = [b for b in builds if cutoff is None or b.ns <= cutoff.ns]
            if len(eligible) >= limit:
                break
        if not eligible:
            raise await self._no_build(reference, cutoff)
        return newest_first(eligible)[:limit]

    async def all_builds(self, reference: ImageReference) -> list[Build]:
        """The tag's whole history, for ``--verify`` and ``--max-age``."""
        return await self._window(reference, None, None)

    async def _window(
        self, reference: ImageReference, start: str | None, end: str | None
    ) -> list[Build]:
        """Every build in [start, end], paging forward while the server's cap cuts the answer."""
        seen: list[Build] = []
        for _ in range(MAX_PAGES):
            page = await self._page(reference, start, end)
            if len(page) > PAGE_CAP:
                # Past the API's own limit the answer is not the history we know how to page.
                raise RegistryError(
                    f"the tag history answer holds {len(page)} builds, more than the"
                    f" {PAGE_CAP} the API sends at most; refusing it"
                )
            seen.extend(page)
            if len(page) < PAGE_CAP:
                # Each page starts at the second the last one ended in: drop the overlap.
                return list(dict.fromkeys(seen))
            last = max(b.ns for b in page)
            next_start = format_instant(last)
            if next_start == start:
                # A whole page within one second: the window cannot move forward.
                raise RegistryError(
                    f"the tag history holds more than {PAGE_CAP} builds in one second"
                )
            start = next_start
        raise RegistryError(f"the tag history is longer than {MAX_PAGES} pages of {PAGE_CAP}")

    async def _page(
        self, reference: ImageReference, start: str | None, end: str | None
    ) -> list[Build]:
        params = {}
        if start is not None:
            params["start"] = start
        if end is not None:
            params["end"] = end
        path = (
            f"/v2/{reference.repository}/_chainguard/history/"
            f"{quote(reference.effective_tag, safe='')}"
        )
        response = await self.client.request(
            "GET",
            reference.registry,
            reference.repository,
            path,
            params=params,
            headers={"Accept": "application/json"},
            body=_PAGE,
        )
        builds = parse_history(response.body)
        refuse_future(builds, time.time_ns())
        return builds

    async def _no_build(self, reference: ImageReference, cutoff: Cutoff | None) -> Exception:
        oldest_page = await self._page(reference, None, None)
        if not oldest_page:
            return NotFoundError("the tag history is empty")
        oldest = min(oldest_page)
        label = cutoff.label if cutoff is not None else "now"
        return NoBuildError(
            f"no build at or before {label}; the oldest build is {oldest.published}", oldest.ns
        )
