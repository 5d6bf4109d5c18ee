"""``pin`` end to end against the real CNCF distribution registry on loopback.

Images are pushed with ``tests/distribution.py``; the digest each push returns is the registry's
own digest for the tag, and the pin must equal it. Where the test needs to see or bend the HTTP
traffic (HEAD versus GET, a missing or bad ``Docker-Content-Digest``), ``pin`` talks to the
registry through :class:`RecordingProxy`, a small forwarding server on loopback reached with
``--mirror ghcr.io=<proxy url>``: docker-registry itself does not log requests by default.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import PYTHON_NEW, dockerfile, error_lines, mirror, run_pin
from tests.distribution import ACCEPT_ALL, Distribution, MediaKind, running_distribution
from tests.fakeregistry import FakeRegistry

USER, PASSWORD = "alice", "s3cret-pw"


# --- a recording proxy -----------------------------------------------------------------------

# Not forwarded: hop-by-hop headers, and those the proxy sets itself.
_DROPPED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)


@dataclass
class RecordingProxy:
    """Forwards every request to the registry, records it, and can bend the answers.

    ``head_digest`` / ``get_digest``: ``...`` (the default) passes the registry's
    ``Docker-Content-Digest`` through, ``None`` drops it, a string replaces it.
    ``get_body`` replaces the body of a successful GET.
    """

    upstream: str
    url: str = ""
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, Accept
    head_digest: object = ...
    get_digest: object = ...
    get_body: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def methods(self, path_contains: str = "/manifests/") -> list[str]:
        return [method for method, path, _ in self.requests if path_contains in path]

    def forward(self, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
        with self._lock:
            self.requests.append((method, path, headers.get("Accept", "")))
            with httpx.Client(base_url=self.upstream, timeout=5.0) as client:
                return client.request(method, path, headers=headers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def do_HEAD(self) -> None:
        self._forward()

    def do_GET(self) -> None:
        self._forward()

    def _forward(self) -> None:
        proxy = self.server.proxy
        sent = {
            name.capitalize(): value
            for name, value in self.headers.items()
            if name.lower() in ("accept", "authorization")
        }
        sent["Accept-Encoding"] = "identity"
        upstream = proxy.forward(self.command, self.path, sent)
        head = self.command == "HEAD"
        body = b"" if head else upstream.content
        if not head and upstream.is_success and proxy.get_body is not None:
            body = proxy.get_body
        digest = proxy.head_digest if head else proxy.get_digest
        self.send_response(upstream.status_code)
        for name, value in upstream.headers.multi_items():
            lower = name.lower()
            if lower in _DROPPED or (lower == "docker-content-digest" and digest is not ...):
                continue
            self.send_header(name, value)
        if isinstance(digest, str) and upstream.is_success:
            self.send_header("Docker-Content-Digest", digest)
        length = upstream.headers.get("Content-Length", "0") if head else str(len(body))
        self.send_header("Content-Length", length)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: RecordingProxy


@pytest.fixture
def proxy(distribution: Distribution) -> Iterator[RecordingProxy]:
    recorder = RecordingProxy(upstream=distribution.url)
    server = _ProxyServer(("127.0.0.1", 0), _Handler)
    server.proxy = recorder
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- every reference, any registry, the user's spelling ----------------------------------------


def test_every_kind_of_reference_on_a_loopback_registry_is_pinned_keeping_its_spelling(
    distribution: Distribution, tmp_path: Path
) -> None:
    host = distribution.host
    app = distribution.push_image("team/app", "1.2")
    base = distribution.push_image("team/base", "3", seed="base")
    tools = distribution.push_image("team/tools", "1", seed="tools")
    cache = distribution.push_image("team/cache", "latest", seed="cache")
    original = (
        f"ARG BASE={host}/team/base:3\n"
        f"FROM ${{BASE}} AS build\n"
        f"RUN --mount=type=bind,from={host}/team/cache,source=/c,target=/c make\n"
        f"FROM {host}/team/app:1.2\n"
        f"COPY --from={host}/team/tools:1 /bin/tool /bin/tool\n"
        "COPY --from=build /out /out\n"
    )
    path = dockerfile(tmp_path, original)
    ran = run_pin(path)  # no --mirror: a loopback registry is reached directly over http
    assert ran.code == 0, ran.stderr
    assert path.read_text() == (
        f"ARG BASE={host}/team/base:3@{base}\n"
        f"FROM ${{BASE}} AS build\n"
        f"RUN --mount=type=bind,from={host}/team/cache:latest@{cache},source=/c,target=/c make\n"
        f"FROM {host}/team/app:1.2@{app}\n"
        f"COPY --from={host}/team/tools:1@{tools} /bin/tool /bin/tool\n"
        "COPY --from=build /out /out\n"
    )
    assert f"{path}:4: pinned {host}/team/app:1.2 to {app[:19]}\n" in ran.stderr
    assert "pinned 4 images in 1 file" in ran.stderr
    assert ran.stdout == ""


def test_docker_hub_and_ghcr_references_are_resolved_through_mirrors_and_never_expanded(
    distribution: Distribution, tmp_path: Path
) -> None:
    python = distribution.push_image("library/python", "3.12", seed="py")
    latest = distribution.push_image("library/python", "latest", seed="py-latest")
    app = distribution.push_image("org/app", "1.2", seed="app")
    original = (
        "FROM python:3.12 AS a\n"
        "FROM docker.io/library/python:3.12 AS b\n"
        "FROM python AS c\n"
        "FROM index.docker.io/library/python:3.12 AS d\n"
        "FROM ghcr.io/org/app:1.2\n"
    )
    path = dockerfile(tmp_path, original)
    ran = run_pin(*mirror(distribution, "docker.io"), *mirror(distribution, "ghcr.io"), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == (
        f"FROM python:3.12@{python} AS a\n"
        f"FROM docker.io/library/python:3.12@{python} AS b\n"
        f"FROM python:latest@{latest} AS c\n"
        f"FROM index.docker.io/library/python:3.12@{python} AS d\n"
        f"FROM ghcr.io/org/app:1.2@{app}\n"
    )


@pytest.mark.parametrize("media_type", ["oci", "docker"])
def test_a_multi_platform_image_is_pinned_to_its_index_digest(
    distribution: Distribution, tmp_path: Path, media_type: MediaKind
) -> None:
    index, platforms = distribution.push_index("team/multi", "2", media_type=media_type)
    path = dockerfile(tmp_path, f"FROM {distribution.host}/team/multi:2\n")
    ran = run_pin(path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {distribution.host}/team/multi:2@{index}\n"
    assert index not in platforms.values()


@pytest.mark.parametrize("media_type", ["oci", "docker"])
def test_a_single_platform_manifest_is_pinned_to_its_digest(
    distribution: Distribution, tmp_path: Path, media_type: MediaKind
) -> None:
    digest = distribution.push_image("team/single", "1", media_type=media_type)
    path = dockerfile(tmp_path, f"FROM {distribution.host}/team/single:1\n")
    ran = run_pin(path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {distribution.host}/team/single:1@{digest}\n"


def test_a_repushed_tag_moves_the_pin_only_with_update(
    distribution: Distribution, tmp_path: Path
) -> None:
    image = f"{distribution.host}/team/app:1.2"
    old = distribution.push_image("team/app", "1.2", seed="old")
    path = dockerfile(tmp_path, f"FROM {image}\n")
    assert run_pin(path).code == 0
    assert path.read_text() == f"FROM {image}@{old}\n"
    new = distribution.push_image("team/app", "1.2", seed="new")
    assert new != old
    ran = run_pin(path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {image}@{old}\n"
    ran = run_pin("--update", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {image}@{new}\n"


def test_digest_only_on_a_registry_with_a_port(distribution: Distribution, tmp_path: Path) -> None:
    # The port's colon is not a tag: the pin has no tag to follow afterwards.
    digest = distribution.push_image("team/app", "1.2")
    path = dockerfile(tmp_path, f"FROM {distribution.host}/team/app:1.2\n")
    assert run_pin("--digest-only", path).code == 0
    assert path.read_text() == f"FROM {distribution.host}/team/app@{digest}\n"
    ran = run_pin("--update", path)
    assert ran.code == 0, ran.stderr
    assert "no tag to follow" in ran.stderr
    assert path.read_text() == f"FROM {distribution.host}/team/app@{digest}\n"


# --- auth ---------------------------------------------------------------------------------------


@pytest.fixture
def private(tmp_path: Path) -> Iterator[Distribution]:
    """A registry behind htpasswd Basic auth, holding team/app:1.2."""
    with running_distribution(tmp_path, htpasswd=(USER, PASSWORD)) as registry:
        yield registry


def docker_login(home: Path, host: str, user: str, password: str) -> None:
    """What ``docker login host`` leaves behind without a credential helper."""
    config = home / ".docker" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config.write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def test_a_private_registry_is_read_with_the_credentials_of_docker_login(
    private: Distribution, isolated_environment: Path, tmp_path: Path
) -> None:
    digest = private.push_image("team/app", "1.2")
    docker_login(isolated_environment, private.host, USER, PASSWORD)
    path = dockerfile(tmp_path, f"FROM {private.host}/team/app:1.2\n")
    ran = run_pin("-v", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {private.host}/team/app:1.2@{digest}\n"
    assert PASSWORD not in ran.stderr
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in ran.stderr


def test_credentials_are_found_under_the_registry_as_spelled(
    private: Distribution, isolated_environment: Path, tmp_path: Path
) -> None:
    digest = private.push_image("team/app", "1.2")
    host = private.host.replace("127.0.0.1", "localhost")
    docker_login(isolated_environment, host, USER, PASSWORD)
    path = dockerfile(tmp_path, f"FROM {host}/team/app:1.2\n")
    ran = run_pin(path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {host}/team/app:1.2@{digest}\n"


def test_a_private_registry_without_credentials_says_how_to_log_in(
    private: Distribution, tmp_path: Path
) -> None:
    private.push_image("team/app", "1.2")
    original = f"FROM {private.host}/team/app:1.2\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(path)
    assert ran.code == 2
    assert path.read_text() == original
    [error] = error_lines(ran.stderr)
    assert f"{path}:1: {private.host}/team/app:1.2" in error
    assert f"docker login {private.host}`" in error
    assert "nothing was written" in ran.stderr


def test_wrong_credentials_are_a_clear_error(
    private: Distribution, isolated_environment: Path, tmp_path: Path
) -> None:
    private.push_image("team/app", "1.2")
    docker_login(isolated_environment, private.host, USER, "not-the-password")
    original = f"FROM {private.host}/team/app:1.2\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(path)
    assert ran.code == 2
    assert path.read_text() == original
    [error] = error_lines(ran.stderr)
    assert f"{path}:1: {private.host}/team/app:1.2" in error
    assert "rejected the credentials" in error
    assert str(isolated_environment / ".docker" / "config.json") in error
    assert "not-the-password" not in ran.stderr


# --- errors and skips ---------------------------------------------------------------------------


@pytest.mark.parametrize("image", ["team/app:9.9", "team/nope:1.2"], ids=["tag", "repository"])
def test_an_unknown_tag_or_repository_is_a_one_line_error(
    distribution: Distribution, tmp_path: Path, image: str
) -> None:
    distribution.push_image("team/app", "1.2")
    good = f"{distribution.host}/team/app:1.2"
    bad = f"{distribution.host}/{image}"
    original = f"FROM {good} AS a\nFROM {bad}\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(path)
    assert ran.code == 2
    assert path.read_text() == original
    [error] = error_lines(ran.stderr)
    assert f"{path}:2: {bad}: " in error
    assert "not found (HTTP 404" in error
    assert "Traceback" not in ran.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dockerfile", "distribution"]


def test_before_on_a_registry_without_history_names_the_image(
    distribution: Distribution, tmp_path: Path
) -> None:
    distribution.push_image("team/app", "1.2")
    image = f"{distribution.host}/team/app:1.2"
    original = f"FROM {image}\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin("--before", "2024-01-01", path)
    assert ran.code == 2
    assert path.read_text() == original
    [error] = error_lines(ran.stderr)
    assert f"{path}:1: {image}" in error
    assert "--before" in error
    assert "--skip-no-history" in error


def test_before_with_skip_no_history_leaves_such_images_alone(
    distribution: Distribution, cgr: FakeRegistry, tmp_path: Path
) -> None:
    distribution.push_image("team/app", "1.2")
    image = f"{distribution.host}/team/app:1.2"
    path = dockerfile(tmp_path, f"FROM {image} AS a\nFROM cgr.dev/chainguard/python:latest\n")
    ran = run_pin(*mirror(cgr), "--before", "2023-05-12", "--skip-no-history", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == (
        f"FROM {image} AS a\nFROM cgr.dev/chainguard/python:latest@{PYTHON_NEW}\n"
    )
    assert f"{path}:1: skipped {image}: {distribution.host} keeps no tag history" in ran.stderr


def test_only_pins_images_under_a_prefix(
    distribution: Distribution, cgr: FakeRegistry, tmp_path: Path
) -> None:
    distribution.push_image("team/app", "1.2")
    image = f"{distribution.host}/team/app:1.2"
    path = dockerfile(tmp_path, f"FROM {image} AS a\nFROM cgr.dev/chainguard/python:latest\n")
    ran = run_pin(*mirror(cgr), "--only", "cgr.dev", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == (
        f"FROM {image} AS a\nFROM cgr.dev/chainguard/python:latest@{PYTHON_NEW}\n"
    )


@pytest.mark.parametrize(
    ("exclude", "left_alone"),
    [
        ("{host}/team", {"team/app"}),
        ("{host}/team/", {"team/app"}),
        ("{host}/te", set()),  # whole components only
        ("{host}", {"team/app", "teamwork/app"}),
        ("docker.io/library", set()),
    ],
)
def test_exclude_matches_whole_path_components(
    distribution: Distribution, tmp_path: Path, exclude: str, left_alone: set[str]
) -> None:
    host = distribution.host
    digests = {
        repo: distribution.push_image(repo, "1", seed=repo) for repo in ("team/app", "teamwork/app")
    }
    path = dockerfile(tmp_path, "".join(f"FROM {host}/{repo}:1\n" for repo in digests))
    ran = run_pin("--exclude", exclude.format(host=host), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == "".join(
        f"FROM {host}/{repo}:1\n" if repo in left_alone else f"FROM {host}/{repo}:1@{digest}\n"
        for repo, digest in digests.items()
    )


def test_a_pin_ignore_comment_leaves_the_next_instruction_alone(
    distribution: Distribution, tmp_path: Path
) -> None:
    host = distribution.host
    app = distribution.push_image("team/app", "1.2")
    distribution.push_image("team/tools", "1", seed="tools")
    original = (
        "# pin: ignore\n"
        f"FROM {host}/team/app:1.2 AS a\n"
        f"FROM {host}/team/app:1.2\n"
        "# pin: ignore (built by hand)\n"
        f"COPY --from={host}/team/tools:1 /t /t\n"
    )
    path = dockerfile(tmp_path, original)
    ran = run_pin(path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == original.replace(
        f"FROM {host}/team/app:1.2\n", f"FROM {host}/team/app:1.2@{app}\n"
    )
    assert f"{path}:2: skipped {host}/team/app:1.2: " in ran.stderr
    assert f"{path}:5: skipped {host}/team/tools:1: " in ran.stderr


def test_exclude_matches_a_registry_written_in_upper_case(
    distribution: Distribution, tmp_path: Path
) -> None:
    # Host names are case-insensitive, and so is Docker's reading of them; --exclude is
    # lower-cased by the CLI, so the registry it is compared with must be too.
    distribution.push_image("team/app", "1.2")
    original = f"FROM {distribution.host.replace('127.0.0.1', 'LOCALHOST')}/team/app:1.2\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin("--exclude", distribution.host.replace("127.0.0.1", "LOCALHOST"), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == original


def test_a_pin_ignore_comment_before_an_arg_leaves_its_image_alone(
    distribution: Distribution, tmp_path: Path
) -> None:
    # The image is written, and would be rewritten, on the ARG line: the comment above that
    # line is the one a reader sees.
    distribution.push_image("team/app", "1.2")
    original = f"# pin: ignore\nARG BASE={distribution.host}/team/app:1.2\nFROM ${{BASE}}\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin(path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == original
    assert f"{path}:2: skipped {distribution.host}/team/app:1.2: " in ran.stderr


# --- HEAD, the GET fallback, and digests that cannot be trusted ---------------------------------


def test_head_is_used_and_each_image_is_asked_for_once(
    distribution: Distribution, proxy: RecordingProxy, tmp_path: Path
) -> None:
    index, _ = distribution.push_index("org/app", "1.2")
    image = "ghcr.io/org/app:1.2"
    one = dockerfile(tmp_path, f"FROM {image} AS a\nCOPY --from={image} /a /a\n", "a.Dockerfile")
    two = dockerfile(tmp_path, f"FROM {image}\n", "b.Dockerfile")
    ran = run_pin("--mirror", f"ghcr.io={proxy.url}", one, two)
    assert ran.code == 0, ran.stderr
    assert two.read_text() == f"FROM {image}@{index}\n"
    assert proxy.methods() == ["HEAD"]
    assert proxy.requests[0][:2] == ("GET", "/v2/")  # the ping, while pin started
    [(_, _, accept)] = proxy.requests[1:]
    assert [t.strip() for t in accept.split(",")] == ACCEPT_ALL  # index types first


@pytest.mark.parametrize("head", [None, ""], ids=["absent", "empty"])
@pytest.mark.parametrize("kind", ["index", "manifest"])
def test_without_a_digest_on_head_the_manifest_is_fetched_and_hashed(
    distribution: Distribution, proxy: RecordingProxy, tmp_path: Path, kind: str, head: object
) -> None:
    if kind == "index":
        digest, _ = distribution.push_index("org/app", "1.2", media_type="docker")
    else:
        digest = distribution.push_image("org/app", "1.2")
    proxy.head_digest = head
    proxy.get_digest = None
    path = dockerfile(tmp_path, "FROM ghcr.io/org/app:1.2\n")
    ran = run_pin("--mirror", f"ghcr.io={proxy.url}", path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM ghcr.io/org/app:1.2@{digest}\n"
    assert proxy.methods() == ["HEAD", "GET"]


@pytest.mark.parametrize(
    ("head", "get", "body", "message"),
    [
        ("sha256:" + "a" * 63, ..., None, "invalid digest"),
        ("sha256:" + "A" * 64, ..., None, "invalid digest"),
        ("SHA256:" + "a" * 64, ..., None, "invalid digest"),
        ("sha512:" + "a" * 128, ..., None, "invalid digest"),
        ("sha256:" + "a" * 64 + ", sha256:" + "b" * 64, ..., None, "invalid digest"),
        (None, "sha256:" + "a" * 64, None, "does not match its content"),
        (None, None, b"<html><body>Hotel wifi: log in</body></html>", "not an image manifest"),
        # Schema 1: its digest is that of the payload without signatures, not of the body.
        (None, None, b'{"schemaVersion": 1, "name": "org/app", "tag": "1.2"}', "not an image"),
    ],
    ids=[
        "63-hex",
        "upper-hex",
        "upper-algorithm",
        "sha512",
        "two",
        "get-mismatch",
        "html",
        "schema1",
    ],
)
def test_a_digest_that_cannot_be_trusted_never_reaches_the_file(
    distribution: Distribution,
    proxy: RecordingProxy,
    tmp_path: Path,
    head: object,
    get: object,
    body: bytes | None,
    message: str,
) -> None:
    distribution.push_image("org/app", "1.2")
    proxy.head_digest, proxy.get_digest, proxy.get_body = head, get, body
    original = "FROM ghcr.io/org/app:1.2\n"
    path = dockerfile(tmp_path, original)
    ran = run_pin("--mirror", f"ghcr.io={proxy.url}", path)
    assert ran.code == 2
    assert path.read_text() == original
    [error] = error_lines(ran.stderr)
    assert f"{path}:1: ghcr.io/org/app:1.2: " in error
    assert message in error
    assert "Traceback" not in ran.stderr
