"""``pin`` against hostile registries: bounded time and memory, one clear line, no secret shown.

Every test runs the real command against the fake registry on loopback (``tests/fakeregistry.py``
writes the hostile answers as raw bytes) and asserts what a user sees: the exit code, exactly
one error line naming the registry or image and what went wrong, no traceback, the Dockerfile
byte for byte as it was, no secret anywhere, and, where a fault could hang or exhaust memory,
that the run ended within a bound computed from the documented worst case.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pinner.limits import ATTEMPTS, BACKOFF, CONCURRENCY, MAX_REDIRECTS
from tests.conftest import PYTHON_NEW, Ran, mirror, run_pin
from tests.fakeregistry import FakeRegistry

PYTHON = "cgr.dev/chainguard/python:latest"
ORIGINAL = f"FROM {PYTHON}\nRUN echo hi\n".encode()
HISTORY = "/_chainguard/history/"
SECRET = "regtok-Secret-4c1d"
TIMEOUT = 0.5
# The documented worst case of one request that fails on every attempt: ATTEMPTS deadlines and
# the backoff between them (each wait at most BACKOFF * 2**n; no Retry-After here).
WORST_REQUEST = ATTEMPTS * TIMEOUT + sum(BACKOFF * 2**n for n in range(ATTEMPTS - 1))
MAX_RSS_MB = 100  # a clean run peaks at ~42 MiB


@pytest.fixture
def dockerfile(tmp_path: Path) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_bytes(ORIGINAL)
    return path


def the_error(ran: Ran, path: Path, *needles: str) -> str:
    """The one error line of a failed run that wrote nothing; it must say each of *needles*."""
    output = ran.stdout + ran.stderr
    assert ran.code == 2, output
    assert "Traceback" not in output
    assert "internal error" not in output
    assert path.read_bytes() == ORIGINAL
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, ran.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def timed(*args: str | Path) -> tuple[Ran, float]:
    started = time.monotonic()
    ran = run_pin(*args)
    return ran, time.monotonic() - started


# --- 1. no secret is ever printed --------------------------------------------------------------


def every_output(monkeypatch: pytest.MonkeyPatch, *args: str | Path) -> tuple[Ran, str]:
    """Run with --json, -v and GitHub annotations on: every place a secret could leak."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    ran = run_pin("--json", "-v", *args)
    return ran, ran.stdout + ran.stderr


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("registrytoken", SECRET + "\n"),  # pasted with its newline
        ("registrytoken", SECRET + "\u00e9" * 300),  # 300 characters, not ASCII
        ("identitytoken", SECRET + "\x00"),
        ("password", SECRET + "\r\n"),
    ],
    ids=["token-newline", "token-unicode", "identity-nul", "password-crlf"],
)
def test_a_credential_that_cannot_be_sent_is_refused_without_showing_it(
    cgr: FakeRegistry,
    dockerfile: Path,
    isolated_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    value: str,
) -> None:
    config = isolated_environment / ".docker" / "config.json"
    config.parent.mkdir()
    entry = {field: value, **({"username": "robot"} if field == "password" else {})}
    config.write_text(json.dumps({"auths": {"cgr.dev": entry}}))
    ran, output = every_output(monkeypatch, *mirror(cgr), dockerfile)
    assert str(config) in the_error(ran, dockerfile, "cannot be sent")
    assert SECRET not in output
    assert json.loads(ran.stdout)["exit_code"] == 2
    # Refused before a header was built: nothing carried it, and nothing was retried. The
    # registry's ping told how it authenticates, so no lookup went out at all.
    assert not any(SECRET in json.dumps(r.headers) + json.dumps(r.form) for r in cgr.requests)
    assert [r.path for r in cgr.requests] == ["/v2/"]


