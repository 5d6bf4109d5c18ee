"""HTTP to registries: where to send, how to authenticate, when to retry.

Every request of every resolver goes through :class:`RegistryClient`, so the
production path and the tests (which point ``--mirror`` at loopback servers) are
the same code. It implements the distribution token flow
(https://distribution.github.io/distribution/spec/auth/token/): a 401 carries a
``WWW-Authenticate`` challenge naming the token realm; the token from the realm
is reused for every later request to the same repository.

Where credentials may go (docker pull's rules, a little stricter):

* Basic credentials only to the token realm a challenge from the registry itself names
  (or, for a ``Basic`` challenge, to the registry); a registry token only to the registry;
  an identity token only in the body of a POST to the realm, never across a redirect.
* Only over https, or plain http to a loopback address; a plain http realm named by an
  https registry is refused.
* A challenge from a host the registry redirected to is not answered with credentials:
  httpx drops ``Authorization`` on a redirect to another origin, and answering that
  host's challenge would hand it the credentials anyway.
* No secret reaches a log line or an error message: they name where the credential was
  found (:attr:`Credential.source`), never what it is.

httpx errors stop here: callers see only :mod:`pinner.errors`.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import os
import random
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from pinner.credentials import Credential, find_credential
from pinner.errors import AuthError, NotFoundError, RegistryError
from pinner.limits import ATTEMPTS, BACKOFF, MAX_RETRY_WAIT
from pinner.reference import DOCKER_HUB
from pinner.registries import base_url, is_loopback

USER_AGENT = "pinner (+https://pypi.org/project/pinner/)"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_AUTH_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_ERROR_CODE_RE = re.compile(r"[A-Z][A-Z_]{1,40}")
# Token services that do not take the OAuth2 POST grant answer it with one of these.
_OAUTH_REFUSED = frozenset({400, 401, 404, 405})
# The user name docker-credential-helpers and Docker use to mark an identity token.
_TOKEN_USERNAME = "<token>"
# OpenSSL's verify codes (include/openssl/x509_vfy.h) for "no CA we trust signed this": the
# case of a registry behind a private CA, which SSL_CERT_FILE fixes.
_UNKNOWN_ISSUER = frozenset({2, 18, 19, 20, 21})

Log = Callable[[str], None]
CredentialLookup = Callable[[str, str], Credential | None]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = ATTEMPTS
    backoff: float = BACKOFF  # seconds before the first retry, doubled each time
    max_wait: float = MAX_RETRY_WAIT  # cap on any single wait, Retry-After included

    def wait(self, attempt: int, retry_after: str | None) -> float:
        seconds = _retry_after_seconds(retry_after)
        if seconds is None:
            seconds = self.backoff * (2**attempt) * (0.5 + random.random() / 2)
        return max(0.0, min(seconds, self.max_wait))


def _retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """Scheme and parameters of a ``WWW-Authenticate`` header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _AUTH_PARAM_RE.finditer(rest)
    }
    return scheme.lower(), params


def _error_code(response: httpx.Response) -> str:
    """The distribution error code of a response (``MANIFEST_UNKNOWN``), if it has a clean one."""
    try:
        errors = response.json().get("errors")
        code = errors[0].get("code")
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        return ""
    return f" {code}" if isinstance(code, str) and _ERROR_CODE_RE.fullmatch(code) else ""


def _login_hint(registry: str) -> str:
    if registry == "cgr.dev":
        return "run `docker login cgr.dev` or `chainctl auth configure-docker`"
    login = "" if registry == DOCKER_HUB else f" {registry}"
    return f"run `docker login{login}`"


