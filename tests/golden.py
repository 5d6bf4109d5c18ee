"""The offline core of ``pin`` for tests: scan, pin every unpinned reference, splice, check.

No registry is involved: the digest of each reference comes from *digest_for*, so the
rewriter can be checked byte for byte against golden files and the BuildKit corpus.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pinner.reference import ImageReference
from pinner.rewrite import Edit, apply_edits, edit_for
from pinner.scan.kinds import check_rewrite, scan_file


def pin_text(
    text: str,
    digest_for: Callable[[ImageReference], str],
    *,
    digest_only: bool = False,
    path: str = "Dockerfile",
) -> str:
    """*text* with every reference that has no digest yet pinned to ``digest_for(reference)``.

    *path* names the file, and so its kind; the rewrite is checked as the pipeline checks it.
    """
    edits: list[Edit] = []
    for found in scan_file(path, text).found:
        reference = found.reference
        if reference.digest is not None:
            continue
        new = reference.with_digest(digest_for(reference), keep_tag=not digest_only)
        edit = edit_for(found, new)
        if edit is not None:
            edits.append(edit)
    after = apply_edits(text, edits)
    check_rewrite(path, text, after, edits)
    return after


def fake_digest(reference: ImageReference) -> str:
    """A stable digest per spelling: the sha256 of the reference as written."""
    return digest_of(str(reference))


def digest_of(written: str) -> str:
    return "sha256:" + hashlib.sha256(written.encode("utf-8", "surrogateescape")).hexdigest()
