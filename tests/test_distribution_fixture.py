"""Quick checks that the loopback distribution registry helpers do what the other tests rely on."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests import distribution
from tests.distribution import (
    ACCEPT_ALL,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    running_distribution,
)


@pytest.mark.parametrize(("kind", "index_type"), [("oci", OCI_INDEX), ("docker", DOCKER_LIST)])
def test_push_image_and_index_then_head_index_first(
    tmp_path: Path, kind: distribution.MediaKind, index_type: str
) -> None:
    with running_distribution(tmp_path) as reg:
        assert reg.url == f"http://{reg.host}"
        assert reg.auth is None
        image = reg.push_image("lib/one", "1.0", media_type=kind)
        index, per_platform = reg.push_index("lib/multi", "latest", media_type=kind)

        assert reg.digest_of("lib/one", "1.0", ACCEPT_ALL) == image
        head = reg.client.head(
            "/v2/lib/multi/manifests/latest", headers={"Accept": ", ".join(ACCEPT_ALL)}
        )
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == index
        assert head.headers["Content-Type"] == index_type
        assert set(per_platform) == {"linux/amd64", "linux/arm64"}
        for digest in per_platform.values():
            assert reg.digest_of("lib/multi", digest, ACCEPT_ALL) == digest
        # The single image and the index's amd64 entry are the same bytes (same seed).
        assert per_platform["linux/amd64"] == image
        assert reg.digest_of("lib/multi", "missing", ACCEPT_ALL) is None


def test_accept_without_index_types_is_not_the_index_digest(tmp_path: Path) -> None:
    """distribution 2.8: an OCI index is a 404 to such a client; a Docker list is silently
    rewritten to its linux/amd64 image. Either way a resolver must put index types in Accept."""
    with running_distribution(tmp_path) as reg:
        reg.push_index("lib/oci", "t", media_type="oci")
        _, docker = reg.push_index("lib/docker", "t", media_type="docker")
        assert reg.digest_of("lib/oci", "t", list(MANIFEST_TYPES)) is None
        assert reg.digest_of("lib/docker", "t", list(MANIFEST_TYPES)) == docker["linux/amd64"]


def test_another_seed_moves_the_tag_and_delete_removes_it(tmp_path: Path) -> None:
    with running_distribution(tmp_path) as reg:
        first = reg.push_image("lib/app", "1", seed="a")
        assert reg.push_image("lib/app", "1", seed="a") == first
        second = reg.push_image("lib/app", "1", seed="b")
        assert second != first
        assert reg.digest_of("lib/app", "1", [OCI_MANIFEST]) == second

        index_a, _ = reg.push_index("lib/app", "multi", seed="a", media_type="docker")
        index_b, _ = reg.push_index("lib/app", "multi", seed="b", media_type="docker")
        assert index_a != index_b
        assert reg.digest_of("lib/app", "multi", [DOCKER_LIST, DOCKER_MANIFEST]) == index_b

        reg.delete_tag_manifest("lib/app", "1")
        assert reg.digest_of("lib/app", "1", ACCEPT_ALL) is None


def test_htpasswd_requires_basic_auth(tmp_path: Path) -> None:
    with running_distribution(tmp_path, htpasswd=("alice", "s3cret")) as reg:
        assert reg.auth == ("alice", "s3cret")
        anonymous = httpx.get(f"{reg.url}/v2/")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="pinner-test"'
        assert httpx.get(f"{reg.url}/v2/", auth=("alice", "wrong")).status_code == 401
        assert httpx.get(f"{reg.url}/v2/", auth=reg.auth).status_code == 200
        digest = reg.push_image("private/app", "1")
        assert reg.digest_of("private/app", "1", ACCEPT_ALL) == digest


def test_stops_and_frees_the_port(tmp_path: Path) -> None:
    with running_distribution(tmp_path) as reg:
        port = int(reg.host.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_retries_when_the_port_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = distribution.free_port
        monkeypatch.setattr(
            distribution, "free_port", lambda: next(ports, None) or real_free_port()
        )
        with running_distribution(tmp_path) as reg:
            assert reg.host != f"127.0.0.1:{taken}"
    assert "address already in use" in (tmp_path / "distribution/stderr-1.log").read_text()


def test_a_registry_that_never_starts_reports_its_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(distribution, "config_yaml", lambda *_: "version: 0.1\nstorage: {}\n")
    with (
        pytest.raises(RuntimeError, match=r"(?s)exited with \d+ \(attempt 3\); stderr:\n.*storage"),
        running_distribution(tmp_path),
    ):
        pass


def test_missing_binary_skips_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y docker-registry"):
        distribution.require_binary()


def test_missing_binary_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y docker-registry"):
        distribution.require_binary()
