"""Credential lookup against real config files and real credential-helper programs."""

from __future__ import annotations

import base64
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pinner import credentials
from pinner.credentials import Credential, HelperAnswers, find_credential
from pinner.errors import AuthError, FileError

SECRET = "s3cret-Pa55"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


@pytest.fixture
def env(home: Path, bindir: Path) -> dict[str, str]:
    """A clean environment: only HOME and PATH (helpers first), nothing from the real user."""
    return {"HOME": str(home), "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}


def write_docker_config(home: Path, config: object) -> Path:
    path = home / ".docker" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def write_helper(bindir: Path, name: str, script: str) -> Path:
    """An executable ``docker-credential-<name>`` that records its stdin next to itself."""
    path = bindir / f"docker-credential-{name}"
    path.write_text('#!/bin/sh\n[ "$1" = get ] || exit 64\nserver=$(cat)\n' + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def answering_helper(bindir: Path, name: str, username: str, secret: str = SECRET) -> Path:
    return write_helper(
        bindir,
        name,
        'printf %s "$server" > "$0.stdin"\n'
        f'printf \'{{"ServerURL":"%s","Username":"{username}","Secret":"{secret}"}}\' "$server"\n',
    )


def server_address_sent(helper: Path) -> str:
    return Path(f"{helper}.stdin").read_text()


def basic(username: str, secret: str, source: str) -> Credential:
    return Credential("basic", username, secret, source)


# --- auths entries -----------------------------------------------------------------------


def test_no_config_anywhere_is_anonymous(env: dict[str, str]) -> None:
    assert find_credential("cgr.dev", "chainguard/python", env=env) is None


def test_auth_is_split_at_the_first_colon(home: Path, env: dict[str, str]) -> None:
    path = write_docker_config(home, {"auths": {"cgr.dev": {"auth": b64("alice:pa:ss:word")}}})
    assert find_credential("cgr.dev", "chainguard/python", env=env) == basic(
        "alice", "pa:ss:word", f"auths in {path} (cgr.dev)"
    )


def test_username_and_password_fields(home: Path, env: dict[str, str]) -> None:
    write_docker_config(home, {"auths": {"ghcr.io": {"username": "bob", "password": SECRET}}})
    found = find_credential("ghcr.io", "myorg/app", env=env)
    assert found is not None
    assert (found.kind, found.username, found.secret) == ("basic", "bob", SECRET)


def test_identitytoken(home: Path, env: dict[str, str]) -> None:
    write_docker_config(home, {"auths": {"cgr.dev": {"auth": b64("x:y"), "identitytoken": SECRET}}})
    found = find_credential("cgr.dev", "chainguard/python", env=env)
    assert found is not None
    assert (found.kind, found.username, found.secret) == ("identity_token", None, SECRET)


def test_registrytoken_is_kept_as_is(home: Path, env: dict[str, str]) -> None:
    write_docker_config(home, {"auths": {"cgr.dev": {"registrytoken": SECRET}}})
    found = find_credential("cgr.dev", "chainguard/python", env=env)
    assert found is not None
    assert (found.kind, found.username, found.secret) == ("registry_token", None, SECRET)


def test_empty_entry_means_nothing(home: Path, env: dict[str, str]) -> None:
    write_docker_config(home, {"auths": {"cgr.dev": {}}})
    assert find_credential("cgr.dev", "chainguard/python", env=env) is None


def test_bad_base64_names_file_and_key(home: Path, env: dict[str, str]) -> None:
    path = write_docker_config(home, {"auths": {"https://cgr.dev/": {"auth": "%%not-base64%%"}}})
    with pytest.raises(FileError) as caught:
        find_credential("cgr.dev", "chainguard/python", env=env)
    message = str(caught.value)
    assert str(path) in message
    assert "'https://cgr.dev/'" in message
    assert "%%not-base64%%" not in message


def test_auth_without_colon_is_a_file_error_without_the_value(
    home: Path, env: dict[str, str]
) -> None:
    write_docker_config(home, {"auths": {"cgr.dev": {"auth": b64(SECRET)}}})
    with pytest.raises(FileError) as caught:
        find_credential("cgr.dev", "chainguard/python", env=env)
    assert SECRET not in str(caught.value)
    assert caught.value.__context__ is None


@pytest.mark.parametrize(
    "key", ["https://cgr.dev/", "http://cgr.dev", "https://cgr.dev/v2/", "cgr.dev/", "CGR.dev"]
)
def test_url_shaped_keys_match_by_host(home: Path, env: dict[str, str], key: str) -> None:
    write_docker_config(home, {"auths": {key: {"auth": b64(f"alice:{SECRET}")}}})
    found = find_credential("cgr.dev", "chainguard/python", env=env)
    assert found is not None
    assert found.secret == SECRET


def test_exact_key_wins_over_url_shaped_duplicate(home: Path, env: dict[str, str]) -> None:
    write_docker_config(
        home,
        {"auths": {"https://cgr.dev/": {"auth": b64("old:x")}, "cgr.dev": {"auth": b64("new:y")}}},
    )
    found = find_credential("cgr.dev", "chainguard/python", env=env)
    assert found is not None
    assert found.username == "new"


@pytest.mark.parametrize(
    ("key", "registry", "matches"),
    [
        ("localhost:5000", "localhost:5000", True),
        ("http://localhost:5000/v2/", "localhost:5000", True),
        ("localhost:5000", "localhost", False),
        ("localhost", "localhost:5000", False),
        ("127.0.0.1:43123", "127.0.0.1:43123", True),
        ("127.0.0.1:43124", "127.0.0.1:43123", False),
    ],
)
def test_port_is_part_of_the_host(
    home: Path, env: dict[str, str], key: str, registry: str, matches: bool
) -> None:
    write_docker_config(home, {"auths": {key: {"auth": b64(f"alice:{SECRET}")}}})
    assert (find_credential(registry, "myorg/app", env=env) is not None) is matches


@pytest.mark.parametrize(
    "key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
)
def test_docker_hub_aliases(home: Path, env: dict[str, str], key: str) -> None:
    write_docker_config(home, {"auths": {key: {"auth": b64(f"alice:{SECRET}")}}})
    found = find_credential("docker.io", "library/python", env=env)
    assert found is not None
    assert found.secret == SECRET


def test_other_registries_do_not_match(home: Path, env: dict[str, str]) -> None:
    write_docker_config(home, {"auths": {"ghcr.io": {"auth": b64("a:b")}}})
    assert find_credential("cgr.dev", "chainguard/python", env=env) is None
    assert find_credential("docker.io", "library/python", env=env) is None


def test_docker_config_env_var_replaces_home(
    tmp_path: Path, home: Path, env: dict[str, str]
) -> None:
    write_docker_config(home, {"auths": {"cgr.dev": {"auth": b64("home:x")}}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text(
        json.dumps({"auths": {"cgr.dev": {"auth": b64("dc:y")}}})
    )
    found = find_credential(
        "cgr.dev", "chainguard/python", env={**env, "DOCKER_CONFIG": str(elsewhere)}
    )
    assert found is not None
    assert found.username == "dc"
    assert found.source == f"auths in {elsewhere / 'config.json'} (cgr.dev)"


def test_invalid_json_names_the_file(home: Path, env: dict[str, str]) -> None:
    path = home / ".docker" / "config.json"
    path.parent.mkdir()
    path.write_text('{\n  "auths": {"cgr.dev": {"auth": "' + b64(f"a:{SECRET}") + '"}\n')
    with pytest.raises(FileError) as caught:
        find_credential("cgr.dev", "chainguard/python", env=env)
    message = str(caught.value)
    assert message.startswith(f"{path}: not valid JSON (line 3, column 1)")
    assert "fix or remove it" in message
    assert caught.value.__context__ is None  # JSONDecodeError.doc would hold the whole file


def test_config_that_is_not_an_object(home: Path, env: dict[str, str]) -> None:
    path = write_docker_config(home, ["cgr.dev"])
    with pytest.raises(FileError, match="not a JSON object") as caught:
        find_credential("cgr.dev", "chainguard/python", env=env)
    assert str(path) in str(caught.value)


# --- credential helpers ------------------------------------------------------------------


def test_cred_helpers_win_over_auths(home: Path, bindir: Path, env: dict[str, str]) -> None:
    helper = answering_helper(bindir, "cgr", "cgr-user")
    path = write_docker_config(
        home,
        {"credHelpers": {"cgr.dev": "cgr"}, "auths": {"cgr.dev": {"auth": b64("file:pw")}}},
    )
    found = find_credential("cgr.dev", "chainguard/python", env=env)
    assert found == basic("cgr-user", SECRET, f"credHelpers in {path} (docker-credential-cgr)")
    assert server_address_sent(helper) == "cgr.dev"


def test_cred_helpers_only_for_their_registry(
    home: Path, bindir: Path, env: dict[str, str]
) -> None:
    answering_helper(bindir, "cgr", "cgr-user")
    write_docker_config(
        home, {"credHelpers": {"cgr.dev": "cgr"}, "auths": {"ghcr.io": {"auth": b64("gh:pw")}}}
    )
    found = find_credential("ghcr.io", "myorg/app", env=env)
    assert found is not None
    assert found.username == "gh"


def test_cred_helper_beats_creds_store(home: Path, bindir: Path, env: dict[str, str]) -> None:
    answering_helper(bindir, "cgr", "from-helper")
    answering_helper(bindir, "store", "from-store")
    write_docker_config(home, {"credHelpers": {"cgr.dev": "cgr"}, "credsStore": "store"})
    found = find_credential("cgr.dev", "chainguard/python", env=env)
    assert found is not None
    assert found.username == "from-helper"


def test_creds_store_serves_every_registry_and_hub_gets_the_index_url(
    home: Path, bindir: Path, env: dict[str, str]
) -> None:
    helper = answering_helper(bindir, "desktop", "dora")
    path = write_docker_config(
        home, {"credsStore": "desktop", "auths": {"https://index.docker.io/v1/": {}}}
    )
    found = find_credential("docker.io", "library/python", env=env)
    assert found == basic("dora", SECRET, f"credsStore in {path} (docker-credential-desktop)")
    assert server_address_sent(helper) == "https://index.docker.io/v1/"
    assert find_credential("localhost:5000", "myorg/app", env=env) is not None
    assert server_address_sent(helper) == "localhost:5000"


def test_helper_token_username_means_identity_token(
    home: Path, bindir: Path, env: dict[str, str]
) -> None:
    answering_helper(bindir, "cgr", "<token>")
    write_docker_config(home, {"credHelpers": {"https://cgr.dev/": "cgr"}})
    found = find_credential("cgr.dev", "chainguard/python", env=env)
    assert found is not None
    assert (found.kind, found.username, found.secret) == ("identity_token", None, SECRET)


def test_helper_not_installed(home: Path, env: dict[str, str]) -> None:
    path = write_docker_config(home, {"credHelpers": {"cgr.dev": "pinner-test-absent"}})
    with pytest.raises(AuthError) as caught:
        find_credential("cgr.dev", "chainguard/python", env=env)
    assert str(caught.value) == (
        f"credential helper docker-credential-pinner-test-absent (from {path}) "
        "is not installed or not on PATH"
    )


def test_failing_helper_output_stays_out_of_the_error(
    home: Path, bindir: Path, env: dict[str, str]
) -> None:
    write_helper(bindir, "leaky", f"echo 'token={SECRET}'\necho 'oops {SECRET}' >&2\nexit 3\n")
    write_docker_config(home, {"credHelpers": {"cgr.dev": "leaky"}})
    with pytest.raises(AuthError) as caught:
        find_credential("cgr.dev", "chainguard/python", env=env)
    message = str(caught.value)
    assert "docker-credential-leaky" in message
    assert "cgr.dev" in message
    assert "exit code 3" in message
    assert SECRET not in message
    assert SECRET not in repr(caught.value)


def test_helper_answering_garbage(home: Path, bindir: Path, env: dict[str, str]) -> None:
    write_helper(bindir, "garbage", f'echo \'{{"Secret": "{SECRET}"\'\n')
    write_docker_config(home, {"credHelpers": {"cgr.dev": "garbage"}})
    with pytest.raises(AuthError, match="docker-credential-garbage") as caught:
        find_credential("cgr.dev", "chainguard/python", env=env)
    assert SECRET not in str(caught.value)
    assert caught.value.__context__ is None


def test_helper_that_hangs_is_stopped(
    home: Path, bindir: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credentials, "HELPER_TIMEOUT_SECONDS", 0.5)
    write_helper(bindir, "slow", "exec sleep 30\n")
    write_docker_config(home, {"credHelpers": {"cgr.dev": "slow"}})
    with pytest.raises(AuthError, match=r"docker-credential-slow .* did not answer for cgr\.dev"):
        find_credential("cgr.dev", "chainguard/python", env=env)


def test_a_helper_that_hangs_is_run_once_for_a_run_s_lookups_at_once(
    home: Path, bindir: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run looks up every repository of a registry at once, on worker threads: the helper is
    # asked once for the host, so it hangs once, and every lookup gets its error.
    monkeypatch.setattr(credentials, "HELPER_TIMEOUT_SECONDS", 0.5)
    helper = write_helper(bindir, "slow", 'echo >> "$0.runs"\nexec sleep 30\n')
    write_docker_config(home, {"credsStore": "slow"})
    answers = HelperAnswers()
    with ThreadPoolExecutor(4) as pool:
        lookups = [
            pool.submit(find_credential, "cgr.dev", f"chainguard/img{i}", env=env, answers=answers)
            for i in range(4)
        ]
    for lookup in lookups:
        with pytest.raises(AuthError, match=r"docker-credential-slow .* did not answer"):
            lookup.result()
    assert Path(f"{helper}.runs").read_text() == "\n"


@pytest.mark.parametrize("name", ["../../bin/evil", "/usr/bin/true", "a b", ""])
def test_helper_name_must_be_a_plain_word(
    home: Path, bindir: Path, env: dict[str, str], name: str
) -> None:
    write_docker_config(home, {"credsStore": "x", "credHelpers": {"cgr.dev": name}})
    answering_helper(bindir, "x", "store-user")
    if not name:  # an empty helper name configures nothing: credsStore applies
        found = find_credential("cgr.dev", "chainguard/python", env=env)
        assert found is not None
        assert found.username == "store-user"
        return
    with pytest.raises(AuthError) as caught:
        find_credential("cgr.dev", "chainguard/python", env=env)
    assert repr(name) in str(caught.value)


def test_helper_without_credentials_is_anonymous(
    home: Path, bindir: Path, env: dict[str, str]
) -> None:
    write_helper(bindir, "empty", "echo 'credentials not found in native keychain'\nexit 1\n")
    write_docker_config(
        home, {"credHelpers": {"cgr.dev": "empty"}, "auths": {"cgr.dev": {"auth": b64("a:b")}}}
    )
    assert find_credential("cgr.dev", "chainguard/python", env=env) is None


def test_helper_without_credentials_falls_through_to_podman(
    tmp_path: Path, home: Path, bindir: Path, env: dict[str, str]
) -> None:
    write_helper(bindir, "empty", "echo 'credentials not found' >&2\nexit 1\n")
    write_docker_config(home, {"credsStore": "empty"})
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {"cgr.dev": {"auth": b64("podman:pw")}}}))
    found = find_credential(
        "cgr.dev", "chainguard/python", env={**env, "REGISTRY_AUTH_FILE": str(auth_file)}
    )
    assert found == basic("podman", "pw", f"auths in {auth_file} (cgr.dev)")


# --- DOCKER_AUTH_CONFIG ------------------------------------------------------------------


def test_docker_auth_config_wins_over_the_file(home: Path, env: dict[str, str]) -> None:
    write_docker_config(home, {"auths": {"cgr.dev": {"auth": b64("file:x")}}})
    inline = json.dumps({"auths": {"https://cgr.dev": {"auth": b64(f"ci:{SECRET}")}}})
    found = find_credential(
        "cgr.dev", "chainguard/python", env={**env, "DOCKER_AUTH_CONFIG": inline}
    )
    assert found == basic("ci", SECRET, "auths in DOCKER_AUTH_CONFIG (https://cgr.dev)")


def test_docker_auth_config_hands_over_for_other_registries(
    home: Path, env: dict[str, str]
) -> None:
    write_docker_config(home, {"auths": {"ghcr.io": {"auth": b64("file:x")}}})
    inline = json.dumps({"auths": {"cgr.dev": {"auth": b64("ci:y")}}})
    found = find_credential("ghcr.io", "myorg/app", env={**env, "DOCKER_AUTH_CONFIG": inline})
    assert found is not None
    assert found.username == "file"


def test_docker_auth_config_answer_ignores_a_broken_file(home: Path, env: dict[str, str]) -> None:
    (home / ".docker").mkdir()
    (home / ".docker" / "config.json").write_text("{broken")
    inline = json.dumps({"auths": {"cgr.dev": {"auth": b64("ci:y")}}})
    assert find_credential("cgr.dev", "c/p", env={**env, "DOCKER_AUTH_CONFIG": inline}) is not None


def test_docker_auth_config_with_helper(bindir: Path, env: dict[str, str]) -> None:
    answering_helper(bindir, "cgr", "<token>")
    inline = json.dumps({"credHelpers": {"cgr.dev": "cgr"}})
    found = find_credential("cgr.dev", "c/p", env={**env, "DOCKER_AUTH_CONFIG": inline})
    assert found is not None
    assert found.source == "credHelpers in DOCKER_AUTH_CONFIG (docker-credential-cgr)"


def test_invalid_docker_auth_config(env: dict[str, str]) -> None:
    with pytest.raises(FileError, match=r"^DOCKER_AUTH_CONFIG: not valid JSON \(line 1, column"):
        find_credential("cgr.dev", "c/p", env={**env, "DOCKER_AUTH_CONFIG": f"{{{SECRET}"})


# --- podman / buildah auth files ---------------------------------------------------------


@pytest.fixture
def podman_scoped(tmp_path: Path) -> Path:
    path = tmp_path / "auth.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "cgr.dev/myorg": {"auth": b64("org:1")},
                    "cgr.dev": {"auth": b64("registry:2")},
                    "cgr.dev/myorg/app": {"auth": b64("app:3")},
                    "docker.io/library": {"auth": b64("hub-library:4")},
                }
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("registry", "repository", "username"),
    [
        ("cgr.dev", "myorg/app", "app"),
        ("cgr.dev", "myorg/app/sub", "app"),
        ("cgr.dev", "myorg/other", "org"),
        ("cgr.dev", "myorganisation/app", "registry"),  # only whole path components match
        ("cgr.dev", "myorg", "org"),
        ("cgr.dev", "chainguard/python", "registry"),
        ("docker.io", "library/python", "hub-library"),
        ("docker.io", "someone/python", None),
        ("ghcr.io", "myorg/app", None),
    ],
)
def test_podman_most_specific_key_wins(
    podman_scoped: Path,
    env: dict[str, str],
    registry: str,
    repository: str,
    username: str | None,
) -> None:
    found = find_credential(
        registry, repository, env={**env, "REGISTRY_AUTH_FILE": str(podman_scoped)}
    )
    assert (found.username if found else None) == username


