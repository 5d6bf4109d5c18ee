"""``pin`` over HTTPS, the production path, against the fake cgr.dev on loopback.

The fake serves TLS with a certificate for 127.0.0.1 and localhost, signed by a CA made for
the test session. pin trusts that CA as users trust a corporate one: through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import PYTHON_NEW, Ran, run_pin
from tests.fakeregistry import (
    Certificates,
    FakeRegistry,
    make_certificates,
    nightly_digest,
    running_registry,
)

PUBLIC = "cgr.dev/chainguard/python:latest"
PRIVATE = "cgr.dev/myorg/app:1.2"
USER = "alice"
PASSWORD = "pw-Secret-0c4e1b"


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def secure(certificates: Certificates) -> Iterator[FakeRegistry]:
    """cgr.dev over https: the public seed history, and a private ``myorg``."""
    with running_registry(tls=certificates) as registry:
        registry.load_fixture("python-latest.json")
        registry.add_private("myorg", USER, PASSWORD)
        registry.add_nightly("myorg/app", "1.2", 3, datetime(2024, 1, 1, tzinfo=UTC))
        yield registry


@pytest.fixture
def untrusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the default CA bundle (certifi), which does not know the test CA."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


@pytest.fixture
def trusted(untrusted: None, certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca_file))


def https_mirror(registry: FakeRegistry, host: str = "127.0.0.1") -> list[str]:
    assert registry.url.startswith("https://")
    port = registry.host.rpartition(":")[2]
    return ["--mirror", f"cgr.dev=https://{host}:{port}"]


def dockerfile(tmp_path: Path, image: str) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(f"FROM {image}\n")
    return path


def login(home: Path) -> None:
    """``docker login cgr.dev`` as alice."""
    config = home / ".docker" / "config.json"
    config.parent.mkdir(parents=True)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {"cgr.dev": {"auth": auth}}}))


def error_line(ran: Ran, path: Path, image: str) -> str:
    """The one error line about *image*; nothing was written."""
    assert ran.code == 2, ran.stderr
    assert path.read_text() == f"FROM {image}\n"
    assert "Traceback" not in ran.stderr
    lines = [line for line in ran.stderr.splitlines() if image in line]
    assert len(lines) == 1, ran.stderr
    return lines[0]


@pytest.mark.usefixtures("trusted")
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_pins_over_https_with_the_ca_from_ssl_cert_file(
    secure: FakeRegistry, tmp_path: Path, host: str
) -> None:
    path = dockerfile(tmp_path, PUBLIC)
    ran = run_pin(*https_mirror(secure, host), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {PUBLIC}@{PYTHON_NEW}\n"
    # The ping went over TLS too, with the same CA: no lookup needed its own 401.
    assert (secure.requests[0].path, secure.requests[0].status) == ("/v2/", 401)
    [token] = secure.requests_to("/token")
    assert token.status == 200
    history = secure.requests_to("/_chainguard/history/")
    assert {r.status for r in history} == {200}
    assert all((r.authorization or "").startswith("Bearer fake-") for r in history)


@pytest.mark.usefixtures("untrusted")
def test_a_certificate_that_cannot_be_verified_is_one_error_line(
    secure: FakeRegistry, tmp_path: Path
) -> None:
    path = dockerfile(tmp_path, PUBLIC)
    ran = run_pin(*https_mirror(secure), path)
    line = error_line(ran, path, PUBLIC)
    assert f"the TLS certificate of {secure.url} could not be verified" in line
    assert "SSL_CERT_FILE" in line
    # A certificate does not get better by asking again: no retries, no request answered.
    assert secure.requests == []


def test_an_unreadable_ssl_cert_file_is_named_not_a_crash(
    secure: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx 0.28 itself raises FileNotFoundError building the client; 0.27 ignores the variable.
    missing = tmp_path / "no-such-ca.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(missing))
    path = dockerfile(tmp_path, PUBLIC)
    line = error_line(run_pin(*https_mirror(secure), path), path, PUBLIC)
    assert "could not be verified" in line
    assert f"SSL_CERT_FILE={missing} was not used: No such file or directory" in line


def test_a_certificate_for_another_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = make_certificates(tmp_path / "tls", ["registry.example"])
    monkeypatch.setenv("SSL_CERT_FILE", str(elsewhere.ca_file))  # a trusted CA: only the name
    path = dockerfile(tmp_path, PUBLIC)
    with running_registry(tls=elsewhere) as registry:
        ran = run_pin(*https_mirror(registry), path)
        seen = registry.requests
    line = error_line(ran, path, PUBLIC)
    assert "could not be verified (IP address mismatch" in line
    assert "SSL_CERT_FILE" not in line  # no CA to add would help
    assert seen == []


@pytest.mark.usefixtures("trusted")
def test_an_https_registry_naming_a_plain_http_realm_is_refused(
    secure: FakeRegistry, isolated_environment: Path, tmp_path: Path
) -> None:
    login(isolated_environment)
    path = dockerfile(tmp_path, PRIVATE)
    with running_registry() as realm:
        secure.realm_url = f"{realm.url}/token"
        ran = run_pin(*https_mirror(secure), path)
        realm_url, seen_by_realm = realm.url, realm.requests
    line = error_line(ran, path, PRIVATE)
    assert f"names a token realm over plain http ({realm_url}); refusing it" in line
    assert seen_by_realm == []
    assert secure.requests_to("/token") == []
    assert PASSWORD not in ran.stderr


@pytest.mark.usefixtures("trusted")
def test_credentials_go_to_the_realm_over_https(
    secure: FakeRegistry, isolated_environment: Path, tmp_path: Path
) -> None:
    login(isolated_environment)
    path = dockerfile(tmp_path, PRIVATE)
    ran = run_pin(*https_mirror(secure), path)
    assert ran.code == 0, ran.stderr
    assert path.read_text() == f"FROM {PRIVATE}@{nightly_digest('myorg/app', '1.2', 2)}\n"
    [token] = secure.requests_to("/token")
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert (token.authorization, token.status) == (f"Basic {basic}", 200)
    elsewhere = [r for r in secure.requests if r.path != "/token"]
    assert not any((r.authorization or "").startswith("Basic") for r in elsewhere)
