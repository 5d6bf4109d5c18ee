"""One token request for many repositories (issue 9): after a registry's challenge (its ping's), the
run's anonymous repositories share token requests of up to MAX_SCOPES_PER_TOKEN scopes, and
every repository the service does not grant that way still works through its own token."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pinner.limits import MAX_SCOPES_PER_TOKEN
from tests.conftest import mirror, run_pin
from tests.fakeregistry import FakeRegistry, nightly_digest


def _images(cgr: FakeRegistry, count: int, org: str = "chainguard") -> list[str]:
    names = [f"{org}/batch{i}" for i in range(count)]
    for name in names:
        cgr.add_nightly(name, "latest", 2, datetime.now(UTC) - timedelta(days=1))
    return names


def _dockerfile(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text("".join(f"FROM cgr.dev/{n}:latest AS s{i}\n" for i, n in enumerate(names)))
    return path


def _pinned_text(names: list[str]) -> str:
    return "".join(
        f"FROM cgr.dev/{n}:latest@{nightly_digest(n, 'latest', 1)} AS s{i}\n"
        for i, n in enumerate(names)
    )


def _scopes(names: list[str]) -> set[str]:
    return {f"repository:{n}:pull" for n in names}


def test_one_challenge_then_token_requests_of_at_most_the_cap(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    names = _images(cgr, MAX_SCOPES_PER_TOKEN + 10)
    path = _dockerfile(tmp_path, names)
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == _pinned_text(names)
    # The one challenge is the ping's (GET /v2/, at start-up): no lookup was challenged.
    assert [r.path for r in cgr.requests if r.status == 401] == ["/v2/"]
    history = cgr.requests_to("/_chainguard/history/")
    assert len([r for r in history if r.status == 200]) == len(names)
    tokens = cgr.requests_to("/token")
    assert sorted(len(t.scopes) for t in tokens) == [10, MAX_SCOPES_PER_TOKEN]
    assert set().union(*(t.scopes for t in tokens)) == _scopes(names)
    assert all(t.authorization is None for t in tokens)


def test_a_service_that_grants_only_some_scopes_leaves_each_other_to_its_own_token(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    cgr.grant_scopes = 1  # as a token service that reads one scope= only
    names = _images(cgr, 5)
    path = _dockerfile(tmp_path, names)
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == _pinned_text(names)
    tokens = cgr.requests_to("/token")
    assert [len(t.scopes) for t in tokens].count(5) == 1  # the batch, which covered one
    assert len(tokens) == 1 + 4  # and one for each of the four it did not
    history = cgr.requests_to("/_chainguard/history/")
    assert len([r for r in history if r.status == 200]) == 5


def test_a_service_that_refuses_several_scopes_gets_one_request_each(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    cgr.max_scopes = 1
    names = _images(cgr, 4)
    path = _dockerfile(tmp_path, names)
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == _pinned_text(names)
    tokens = cgr.requests_to("/token")
    assert [t.status for t in tokens].count(400) == 1
    assert sorted(t.scopes for t in tokens if t.status == 200) == sorted(
        (scope,) for scope in _scopes(names)
    )


def test_a_private_repositorys_credential_goes_only_with_its_own_scope(
    cgr: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = _images(cgr, 3)
    private = _images(cgr, 1, org="myorg")
    cgr.add_private("myorg", "alice", "pw-Secret-1f3a9c")
    auth = tmp_path / "auth.json"
    secret = base64.b64encode(b"alice:pw-Secret-1f3a9c").decode()
    auth.write_text(json.dumps({"auths": {"cgr.dev/myorg": {"auth": secret}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    path = _dockerfile(tmp_path, [*public, *private])
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == _pinned_text([*public, *private])
    tokens = cgr.requests_to("/token")
    anonymous = [t for t in tokens if t.authorization is None]
    assert [set(t.scopes) for t in anonymous] == [_scopes(public)]
    with_secret = [t for t in tokens if t.authorization is not None]
    assert [t.scopes for t in with_secret] == [("repository:myorg/batch0:pull",)]
    assert "pw-Secret" not in ran.stderr + ran.stdout


def test_an_anonymous_batch_with_a_private_repository_is_refused_and_the_error_is_its_own(
    cgr: FakeRegistry, tmp_path: Path
) -> None:
    # No credentials: the service refuses the whole batch (the private scope in it); the
    # public ones then get their own tokens, and the private one fails as it always has.
    public = _images(cgr, 2)
    private = _images(cgr, 1, org="myorg")
    cgr.add_private("myorg", "alice", "pw-Secret-1f3a9c")
    path = _dockerfile(tmp_path, [*public, *private])
    before = path.read_bytes()
    ran = run_pin(*mirror(cgr), path)
    assert ran.code == 2
    errors = [line for line in ran.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, ran.stderr
    assert "cgr.dev/myorg/batch0:latest" in errors[0]
    assert "this image does not exist, or needs credentials" in errors[0]
    assert path.read_bytes() == before
