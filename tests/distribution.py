"""A real CNCF distribution registry (``docker-registry serve``) on loopback, for tests.

``running_distribution(tmp_path)`` starts one on a free 127.0.0.1 port, waits for ``GET /v2/``,
yields a ``Distribution`` that can push tiny images and indexes over the distribution HTTP API,
and stops the process on exit. Content is deterministic: the same (repo, platform, seed, media
type) always gives the same digest, another seed gives another one.

Spec: https://github.com/opencontainers/distribution-spec/blob/main/spec.md (push, pull, delete).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import bcrypt
import httpx
import pytest

BINARY = "docker-registry"
MISSING_MESSAGE = "docker-registry not installed: apt-get install -y docker-registry"
READY_TIMEOUT = 10.0
START_ATTEMPTS = 3
REALM = "pinner-test"

MediaKind = Literal["oci", "docker"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
#: What a resolver sends to get the digest of whatever the tag points at, index first.
ACCEPT_ALL = [*INDEX_TYPES, *MANIFEST_TYPES]

_TYPES: dict[MediaKind, dict[str, str]] = {
    "oci": {"manifest": OCI_MANIFEST, "index": OCI_INDEX, "config": OCI_CONFIG, "layer": OCI_LAYER},
    "docker": {
        "manifest": DOCKER_MANIFEST,
        "index": DOCKER_LIST,
        "config": DOCKER_CONFIG,
        "layer": DOCKER_LAYER,
    },
}


def require_binary() -> str:
    """The path of ``docker-registry``; skip the test without it, but fail when ``CI=true``.

    Failing in CI keeps the registry tests from silently never running there.
    """
    path = shutil.which(BINARY)
    if path is not None:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(MISSING_MESSAGE, pytrace=False)
    pytest.skip(MISSING_MESSAGE)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def platform_fields(platform: str) -> dict[str, str]:
    """``"linux/arm/v7"`` → ``{"os": "linux", "architecture": "arm", "variant": "v7"}``."""
    os_, arch, *rest = platform.split("/")
    fields = {"os": os_, "architecture": arch}
    if rest:
        fields["variant"] = rest[0]
    return fields


def layer_tar(seed: str, platform: str) -> bytes:
    """An uncompressed tar with one file of seed-derived bytes; mtimes pinned for determinism."""
    payload = b"".join(hashlib.sha256(f"{seed}/{platform}/{i}".encode()).digest() for i in range(8))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pinner-test/seed.bin")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def htpasswd_line(user: str, password: str, prefix: str = "$2y$") -> str:
    """One htpasswd entry, bcrypt at the minimum cost (distribution checks it on every request).

    ``htpasswd -B`` writes ``$2y$``; Python's bcrypt writes ``$2b$``, the same algorithm.
    """
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:{prefix}{hashed[4:]}\n"


@dataclass(frozen=True)
class Distribution:
    """A running registry and a client for it; push helpers assert on every answer."""

    url: str
    host: str
    auth: tuple[str, str] | None
    root: Path
    client: httpx.Client = field(repr=False)

    def push_blob(self, repo: str, data: bytes) -> str:
        """Monolithic upload: ``POST …/blobs/uploads/`` then ``PUT <Location>?digest=``."""
        digest = sha256_digest(data)
        started = self.client.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, (started.status_code, started.text)
        location = httpx.URL(self.url).join(started.headers["Location"])
        done = self.client.put(
            location.copy_add_param("digest", digest),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert done.status_code == 201, (done.status_code, done.text)
        assert done.headers["Docker-Content-Digest"] == digest
        return digest

    def push_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT the exact bytes under a tag or digest; returns their digest."""
        digest = sha256_digest(body)
        response = self.client.put(
            f"/v2/{repo}/manifests/{reference}",
            content=body,
            headers={"Content-Type": media_type},
        )
        assert response.status_code == 201, (response.status_code, response.text)
        assert response.headers["Docker-Content-Digest"] == digest
        return digest

    def push_image(
        self,
        repo: str,
        tag: str | None,
        *,
        platform: str = "linux/amd64",
        seed: str = "x",
        media_type: MediaKind = "oci",
    ) -> str:
        """A one-layer single-platform image; ``tag=None`` pushes it by digest only."""
        types = _TYPES[media_type]
        tar = layer_tar(seed, platform)
        layer = gzip.compress(tar, mtime=0)
        config = canonical_json(
            {
                **platform_fields(platform),
                "config": {"Labels": {"org.pinner.test.seed": seed}},
                "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
            }
        )
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": types["manifest"],
                "config": {
                    "mediaType": types["config"],
                    "digest": self.push_blob(repo, config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": types["layer"],
                        "digest": self.push_blob(repo, layer),
                        "size": len(layer),
                    }
                ],
            }
        )
        reference = tag if tag is not None else sha256_digest(manifest)
        return self.push_manifest(repo, reference, manifest, types["manifest"])

    def push_index(
        self,
        repo: str,
        tag: str,
        *,
        platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
        seed: str = "x",
        media_type: MediaKind = "oci",
    ) -> tuple[str, dict[str, str]]:
        """One image per platform (by digest), then an index / manifest list under ``tag``."""
        types = _TYPES[media_type]
        entries: list[dict[str, object]] = []
        digests: dict[str, str] = {}
        for platform in platforms:
            digest = self.push_image(
                repo, None, platform=platform, seed=seed, media_type=media_type
            )
            digests[platform] = digest
            # Size is that of the exact bytes pushed; HEAD by digest gives it back.
            head = self.client.head(
                f"/v2/{repo}/manifests/{digest}", headers={"Accept": types["manifest"]}
            )
            assert head.status_code == 200, head.status_code
            entries.append(
                {
                    "mediaType": types["manifest"],
                    "digest": digest,
                    "size": int(head.headers["Content-Length"]),
                    "platform": platform_fields(platform),
                }
            )
        index = canonical_json(
            {"schemaVersion": 2, "mediaType": types["index"], "manifests": entries}
        )
        return self.push_manifest(repo, tag, index, types["index"]), digests

    def digest_of(self, repo: str, tag: str, accept: list[str]) -> str | None:
        """``Docker-Content-Digest`` of a HEAD with this Accept; None on 404."""
        response = self.client.head(
            f"/v2/{repo}/manifests/{tag}", headers={"Accept": ", ".join(accept)}
        )
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.status_code
        return response.headers["Docker-Content-Digest"]

    def delete_tag_manifest(self, repo: str, reference: str) -> None:
        """Delete the manifest a tag or digest names, and with it every tag pointing at it.

        distribution 2.8 only deletes manifests by digest (DELETE by tag is 400 Unsupported),
        so a tag is first resolved with HEAD.
        """
        digest = reference
        if not reference.startswith("sha256:"):
            found = self.digest_of(repo, reference, ACCEPT_ALL)
            assert found is not None, f"{repo}:{reference} not found"
            digest = found
        response = self.client.delete(f"/v2/{repo}/manifests/{digest}")
        assert response.status_code == 202, (response.status_code, response.text)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def config_yaml(root: Path, port: int, htpasswd: Path | None) -> str:
    # json.dumps quotes paths into valid YAML double-quoted scalars.
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {json.dumps(str(root))}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        # A fixed secret silences the "No HTTP secret provided" warning on every start.
        "  secret: pinner-test-secret",
    ]
    if htpasswd is not None:
        lines += [
            "auth:",
            "  htpasswd:",
            f"    realm: {REALM}",
            f"    path: {json.dumps(str(htpasswd))}",
        ]
    return "\n".join(lines) + "\n"


