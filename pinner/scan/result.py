"""What a scanner returns, whatever kind of file it read.

The pipeline, the rewriter and the report work on these values alone: none of them asks
whether a reference came from a Dockerfile or a YAML file.
"""

from __future__ import annotations

from typing import NamedTuple

from pinner.reference import ImageReference


# A NamedTuple, not a frozen dataclass: as immutable and compared by value, and each
# dataclass costs ~1 ms of every start-up to build (an offline check is ~0.1 s in all); one
# Found is made per reference, and a tuple is made faster.
class Found(NamedTuple):
    """An image reference found in a file.

    ``offsets`` holds the position in the original text of each character of
    ``text``; they are consecutive unless the reference is split by a line
    continuation.
    """

    text: str
    reference: ImageReference
    line: int
    where: str  # "FROM", "COPY --from", "ARG BASE", "services.web.image", ...
    offsets: tuple[int, ...]
    # Set where the file keeps the digest apart from the name (Kustomize's images[].digest):
    # the pin is written there, and ``text`` is the image it names, written nowhere as such
    # (``offsets`` is empty).
    digest_field: DigestField | None = None

    @property
    def start(self) -> int:
        return self.offsets[0]

    @property
    def end(self) -> int:
        return self.offsets[-1] + 1


class DigestField(NamedTuple):  # a NamedTuple: see Found
    """Where a digest alone is written: the span of its value, or, when the field is not
    there yet, an empty span where it goes and the text that comes before the digest (the
    line break, indentation and key, ``"\\n    digest: "``, or ``", digest: "`` in a flow
    mapping)."""

    start: int
    end: int
    lead: str = ""


class Skipped(NamedTuple):  # a NamedTuple: see Found
    """Something that looks like an image but that pin will not touch, and why."""

    text: str
    line: int
    where: str
    reason: str
    # Not a reference BuildKit accepts (``alpine@sha256:abc``, ``Python:3``): the build
    # fails on it, so pin reports an error, where other skips are a choice to leave it alone.
    malformed: bool = False


class Scan(NamedTuple):  # a NamedTuple: see Found
    found: tuple[Found, ...]
    skipped: tuple[Skipped, ...]
