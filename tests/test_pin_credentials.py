"""``pin`` with credentials, end to end: found where ``docker pull`` finds them, sent only
where they belong, and never shown.

Every test runs the CLI against the fake cgr.dev on loopback (``--mirror cgr.dev=URL``):
credentials are looked up for ``cgr.dev``, the registry the image names. Config files go
under the temporary HOME of the autouse ``isolated_environment``; credential helpers are
small scripts in a directory put first on PATH.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Ran, mirror, run_pin
from tests.fakeregistry import FakeRegistry, RecordedRequest, nightly_digest, running_registry

IMAGE = "cgr.dev/myorg/app:1.2"
USER = "alice"
PASSWORD = "pw-Secret-1f3a9c"
IDENTITY_TOKEN = "idtok-Secret-77c1e0"
REGISTRY_TOKEN = "regtok-Secret-9e0d42"
HELPER_SECRET = "helper-Secret-5b2e18"
SECRETS = (PASSWORD, IDENTITY_TOKEN, REGISTRY_TOKEN, HELPER_SECRET)
NEEDS_CREDENTIALS = (
    "this image does not exist, or needs credentials: check its name, or run"
    " `docker login cgr.dev` or `chainctl auth configure-docker`"
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def basic(username: str, secret: str) -> str:
    return f"Basic {b64(f'{username}:{secret}')}"


@pytest.fixture
def private(cgr: FakeRegistry) -> FakeRegistry:
    """cgr.dev with a private ``myorg`` that each kind of credential opens."""
    cgr.add_private(
        "myorg", USER, PASSWORD, refresh_token=IDENTITY_TOKEN, registry_token=REGISTRY_TOKEN
    )
    cgr.add_private("otherorg", "bob", "bobs-password")
    cgr.add_nightly("myorg/app", "1.2", 3, datetime(2024, 1, 1, tzinfo=UTC))
    cgr.add_nightly("otherorg/app", "1.2", 3, datetime(2024, 1, 1, tzinfo=UTC))
    return cgr


@pytest.fixture
def home(isolated_environment: Path) -> Path:
    return isolated_environment


@pytest.fixture
def bindir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", f"{path}{os.pathsep}{os.environ.get('PATH', '')}")
    return path


@pytest.fixture
def dockerfile(tmp_path: Path) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {IMAGE}\n")
    return path


def write_json(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def docker_config(home: Path, document: object) -> Path:
    return write_json(home / ".docker" / "config.json", document)


def auths(key: str = "cgr.dev", **entry: str) -> dict[str, object]:
    return {"auths": {key: entry or {"auth": b64(f"{USER}:{PASSWORD}")}}}


def write_helper(bindir: Path, name: str, body: str) -> Path:
    """``docker-credential-<name>``: saves what it was asked for in ``<path>.asked``."""
    path = bindir / f"docker-credential-{name}"
    path.write_text(f'#!/bin/sh\n[ "$1" = get ] || exit 64\ncat > "$0.asked"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def answering_helper(bindir: Path, name: str, username: str, secret: str) -> Path:
    answer = json.dumps({"ServerURL": "cgr.dev", "Username": username, "Secret": secret})
    return write_helper(bindir, name, f"printf '%s' '{answer}'")


def pinned(path: Path, ran: Ran) -> None:
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {IMAGE}@{nightly_digest('myorg/app', '1.2', 2)}\n"


def failed(path: Path, ran: Ran, *messages: str) -> str:
    """The one error line about IMAGE; it says every one of *messages*, and nothing changed."""
    assert ran.code == 2, ran.stderr
    assert path.read_text() == f"FROM {IMAGE}\n"
    assert "Traceback" not in ran.stderr
    lines = [line for line in ran.stderr.splitlines() if IMAGE in line]
    assert len(lines) == 1, ran.stderr
    for message in messages:
        assert message in lines[0]
    return lines[0]


def history_requests(registry: FakeRegistry) -> list[RecordedRequest]:
    return registry.requests_to("/_chainguard/history/")


def assert_token_flow(registry: FakeRegistry, token_request: RecordedRequest) -> None:
    """The credential went to /token only; the API saw only the token /token issued; the
    ping, the first request of all, carried nothing."""
    assert (registry.requests[0].path, registry.requests[0].authorization) == ("/v2/", None)
    elsewhere = [r for r in registry.requests if r.path != "/token"]
    assert not any((r.authorization or "").startswith("Basic") for r in elsewhere)
    answered = [r for r in history_requests(registry) if r.status == 200]
    assert len(answered) >= 1
    for request in answered:
        scheme, _, token = (request.authorization or "").partition(" ")
        assert scheme == "Bearer"
        assert token.startswith("fake-")  # issued by /token, not a credential sent as is
    assert token_request.status == 200


def only_token_request(registry: FakeRegistry, method: str = "GET") -> RecordedRequest:
    requests = [r for r in registry.requests_to("/token") if r.method == method]
    assert len(requests) == 1
    return requests[0]


# --- each source, through the whole token flow --------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [{"auth": b64(f"{USER}:{PASSWORD}")}, {"username": USER, "password": PASSWORD}],
    ids=["auth", "username-password"],
)
def test_a_docker_config_login_is_sent_as_basic_to_the_token_realm_only(
    private: FakeRegistry, home: Path, dockerfile: Path, entry: dict[str, str]
) -> None:
    config = docker_config(home, auths(**entry))
    ran = run_pin(*mirror(private), "-v", dockerfile)
    pinned(dockerfile, ran)
    token = only_token_request(private)
    assert token.authorization == basic(USER, PASSWORD)
    assert token.query == {"scope": "repository:myorg/app:pull", "service": private.host}
    assert_token_flow(private, token)
    # -v names the source, never the secret
    assert f"using credentials for cgr.dev from auths in {config} (cgr.dev)" in ran.stderr


def test_docker_config_directory_from_the_environment(
    private: FakeRegistry,
    home: Path,
    tmp_path: Path,
    dockerfile: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docker_config(home, auths(username=USER, password="not-this-one"))
    write_json(tmp_path / "ci-docker" / "config.json", auths())
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "ci-docker"))
    pinned(dockerfile, run_pin(*mirror(private), dockerfile))
    assert only_token_request(private).authorization == basic(USER, PASSWORD)


@pytest.mark.parametrize("section", ["credHelpers", "credsStore"])
def test_a_credential_helper_answers_for_cgr_dev(
    private: FakeRegistry, home: Path, bindir: Path, dockerfile: Path, section: str
) -> None:
    private.add_private("myorg", USER, HELPER_SECRET)
    helper = answering_helper(bindir, "cgr", USER, HELPER_SECRET)
    config: dict[str, object] = {
        # Docker does not read auths for a host that has a helper
        **auths(username=USER, password="stale"),
        **({"credHelpers": {"cgr.dev": "cgr"}} if section == "credHelpers" else {}),
        **({"credsStore": "cgr"} if section == "credsStore" else {}),
    }
    path = docker_config(home, config)
    ran = run_pin(*mirror(private), "-v", dockerfile)
    pinned(dockerfile, ran)
    assert Path(f"{helper}.asked").read_text() == "cgr.dev"  # the image's host, not the mirror
    token = only_token_request(private)
    assert token.authorization == basic(USER, HELPER_SECRET)
    assert_token_flow(private, token)
    assert f"from {section} in {path} (docker-credential-cgr)" in ran.stderr


def test_a_helper_is_asked_once_per_host_however_many_repositories_the_run_pins(
    private: FakeRegistry, home: Path, bindir: Path, tmp_path: Path
) -> None:
    # Docker asks a helper by host: its answer serves every repository there. A keychain or a
    # cloud CLI behind it is run once a run, not once a repository.
    private.add_private("myorg", USER, HELPER_SECRET)
    names = ["app", "api", "web", "worker"]
    for name in names[1:]:
        private.add_nightly(f"myorg/{name}", "1.2", 3, datetime(2024, 1, 1, tzinfo=UTC))
    helper = answering_helper(bindir, "cgr", USER, HELPER_SECRET)
    counted = helper.read_text().replace('cat > "$0.asked"', 'cat > "$0.asked"; echo >> "$0.runs"')
    helper.write_text(counted)
    docker_config(home, {"credsStore": "cgr"})
    paths = [tmp_path / f"{name}.Dockerfile" for name in names]
    for path, name in zip(paths, names, strict=True):
        path.write_text(f"FROM cgr.dev/myorg/{name}:1.2\n")
    ran = run_pin(*mirror(private), *paths)
    assert ran.code == 0, ran.stderr
    for path, name in zip(paths, names, strict=True):
        digest = nightly_digest(f"myorg/{name}", "1.2", 2)
        assert path.read_text() == f"FROM cgr.dev/myorg/{name}:1.2@{digest}\n"
    assert Path(f"{helper}.runs").read_text() == "\n"


def test_a_registry_token_is_the_bearer_and_never_goes_to_the_token_service(
    private: FakeRegistry, home: Path, dockerfile: Path
) -> None:
    docker_config(home, auths(registrytoken=REGISTRY_TOKEN))
    pinned(dockerfile, run_pin(*mirror(private), dockerfile))
    assert private.requests_to("/token") == []
    answered = [r for r in history_requests(private) if r.status == 200]
    assert answered
    assert {r.authorization for r in answered} == {f"Bearer {REGISTRY_TOKEN}"}


def test_an_identity_token_is_exchanged_by_the_oauth2_post(
    private: FakeRegistry, home: Path, dockerfile: Path
) -> None:
    docker_config(home, auths(identitytoken=IDENTITY_TOKEN))
    pinned(dockerfile, run_pin(*mirror(private), dockerfile))
    post = only_token_request(private, "POST")
    assert post.authorization is None  # the token is in the form body, only
    assert post.query == {}
    assert post.form["grant_type"] == "refresh_token"
    assert post.form["refresh_token"] == IDENTITY_TOKEN
    assert post.form["scope"] == "repository:myorg/app:pull"
    assert post.form["service"] == private.host
    assert [r for r in private.requests_to("/token") if r.method == "GET"] == []
    assert_token_flow(private, post)


def test_an_identity_token_falls_back_to_get_where_the_post_is_refused(
    private: FakeRegistry, home: Path, dockerfile: Path
) -> None:
    private.accept_post_token = False
    docker_config(home, auths(identitytoken=IDENTITY_TOKEN))
    pinned(dockerfile, run_pin(*mirror(private), dockerfile))
    assert only_token_request(private, "POST").status == 405
    get = only_token_request(private, "GET")
    assert get.authorization == basic("<token>", IDENTITY_TOKEN)
    assert_token_flow(private, get)


def test_a_helper_answering_an_identity_token_uses_the_post(
    private: FakeRegistry, home: Path, bindir: Path, dockerfile: Path
) -> None:
    answering_helper(bindir, "cgr", "<token>", IDENTITY_TOKEN)
    docker_config(home, {"credHelpers": {"cgr.dev": "cgr"}})
    pinned(dockerfile, run_pin(*mirror(private), dockerfile))
    assert only_token_request(private, "POST").form["refresh_token"] == IDENTITY_TOKEN


def test_the_podman_auth_file_from_registry_auth_file_with_a_namespaced_key(
    private: FakeRegistry, tmp_path: Path, dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_json(
        tmp_path / "auth.json",
        {
            "auths": {
                "cgr.dev": {"auth": b64("someone:else")},
                "cgr.dev/myorg": {"auth": b64(f"{USER}:{PASSWORD}")},  # more specific: wins
                "cgr.dev/otherorg": {"auth": b64("bob:bobs-password")},
            }
        },
    )
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    ran = run_pin(*mirror(private), "-v", dockerfile)
    pinned(dockerfile, ran)
    assert only_token_request(private).authorization == basic(USER, PASSWORD)
    assert f"from auths in {path} (cgr.dev/myorg)" in ran.stderr


def test_the_podman_auth_file_in_xdg_runtime_dir(
    private: FakeRegistry, tmp_path: Path, dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_json(
        tmp_path / "run" / "containers" / "auth.json",
        {"auths": {"cgr.dev/myorg": {"auth": b64(f"{USER}:{PASSWORD}")}}},
    )
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    pinned(dockerfile, run_pin(*mirror(private), dockerfile))
    assert only_token_request(private).authorization == basic(USER, PASSWORD)


def test_docker_auth_config_comes_first(
    private: FakeRegistry, home: Path, dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_config(home, auths(username=USER, password="the-runner's-own"))
    monkeypatch.setenv("DOCKER_AUTH_CONFIG", json.dumps(auths()))
    ran = run_pin(*mirror(private), "-v", dockerfile)
    pinned(dockerfile, ran)
    assert only_token_request(private).authorization == basic(USER, PASSWORD)
    assert "from auths in DOCKER_AUTH_CONFIG (cgr.dev)" in ran.stderr


# --- errors ---------------------------------------------------------------------------------


def test_no_credentials_for_a_private_image_says_how_to_log_in(
    private: FakeRegistry, dockerfile: Path
) -> None:
    failed(dockerfile, run_pin(*mirror(private), dockerfile), NEEDS_CREDENTIALS)
    assert not any(r.authorization for r in private.requests_to("/token"))


@pytest.mark.parametrize(
    ("reject_status", "entry", "image_org", "messages"),
    [
        (
            401,
            {"username": USER, "password": "wrong-Secret"},
            "myorg",
            ["cgr.dev rejected the credentials from auths in", "docker login cgr.dev"],
        ),
        (
            403,
            {"username": USER, "password": "wrong-Secret"},
            "myorg",
            ["access denied (HTTP 403) to myorg/app for the credentials from", "docker login"],
        ),
        (  # good credentials for myorg, not for otherorg
            403,
            {"username": USER, "password": PASSWORD},
            "otherorg",
            ["access denied (HTTP 403) to otherorg/app", "give no pull access"],
        ),
        (
            401,
            {"registrytoken": "wrong-Secret"},
            "myorg",
            ["cgr.dev rejected the credentials from auths in"],
        ),
        (
            401,
            {"identitytoken": "wrong-Secret"},
            "myorg",
            ["cgr.dev rejected the credentials from auths in"],
        ),
    ],
    ids=["401", "403", "403-other-repository", "registry-token", "identity-token"],
)
def test_rejected_credentials(
    private: FakeRegistry,
    home: Path,
    tmp_path: Path,
    reject_status: int,
    entry: dict[str, str],
    image_org: str,
    messages: list[str],
) -> None:
    private.basic_reject_status = reject_status
    docker_config(home, auths(**entry))
    image = f"cgr.dev/{image_org}/app:1.2"
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {image}\n")
    ran = run_pin(*mirror(private), path)
    assert ran.code == 2
    assert path.read_text() == f"FROM {image}\n"
    lines = [line for line in ran.stderr.splitlines() if image in line]
    assert len(lines) == 1, ran.stderr
    for message in messages:
        assert message in lines[0]
    assert "wrong-Secret" not in ran.stderr


def test_a_helper_that_fails_is_named_and_its_output_is_not_shown(
    private: FakeRegistry, home: Path, bindir: Path, dockerfile: Path
) -> None:
    write_helper(
        bindir, "broken", f"echo 'oops {HELPER_SECRET}'; echo '{HELPER_SECRET}' >&2; exit 3"
    )
    config = docker_config(home, {"credHelpers": {"cgr.dev": "broken"}})
    ran = run_pin(*mirror(private), "-v", dockerfile)
    failed(dockerfile, ran, f"docker-credential-broken (from {config}) failed", "exit code 3")
    assert HELPER_SECRET not in ran.stdout + ran.stderr
    assert private.requests_to("/token") == []


def test_a_missing_helper_is_named(private: FakeRegistry, home: Path, dockerfile: Path) -> None:
    config = docker_config(home, {"credsStore": "desktop-not-installed"})
    failed(
        dockerfile,
        run_pin(*mirror(private), dockerfile),
        f"docker-credential-desktop-not-installed (from {config}) is not installed or not on PATH",
    )


def test_a_config_that_is_not_json_is_named(
    private: FakeRegistry, home: Path, dockerfile: Path
) -> None:
    config = home / ".docker" / "config.json"
    config.parent.mkdir()
    config.write_text(f'{{"auths": {{"cgr.dev": {{"auth": "{PASSWORD}"\n')
    ran = run_pin(*mirror(private), dockerfile)
    failed(dockerfile, ran, f"{config}: not valid JSON (line 2")
    assert PASSWORD not in ran.stderr


def test_a_docker_auth_config_that_is_not_json_is_named(
    private: FakeRegistry, dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_AUTH_CONFIG", f"{{auths: {PASSWORD}")
    ran = run_pin(*mirror(private), dockerfile)
    failed(dockerfile, ran, "DOCKER_AUTH_CONFIG: not valid JSON", "fix or unset it")
    assert PASSWORD not in ran.stderr


def test_an_unknown_organisation_is_the_token_services_400(
    private: FakeRegistry, home: Path, tmp_path: Path
) -> None:
    private.strict_orgs = True
    docker_config(home, auths())
    path = tmp_path / "Dockerfile"
    path.write_text("FROM cgr.dev/no-such-org/app:1.2\n")
    ran = run_pin(*mirror(private), path)
    assert ran.code == 2
    [line] = [line for line in ran.stderr.splitlines() if "cgr.dev/no-such-org/app:1.2" in line]
    assert "refused repository no-such-org/app (HTTP 400)" in line
    assert "organisation in the reference exists" in line


def test_an_unknown_organisation_with_an_identity_token(
    private: FakeRegistry, home: Path, tmp_path: Path
) -> None:
    private.strict_orgs = True
    docker_config(home, auths(identitytoken=IDENTITY_TOKEN))
    path = tmp_path / "Dockerfile"
    path.write_text("FROM cgr.dev/no-such-org/app:1.2\n")
    ran = run_pin(*mirror(private), path)
    assert ran.code == 2
    assert "(HTTP 400): check that the organisation in the reference exists" in ran.stderr


# --- where credentials go, and where they do not ---------------------------------------------


def test_credentials_for_cgr_dev_are_not_sent_to_another_registry(
    private: FakeRegistry, home: Path, tmp_path: Path
) -> None:
    docker_config(home, auths())
    with running_registry() as other:
        other.add_nightly("team/app", "1.0", 2, datetime(2024, 1, 1, tzinfo=UTC))
        path = tmp_path / "Dockerfile"
        path.write_text(f"FROM {IMAGE} AS build\nFROM other.example/team/app:1.0\n")
        ran = run_pin(*mirror(private), *mirror(other, "other.example"), "-v", path)
        assert ran.code == 0, ran.stderr
        assert nightly_digest("team/app", "1.0", 1) in path.read_text()
        assert only_token_request(private).authorization == basic(USER, PASSWORD)
        seen_by_other = other.requests
    assert other.requests_to("/token")
    assert not any(r.authorization for r in seen_by_other if r.path == "/token")
    cgr_tokens = {r.authorization for r in private.requests if r.authorization}
    for request in seen_by_other:
        assert request.authorization is None or request.authorization not in cgr_tokens
        assert not any(secret in json.dumps(request.headers) for secret in SECRETS)
    assert "using credentials for other.example" not in ran.stderr


def test_authorization_is_dropped_on_a_redirect_to_another_host(
    private: FakeRegistry, home: Path, dockerfile: Path
) -> None:
    docker_config(home, auths(registrytoken=REGISTRY_TOKEN))
    with running_registry() as other:
        target = f"{other.url}/v2/myorg/app/_chainguard/history/1.2"
        # The first (anonymous) request is challenged as usual; the one with the token is
        # redirected.
        private.fail(1, 401, {"WWW-Authenticate": f'Bearer realm="{private.url}/token"'})
        private.fail(1, 307, {"Location": target}, path_contains="/_chainguard/history/")
        ran = run_pin(*mirror(private), dockerfile)
        seen_by_other = other.requests
    assert ran.code == 2
    [sent] = [r for r in history_requests(private) if r.status == 307]
    assert sent.authorization == f"Bearer {REGISTRY_TOKEN}"
    assert seen_by_other
    assert all(r.authorization is None for r in seen_by_other)
    assert REGISTRY_TOKEN not in ran.stderr


def test_a_challenge_from_a_redirect_target_is_not_answered_with_credentials(
    private: FakeRegistry, home: Path, dockerfile: Path
) -> None:
    docker_config(home, auths())
    with running_registry() as other:
        target = f"{other.url}/v2/myorg/app/_chainguard/history/1.2"
        private.fail(1, 307, {"Location": target}, path_contains="/_chainguard/history/")
        ran = run_pin(*mirror(private), dockerfile)
        seen_by_other, other_url = other.requests, other.url
    failed(dockerfile, ran, f"redirected to {other_url}, which asks for credentials")
    assert [r.path for r in seen_by_other] == ["/v2/myorg/app/_chainguard/history/1.2"]
    assert all(r.authorization is None for r in seen_by_other)
    # Only the registry's own challenge (its ping's, at start-up) was answered, at its realm.
    assert [r.status for r in private.requests if r.path == "/v2/"] == [401]
    assert len(private.requests_to("/token")) == 1


def test_the_identity_token_post_does_not_follow_a_redirect(
    private: FakeRegistry, home: Path, dockerfile: Path
) -> None:
    docker_config(home, auths(identitytoken=IDENTITY_TOKEN))
    with running_registry() as other:
        private.fail(1, 307, {"Location": f"{other.url}/token"}, path_contains="/token")
        ran = run_pin(*mirror(private), dockerfile)
        seen_by_other = other.requests
    failed(dockerfile, ran, "the token service answered HTTP 307")
    assert seen_by_other == []


def test_a_plain_http_realm_elsewhere_is_refused(
    private: FakeRegistry, home: Path, dockerfile: Path
) -> None:
    docker_config(home, auths())
    challenge = 'Bearer realm="http://auth.example/token",service="cgr.dev"'
    private.fail(1, 401, {"WWW-Authenticate": challenge}, path_contains="/_chainguard/history/")
    ran = run_pin(*mirror(private), dockerfile)
    failed(dockerfile, ran, "token realm over plain http (http://auth.example); refusing it")


# --- secrets stay secret ---------------------------------------------------------------------


def _scenarios() -> Iterator[tuple[str, dict[str, object], str | None, bool]]:
    """(id, config, helper secret, whether pinning succeeds)."""
    for ok in (True, False):
        suffix = "" if ok else "-but-wrong"
        yield "password", auths(username=USER, password=PASSWORD + suffix), None, ok
        yield "auth", auths(auth=b64(f"{USER}:{PASSWORD}{suffix}")), None, ok
        yield "identity-token", auths(identitytoken=IDENTITY_TOKEN + suffix), None, ok
        yield "registry-token", auths(registrytoken=REGISTRY_TOKEN + suffix), None, ok
        helper = {"credHelpers": {"cgr.dev": "cgr"}}
        yield "helper", helper, HELPER_SECRET + suffix, ok


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
@pytest.mark.parametrize(
    ("config", "helper_secret", "succeeds"),
    [
        pytest.param(*rest, id=f"{name}-{'ok' if rest[-1] else 'rejected'}")
        for name, *rest in _scenarios()
    ],
)
def test_no_secret_reaches_any_output(
    private: FakeRegistry,
    home: Path,
    bindir: Path,
    dockerfile: Path,
    config: dict[str, object],
    helper_secret: str | None,
    succeeds: bool,
    verbose: bool,
) -> None:
    private.add_private("myorg", USER, HELPER_SECRET)
    if helper_secret is not None:
        answering_helper(bindir, "cgr", USER, helper_secret)
    docker_config(home, config)
    ran = run_pin(*mirror(private), *(["-v"] if verbose else []), dockerfile)
    assert ran.code == (0 if succeeds else 2), ran.stderr
    output = ran.stdout + ran.stderr
    for secret in SECRETS:
        assert secret not in output
        assert b64(f"{USER}:{secret}") not in output
    for request in private.requests:
        if request.authorization:
            assert request.authorization.split()[-1] not in output
        if "refresh_token" in request.form:
            assert request.form["refresh_token"] not in output
    if verbose:
        assert "using credentials for cgr.dev from" in ran.stderr
