"""Lookups sent at start-up (issue 9): a registry whose ping (``GET /v2/``) is answered 200
needs no token, so the first lookups of the run, each tag's manifest ``HEAD``, go out while
pin is still starting, and the run takes their answers instead of asking again.

What the user sees is the run they would have had without it, sooner: the same requests (each
once), the same pins, and, whatever such a request meets, the same outcome as the run's own
request meeting it, within the same bounds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pinner.limits import ATTEMPTS, CONCURRENCY
from pinner.resolve.lookups import ACCEPT
from tests.conftest import PYTHON_NEW, error_lines, interrupted_while, run_pin
from tests.fakeregistry import (
    Certificates,
    FakeRegistry,
    make_certificates,
    nightly_digest,
    running_registry,
)

HOST = "registry.example"
MANIFESTS = "/manifests/"
TIMEOUT = "0.5"
# The fake's seed history: chainguard/python:latest, and four more images of a nightly tag.
IMAGES = [f"{HOST}/chainguard/python:latest"] + [f"{HOST}/org/app{i}:1.0" for i in range(4)]
DIGESTS = [PYTHON_NEW] + [nightly_digest(f"org/app{i}", "1.0", 1) for i in range(4)]


def serve(registry: FakeRegistry, apps: int = 4) -> FakeRegistry:
    registry.load_fixture("python-latest.json")
    for i in range(apps):
        registry.add_nightly(f"org/app{i}", "1.0", 2, datetime.now(UTC) - timedelta(days=2))
    return registry


@pytest.fixture
def anonymous() -> Iterator[FakeRegistry]:
    """A registry without auth: /v2/ answers 200."""
    with running_registry(anonymous=True) as registry:
        yield serve(registry)


def mirror(registry: FakeRegistry) -> list[str]:
    return ["--mirror", f"{HOST}={registry.url}"]


def original() -> str:
    """Every image, the first one twice (one lookup for both)."""
    lines = [f"FROM {image} AS s{i}\n" for i, image in enumerate(IMAGES)]
    return "".join(lines) + f"FROM {IMAGES[0]}\n"


def pinned() -> str:
    lines = [
        f"FROM {image}@{digest} AS s{i}\n"
        for i, (image, digest) in enumerate(zip(IMAGES, DIGESTS, strict=True))
    ]
    return "".join(lines) + f"FROM {IMAGES[0]}@{DIGESTS[0]}\n"


@pytest.fixture
def dockerfile(tmp_path: Path) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(original())
    return path


def heads(registry: FakeRegistry) -> list[str]:
    return [r.path for r in registry.requests if r.method == "HEAD" and MANIFESTS in r.path]


def sent_ahead(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.endswith(" sent at start-up)")]


def test_the_first_lookups_go_at_start_up_and_each_is_asked_once(
    anonymous: FakeRegistry, dockerfile: Path
) -> None:
    ran = run_pin(*mirror(anonymous), "-v", dockerfile)
    assert ran.code == 0, ran.stderr
    assert dockerfile.read_text() == pinned()
    requests = anonymous.requests
    assert (requests[0].method, requests[0].path, requests[0].status) == ("GET", "/v2/", 200)
    # One HEAD per image, nothing else: the run took every answer sent ahead.
    assert sorted(heads(anonymous)) == sorted(
        f"/v2/{image.split('/', 1)[1].replace(':', MANIFESTS)}" for image in IMAGES
    )
    assert len(requests) == 1 + len(IMAGES)
    lines = sent_ahead(ran.stderr)
    assert len(lines) == len(IMAGES), ran.stderr
    assert all(line.startswith(f"HEAD {anonymous.url}/v2/") for line in lines)


def test_a_lookup_sent_ahead_is_the_request_the_run_would_send(
    anonymous: FakeRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {IMAGES[1]}\n")
    ran = run_pin(*mirror(anonymous), "-v", path)
    assert ran.code == 0 and len(sent_ahead(ran.stderr)) == 1, ran.stderr
    [ahead] = [r for r in anonymous.requests if r.method == "HEAD"]
    # The same run, with the ping answered 503: nothing goes ahead, the run sends its own.
    anonymous.clear_log()
    anonymous.fail(1, 503, path_contains="/v2/")
    path.write_text(f"FROM {IMAGES[1]}\n")
    ran = run_pin(*mirror(anonymous), "-v", path)
    assert ran.code == 0 and sent_ahead(ran.stderr) == [], ran.stderr
    [own] = [r for r in anonymous.requests if r.method == "HEAD"]
    assert (ahead.path, ahead.query) == (own.path, own.query)
    # Every field but Connection (close, for a connection that ends with the answer).
    fields = {k: v for k, v in ahead.headers.items() if k != "connection"}
    assert fields == {k: v for k, v in own.headers.items() if k != "connection"}
    assert fields["accept"] == ACCEPT
    assert fields["user-agent"].startswith("pinner/")
    assert "authorization" not in fields


def test_no_lookup_goes_ahead_to_a_registry_that_wants_a_token(
    dockerfile: Path,
) -> None:
    with running_registry() as registry:  # /v2/ answers 401 with a Bearer challenge
        serve(registry)
        ran = run_pin(*mirror(registry), "-v", dockerfile)
        assert ran.code == 0, ran.stderr
        assert dockerfile.read_text() == pinned()
        assert sent_ahead(ran.stderr) == []
        lookups = [r for r in registry.requests if MANIFESTS in r.path]
        assert len(lookups) == len(IMAGES)
        assert all(r.status == 200 and r.authorization for r in lookups)


def test_at_most_the_lookups_that_go_at_once_are_sent_ahead(tmp_path: Path) -> None:
    # The cap on lookups in flight at a registry holds for those sent ahead too.
    apps = CONCURRENCY + 2
    path = tmp_path / "Dockerfile"
    path.write_text("".join(f"FROM {HOST}/org/app{i}:1.0 AS s{i}\n" for i in range(apps)))
    with running_registry(anonymous=True) as registry:
        serve(registry, apps)
        ran = run_pin(*mirror(registry), "-v", path)
        assert ran.code == 0, ran.stderr
        assert path.read_text().count("@sha256:") == apps
        assert len(sent_ahead(ran.stderr)) == CONCURRENCY
        assert len(heads(registry)) == apps


# Each fault answers the first HEAD of org/app0: the one sent ahead, which goes before the
# run's own request for it can. That one, sent in its place, gets the registry's real answer.
APP0 = "/org/app0/"
FAULTS = {
    "hangs": lambda r: r.delay(3, path_contains=APP0),
    "drips its headers": lambda r: r.misbehave("drip-headers", path_contains=APP0, interval=0.05),
    "resets": lambda r: r.misbehave("reset", path_contains=APP0),
    "fails": lambda r: r.fail(1, 503, path_contains=APP0),
    "sends an early hint and hangs up": lambda r: r.fail(1, 103, path_contains=APP0),
    "has a head over the cap": lambda r: r.fail(
        1, 200, {"X-Pad": "x" * 20_000}, path_contains=APP0
    ),
    "folds a header": lambda r: r.fail(1, 200, {"X-Folded": "a\r\n b"}, path_contains=APP0),
    "has a bare line feed": lambda r: r.fail(1, 200, {"X-A": "a\nX-B: b"}, path_contains=APP0),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_whatever_a_lookup_sent_ahead_meets_the_run_pins_the_same(
    anonymous: FakeRegistry, dockerfile: Path, fault: str
) -> None:
    FAULTS[fault](anonymous)
    started = time.monotonic()
    ran = run_pin(*mirror(anonymous), "-v", "--timeout", TIMEOUT, dockerfile)
    took = time.monotonic() - started
    assert ran.code == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    assert dockerfile.read_text() == pinned()
    # The others' answers were taken; that lookup was asked again, within its attempts (the
    # time it waited for the one sent ahead counts against its first).
    sent = heads(anonymous)
    again = [path for path in sent if APP0 in path]
    assert len(sent) - len(again) == len(IMAGES) - 1
    assert 2 <= len(again) <= ATTEMPTS
    assert took < 3  # the hang's 3 s: what the run waited on was bounded by --timeout
    # -v says why it was sent again, where that does not depend on timing (a 503 is an answer
    # taken, and retried as any).
    if fault in WHY:
        [line] = [line for line in ran.stderr.splitlines() if "sent again" in line]
        assert line.startswith(f"HEAD {anonymous.url}/v2/org/app0/manifests/1.0 -> 200 (")
        assert line.endswith(f"; sent again: at start-up, {WHY[fault]})")


WHY = {
    "resets": "the connection was reset",
    "sends an early hint and hangs up": "it was answered 103, an interim status",
    "has a head over the cap": "its answer was cut short, or its headers over 16 KiB",
    "folds a header": "its answer was not plain HTTP/1.1",
    "has a bare line feed": "its answer was not plain HTTP/1.1",
}


def test_an_answer_sent_ahead_is_taken_as_the_runs_own_would_be(
    anonymous: FakeRegistry, dockerfile: Path
) -> None:
    # A 404 is an answer, not a fault: the run reports it as it would its own request's.
    anonymous.fail(1, 404, path_contains="/org/app2/")
    ran = run_pin(*mirror(anonymous), dockerfile)
    assert ran.code == 2
    assert dockerfile.read_text() == original()
    [line] = error_lines(ran.stderr)
    assert f"{dockerfile}:4: {IMAGES[3]}: not found (HTTP 404)" in line
    assert len(heads(anonymous)) == len(IMAGES)


def test_a_lookup_that_keeps_failing_gets_its_attempts_counting_the_one_sent_ahead(
    anonymous: FakeRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {IMAGES[1]}\n")
    anonymous.fail(ATTEMPTS, 503, path_contains=MANIFESTS)
    ran = run_pin(*mirror(anonymous), "-v", path)
    assert ran.code == 2
    assert f"answered HTTP 503 after {ATTEMPTS} attempts" in ran.stderr
    assert len(heads(anonymous)) == ATTEMPTS
    assert len(sent_ahead(ran.stderr)) == 1


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def test_lookups_go_ahead_over_https_too(
    certificates: Certificates, dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca_file))
    with running_registry(anonymous=True, tls=certificates) as registry:
        serve(registry)
        ran = run_pin(*mirror(registry), "-v", dockerfile)
        assert ran.code == 0, ran.stderr
        assert dockerfile.read_text() == pinned()
        assert len(sent_ahead(ran.stderr)) == len(IMAGES)
        assert len(heads(registry)) == len(IMAGES)


def test_a_certificate_that_cannot_be_verified_is_still_one_error_line(
    certificates: Certificates, dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with running_registry(anonymous=True, tls=certificates) as registry:
        serve(registry)
        ran = run_pin(*mirror(registry), dockerfile)
        assert ran.code == 2
        assert dockerfile.read_text() == original()
        [line] = error_lines(ran.stderr)
        assert f"the TLS certificate of {registry.url} could not be verified" in line
        assert registry.requests == []  # nothing sent to a server not verified


def test_ctrl_c_while_the_lookups_sent_ahead_hang_exits_at_once(
    anonymous: FakeRegistry, dockerfile: Path, pin_command: str
) -> None:
    anonymous.delay(120, times=len(IMAGES), path_contains=MANIFESTS)
    argv = [pin_command, *mirror(anonymous), "--timeout", "60", str(dockerfile)]
    code, stderr = interrupted_while(argv, lambda: len(heads(anonymous)) == len(IMAGES))
    assert code == 130
    assert stderr.strip().splitlines()[-1] == "pin: interrupted (SIGINT); nothing was written"
    assert dockerfile.read_text() == original()
