"""A registry's ping (issue 9): ``GET /v2/`` asked on a thread while pin starts.

Its answer tells how the registry authenticates before any lookup goes, so no lookup is
answered 401. It is a hint and nothing more: whatever the ping meets (a hang, a reset, a
hostile or malformed head, a redirect, a status or challenge that tells nothing), the run goes
on as it would without it, its first lookup alone, and pins the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pinner.limits import ATTEMPTS
from tests.conftest import PYTHON_NEW, interrupted_while, mirror, run_pin
from tests.fakeregistry import FakeRegistry

PYTHON = "cgr.dev/chainguard/python:latest"
HISTORY = "/_chainguard/history/"
TIMEOUT = "0.5"


@pytest.fixture
def dockerfile(tmp_path: Path) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {PYTHON}\n")
    return path


def pinned(path: Path) -> bool:
    return path.read_text() == f"FROM {PYTHON}@{PYTHON_NEW}\n"


def test_the_ping_goes_first_and_no_lookup_is_challenged(
    cgr: FakeRegistry, dockerfile: Path
) -> None:
    ran = run_pin(*mirror(cgr), "-v", dockerfile)
    assert ran.code == 0, ran.stderr
    assert pinned(dockerfile)
    requests = cgr.requests
    assert (requests[0].method, requests[0].path, requests[0].status) == ("GET", "/v2/", 401)
    assert requests[0].headers.get("authorization") is None
    assert {r.status for r in requests if HISTORY in r.path} == {200}
    assert f"GET {cgr.url}/v2/ -> 401 (" in ran.stderr


def _challenge(cgr: FakeRegistry) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="{cgr.url}/token",service="cgr.dev"'}


# Each fault answers the first request to the registry: the ping, which goes before any other.
FAULTS = {
    "hangs": lambda cgr: cgr.delay(3, times=1),
    "drips its headers": lambda cgr: cgr.misbehave("drip-headers", times=1, interval=0.05),
    "resets": lambda cgr: cgr.misbehave("reset", times=1),
    "redirects": lambda cgr: cgr.fail(1, 307, {"Location": "/elsewhere/v2/"}),
    "is not found": lambda cgr: cgr.fail(1, 404),
    "fails": lambda cgr: cgr.fail(1, 503),
    "names no realm": lambda cgr: cgr.fail(1, 401, {"WWW-Authenticate": 'Bearer service="x"'}),
    "asks for Negotiate": lambda cgr: cgr.fail(1, 401, {"WWW-Authenticate": "Negotiate"}),
    "asks for Basic": lambda cgr: cgr.fail(1, 401, {"WWW-Authenticate": 'Basic realm="x"'}),
    "has a head over the cap": lambda cgr: cgr.fail(
        1, 401, {**_challenge(cgr), "X-Pad": "x" * 20_000}
    ),
    "folds a header": lambda cgr: cgr.fail(1, 401, {**_challenge(cgr), "X-Folded": "a\r\n b"}),
    "has a bare line feed": lambda cgr: cgr.fail(1, 401, {**_challenge(cgr), "X-A": "a\nX-B: b"}),
    "has a challenge that is not ASCII": lambda cgr: cgr.fail(
        1, 401, {"WWW-Authenticate": f'Bearer realm="{cgr.url}/token\u00e9"'}
    ),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_whatever_the_ping_meets_the_run_goes_on_without_it(
    cgr: FakeRegistry, dockerfile: Path, fault: str
) -> None:
    FAULTS[fault](cgr)
    ran = run_pin(*mirror(cgr), "--timeout", TIMEOUT, dockerfile)
    assert ran.code == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    assert pinned(dockerfile)
    requests = cgr.requests
    assert (requests[0].method, requests[0].path) == ("GET", "/v2/")
    # Nothing learnt: the first lookup went alone, and its own 401 told the challenge.
    statuses = [r.status for r in requests if HISTORY in r.path]
    assert (statuses[0], statuses.count(401)) == (401, 1)


def test_a_ping_that_times_out_is_the_first_requests_first_attempt(
    cgr: FakeRegistry, dockerfile: Path
) -> None:
    # The documented bound holds: a lookup that keeps failing gets ATTEMPTS exchanges in all,
    # the ping that timed out being its first.
    cgr.delay(3, times=1)
    cgr.fail(ATTEMPTS, 503, path_contains=HISTORY)
    ran = run_pin(*mirror(cgr), "--timeout", TIMEOUT, "-v", dockerfile)
    assert ran.code == 2, ran.stderr
    assert f"GET {cgr.url}/v2/ -> no answer within {TIMEOUT} s (asked at start-up)" in ran.stderr
    assert f"answered HTTP 503 after {ATTEMPTS} attempts" in ran.stderr
    assert len(cgr.requests_to(HISTORY)) == ATTEMPTS - 1
    assert dockerfile.read_text() == f"FROM {PYTHON}\n"


def test_a_ping_answered_200_by_a_registry_whose_repositories_want_tokens(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    # The hint is wrong: every lookup of the first wave is challenged, and still one token
    # request serves them all.
    cgr.fail(1, 200, {"Content-Type": "application/json"}, "{}")
    names = [f"chainguard/img{i}" for i in range(4)]
    for name in names:
        cgr.add_nightly(name, "latest", 2, datetime.now(UTC) - timedelta(days=1))
    path = tmp_path / "Dockerfile"
    path.write_text("".join(f"FROM cgr.dev/{n}:latest AS s{i}\n" for i, n in enumerate(names)))
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text().count("@sha256:") == len(names)
    statuses = [r.status for r in cgr.requests if HISTORY in r.path]
    assert sorted(statuses) == [200] * len(names) + [401] * len(names)
    assert len(cgr.requests_to("/token")) == 1


def test_ctrl_c_while_the_ping_hangs_exits_at_once(
    cgr: FakeRegistry, dockerfile: Path, pin_command: str
) -> None:
    cgr.delay(120, times=1)
    argv = [pin_command, *mirror(cgr), "--timeout", "60", str(dockerfile)]
    code, stderr = interrupted_while(argv, lambda: bool(cgr.requests))
    assert code == 130
    assert stderr.strip().splitlines()[-1] == "pin: interrupted (SIGINT); nothing was written"
    assert dockerfile.read_text() == f"FROM {PYTHON}\n"