@pytest.mark.parametrize(
    "token", [SECRET + "\x00", SECRET + "\n", "\u00e9" * 300 + SECRET], ids=["nul", "lf", "unicode"]
)
def test_a_token_that_cannot_be_sent_is_refused_once_without_showing_it(
    cgr: FakeRegistry, dockerfile: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    cgr.token_value = token
    ran, output = every_output(monkeypatch, *mirror(cgr), dockerfile)
    the_error(ran, dockerfile, "the token service of cgr.dev answered a token that cannot be sent")
    assert SECRET not in output
    assert len(cgr.requests_to("/token")) == 1


def test_a_mirror_url_with_a_password_is_refused_without_repeating_it(
    dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran, output = every_output(
        monkeypatch, "--mirror", f"cgr.dev=https://u:{SECRET}@m.example", dockerfile
    )
    error = the_error(ran, dockerfile, "credentials in the URL", "https://***@m.example")
    assert SECRET not in output
    assert json.loads(ran.stdout)["errors"] == [error.removeprefix("error: ")]


# --- 2. one deadline per request ---------------------------------------------------------------


def test_a_body_dripped_a_byte_at_a_time_is_cut_at_the_deadline(
    cgr: FakeRegistry, dockerfile: Path
) -> None:
    cgr.misbehave("drip-body", times=ATTEMPTS, path_contains=HISTORY)
    ran, elapsed = timed(*mirror(cgr), "--timeout", str(TIMEOUT), dockerfile)
    the_error(
        ran,
        dockerfile,
        "cannot reach cgr.dev:",
        f"sent its answer too slowly: not all of it within {TIMEOUT:g} s ({ATTEMPTS} attempts)",
        "raise --timeout",
    )
    assert len(cgr.requests_to(HISTORY)) == ATTEMPTS
    # Without the deadline each attempt would drip until the fake gives up, 30 s later.
    assert elapsed < 2 * WORST_REQUEST


def test_headers_dripped_a_byte_at_a_time_are_cut_and_retried(
    cgr: FakeRegistry, dockerfile: Path
) -> None:
    cgr.misbehave("drip-headers", times=1, path_contains=HISTORY)
    ran, elapsed = timed(*mirror(cgr), "--timeout", str(TIMEOUT), "-v", dockerfile)
    assert ran.code == 0, ran.stderr
    pinned = ORIGINAL.replace(PYTHON.encode(), f"{PYTHON}@{PYTHON_NEW}".encode())
    assert dockerfile.read_bytes() == pinned
    cut = [line for line in ran.stderr.splitlines() if f"no answer from {cgr.url}" in line]
    assert cut == [f"GET {cgr.url} -> no answer from {cgr.url} within {TIMEOUT:g} s"]
    assert elapsed < 2 * WORST_REQUEST


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "abc", "1e9"])
def test_a_timeout_that_is_no_bound_is_a_usage_error(dockerfile: Path, value: str) -> None:
    ran = run_pin("--json", "--timeout", value, dockerfile)
    error = the_error(ran, dockerfile, f"--timeout {value!r}")
    assert json.loads(ran.stdout)["errors"] == [error.removeprefix("error: ")]


# --- 3. every body capped, decompressed size included ------------------------------------------


# Run in a fresh, small Python: a child forked from pytest itself starts with pytest's resident
# pages, and ru_maxrss keeps that peak across the exec.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_measured(command: list[str], tmp_path: Path) -> tuple[Ran, int]:
    """Run *command*; its result and its peak RSS in MiB (wait4's, of that process alone)."""
    report = tmp_path / "rusage"
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(report), *command],
        capture_output=True,
        text=True,
        timeout=60,  # a bug must fail the test, not hang it
        check=False,
    )
    code, max_rss_kib = (int(n) for n in report.read_text().split())
    return Ran(code, done.stdout, done.stderr), max_rss_kib // 1024


@pytest.mark.parametrize(
    ("kind", "path", "method", "message"),
    [
        ("gzip-bomb", HISTORY, None, "cgr.dev sent a tag history larger than 2 MiB; refusing it"),
        ("endless", HISTORY, None, "cgr.dev sent a tag history larger than 2 MiB; refusing it"),
        ("huge-length", HISTORY, None, "cgr.dev sent a tag history larger than 2 MiB"),
        (
            "endless",
            "/token",
            None,
            "the token service of cgr.dev sent a token answer larger than 64 KiB",
        ),
        ("gzip-bomb", "/manifests/", "GET", "registry.example sent a manifest larger than 4 MiB"),
    ],
    ids=["history-bomb", "history-endless", "history-500MB", "token-endless", "manifest-bomb"],
)
def test_a_body_past_its_cap_is_refused_in_bounded_memory(
    cgr: FakeRegistry,
    dockerfile: Path,
    pin_command: str,
    kind: Any,
    path: str,
    method: str | None,
    message: str,
) -> None:
    args = [*mirror(cgr), str(dockerfile)]
    if method == "GET":
        # Another registry: a HEAD without a digest sends pin to GET the manifest.
        dockerfile.write_bytes(ORIGINAL.replace(b"cgr.dev", b"registry.example"))
        original = dockerfile.read_bytes()
        cgr.fail(1, 200, path_contains="/manifests/")
        args = [*mirror(cgr, "registry.example"), str(dockerfile)]
    else:
        original = ORIGINAL
    cgr.misbehave(kind, times=5, path_contains=path, method=method)
    started = time.monotonic()
    ran, peak_mb = run_measured([pin_command, *args], dockerfile.parent)
    elapsed = time.monotonic() - started
    assert ran.code == 2, ran.stderr
    assert "Traceback" not in ran.stderr
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], ran.stderr
    assert dockerfile.read_bytes() == original
    assert peak_mb < MAX_RSS_MB  # a 2 GiB bomb or a 500 MB body held whole would be far more
    # Cut at the cap, not the deadline (10 s by default), and not retried.
    assert elapsed < 10
    assert len([r for r in cgr.requests if path in r.path and r.method != "HEAD"]) == 1


