"""Registry credentials, found where ``docker pull`` (and then podman) would find them.

Only the lookup lives here; turning a credential into an ``Authorization`` header is the
resolvers' job. Sources are tried in this order and the first one that has a credential for
the registry wins; a source with nothing for it (no file, no matching entry, an empty entry
``{}``, a helper answering "credentials not found") hands over to the next:

1. ``DOCKER_AUTH_CONFIG``: the *content* of a Docker ``config.json`` in an environment
   variable (GitLab CI's convention). It comes before the files because it is configuration
   made explicitly for this job, while ``~/.docker/config.json`` on a shared runner is
   whatever the machine happens to have.
2. ``$DOCKER_CONFIG/config.json``, else ``$HOME/.docker/config.json``. Per registry, as the
   Docker CLI does: ``credHelpers[host]``, else ``credsStore``, else ``auths[host]``. When a
   helper is configured, ``auths`` of that file is not read (Docker only keeps the e-mail
   from it).
3. The podman/buildah/skopeo auth file (containers-auth.json(5)): ``$REGISTRY_AUTH_FILE``
   alone when set, else ``$XDG_RUNTIME_DIR/containers/auth.json`` and then
   ``${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json``. Its ``auths`` keys may name a
   repository namespace (``cgr.dev/myorg``); the most specific one wins.
4. Nothing: ``None``, an anonymous pull.

Within one ``auths`` entry the precedence is Docker's: ``registrytoken`` (sent as a bearer
token as is), then ``identitytoken`` (an OAuth2 refresh token), then ``auth``, then
``username``/``password``.

Secrets never reach an exception message, a ``repr`` or a log, and the errors raised here
never chain an exception that holds them (``json.JSONDecodeError.doc``,
``UnicodeDecodeError.object``, ``subprocess.TimeoutExpired.output`` all keep the input).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pinner.errors import AuthError, FileError
from pinner.files import read_regular, size_text
from pinner.limits import HELPER_TIMEOUT, MAX_CONFIG_BYTES, MAX_HELPER_OUTPUT_BYTES

HELPER_TIMEOUT_SECONDS = HELPER_TIMEOUT

_DOCKER_HUB = "docker.io"
# Every spelling of Docker Hub that `docker login` and podman have written as a key.
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# docker/cli registry.IndexServer: the key and helper server address Docker uses for Hub.
_HUB_SERVER_ADDRESS = "https://index.docker.io/v1/"
_HELPER_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# docker-credential-helpers' ErrCredentialsNotFound is "credentials not found in native
# keychain"; other helpers (ecr-login, gcr, cgr) print variations starting the same way.
_NOT_FOUND_TEXT = "credentials not found"
_TOKEN_USERNAME = "<token>"  # docker-credential-helpers: Secret is an identity token


@dataclass(frozen=True)
class Credential:
    """A credential for one registry, and where it was found."""

    kind: Literal["basic", "identity_token", "registry_token"]
    username: str | None  # for basic; None otherwise
    secret: str = field(repr=False)  # password, identity token or registry token
    source: str  # where it came from, for -v and error messages; never holds a secret


@dataclass(frozen=True)
class _Config:
    """A decoded Docker config.json or containers auth.json."""

    origin: str  # the file's path, or "DOCKER_AUTH_CONFIG"
    data: dict[str, object]


def find_credential(
    registry: str,
    repository: str,
    *,
    env: Mapping[str, str] | None = None,
    answers: HelperAnswers | None = None,
) -> Credential | None:
    """The credential ``docker pull registry/repository`` would use, or None for anonymous.

    A credential helper's answer is taken from *answers* when it has one for the host (and
    kept there when not). Raises FileError for a config that cannot be decoded, AuthError for
    a credential helper that is missing, refused or fails.
    """
    environ = os.environ if env is None else env
    host = _canonical_host(registry)
    ask = answers or HelperAnswers()
    for config in _docker_configs(environ):
        credential = _from_docker_config(config, host, environ, ask)
        if credential is not None:
            return credential
    for config in _podman_auth_files(environ):
        credential = _from_podman_auth_file(config, host, repository, environ, ask)
        if credential is not None:
            return credential
    return None


class HelperAnswers:
    """What each credential helper answered for each host, kept for a run.

    Docker asks a helper for a host, so one answer serves every repository there: a helper
    (a keychain, a cloud CLI behind it) runs once a host in a run, not once a repository, and
    one that fails or takes too long does so once. Lookups run on worker threads at the same
    time: the first that needs an answer runs the helper, the others wait for it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, ...], Future[Credential | None]] = {}

    def ask(
        self, name: str, section: str, origin: str, host: str, env: Mapping[str, str]
    ) -> Credential | None:
        """:func:`_ask_helper`'s answer, or its error, the first time; the same after."""
        key = (name, section, origin, host)
        with self._lock:
            answer = self._answers.get(key)
            first = answer is None
            if answer is None:
                answer = self._answers[key] = Future()
        if first:
            try:
                answer.set_result(_ask_helper(name, section, origin, host, env))
            except BaseException as e:  # waiters get it too, rather than waiting for ever
                answer.set_exception(e)
        return answer.result()


