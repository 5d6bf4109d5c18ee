"""HTTP to registries: where to send, how to authenticate, when to retry.

Every request of every resolver goes through :class:`RegistryClient`, so the
production path and the tests (which point ``--mirror`` at loopback servers) are
the same code. It implements the distribution token flow
(https://distribution.github.io/distribution/spec/auth/token/): a 401 carries a
``WWW-Authenticate`` challenge naming the token realm; the token from the realm
is reused for every later request to the same repository. A registry's challenge can
also come from its ``GET /v2/``, asked while the run started (:mod:`pinner.resolve.ping`,
sent the same way with ``--mirror``): then no lookup is answered 401 at all. Those are the
requests not sent from here, with the first lookups of a registry that answered it 200, sent
on the ping's thread: a request sent from here that is the same as one of them takes its
answer (:mod:`pinner.resolve.http11`), and goes through the rest of this module as any.

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
  found (:attr:`Credential.source`), never what it is. A secret that cannot go into a header
  as it is (a control character, a pasted newline, a token that is not ASCII) is refused
  before any header is built, and not retried: httpx would refuse it with a message that
  quotes the header.

Retries (:class:`RetryPolicy`): a 429 or 5xx answer, a timeout, a refused, reset or dropped
connection, up to ``ATTEMPTS`` exchanges in all, one budget for both kinds. Never retried,
because the next attempt cannot differ: a name that does not resolve, no route, a certificate
that does not verify, a 4xx other than 429, too many redirects, a body over its cap. Once a
registry has failed below HTTP on every attempt (:class:`UnreachableError`), nothing more is
asked of it in the run. So one request takes at most ``(ATTEMPTS + 1) x timeout`` (the one is
the re-send that answers a 401) ``+ (ATTEMPTS - 1) x MAX_RETRY_WAIT``, and a token request, when
one is needed, at most ``ATTEMPTS x timeout`` and its backoff.

The exchange itself (deadline, redirects, size caps) is :mod:`pinner.resolve.transport`.
httpx errors stop there and here: callers see only :mod:`pinner.errors`.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

import httpx

from pinner.errors import AuthError, NotFoundError, PinError, RegistryError, UnreachableError
from pinner.limits import (
    ATTEMPTS,
    BACKOFF,
    MAX_ERROR_BODY_BYTES,
    MAX_RETRY_WAIT,
    MAX_SCOPES_PER_TOKEN,
    MAX_TOKEN_BYTES,
    REQUEST_TIMEOUT,
)
from pinner.reference import DOCKER_HUB
from pinner.registries import base_url, is_loopback
from pinner.resolve.transport import (
    Body,
    NetworkFailure,
    Params,
    Reply,
    exchange,
    origin,
    same_origin,
)

if TYPE_CHECKING:
    from pinner.credentials import Credential, HelperAnswers
    from pinner.resolve.ping import Ping

USER_AGENT = "pinner (+https://pypi.org/project/pinner/)"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_AUTH_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_ERROR_CODE_RE = re.compile(r"[A-Z][A-Z_]{1,40}")
# Token services that do not take the OAuth2 POST grant answer it with one of these.
_OAUTH_REFUSED = frozenset({400, 401, 404, 405})
# The user name docker-credential-helpers and Docker use to mark an identity token.
_TOKEN_USERNAME = "<token>"
# Delta-seconds of Retry-After (RFC 9110 10.2.3): ASCII digits only; str.isdigit() takes "²".
_DELTA_SECONDS_RE = re.compile(r"[0-9]{1,10}")
# What a bearer token may hold: RFC 6750's b64token is narrower, but any visible ASCII
# character can go into a header as it is; a space, a control character or non-ASCII cannot.
_VISIBLE_ASCII_RE = re.compile(r"[\x21-\x7e]+")
_TOKEN_ANSWER = Body("a token answer", MAX_TOKEN_BYTES)
_ANSWER = Body("an answer", MAX_ERROR_BODY_BYTES)
_UNREACHABLE_HINT = "check the network or proxy, or use --mirror; `pin --check` works offline"
_SLOW_HINT = "check the network or proxy, or raise --timeout; `pin --check` works offline"

Log = Callable[[str], None]
CredentialLookup = Callable[[str, str], "Credential | None"]


# NamedTuples and plain classes, not dataclasses: see Resolution in pinner/resolve/__init__.py.
class RetryPolicy(NamedTuple):
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
    if _DELTA_SECONDS_RE.fullmatch(value):
        return float(value)
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, OSError, IndexError):
        return None  # not a date either: fall back to our own backoff


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """Scheme and parameters of a ``WWW-Authenticate`` header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _AUTH_PARAM_RE.finditer(rest)
    }
    return scheme.lower(), params