def test_a_history_page_past_the_apis_limit_says_so(cgr: FakeRegistry, dockerfile: Path) -> None:
    cgr.history_limit = 1500
    cgr.add_nightly(
        "chainguard/go",
        "latest",
        1200,
        datetime.now(UTC) - timedelta(days=2),
        step=timedelta(minutes=1),
    )
    dockerfile.write_bytes(b"FROM cgr.dev/chainguard/go:latest\n")
    ran = run_pin(*mirror(cgr), dockerfile)
    assert ran.code == 2
    assert "holds 1200 builds, more than the 1000 the API sends at most" in ran.stderr
    assert dockerfile.read_bytes() == b"FROM cgr.dev/chainguard/go:latest\n"


def test_a_huge_error_body_is_read_only_for_its_code(cgr: FakeRegistry, dockerfile: Path) -> None:
    cgr.fail(
        1,
        404,
        body=b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}' + b" " * 50_000_000,
        path_contains=HISTORY,
    )
    ran = run_pin(*mirror(cgr), dockerfile)
    the_error(ran, dockerfile, PYTHON, "not found (HTTP 404 MANIFEST_UNKNOWN)")


# --- 4. ties are deterministic -----------------------------------------------------------------


def test_builds_with_the_same_timestamp_pin_the_greatest_digest_on_every_run(
    cgr: FakeRegistry, dockerfile: Path, pin_command: str
) -> None:
    digests = [f"sha256:{c * 64}" for c in "3a7c1"]
    cgr.add_history("chainguard/tie", "latest", [("2024-03-01T12:00:00Z", d) for d in digests])
    dockerfile.write_bytes(b"FROM cgr.dev/chainguard/tie:latest\n")
    diffs = set()
    for seed in ("1", "2"):  # with 5 ties, two seeds agree on the set order 1 time in 5
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [pin_command, *mirror(cgr), "--check", "--diff", "--update", str(dockerfile)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        diffs.add(done.stdout)
    [diff] = diffs
    assert f"+FROM cgr.dev/chainguard/tie:latest@sha256:{'c' * 64}\n" in diff


# --- 5. bad input is a usage error with a document ---------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "cgr.dev=http://[::1",
        "cgr.dev=http://127.0.0.1:99999",
        "cgr.dev=http://127.0.0.1:abc",
        "cgr.dev=http://127.0.0.1:0",
        "cgr.dev=http://127.0.0.1:5000/\x1b[31m",
    ],
)
def test_a_mirror_that_is_not_a_url_is_a_usage_error(dockerfile: Path, value: str) -> None:
    ran = run_pin("--json", "--mirror", value, dockerfile)
    error = the_error(ran, dockerfile, "--mirror")
    assert "\x1b" not in ran.stderr
    assert json.loads(ran.stdout)["errors"] == [error.removeprefix("error: ")]


@pytest.mark.parametrize("value", ["²", "\u0663", "Tue, 99 Foo 99999 99:99:99 GMT"])
def test_an_unreadable_retry_after_falls_back_to_backoff(
    cgr: FakeRegistry, dockerfile: Path, value: str
) -> None:
    # str.isdigit() is true for "²" and "٣" (sent as UTF-8), and float() then raises.
    raw = value.encode().decode("latin-1")  # the fake sends header values as latin-1
    cgr.fail(1, 503, headers={"Retry-After": raw}, path_contains=HISTORY)
    ran = run_pin(*mirror(cgr), "-v", dockerfile)
    assert ran.code == 0, ran.stderr
    assert "retrying in" in ran.stderr
    assert cgr.requests_to(HISTORY)[0].status == 503


def test_a_registry_s_cookies_are_not_sent_back(cgr: FakeRegistry, dockerfile: Path) -> None:
    # As Docker and containerd: no cookie jar. The retried request goes without the cookie.
    cookie = {"Set-Cookie": "session=abc123; Path=/", "Retry-After": "0"}
    cgr.fail(1, 503, headers=cookie, path_contains=HISTORY)
    ran = run_pin(*mirror(cgr), dockerfile)
    assert ran.code == 0, ran.stderr
    statuses = [r.status for r in cgr.requests_to(HISTORY)]
    assert statuses[0] == 503 and set(statuses[1:]) == {200}
    assert not [r for r in cgr.requests if "cookie" in r.headers]