@dataclass
class RegistryClient:
    """Sends registry API requests with auth, retries and a timeout, translating failures."""

    http: httpx.AsyncClient
    mirrors: Mapping[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    log: Log | None = None
    credentials: CredentialLookup = find_credential
    _auth: dict[tuple[str, str], str] = field(default_factory=dict, init=False)
    _creds: dict[tuple[str, str], Credential | None] = field(default_factory=dict, init=False)
    _locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict, init=False)
    # The last challenge each registry sent: later repositories skip the 401 round trip.
    _challenges: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict, init=False)

    def base_url(self, registry: str) -> str:
        return base_url(registry, self.mirrors)

    async def request(
        self,
        method: str,
        registry: str,
        repository: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A successful (2xx) response to ``METHOD base/path``, or a PinError saying why not."""
        url = self.base_url(registry) + path
        key = (registry, repository)
        if key not in self._auth and registry in self._challenges:
            # The registry told us how it authenticates when we asked for another of its
            # repositories: get this one's token now instead of after a 401 round trip.
            scheme, params = self._challenges[registry]
            scoped = {k: v for k, v in params.items() if k != "scope"}
            await self._authenticate_with(registry, repository, scheme, scoped, stale={})
        authenticated = False
        attempt = 0
        while True:
            sent = dict(headers or {})
            if key in self._auth:
                sent["Authorization"] = self._auth[key]
            response = await self._send(method, url, params=params, headers=sent)
            status = response.status_code
            if status == 401 and not authenticated:
                authenticated = True
                self._require_same_origin(registry, response)
                await self._authenticate(registry, repository, response, stale=sent)
                continue
            if status in _RETRY_STATUS and attempt + 1 < self.retry.attempts:
                wait = self.retry.wait(attempt, response.headers.get("Retry-After"))
                self._say(f"  retrying in {wait:.1f}s after HTTP {status}")
                await asyncio.sleep(wait)
                attempt += 1
                continue
            if response.is_success:
                return response
            raise self._failure(registry, repository, response, attempt + 1)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        data: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        started = time.monotonic()
        attempt = 0
        # A body (the refresh-token grant) must not follow a redirect: a 307/308 re-sends it,
        # to whatever host the Location names, and httpx only strips Authorization.
        follow = data is None
        while True:
            try:
                response = await self.http.request(
                    method, url, params=params, headers=headers, data=data, follow_redirects=follow
                )
            except httpx.TimeoutException as e:
                error: RegistryError = RegistryError(f"no answer from {_origin(url)} in time")
                cause: Exception = e
            except httpx.HTTPError as e:
                if (unverified := _certificate_failure(e)) is not None:
                    # The same certificate comes back on every attempt: no retry.
                    self._say(f"{method} {_display(httpx.URL(url))} -> {unverified}")
                    raise _unverified(url, unverified) from e
                error = RegistryError(f"cannot reach {_origin(url)}: {_describe(e)}")
                cause = e
            else:
                elapsed = (time.monotonic() - started) * 1000
                self._say(
                    f"{method} {_display(response.request.url)} -> {response.status_code}"
                    f" ({elapsed:.0f} ms)"
                )
                return response
            self._say(f"{method} {_display(httpx.URL(url))} -> {error}")
            attempt += 1
            if attempt >= self.retry.attempts:
                raise error from cause
            await asyncio.sleep(self.retry.wait(attempt - 1, None))

    def _failure(
        self, registry: str, repository: str, response: httpx.Response, attempts: int
    ) -> RegistryError:
        status = response.status_code
        credential = self._creds.get((registry, repository))
        if status in (401, 403) and not self._at_registry(registry, response):
            return AuthError(
                f"{registry} redirected to {_origin(str(response.url))}, which answered"
                f" HTTP {status}; pinner does not send {registry}'s credentials there"
            )
        if status == 401:
            return _unauthorised(registry, credential)
        if status == 403:
            return _denied(registry, repository, credential)
        if status == 404:
            return NotFoundError(
                f"not found (HTTP 404{_error_code(response)}): check the repository and tag"
            )
        if status == 429:
            return RegistryError(
                f"rate limited (HTTP 429) after {attempts} attempts; try again later"
            )
        tried = f" after {attempts} attempts" if status in _RETRY_STATUS else ""
        return RegistryError(f"{registry} answered HTTP {status}{_error_code(response)}{tried}")

    async def _credential(self, registry: str, repository: str) -> Credential | None:
        key = (registry, repository)
        if key not in self._creds:
            # A credential helper is a subprocess; keep it off the event loop.
            self._creds[key] = await asyncio.to_thread(self.credentials, registry, repository)
            found = self._creds[key]
            if found is not None:
                self._say(f"  using credentials for {registry} from {found.source}")
        return self._creds[key]

    async def _authenticate(
        self, registry: str, repository: str, response: httpx.Response, *, stale: Mapping[str, str]
    ) -> None:
        """Answer a 401 challenge: store the Authorization header to retry with."""
        scheme, params = _challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme in ("basic", "bearer"):
            self._challenges[registry] = (scheme, params)
        await self._authenticate_with(registry, repository, scheme, params, stale=stale)

    async def _authenticate_with(
        self,
        registry: str,
        repository: str,
        scheme: str,
        params: Mapping[str, str],
        *,
        stale: Mapping[str, str],
    ) -> None:
        key = (registry, repository)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if self._auth.get(key) not in (None, stale.get("Authorization")):
                return  # another request for this repository already renewed it
            credential = await self._credential(registry, repository)
            if scheme == "basic":
                if credential is None:
                    raise AuthError(f"this image needs credentials: {_login_hint(registry)}")
                if credential.kind != "basic":
                    raise AuthError(
                        f"{registry} asks for a user name and password, but the credentials"
                        f" from {credential.source} are a token: {_login_hint(registry)}"
                    )
                self._require_secure(self.base_url(registry), registry)
                self._auth[key] = _basic(credential.username or "", credential.secret)
            elif scheme == "bearer":
                if credential is not None and credential.kind == "registry_token":
                    self._require_secure(self.base_url(registry), registry)
                    self._auth[key] = f"Bearer {credential.secret}"
                else:
                    token = await self._token(registry, repository, params, credential)
                    self._auth[key] = f"Bearer {token}"
            else:
                raise AuthError(f"{registry} asked for unsupported authentication {scheme!r}")

    def _at_registry(self, registry: str, response: httpx.Response) -> bool:
        """Whether *response* came from the registry itself, not from where it redirected to."""
        return _origin_of(response.url) == _origin_of(httpx.URL(self.base_url(registry)))

    def _require_same_origin(self, registry: str, response: httpx.Response) -> None:
        """Refuse to answer a challenge from a host a redirect led to (see the module doc)."""
        if not self._at_registry(registry, response):
            raise AuthError(
                f"{registry} redirected to {_origin(str(response.url))}, which asks for"
                f" credentials; pinner sends {registry}'s credentials only to {registry}"
                " and its token service"
            )

    def _require_secure(self, url: str, registry: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
            raise AuthError(f"refusing to send credentials for {registry} over plain http to {url}")

    async def _token(
        self,
        registry: str,
        repository: str,
        challenge: Mapping[str, str],
        credential: Credential | None,
    ) -> str:
        realm = challenge.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AuthError(f"{registry} sent a token challenge without a usable realm")
        registry_scheme = urlsplit(self.base_url(registry)).scheme
        if parts.scheme == "http" and (
            registry_scheme == "https" or not is_loopback(parts.hostname)
        ):
            raise AuthError(
                f"{registry} names a token realm over plain http ({_origin(realm)}); refusing it"
            )
        scope = challenge.get("scope") or f"repository:{repository}:pull"
        query = {"scope": scope}
        if challenge.get("service"):
            query["service"] = challenge["service"]
        if credential is not None and credential.kind == "identity_token":
            response = await self._oauth(realm, query, credential)
        else:
            headers = {}
            if credential is not None:
                headers["Authorization"] = _basic(credential.username or "", credential.secret)
            response = await self._send("GET", realm, params=query, headers=headers)
        return self._token_from(registry, repository, response, credential)

    async def _oauth(
        self, realm: str, query: Mapping[str, str], credential: Credential
    ) -> httpx.Response:
        """Exchange an identity (refresh) token, falling back to GET where POST is refused.

        The POST is the OAuth2 refresh grant of the distribution spec
        (https://distribution.github.io/distribution/spec/auth/oauth/), as Docker sends it.
        Not every token service has it; like containerd (remotes/docker/authorizer.go) the
        token then goes to the GET endpoint as a Basic password: GCR answers the POST with
        404, Artifactory with 401, ACR with 400, and others with 405.
        """
        form = {
            **query,
            "grant_type": "refresh_token",
            "refresh_token": credential.secret,
            "client_id": "pinner",
        }
        response = await self._send("POST", realm, params=None, headers={}, data=form)
        if response.status_code in _OAUTH_REFUSED:
            headers = {"Authorization": _basic(_TOKEN_USERNAME, credential.secret)}
            response = await self._send("GET", realm, params=query, headers=headers)
        return response

    def _token_from(
        self,
        registry: str,
        repository: str,
        response: httpx.Response,
        credential: Credential | None,
    ) -> str:
        status = response.status_code
        if status == 400:
            # cgr.dev answers 400 (not 401 or 404) when the organisation does not exist.
            raise AuthError(
                f"the token service refused repository {repository} (HTTP 400):"
                " check that the organisation in the reference exists and is spelled right"
            )
        if status == 401:
            raise _unauthorised(registry, credential)
        if status == 403:
            raise _denied(registry, repository, credential)
        if not response.is_success:
            raise RegistryError(f"the token service answered HTTP {status}")
        try:
            document = response.json()
        except ValueError:
            raise RegistryError("the token service did not answer JSON") from None
        token = None
        if isinstance(document, dict):
            token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise RegistryError("the token service answered without a usable token")
        return token

    def _say(self, message: str) -> None:
        if self.log is not None:
            self.log(message)


def _unauthorised(registry: str, credential: Credential | None) -> AuthError:
    if credential is None:
        return AuthError(f"this image needs credentials: {_login_hint(registry)}")
    return AuthError(
        f"{registry} rejected the credentials from {credential.source} with HTTP 401;"
        f" log in again: {_login_hint(registry)}"
    )


def _denied(registry: str, repository: str, credential: Credential | None) -> AuthError:
    if credential is None:
        return AuthError(
            f"access denied (HTTP 403) to {repository} without credentials: {_login_hint(registry)}"
        )
    return AuthError(
        f"access denied (HTTP 403) to {repository} for the credentials from {credential.source}:"
        " they are wrong or give no pull access to it; check the name, or log in with an"
        f" account that has access: {_login_hint(registry)}"
    )


def _basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _origin_of(url: httpx.URL) -> tuple[str, str, int | None]:
    """RFC 6454's origin; httpx has already lower-cased the host and dropped a default port."""
    return url.scheme, url.host, url.port


def _display(url: httpx.URL) -> str:
    """A URL for -v: no user info (query strings here carry only scope and window)."""
    return str(url.copy_with(username=None, password=None))


def _certificate_failure(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The ssl error under an httpx.ConnectError (httpx's, from httpcore's, from ssl's)."""
    seen: BaseException | None = error
    for _ in range(8):  # bounded: a __context__ chain may, in principle, loop
        if seen is None or isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def trusted_certificates() -> ssl.SSLContext:
    """The CAs that verify registries: ``SSL_CERT_FILE``/``SSL_CERT_DIR`` if set, else certifi's.

    The variables OpenSSL and curl read, so a corporate CA is trusted the usual way. httpx reads
    them too, but differently by version: 0.27 skips an SSL_CERT_FILE that is not a file, 0.28
    raises FileNotFoundError while building the client. Here one that cannot be loaded is left
    out, and named when a certificate then fails to verify.
    """
    context, _ = _environment_certificates()
    return context or httpx.create_ssl_context(trust_env=False)


def _environment_certificates() -> tuple[ssl.SSLContext | None, str]:
    """A context from SSL_CERT_FILE and SSL_CERT_DIR, or None and why not ("" if unset)."""
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        return None, ""
    try:
        return ssl.create_default_context(cafile=cafile, capath=capath), ""
    except ssl.SSLError:
        why = "it holds no PEM certificate"
    except OSError as e:
        why = e.strerror or str(e)
    return None, f"SSL_CERT_FILE={cafile} was not used: {why}"


def _unverified(url: str, error: ssl.SSLCertVerificationError) -> RegistryError:
    reason = str(error.verify_message or error.reason or "certificate verify failed").rstrip(".")
    _, hint = _environment_certificates()
    if hint:
        hint = f"; {hint}"
    elif error.verify_code in _UNKNOWN_ISSUER:
        hint = (
            "; if your organisation's CA signs it, set SSL_CERT_FILE to that CA's certificate (PEM)"
        )
    return RegistryError(
        f"the TLS certificate of {_origin(url)} could not be verified ({reason}){hint}"
    )


def _describe(error: httpx.HTTPError) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]