# --- where the configs are ---------------------------------------------------------------


def _docker_configs(env: Mapping[str, str]) -> Iterator[_Config]:
    """DOCKER_AUTH_CONFIG, then the Docker config file; lazily, so a later broken file
    does not matter once an earlier source answered."""
    inline = env.get("DOCKER_AUTH_CONFIG")
    if inline:
        if len(inline.encode("utf-8", "surrogateescape")) > MAX_CONFIG_BYTES:
            raise FileError(
                f"DOCKER_AUTH_CONFIG: larger than {size_text(MAX_CONFIG_BYTES)}, too big for a"
                " registry config; fix or unset it"
            )
        yield _decode_config(inline, "DOCKER_AUTH_CONFIG", "fix or unset it")
    path = _docker_config_path(env)
    if path is not None:
        config = _read_config(path)
        if config is not None:
            yield config


def _docker_config_path(env: Mapping[str, str]) -> Path | None:
    """``$DOCKER_CONFIG/config.json``, else ``$HOME/.docker/config.json`` (docker/cli config)."""
    if directory := env.get("DOCKER_CONFIG"):
        return Path(directory) / "config.json"
    if home := env.get("HOME"):
        return Path(home) / ".docker" / "config.json"
    return None


def _podman_auth_files(env: Mapping[str, str]) -> Iterator[_Config]:
    for path in _podman_auth_paths(env):
        config = _read_config(path)
        if config is not None:
            yield config


def _podman_auth_paths(env: Mapping[str, str]) -> list[Path]:
    """The auth.json files containers/image reads (pkg/docker/config getAuthFilePaths)."""
    if explicit := env.get("REGISTRY_AUTH_FILE"):
        return [Path(explicit)]
    paths: list[Path] = []
    if runtime_dir := env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(runtime_dir) / "containers" / "auth.json")
    config_home = env.get("XDG_CONFIG_HOME") or (
        str(Path(env["HOME"]) / ".config") if env.get("HOME") else ""
    )
    if config_home:
        fallback = Path(config_home) / "containers" / "auth.json"
        if fallback not in paths:
            paths.append(fallback)
    return paths


def _read_config(path: Path) -> _Config | None:
    """The decoded config at *path*, or None when there is no such file.

    A FIFO or a link to /dev/zero is refused, as is a file over MAX_CONFIG_BYTES: reading
    either would hang pin or fill its memory.
    """
    try:
        raw = read_regular(path, MAX_CONFIG_BYTES, "a registry config", "fix or remove it")
    except (FileNotFoundError, NotADirectoryError):
        return None
    text: str | None = None
    # Raised below, not from here: a UnicodeDecodeError keeps the file's bytes.
    with contextlib.suppress(UnicodeDecodeError):
        text = raw.decode("utf-8-sig")
    if text is None:
        raise FileError(f"{path}: not valid UTF-8; fix or remove it")
    return _decode_config(text, str(path), "fix or remove it")


def _decode_config(text: str, origin: str, remedy: str) -> _Config:
    position: tuple[int, int] | None = None
    data: object = None
    too_deep = False
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        position = (e.lineno, e.colno)  # e.doc is the whole file, secrets included
    except RecursionError:  # [[[[... a thousand levels deep: Python's json gives up
        too_deep = True
    if too_deep:
        raise FileError(f"{origin}: JSON nested too deeply to be a registry config; {remedy}")
    if position is not None:
        line, column = position
        raise FileError(f"{origin}: not valid JSON (line {line}, column {column}); {remedy}")
    if not isinstance(data, dict):
        raise FileError(f"{origin}: not a JSON object; {remedy}")
    return _Config(origin=origin, data=data)


# --- matching keys to a registry ---------------------------------------------------------


def _canonical_host(name: str) -> str:
    """The host (port kept) a registry name or config key stands for; ``docker.io`` for Hub.

    Keys have been written as URLs (``https://index.docker.io/v1/``, ``https://cgr.dev/``);
    docker/cli ConvertToHostname drops the scheme and everything after the host.
    """
    host = _SCHEME_RE.sub("", name, count=1).partition("/")[0].lower()
    return _DOCKER_HUB if host in _HUB_ALIASES else host


def _server_address(host: str) -> str:
    """What Docker passes to a credential helper and uses as the auths key for *host*."""
    return _HUB_SERVER_ADDRESS if host == _DOCKER_HUB else host