def _error_code(reply: Reply) -> str:
    """The distribution error code of an answer (``MANIFEST_UNKNOWN``), if it has a clean one."""
    try:
        errors = reply.json().get("errors")  # type: ignore[attr-defined]
        code = errors[0].get("code")
    except (ValueError, RecursionError, AttributeError, IndexError, KeyError, TypeError):
        return ""
    return f" {code}" if isinstance(code, str) and _ERROR_CODE_RE.fullmatch(code) else ""


def _login_hint(registry: str) -> str:
    if registry == "cgr.dev":
        return "run `docker login cgr.dev` or `chainctl auth configure-docker`"
    login = "" if registry == DOCKER_HUB else f" {registry}"
    return f"run `docker login{login}`"


class _Attempts:
    """What is left of one request's attempts, shared by its network and HTTP retries."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    @property
    def used(self) -> int:
        return self.total - self.left


class RegistryClient:
    """Sends registry API requests with auth, retries and a timeout, translating failures."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        mirrors: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        log: Log | None = None,
        credentials: CredentialLookup | None = None,  # by default, where docker pull looks
        timeout: float = REQUEST_TIMEOUT,  # seconds for one whole exchange (see transport)
        # Opens connections ahead to a URL's origin, as many as said, when the next request
        # to it is sent or at once (see http11.preconnect).
        preconnect: Callable[[str, int, bool], None] | None = None,
        # Each registry's GET /v2/, asked while the run started (see pinner.resolve.ping).
        pings: Mapping[str, Ping] | None = None,
    ) -> None:
        self.http = http
        self.mirrors: Mapping[str, str] = mirrors or {}
        self.retry = retry or RetryPolicy()
        self.log = log
        self.credentials = credentials or self._find_credential
        # What credential helpers answered in this run (made by the first lookup).
        self._helper_answers: HelperAnswers | None = None
        self._helper_answers_made = threading.Lock()
        self.timeout = timeout
        self.preconnect = preconnect
        self.pings: Mapping[str, Ping] = pings or {}
        self._auth: dict[tuple[str, str], str] = {}
        self._creds: dict[tuple[str, str], Credential | None] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # The last challenge each registry sent: later repositories skip the 401 round trip.
        self._challenges: dict[str, tuple[str, dict[str, str]]] = {}
        # Registries that failed below HTTP on every attempt: asked nothing more in this run.
        self._down: dict[str, UnreachableError] = {}
        # Set once a registry has answered its first request: until then the others wait, so
        # that one 401 (not one per repository) tells how the registry authenticates.
        self._answered: dict[str, asyncio.Event] = {}
        # The repositories the run will ask each registry about (see expect), and the
        # registries whose tokens for them have been asked for together already (or are being).
        self._expected: dict[str, list[str]] = {}
        self._batches: dict[str, asyncio.Lock] = {}
        self._lookups: dict[str, int] = {}

    def expect(self, registry: str, repositories: Iterable[str], lookups: int = 0) -> None:
        """Say which repositories of *registry* the run will ask about: once its challenge is
        known, one token request covers those that share a credential (see _batch_tokens).
        *lookups*, how many lookups will be in flight together after the registry's first
        request, is how many connections to open while that request is out."""
        known = self._expected.setdefault(registry, [])
        known.extend(r for r in dict.fromkeys(repositories) if r not in known)
        self._lookups[registry] = self._lookups.get(registry, 0) + lookups

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
        body: Body = _ANSWER,
    ) -> Reply:
        """A successful (2xx) answer to ``METHOD base/path``, its body no larger than *body*
        allows, or a PinError saying why not."""
        answered = self._answered.get(registry)
        if answered is None:
            answered = self._answered[registry] = asyncio.Event()
            try:
                pinged = await self._pinged(registry)
                self._open_ahead(registry, pinged)
                if pinged:
                    answered.set()  # how the registry authenticates is known: all go at once
                first = None if pinged else answered
                return await self._request(
                    method, registry, repository, path, params, headers, body, first, pinged
                )
            finally:
                answered.set()
        await answered.wait()
        return await self._request(method, registry, repository, path, params, headers, body, None)

    def _open_ahead(self, registry: str, pinged: bool | None) -> None:
        """Have the connections of the registry's lookups made while they wait: for this
        first request's answer (its connection is taken again by one of them), or for their
        tokens. After a 200 they all go at once, each connecting."""
        lookups = self._lookups.get(registry, 0)
        if self.preconnect is None or lookups < 2 or (pinged and registry not in self._challenges):
            return
        url = self.base_url(registry)
        if not pinged:
            self.preconnect(url, lookups - 1, False)
            return
        realm = self._challenges[registry][1].get("realm", "")
        try:
            here = same_origin(realm, url)
        except (ValueError, httpx.InvalidURL):  # not a URL: the token request says so
            here = True
        # A realm on the registry's host: the token request's connection is taken again, and
        # the others are opened once it is sent. Elsewhere (Docker Hub's auth.docker.io),
        # nothing goes to the registry before the lookups: all are opened now.
        self.preconnect(url, lookups - 1 if here else lookups, not here)

    async def _pinged(self, registry: str) -> bool | None:
        """What the registry's ping (:mod:`pinner.resolve.ping`) told: True if how it
        authenticates (its challenge is kept, as a 401's would be) or that it does not; False
        if it timed out (its time was the first request's first attempt); None if there was
        none, it told nothing, or it failed otherwise (the first request will meet the same
        failure, and say what it is)."""
        ping = self.pings.get(registry)
        if ping is None:
            return None
        try:
            answer = await ping.answer()
        except OSError as e:
            late = isinstance(e, TimeoutError)
            why = f"no answer within {self.timeout:g} s" if late else e.strerror or type(e).__name__
            self._say(f"GET {ping.url} -> {why} (asked at start-up)")
            return False if late else None
        if answer is None:
            self._say(f"GET {ping.url} -> not plain HTTP/1.1 (asked at start-up)")
            return None
        elapsed = answer.elapsed * 1000
        self._say(f"GET {ping.url} -> {answer.status} ({elapsed:.0f} ms, asked at start-up)")
        if answer.status == 200:
            return True
        # Only Bearer: it has an anonymous token for public repositories, while a Basic
        # challenge from /v2/ would fail every lookup without credentials untried.
        scheme, params = _challenge(answer.challenge)
        if answer.status == 401 and scheme == "bearer" and "realm" in params:
            self._challenges[registry] = (scheme, params)
            return True
        return None

    async def _request(
        self,
        method: str,
        registry: str,
        repository: str,
        path: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        body: Body,
        first: asyncio.Event | None,
        pinged: bool | None = None,
    ) -> Reply:
        """:meth:`request`; *first*, for a registry's first request, is set once it answered;
        *pinged* False when that request's ping timed out, which was its first attempt."""
        url = self.base_url(registry) + path
        key = (registry, repository)
        if key not in self._auth and registry in self._challenges:
            # The registry told us how it authenticates when we asked for another of its
            # repositories: get this one's token now instead of after a 401 round trip.
            scheme, challenge = self._challenges[registry]
            scoped = {k: v for k, v in challenge.items() if k != "scope"}
            await self._batch_tokens(registry, scheme, scoped)
            if key not in self._auth:
                await self._authenticate_with(registry, repository, scheme, scoped, stale={})
        authenticated = False
        # One budget for network failures and 429/5xx answers together: a request is at most
        # ATTEMPTS exchanges (and the one re-send that answers a 401 challenge).
        attempts = _Attempts(self.retry.attempts)
        if pinged is False:
            attempts.left -= 1  # at least one exchange is still sent (_send)
        while True:
            sent = dict(headers or {})
            if key in self._auth:
                sent["Authorization"] = self._auth[key]
            response = await self._send(
                method,
                url,
                registry=registry,
                body=body,
                params=params,
                headers=sent,
                attempts=attempts,
            )
            status = response.status
            if status == 401 and not authenticated:
                authenticated = True
                attempts.left += 1  # answering the challenge is not a retry
                self._require_same_origin(registry, response)
                scheme, challenge = self._learn_challenge(registry, response)
                if first is not None:
                    first.set()  # the others can get their tokens now, alongside this one's
                if key not in self._auth:
                    # A token asked for together with others' is the one this request sent
                    # again only if the service granted it (it may grant fewer scopes than asked
                    # for): a 401 with it falls through to this repository's own token.
                    await self._batch_tokens(registry, scheme, challenge)
                if self._auth.get(key) in (None, sent.get("Authorization")):
                    await self._authenticate_with(
                        registry, repository, scheme, challenge, stale=sent
                    )
                continue
            if first is not None:
                first.set()
            if status in _RETRY_STATUS and attempts.left > 0:
                wait = self.retry.wait(attempts.used - 1, response.headers.get("Retry-After"))
                self._say(f"  retrying in {wait:.1f}s after HTTP {status}")
                await asyncio.sleep(wait)
                continue
            if response.ok:
                return response
            raise self._failure(registry, repository, response, attempts.used)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        registry: str,
        body: Body,
        params: Params | None,
        headers: dict[str, str],
        data: Mapping[str, str] | None = None,
        attempts: _Attempts | None = None,
    ) -> Reply:
        """One exchange, tried again after a network failure that may go differently, while
        *attempts* (by default a budget of its own) lasts."""
        who = f"the token service of {registry}" if body is _TOKEN_ANSWER else registry
        budget = attempts or _Attempts(self.retry.attempts)
        while True:
            if registry in self._down:
                raise UnreachableError(str(self._down[registry]), registry)
            budget.left -= 1
            try:
                return await exchange(
                    self.http,
                    method,
                    url,
                    registry=registry,
                    who=who,
                    body=body,
                    timeout=self.timeout,
                    params=params,
                    headers=headers,
                    data=data,
                    log=self.log,
                )
            except UnreachableError as e:
                self._say(f"{method} {origin(url)} -> {e}")
                self._down.setdefault(registry, e)
                raise
            except NetworkFailure as e:
                failure = e
            self._say(f"{method} {origin(url)} -> {failure}")
            if not failure.retry or budget.left <= 0:
                tries = f" ({budget.used} attempts)" if budget.used > 1 else ""
                hint = _SLOW_HINT if failure.timed_out else _UNREACHABLE_HINT
                error = UnreachableError(
                    f"cannot reach {registry}: {failure}{tries}; {hint}", registry
                )
                self._down.setdefault(registry, error)
                raise error
            await asyncio.sleep(self.retry.wait(budget.used - 1, None))

    def _failure(
        self, registry: str, repository: str, response: Reply, attempts: int
    ) -> RegistryError:
        status = response.status
        credential = self._creds.get((registry, repository))
        if status in (401, 403) and not self._at_registry(registry, response):
            return AuthError(
                f"{registry} redirected to {origin(response.url)}, which answered"
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

    def _find_credential(self, registry: str, repository: str) -> Credential | None:
        """:func:`pinner.credentials.find_credential`, with the helper answers of this run
        (each helper runs once a host). Called on a worker thread (see _credential), and the
        module imported there when first called: a run whose registries ask for no
        credentials never pays for it, and one that does pays once an answer has asked."""
        from pinner.credentials import HelperAnswers, find_credential

        with self._helper_answers_made:
            if self._helper_answers is None:
                self._helper_answers = HelperAnswers()
        return find_credential(registry, repository, answers=self._helper_answers)

    async def _credential(self, registry: str, repository: str) -> Credential | None:
        key = (registry, repository)
        if key not in self._creds:
            # A credential helper is a subprocess; keep it off the event loop.
            found = await asyncio.to_thread(self.credentials, registry, repository)
            self._remember(registry, repository, found)
        return self._creds[key]

    async def _credentials_or_none(
        self, registry: str, repositories: list[str]
    ) -> list[tuple[bool, Credential | None]]:
        """Whether the credential of each repository could be looked up, and what it is.
        Those not known yet are looked up one after another on one worker thread: a thread
        each cost more than the lookups (20 repositories with no config: their token request
        went ~4 ms sooner), and a helper runs once a host anyway (HelperAnswers)."""
        missing = [r for r in repositories if (registry, r) not in self._creds]

        def look_up() -> list[Credential | PinError | None]:
            found: list[Credential | PinError | None] = []
            for repository in missing:
                try:
                    found.append(self.credentials(registry, repository))
                except PinError as e:  # its own request looks it up again, and says why
                    found.append(e)
            return found

        if missing:
            for repository, found in zip(missing, await asyncio.to_thread(look_up), strict=True):
                if not isinstance(found, PinError):
                    self._remember(registry, repository, found)
        known = self._creds
        return [((registry, r) in known, known.get((registry, r))) for r in repositories]

    def _remember(self, registry: str, repository: str, found: Credential | None) -> None:
        if (registry, repository) in self._creds:
            return  # looked up meanwhile by another request
        self._creds[registry, repository] = found
        if found is not None:
            self._say(f"  using credentials for {registry} from {found.source}")

    def _learn_challenge(self, registry: str, response: Reply) -> tuple[str, dict[str, str]]:
        """The scheme and parameters of a 401's challenge, kept for the registry's other
        repositories."""
        scheme, params = _challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme in ("basic", "bearer"):
            self._challenges[registry] = (scheme, params)
        return scheme, params

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
                    raise AuthError(f"{_MISSING_OR_PRIVATE} {_login_hint(registry)}")
                if credential.kind != "basic":
                    raise AuthError(
                        f"{registry} asks for a user name and password, but the credentials"
                        f" from {credential.source} are a token: {_login_hint(registry)}"
                    )
                self._require_secure(self.base_url(registry), registry)
                self._auth[key] = _basic_from(registry, credential)
            elif scheme == "bearer":
                if credential is not None and credential.kind == "registry_token":
                    self._require_secure(self.base_url(registry), registry)
                    self._auth[key] = f"Bearer {_sendable(registry, credential)}"
                else:
                    token = await self._token(registry, repository, params, credential)
                    self._auth[key] = f"Bearer {token}"
            else:
                raise AuthError(f"{registry} asked for unsupported authentication {scheme!r}")

    async def _batch_tokens(self, registry: str, scheme: str, challenge: Mapping[str, str]) -> None:
        """Tokens for the expected repositories of *registry*, several scopes a request.

        The token spec allows several ``scope=`` parameters in one request
        (https://distribution.github.io/distribution/spec/auth/token/, "Requesting a Token"),
        so after a registry's first challenge the run's other repositories need one token
        round trip in all, not one each. Only repositories whose credential is the same (most
        often none: anonymous) share a request, so that no credential goes with a scope it was
        not found for. Best effort, tried once per registry: a service that refuses the request
        or grants only some scopes leaves each repository left out to its own token, as without
        this (its errors are then the ones a user sees).
        """
        if scheme != "bearer" or registry not in self._expected:
            return
        lock = self._batches.get(registry)
        if lock is not None:
            async with lock:  # the batch being asked for: wait for its tokens
                return
        lock = self._batches[registry] = asyncio.Lock()
        async with lock:
            waiting = [r for r in self._expected[registry] if (registry, r) not in self._auth]
            groups: dict[Credential | None, list[str]] = {}
            for repository, (found, credential) in zip(
                waiting, await self._credentials_or_none(registry, waiting), strict=True
            ):
                if not found:
                    continue  # its lookup failed: its own request says why
                if credential is None or credential.kind == "basic":
                    groups.setdefault(credential, []).append(repository)
            requests = [
                self._batch_token(
                    registry, challenge, credential, group[i : i + MAX_SCOPES_PER_TOKEN]
                )
                for credential, group in groups.items()
                if len(group) > 1
                for i in range(0, len(group), MAX_SCOPES_PER_TOKEN)
            ]
            await asyncio.gather(*requests)

    async def _batch_token(
        self,
        registry: str,
        challenge: Mapping[str, str],
        credential: Credential | None,
        repositories: list[str],
    ) -> None:
        """One token for all of *repositories*; on any failure, none (each asks on its own)."""
        scopes = [f"repository:{r}:pull" for r in repositories]
        try:
            token = await self._token(registry, repositories[0], challenge, credential, scopes)
        except PinError as e:
            self._say(f"  one token for {len(scopes)} repositories refused ({e}); one each")
            return
        for repository in repositories:
            self._auth.setdefault((registry, repository), f"Bearer {token}")

    def _at_registry(self, registry: str, response: Reply) -> bool:
        """Whether *response* came from the registry itself, not from where it redirected to."""
        return same_origin(response.url, self.base_url(registry))

    def _require_same_origin(self, registry: str, response: Reply) -> None:
        """Refuse to answer a challenge from a host a redirect led to (see the module doc)."""
        if not self._at_registry(registry, response):
            raise AuthError(
                f"{registry} redirected to {origin(response.url)}, which asks for"
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
        scopes: list[str] | None = None,
    ) -> str:
        """A token for *repository* (or for every one of *scopes*) from the challenge's realm."""
        realm = challenge.get("realm", "")
        try:
            parts = urlsplit(realm)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and realm.isascii()
            usable = usable and parts.port != 0  # .port raises ValueError past 65535
        except ValueError:
            usable = False
        if not usable:
            raise AuthError(f"{registry} sent a token challenge without a usable realm")
        registry_scheme = urlsplit(self.base_url(registry)).scheme
        if parts.scheme == "http" and (
            registry_scheme == "https" or not is_loopback(parts.hostname or "")
        ):
            raise AuthError(
                f"{registry} names a token realm over plain http ({origin(realm)}); refusing it"
            )
        if scopes is None:
            scopes = [challenge.get("scope") or f"repository:{repository}:pull"]
        query: list[tuple[str, str]] = [("scope", scope) for scope in scopes]
        if challenge.get("service"):
            query.append(("service", challenge["service"]))
        if credential is not None and credential.kind == "identity_token":
            response = await self._oauth(registry, realm, dict(query), credential)
        else:
            headers = {}
            if credential is not None:
                headers["Authorization"] = _basic_from(registry, credential)
            response = await self._send(
                "GET", realm, registry=registry, body=_TOKEN_ANSWER, params=query, headers=headers
            )
        return self._token_from(registry, repository, response, credential)

    async def _oauth(
        self, registry: str, realm: str, query: Mapping[str, str], credential: Credential
    ) -> Reply:
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
            "refresh_token": _sendable(registry, credential),
            "client_id": "pinner",
        }
        response = await self._send(
            "POST", realm, registry=registry, body=_TOKEN_ANSWER, params=None, headers={}, data=form
        )
        if response.status in _OAUTH_REFUSED:
            headers = {"Authorization": _basic(_TOKEN_USERNAME, credential.secret)}
            response = await self._send(
                "GET", realm, registry=registry, body=_TOKEN_ANSWER, params=query, headers=headers
            )
        return response

    def _token_from(
        self,
        registry: str,
        repository: str,
        response: Reply,
        credential: Credential | None,
    ) -> str:
        status = response.status
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
        if not response.ok:
            raise RegistryError(f"the token service answered HTTP {status}")
        try:
            document = response.json()
        except (ValueError, RecursionError):
            raise RegistryError("the token service did not answer JSON") from None
        token = None
        if isinstance(document, dict):
            token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError("the token service answered without a token")
        if not _VISIBLE_ASCII_RE.fullmatch(token):
            # Never shown: it is a secret, however broken.
            raise RegistryError(
                f"the token service of {registry} answered a token that cannot be sent"
                " (it holds a space, a control character or a character that is not ASCII)"
            )
        return token

    def _say(self, message: str) -> None:
        if self.log is not None:
            self.log(message)