# --- 6. messages that say what happened --------------------------------------------------------


def test_a_reset_connection_says_so(cgr: FakeRegistry, dockerfile: Path) -> None:
    cgr.misbehave("reset", times=ATTEMPTS, path_contains=HISTORY)
    ran, elapsed = timed(*mirror(cgr), dockerfile)
    the_error(
        ran,
        dockerfile,
        f"cannot reach cgr.dev: the connection was reset by {cgr.url}",
        f"({ATTEMPTS} attempts)",
    )
    assert elapsed < 2 * WORST_REQUEST


def test_a_redirect_loop_stops_after_ten_and_is_not_retried(
    cgr: FakeRegistry, dockerfile: Path
) -> None:
    cgr.misbehave("redirect-loop", times=1000, path_contains=HISTORY)
    ran = run_pin(*mirror(cgr), dockerfile)
    the_error(
        ran, dockerfile, PYTHON, f"too many redirects from cgr.dev (more than {MAX_REDIRECTS})"
    )
    assert len(cgr.requests_to(HISTORY)) == MAX_REDIRECTS + 1


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Name resolution fails for every name but loopback's, as on a machine that is offline.
    Nothing leaves the machine: the lookup never happens."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def offline(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in ("127.0.0.1", "::1", "localhost"):
            return real(host, *args, **kwargs)
        asked.append(name)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    return asked


def test_offline_each_registry_is_one_fast_line_with_a_hint(
    tmp_path: Path, no_dns: list[str]
) -> None:
    images = [f"cgr.dev/chainguard/img{i}:latest" for i in range(20)]
    images += [f"ghcr.io/team/app{i}:1.0" for i in range(10)]
    path = tmp_path / "Dockerfile"
    original = "".join(f"FROM {image} AS s{i}\n" for i, image in enumerate(images)).encode()
    path.write_bytes(original)
    ran, elapsed = timed(path)
    assert ran.code == 2
    assert path.read_bytes() == original
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    hint = "check the network or proxy, or use --mirror; `pin --check` works offline"
    # One line per registry, at the first place that needed it.
    assert sorted(errors) == [
        f"error: {path}:1: {images[0]}: cannot reach cgr.dev:"
        f" name resolution failed for cgr.dev; {hint}",
        f"error: {path}:21: {images[20]}: cannot reach ghcr.io:"
        f" name resolution failed for ghcr.io; {hint}",
    ]
    # Not retried, and not asked again once a registry is known to be unreachable: at most
    # the lookups already in flight ask.
    assert set(no_dns) == {"cgr.dev", "ghcr.io"}
    assert len(no_dns) <= 2 * CONCURRENCY
    assert elapsed < 5


# --- 7. timestamps -----------------------------------------------------------------------------


def test_a_leap_second_counts_as_the_next_minutes_first(
    cgr: FakeRegistry, dockerfile: Path
) -> None:
    leap, before = f"sha256:{'1' * 64}", f"sha256:{'2' * 64}"
    cgr.add_history(
        "chainguard/leap",
        "latest",
        [("2016-12-31T23:59:60Z", leap), ("2016-12-31T23:59:59.9Z", before)],
    )
    dockerfile.write_bytes(b"FROM cgr.dev/chainguard/leap:latest\n")
    ran = run_pin(*mirror(cgr), dockerfile)
    assert ran.code == 0, ran.stderr
    assert dockerfile.read_bytes() == f"FROM cgr.dev/chainguard/leap:latest@{leap}\n".encode()
    # 23:59:60 is 2017-01-01T00:00:00, as POSIX time counts it: not in the day 2016-12-31.
    ran = run_pin(*mirror(cgr), "--before", "2016-12-31", dockerfile)
    assert ran.code == 0, ran.stderr
    assert dockerfile.read_bytes() == f"FROM cgr.dev/chainguard/leap:latest@{before}\n".encode()


def test_a_build_dated_in_the_future_refuses_the_history(
    cgr: FakeRegistry, dockerfile: Path
) -> None:
    cgr.add_history("chainguard/python", "latest", [("9999-12-31T00:00:00Z", f"sha256:{'9' * 64}")])
    ran = run_pin(*mirror(cgr), dockerfile)
    the_error(
        ran,
        dockerfile,
        PYTHON,
        "a build dated 9999-12-31T00:00:00Z, more than a day after this machine's clock",
    )