def _key_scope(key: str) -> tuple[str, str]:
    """``(host, namespace)`` of a containers auth.json key.

    containers/image normalizeAuthFileKey: a key with a scheme is a legacy URL and names only
    its host; without one, what follows the host is a repository namespace.
    """
    if _SCHEME_RE.match(key):
        return _canonical_host(key), ""
    host, _, namespace = key.partition("/")
    return _canonical_host(host), namespace.strip("/")


def _in_namespace(repository: str, namespace: str) -> bool:
    """Whether *repository* is *namespace* or below it, on path-component boundaries."""
    return not namespace or repository == namespace or repository.startswith(namespace + "/")


def _matching_entries(
    section: dict[str, object], host: str, repository: str | None
) -> list[tuple[str, object]]:
    """The ``(key, value)`` pairs of *section* that apply, best first.

    With *repository* None (Docker's files) keys match by host alone; otherwise namespaced
    keys count too, the one with most path components first. Among equals, a key spelled
    exactly as Docker or podman write it comes first, then file order.
    """
    exact_keys = {host, _server_address(host)}
    ranked: list[tuple[int, bool, str, object]] = []
    for key, value in section.items():
        if repository is None:
            key_host, namespace = _canonical_host(key), ""
        else:
            key_host, namespace = _key_scope(key)
        if key_host != host or not _in_namespace(repository or "", namespace):
            continue
        depth = namespace.count("/") + 1 if namespace else 0
        ranked.append((depth, key in exact_keys, key, value))
    ranked.sort(key=lambda item: (-item[0], not item[1]))  # stable: file order among equals
    return [(key, value) for _, _, key, value in ranked]


# --- reading one config ------------------------------------------------------------------


def _from_docker_config(
    config: _Config, host: str, env: Mapping[str, str], answers: HelperAnswers
) -> Credential | None:
    """docker/cli ResolveAuthConfig: credHelpers, else credsStore, else auths."""
    helper = _helper_for(config, host, sections=("credHelpers", "credsStore"))
    if helper is not None:
        return answers.ask(helper[1], helper[0], config.origin, host, env)
    return _from_auths(config, host, repository=None)


def _from_podman_auth_file(
    config: _Config, host: str, repository: str, env: Mapping[str, str], answers: HelperAnswers
) -> Credential | None:
    """containers/image findCredentialsInFile: credHelpers, else the most specific auths key.

    containers-auth.json(5) has no credsStore, so it is not read here.
    """
    helper = _helper_for(config, host, sections=("credHelpers",))
    if helper is not None:
        return answers.ask(helper[1], helper[0], config.origin, host, env)
    return _from_auths(config, host, repository)


def _helper_for(config: _Config, host: str, sections: tuple[str, ...]) -> tuple[str, str] | None:
    """``(section, helper name)`` configured for *host*, or None; an empty name is none."""
    if "credHelpers" in sections:
        for _, name in _matching_entries(_object_field(config, "credHelpers"), host, None):
            if name:
                return "credHelpers", _helper_name(name, config, "credHelpers")
    store = config.data.get("credsStore")
    if "credsStore" in sections and store:
        return "credsStore", _helper_name(store, config, "credsStore")
    return None


def _helper_name(value: object, config: _Config, section: str) -> str:
    if not isinstance(value, str):
        raise FileError(f"{config.origin}: {section} names a helper with a non-string value")
    return value


def _object_field(config: _Config, name: str) -> dict[str, object]:
    value = config.data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FileError(f"{config.origin}: {name!r} is not a JSON object; fix or remove it")
    return value


def _from_auths(config: _Config, host: str, repository: str | None) -> Credential | None:
    for key, entry in _matching_entries(_object_field(config, "auths"), host, repository):
        credential = _credential_from_entry(entry, key, config.origin)
        if credential is not None:
            return credential
    return None


_ENTRY_FIELDS = ("auth", "username", "password", "identitytoken", "registrytoken")


def _credential_from_entry(entry: object, key: str, origin: str) -> Credential | None:
    """The credential in one ``auths`` entry; None for an empty one like ``{}``."""
    where = f"{origin}: auths entry {key!r}"
    if not isinstance(entry, dict):
        raise FileError(f"{where} is not a JSON object; fix or remove it")
    fields = {name: _string_field(entry, name, where) for name in _ENTRY_FIELDS}
    source = f"auths in {origin} ({key})"
    if fields["registrytoken"]:
        return Credential("registry_token", None, fields["registrytoken"], source)
    if fields["identitytoken"]:
        return Credential("identity_token", None, fields["identitytoken"], source)
    if fields["auth"]:
        username, password = _decode_basic_auth(fields["auth"], where)
    else:
        username, password = fields["username"], fields["password"]
    if not username and not password:
        return None
    return Credential("basic", username, password, source)