def test_registry_auth_file_is_the_only_podman_file(
    tmp_path: Path, home: Path, env: dict[str, str]
) -> None:
    default = home / ".config" / "containers" / "auth.json"
    default.parent.mkdir(parents=True)
    default.write_text(json.dumps({"auths": {"cgr.dev": {"auth": b64("default:x")}}}))
    explicit = tmp_path / "explicit.json"
    explicit.write_text(json.dumps({"auths": {}}))
    assert (
        find_credential("cgr.dev", "c/p", env={**env, "REGISTRY_AUTH_FILE": str(explicit)}) is None
    )
    found = find_credential("cgr.dev", "c/p", env=env)
    assert found is not None
    assert found.username == "default"


def test_runtime_dir_auth_file_then_config_home(
    tmp_path: Path, home: Path, env: dict[str, str]
) -> None:
    runtime = tmp_path / "run"
    (runtime / "containers").mkdir(parents=True)
    (runtime / "containers" / "auth.json").write_text(
        json.dumps({"auths": {"cgr.dev": {"auth": b64("runtime:x")}}})
    )
    config_home = home / ".config" / "containers"
    config_home.mkdir(parents=True)
    (config_home / "auth.json").write_text(
        json.dumps({"auths": {"ghcr.io": {"auth": b64("config:y")}}})
    )
    env = {**env, "XDG_RUNTIME_DIR": str(runtime)}
    cgr = find_credential("cgr.dev", "c/p", env=env)
    ghcr = find_credential("ghcr.io", "o/a", env=env)
    assert cgr is not None and cgr.username == "runtime"
    assert ghcr is not None and ghcr.username == "config"


