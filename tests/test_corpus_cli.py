"""Every file of BuildKit's parser corpus through the real ``pin`` command, writing.

The images are Docker Hub ones (``ubuntu:14.04``); ``--mirror docker.io=`` sends their
manifest requests to the fake registry, which answers a digest for each.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pinner.dockerfile import scan
from tests.conftest import mirror, run_pin
from tests.fakeregistry import FakeRegistry, nightly_digest
from tests.test_corpus import CORPUS, EVERY, read


@pytest.mark.parametrize("folder", EVERY)
def test_every_corpus_file_goes_through_pin(cgr: FakeRegistry, tmp_path: Path, folder: str) -> None:
    original = read(folder)
    path = tmp_path / "Dockerfile"
    shutil.copyfile(CORPUS / folder / "Dockerfile", path)
    found = scan(original.decode("utf-8", "surrogateescape")).found
    expected = original
    for ref in found:
        digest = nightly_digest(ref.reference.repository, ref.reference.effective_tag, 0)
        cgr.add_history(
            ref.reference.repository,
            ref.reference.effective_tag,
            [(datetime(2024, 1, 1, tzinfo=UTC).isoformat(), digest)],
        )
    check = run_pin("--check", path)
    assert check.code == (1 if found else 0), check.stderr
    ran = run_pin(*mirror(cgr, "docker.io"), path)
    assert ran.code == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    for ref in found:
        digest = nightly_digest(ref.reference.repository, ref.reference.effective_tag, 0)
        expected = expected.replace(
            ref.text.encode(), ref.reference.with_digest(digest).encode(), 1
        )
    assert path.read_bytes() == expected
    assert run_pin("--check", path).code == 0
