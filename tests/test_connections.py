"""Connections to a registry (issue 9): while a registry's first request is out, pin opens the
connections its other lookups will need (pinner/resolve/http11.py), at most one per lookup
besides the ping's (pinner/resolve/ping.py), and never around an environment proxy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import run_pin
from tests.fakeregistry import FakeRegistry, nightly_digest
from tests.relay import Relay

TAGS = ("1.25", "1.26")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def images(cgr: FakeRegistry, repositories: int) -> list[str]:
    names = [f"chainguard/conn{i}" for i in range(repositories)]
    for name in names:
        for tag in TAGS:
            cgr.add_nightly(name, tag, 2, datetime.now(UTC) - timedelta(days=1))
    return [f"{name}:{tag}" for name in names for tag in TAGS]


def dockerfile(tmp_path: Path, refs: list[str]) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text("".join(f"FROM cgr.dev/{ref} AS s{i}\n" for i, ref in enumerate(refs)))
    return path


def pinned(refs: list[str]) -> str:
    lines = []
    for i, ref in enumerate(refs):
        name, tag = ref.split(":")
        lines.append(f"FROM cgr.dev/{ref}@{nightly_digest(name, tag, 1)} AS s{i}\n")
    return "".join(lines)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_a_registry_gets_at_most_one_connection_per_lookup(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    refs = images(cgr, 20)
    path = dockerfile(tmp_path, refs)
    host, port = cgr.url.removeprefix("http://").split(":")
    # The token realm is the registry's own URL: only the registry API goes through here.
    with Relay((host, int(port))) as registry:
        ran = run_pin("--mirror", f"cgr.dev={registry.url}", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == pinned(refs)
    assert 2 <= registry.accepted <= len(refs) + 1  # the ping's, then the lookups'


def test_with_the_token_from_another_host_the_connections_open_while_it_is_fetched(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    # Docker Hub's shape: the registry's challenge names a realm on another host, so nothing
    # goes to the registry between its ping and the lookups. Their connections are opened
    # while the token is fetched (held back a second here), not each after it came.
    refs = images(cgr, 5)
    path = dockerfile(tmp_path, refs)
    cgr.delay(1.0, times=1, path_contains="/token")
    host, port = cgr.url.removeprefix("http://").split(":")
    with Relay((host, int(port))) as registry:
        ran = run_pin("--mirror", f"cgr.dev={registry.url}", path)
        events = list(registry.events)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == pinned(refs)
    # The first connection is the ping's; every lookup's was open before any lookup was sent.
    assert events[:2] == [("accepted", 0), ("sent", 0)]
    kinds = [kind for kind, _ in events[2:]]
    first_sent = kinds.index("sent")
    assert "accepted" not in kinds[first_sent:]
    assert 1 <= kinds.count("accepted") <= len(refs)


def test_no_connection_goes_around_an_environment_proxy(
    cgr: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = images(cgr, 3)
    path = dockerfile(tmp_path, refs)
    # The fake registry reads the absolute URLs a proxy is sent; the registry's own address
    # answers nothing: every request must go through the proxy.
    monkeypatch.setenv("HTTP_PROXY", cgr.url)
    with Relay() as direct:
        ran = run_pin("--mirror", f"cgr.dev={direct.url}", path)
        assert direct.accepted == 0
    assert ran.code == 0, ran.stderr
    assert path.read_text() == pinned(refs)