# Registries answer 401/403, not 404, for a name that does not exist, so as not to tell
# strangers which private names do: a typo looks like a private image. Docker says both
# ("repository does not exist or may require 'docker login'"), and so does pin.
_MISSING_OR_PRIVATE = "this image does not exist, or needs credentials: check its name, or"


def _unauthorised(registry: str, credential: Credential | None) -> AuthError:
    if credential is None:
        return AuthError(f"{_MISSING_OR_PRIVATE} {_login_hint(registry)}")
    return AuthError(
        f"{registry} rejected the credentials from {credential.source} with HTTP 401;"
        f" log in again: {_login_hint(registry)}"
    )


def _denied(registry: str, repository: str, credential: Credential | None) -> AuthError:
    if credential is None:
        return AuthError(
            f"access denied (HTTP 403) to {repository}: {_MISSING_OR_PRIVATE}"
            f" {_login_hint(registry)}"
        )
    return AuthError(
        f"access denied (HTTP 403) to {repository} for the credentials from {credential.source}:"
        " they are wrong or give no pull access to it; check the name, or log in with an"
        f" account that has access: {_login_hint(registry)}"
    )


def _basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


def _basic_from(registry: str, credential: Credential) -> str:
    """A Basic header for a user name and password (or an identity token as the password)."""
    if credential.kind != "basic":
        return _basic(_TOKEN_USERNAME, _sendable(registry, credential))
    # RFC 7617 sends the pair as UTF-8, so a password may be any text; a control character,
    # though, is a paste gone wrong (a trailing newline) that no registry would accept.
    for part, value in (("user name", credential.username or ""), ("password", credential.secret)):
        if not value.isprintable():
            raise AuthError(
                f"the {part} from {credential.source} cannot be sent: it holds a control"
                f" character (a pasted newline?); {_login_hint(registry)}"
            )
    return _basic(credential.username or "", credential.secret)


def _sendable(registry: str, credential: Credential) -> str:
    """A token credential's secret, if it can be sent as it is; AuthError naming where it
    came from (never what it is) if not."""
    if not _VISIBLE_ASCII_RE.fullmatch(credential.secret):
        kind = credential.kind.replace("_", " ")
        raise AuthError(
            f"the {kind} from {credential.source} cannot be sent: it holds a space, a control"
            f" character (a pasted newline?) or a character that is not ASCII; log in again:"
            f" {_login_hint(registry)}"
        )
    return credential.secret