def _is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], url: str, deadline: float) -> bool:
    """True once ``GET /v2/`` answers 200/401; False if the process died first."""
    with httpx.Client(timeout=1.0) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with contextlib.suppress(httpx.TransportError):
                if probe.get(f"{url}/v2/").status_code in (200, 401):
                    return True
            time.sleep(0.02)
    return False


@contextlib.contextmanager
def running_distribution(
    tmp_path: Path, *, htpasswd: tuple[str, str] | None = None
) -> Iterator[Distribution]:
    """Run ``docker-registry serve`` on loopback for the duration of the block."""
    binary = require_binary()
    base = tmp_path / "distribution"
    root = base / "storage"
    root.mkdir(parents=True, exist_ok=True)
    htpasswd_file: Path | None = None
    if htpasswd is not None:
        htpasswd_file = base / "htpasswd"
        htpasswd_file.write_text(htpasswd_line(*htpasswd))

    for attempt in range(1, START_ATTEMPTS + 1):
        # The port is free when probed but may be taken before the registry binds: retry.
        port = free_port()
        config = base / "config.yml"
        config.write_text(config_yaml(root, port, htpasswd_file))
        log = base / f"stderr-{attempt}.log"
        url = f"http://127.0.0.1:{port}"
        with log.open("wb") as err:
            process = subprocess.Popen(
                [binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        try:
            ready = _wait_ready(process, url, time.monotonic() + READY_TIMEOUT)
        except BaseException:
            _stop(process)
            raise
        if ready:
            break
        timed_out = process.poll() is None
        _stop(process)
        if timed_out or attempt == START_ATTEMPTS:
            why = (
                f"did not answer GET /v2/ within {READY_TIMEOUT:g} s"
                if timed_out
                else f"exited with {process.returncode}"
            )
            raise RuntimeError(
                f"docker-registry on {url} {why} (attempt {attempt}); stderr:\n"
                + log.read_text(errors="replace")
            )

    auth = httpx.BasicAuth(*htpasswd) if htpasswd is not None else None
    try:
        with httpx.Client(base_url=url, auth=auth, timeout=10.0) as client:
            yield Distribution(
                url=url, host=f"127.0.0.1:{port}", auth=htpasswd, root=root, client=client
            )
    finally:
        _stop(process)
    if _is_listening(port):
        raise RuntimeError(f"something still listens on {url} after the registry stopped")