def test_a_build_an_hour_ahead_is_within_clock_skew(cgr: FakeRegistry, dockerfile: Path) -> None:
    ahead = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cgr.add_history("chainguard/python", "latest", [(ahead, f"sha256:{'9' * 64}")])
    ran = run_pin(*mirror(cgr), dockerfile)
    assert ran.code == 0, ran.stderr
    assert f"@sha256:{'9' * 64}".encode() in dockerfile.read_bytes()


@pytest.mark.parametrize(
    "stamp",
    [
        " 2023-05-12T20:50:19Z",
        "2023-05-12T20:50:19Z\n",
        "2023-05-12T20:50:19Z\t",
        "2023-02-29T20:50:19Z",  # a day that does not exist
        "2023-04-31T20:50:19Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_a_padded_or_impossible_timestamp_from_the_registry_is_refused(
    cgr: FakeRegistry, dockerfile: Path, stamp: str
) -> None:
    cgr.add_history("chainguard/python", "latest", [(stamp, f"sha256:{'9' * 64}")])
    ran = run_pin(*mirror(cgr), dockerfile)
    the_error(ran, dockerfile, PYTHON, "invalid timestamp", repr(stamp))


@pytest.mark.parametrize(
    "realm", ["https://[::1", "http://127.0.0.1:99999/token", "http://127.0.0.1:1/tok\u00e9n"]
)
def test_a_challenge_naming_a_realm_that_is_not_a_url_is_one_line(
    cgr: FakeRegistry, dockerfile: Path, realm: str
) -> None:
    challenge = f'Bearer realm="{realm}",service="cgr.dev"'.encode().decode("latin-1")
    cgr.fail(1, 401, {"WWW-Authenticate": challenge}, path_contains=HISTORY)
    ran = run_pin(*mirror(cgr), dockerfile)
    the_error(ran, dockerfile, PYTHON, "cgr.dev sent a token challenge without a usable realm")


def test_a_head_answer_announcing_a_large_manifest_is_not_a_body(
    cgr: FakeRegistry, dockerfile: Path
) -> None:
    # A HEAD's Content-Length is the size of the manifest it would send: no cap applies to it.
    digest = f"sha256:{'7' * 64}"
    big = b"x" * (5 * 1024 * 1024)
    cgr.fail(1, 200, {"Docker-Content-Digest": digest}, body=big, path_contains="/manifests/")
    dockerfile.write_bytes(b"FROM registry.example/team/app:1.0\n")
    ran = run_pin(*mirror(cgr, "registry.example"), dockerfile)
    assert ran.code == 0, ran.stderr
    assert dockerfile.read_bytes() == f"FROM registry.example/team/app:1.0@{digest}\n".encode()


def test_a_redirect_to_plain_http_elsewhere_is_refused(
    cgr: FakeRegistry, dockerfile: Path, no_dns: list[str]
) -> None:
    cgr.fail(1, 302, {"Location": "http://mirror.example/x"}, path_contains=HISTORY)
    ran = run_pin(*mirror(cgr), dockerfile)
    the_error(ran, dockerfile, "cgr.dev redirected to plain http (http://mirror.example)")
    assert no_dns == []  # refused before any connection was tried


def test_network_and_http_retries_share_one_budget(cgr: FakeRegistry, dockerfile: Path) -> None:
    cgr.misbehave("reset", times=2, path_contains=HISTORY)
    cgr.fail(10, 503, {"Retry-After": "0"}, path_contains=HISTORY)
    ran = run_pin(*mirror(cgr), dockerfile)
    the_error(ran, dockerfile, PYTHON, f"HTTP 503 after {ATTEMPTS} attempts")
    assert [r.status for r in cgr.requests_to(HISTORY)] == [0, 0, 503, 503]


def test_a_certificate_that_does_not_verify_is_one_line_for_all_its_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakeregistry import make_certificates, running_registry

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # the test CA is not trusted
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with running_registry(tls=make_certificates(tmp_path / "tls")) as secure:
        path = tmp_path / "Dockerfile"
        path.write_bytes(
            b"".join(b"FROM cgr.dev/chainguard/img%d:latest AS s%d\n" % (i, i) for i in range(5))
        )
        ran = run_pin("--mirror", f"cgr.dev={secure.url}", path)
        attempts = [r for r in secure.requests if r.path.startswith("/v2/")]
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert ran.code == 2
    assert len(errors) == 1, ran.stderr
    assert f"{path}:1: cgr.dev/chainguard/img0:latest: the TLS certificate of" in errors[0]
    assert attempts == []  # no request got past the handshake