def test_docker_config_comes_before_podman(tmp_path: Path, home: Path, env: dict[str, str]) -> None:
    write_docker_config(home, {"auths": {"cgr.dev": {"auth": b64("docker:x")}}})
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {"cgr.dev/myorg": {"auth": b64("podman:y")}}}))
    found = find_credential(
        "cgr.dev", "myorg/app", env={**env, "REGISTRY_AUTH_FILE": str(auth_file)}
    )
    assert found is not None
    assert found.username == "docker"


def test_podman_cred_helpers(tmp_path: Path, bindir: Path, env: dict[str, str]) -> None:
    answering_helper(bindir, "cgr", "helped")
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(
        json.dumps({"credHelpers": {"cgr.dev": "cgr"}, "auths": {"cgr.dev": {"auth": b64("a:b")}}})
    )
    found = find_credential("cgr.dev", "c/p", env={**env, "REGISTRY_AUTH_FILE": str(auth_file)})
    assert found is not None
    assert found.username == "helped"


def test_invalid_podman_file_names_it(tmp_path: Path, env: dict[str, str]) -> None:
    auth_file = tmp_path / "auth.json"
    auth_file.write_text("not json")
    with pytest.raises(FileError, match=rf"^{auth_file}: not valid JSON \(line 1, column 1\)"):
        find_credential("cgr.dev", "c/p", env={**env, "REGISTRY_AUTH_FILE": str(auth_file)})


# --- the secret stays secret -------------------------------------------------------------


@pytest.mark.parametrize(
    "credential",
    [
        Credential("basic", "alice", SECRET, "auths in /x/config.json (cgr.dev)"),
        Credential("identity_token", None, SECRET, "DOCKER_AUTH_CONFIG"),
        Credential("registry_token", None, SECRET, "auths in /x/auth.json (cgr.dev)"),
    ],
)
def test_repr_and_str_hide_the_secret(credential: Credential) -> None:
    assert SECRET not in repr(credential)
    assert SECRET not in str(credential)
    assert "alice" in repr(credential) or credential.username is None


def test_found_credential_repr_hides_the_secret(home: Path, env: dict[str, str]) -> None:
    write_docker_config(home, {"auths": {"cgr.dev": {"auth": b64(f"alice:{SECRET}")}}})
    found = find_credential("cgr.dev", "chainguard/python", env=env)
    assert found is not None
    assert found.secret == SECRET
    assert SECRET not in repr(found)
    assert SECRET not in str(found)
    assert SECRET not in found.source
