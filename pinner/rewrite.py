"""Splice new image tokens into the original text, touching nothing else.

Pure: text in, text out. Edits are applied from the end of the text so that the
offsets of the earlier ones stay valid (the way pyupgrade applies its fixes).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import NamedTuple

from pinner.errors import PinError
from pinner.scan.result import DigestField, Found


# A NamedTuple, not a frozen dataclass: as immutable and compared by value, and each
# dataclass costs ~1 ms of every start-up to build (an offline check is ~0.1 s in all).
class Edit(NamedTuple):
    """Replace ``text[start:end]`` with ``replacement``."""

    start: int
    end: int
    replacement: str


def edit_for(found: Found, new_text: str) -> Edit | None:
    """The smallest edit that turns the token of *found* into *new_text*; None if equal.

    Only the differing tail of the token is replaced, so a reference broken over
    a line continuation can still be pinned as long as the tail is on one line. Where the
    file keeps the digest in a field of its own, that field gets *new_text*'s digest (the
    field and its key are inserted when it is not there yet).
    """
    if found.digest_field is not None:
        return _digest_edit(found.digest_field, found.reference.digest, new_text)
    old = found.text
    if old == new_text:
        return None
    common = 0
    for a, b in zip(old, new_text, strict=False):
        if a != b:
            break
        common += 1
    tail = found.offsets[common:]
    if any(b - a != 1 for a, b in itertools.pairwise(tail)):
        raise PinError(
            f"line {found.line}: {old} is split over a line continuation where it must change;"
            " join it onto one line to pin it"
        )
    start = tail[0] if tail else found.end
    return Edit(start, found.end, new_text[common:])


def _digest_edit(place: DigestField, old: str | None, new_text: str) -> Edit | None:
    digest = new_text.rpartition("@")[2]
    if digest == old:
        return None
    return Edit(place.start, place.end, place.lead + digest)


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """*text* with every edit applied; *text* itself when there are none."""
    ordered = sorted(edits, key=lambda e: (e.start, e.end), reverse=True)
    for later, earlier in itertools.pairwise(ordered):
        if earlier.end > later.start:
            raise ValueError(f"overlapping edits at offsets {earlier.start} and {later.start}")
    for edit in ordered:
        text = text[: edit.start] + edit.replacement + text[edit.end :]
    return text