def _string_field(entry: dict[str, object], name: str, where: str) -> str:
    value = entry.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FileError(f"{where}: {name!r} is not a string; fix or remove it")
    return value


def _decode_basic_auth(value: str, where: str) -> tuple[str, str]:
    """``user:password`` from base64, split at the first colon as docker/cli does.

    A password may contain ':'; a user name may not (RFC 7617).
    """
    decoded: str | None = None
    # Raised below, not from here: a UnicodeDecodeError keeps the decoded bytes.
    with contextlib.suppress(binascii.Error, UnicodeDecodeError):
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    if decoded is None or ":" not in decoded:
        raise FileError(f"{where}: 'auth' is not base64 of 'user:password'; fix it or log in again")
    username, _, password = decoded.partition(":")
    return username, password


# --- credential helpers ------------------------------------------------------------------


def _ask_helper(
    name: str, section: str, origin: str, host: str, env: Mapping[str, str]
) -> Credential | None:
    """Run ``docker-credential-<name> get`` (docker-credential-helpers' protocol).

    None when the helper has no credential for *host*.
    """
    program = f"docker-credential-{name}"
    helper = f"credential helper {program} (from {origin})"
    # The name comes from a file anyone who can write the config controls; a path in it
    # would run an arbitrary program instead of one found on PATH.
    if not _HELPER_NAME_RE.fullmatch(name):
        raise AuthError(
            f"credential helper name {name!r} in {section} of {origin} is not a plain name "
            "(letters, digits, '.', '_', '-'); refusing to run it"
        )
    executable = shutil.which(program, path=env.get("PATH", os.defpath))
    if executable is None:
        raise AuthError(f"{helper} is not installed or not on PATH")
    code, stdout, stderr = _run_helper([executable, "get"], _server_address(host), env, helper)
    if code is None:
        raise AuthError(f"{helper} did not answer for {host} within {HELPER_TIMEOUT_SECONDS:g} s")
    if code != 0:
        output = (stdout + stderr).decode("utf-8", "replace")
        if _NOT_FOUND_TEXT in output.lower():
            return None
        # The helper's output is not quoted: it may echo the credential.
        raise AuthError(f"{helper} failed for {host} (exit code {code})")
    answer = _helper_answer(stdout)
    if answer is None:
        raise AuthError(f"{helper} gave an answer for {host} that is not the expected JSON")
    username, secret = answer
    if not secret:
        return None
    source = f"{section} in {origin} ({program})"
    if username == _TOKEN_USERNAME:
        return Credential("identity_token", None, secret, source)
    return Credential("basic", username, secret, source)


def _run_helper(
    argv: list[str], server: str, env: Mapping[str, str], helper: str
) -> tuple[int | None, bytes, bytes]:
    """Run a credential helper: its exit code (None when it took too long), stdout and stderr.

    It runs in a session of its own, so that when it takes too long, or prints more than
    MAX_HELPER_OUTPUT_BYTES, it is killed together with every process it started: a shell
    script's children would otherwise outlive it. Its output is read as it comes, capped.
    """
    deadline = time.monotonic() + HELPER_TIMEOUT_SECONDS
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as e:
        raise AuthError(f"{helper} could not be run ({e.strerror})") from None
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    outputs = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    finished = False
    try:
        with contextlib.suppress(BrokenPipeError):  # a helper need not read what it is sent
            process.stdin.write(server.encode())
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        with selectors.DefaultSelector() as selector:
            for fd in outputs:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map() and (remaining := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(remaining):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fd)
                    outputs[key.fd] += chunk
                    if len(outputs[key.fd]) > MAX_HELPER_OUTPUT_BYTES:
                        raise AuthError(
                            f"{helper} printed more than {size_text(MAX_HELPER_OUTPUT_BYTES)};"
                            " check the helper"
                        )
            timed_out = bool(selector.get_map())
        if not timed_out:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        finished = process.returncode is not None
    finally:
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # its session's group: pgid == pid
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()
    if not finished:
        return None, b"", b""
    stdout, stderr = (bytes(output) for output in outputs.values())
    return process.returncode, stdout, stderr


def _helper_answer(stdout: bytes) -> tuple[str, str] | None:
    """``(Username, Secret)`` from a helper's JSON answer, or None when it is malformed."""
    try:
        answer = json.loads(stdout)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError; the caller raises
        return None
    if not isinstance(answer, dict):
        return None
    username = answer.get("Username") or ""
    secret = answer.get("Secret") or ""
    if not isinstance(username, str) or not isinstance(secret, str):
        return None
    return username, secret
