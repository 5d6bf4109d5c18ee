"""One HTTP exchange with a registry: bounded in time and in size, its failures put into words.

Everything a registry or a mirror sends is untrusted, so one exchange is:

* **one deadline** (``--timeout``) over all of it, with ``asyncio.timeout``: connecting, the TLS
  handshake, the headers, every redirect and the whole body. httpx's own timeouts bound each
  read, so a server dripping a byte every second would never trip them.
* **redirects followed here**, at most :data:`MAX_REDIRECTS` (Go's net/http limit, which Docker
  and containerd inherit); ``Authorization`` goes to the first origin only, and never from
  https down to plain http. httpx would read each redirect's body in full, unbounded.
* **every body streamed with a cap** suited to what it is (:class:`Body`), counted *after*
  decompression: we ask for gzip only and inflate it ourselves with ``max_length``, so a small
  gzip body that inflates to gigabytes stops at the cap. (httpx's decoders have no such bound,
  and chain one per listed encoding: ``gzip, gzip`` squares the ratio.) An error answer is read
  only up to :data:`MAX_ERROR_BODY_BYTES`, for its error code.
* **failures in words**, by exception type: an httpx message can quote a URL or a header, so
  none is ever shown.
* **no cookies** (:class:`Client`): what a registry sets is neither kept nor sent back, as
  Docker and containerd keep none (Go's ``http.Client`` has no cookie jar unless given one), so
  no registry can need them. httpx's jar also cost ~0.1 ms of CPU a response, 1.7% of a run
  that pins 200 files (counted with ``benchmarks/bench.py --instructions``).
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx

from pinner.errors import RegistryError, UnreachableError
from pinner.limits import MAX_ERROR_BODY_BYTES, MAX_REDIRECTS
from pinner.registries import is_loopback
from pinner.resolve.tls import environment_certificates

# Query parameters: a mapping, or pairs where a name repeats (several scope= of one token).
Params = Mapping[str, str] | Sequence[tuple[str, str]]
Log = Callable[[str], None]
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ENCODING_RE = re.compile(r"[A-Za-z0-9, -]{1,40}")
# OpenSSL's verify codes (include/openssl/x509_vfy.h) for "no CA we trust signed this": the
# case of a registry behind a private CA, which SSL_CERT_FILE fixes.
_UNKNOWN_ISSUER = frozenset({2, 18, 19, 20, 21})
_NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL})


class _NoCookies(httpx.Cookies):
    """A cookie jar that stays empty: nothing to send, nothing kept."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class Client(httpx.AsyncClient):
    """httpx's client, without cookies (see the module's docstring)."""

    _none = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._none

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        pass  # none kept: should an httpx release set them here, a run still works


# NamedTuples and a plain class, not dataclasses: see Resolution in pinner/resolve/__init__.py.
class Body(NamedTuple):
    """What a request expects back: its name for messages, and the most it may weigh."""

    what: str  # "a tag history": "cgr.dev sent a tag history larger than 2 MiB"
    cap: int  # bytes, after decompression


class Reply(NamedTuple):
    """A whole answer, read within its deadline and cap: all that callers see of HTTP."""

    status: int
    headers: Mapping[str, str]  # httpx.Headers: case-insensitive
    url: str  # where the answer came from, after redirects
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> object:
        """The body as JSON; ValueError (or RecursionError) if it is not."""
        return json.loads(self.body)


class NetworkFailure(Exception):
    """An exchange that failed below HTTP; ``str()`` says what happened, in words that quote
    nothing the network sent, ``retry`` whether another attempt may go differently, and
    ``timed_out`` whether it ran out of time (for which --timeout is a remedy)."""

    def __init__(self, what: str, *, retry: bool, timed_out: bool = False) -> None:
        super().__init__(what)
        self.retry = retry
        self.timed_out = timed_out


async def exchange(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    registry: str,
    who: str,
    body: Body,
    timeout: float,
    params: Params | None = None,
    headers: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    log: Log | None = None,
) -> Reply:
    """``METHOD url`` and its whole answer within *timeout* seconds.

    Raises NetworkFailure (retry it or not), UnreachableError for a certificate that does not
    verify, RegistryError for an answer that cannot be taken (too big, too many redirects).
    *who* names the server in messages ("cgr.dev", "the token service of cgr.dev").
    """
    state = _Progress(url)
    try:
        async with asyncio.timeout(timeout):
            return await _follow(http, method, url, state, who, body, params, headers, data, log)
    except TimeoutError:
        if state.answered:
            what = f"{state.origin} sent its answer too slowly: not all of it within {timeout:g} s"
        else:
            what = f"no answer from {state.origin} within {timeout:g} s"
        raise NetworkFailure(what, retry=True, timed_out=True) from None
    except httpx.TimeoutException:
        # httpx's per-phase timeouts equal the deadline, so one of them may fire first.
        what = f"no answer from {state.origin} within {timeout:g} s"
        raise NetworkFailure(what, retry=True, timed_out=True) from None
    except httpx.InvalidURL:  # not an HTTPError: a realm or Location httpx cannot take
        raise RegistryError(f"{who} sent pinner to a URL that is not valid") from None
    except httpx.HTTPError as e:
        certificate = _certificate_failure(e)
        if certificate is not None:
            raise _unverified(state.origin, certificate, registry) from None
        raise _network_failure(e, state.origin) from None


class _Progress:
    """Where an exchange has got to, for the message if it fails."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered = False

    @property
    def origin(self) -> str:
        return origin(self.url)


async def _follow(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    state: _Progress,
    who: str,
    body: Body,
    params: Params | None,
    headers: Mapping[str, str] | None,
    data: Mapping[str, str] | None,
    log: Log | None,
) -> Reply:
    sent = dict(headers or {})
    target = httpx.URL(url, params=params)
    first = _origin_of(target)
    for _ in range(MAX_REDIRECTS + 1):
        state.url, state.answered = str(target), False
        started = time.monotonic()
        request = http.build_request(method, target, headers=sent, data=data)
        response = await http.send(request, stream=True, follow_redirects=False)
        try:
            state.answered = True
            if log is not None:
                elapsed = (time.monotonic() - started) * 1000
                took = _took(response, elapsed)
                log(f"{method} {display(target)} -> {response.status_code} ({took})")
            location = response.headers.get("Location")
            # A body (the refresh-token grant) must not follow a redirect: a 307/308 re-sends
            # it to whatever host the Location names. The caller sees the redirect instead.
            if response.status_code in _REDIRECTS and location and data is None:
                target = _redirect_target(target, location, who)
                if _origin_of(target) != first:
                    sent.pop("Authorization", None)
                continue
            if method == "HEAD":
                content = b""  # its Content-Length is the size of a body never sent
            elif 200 <= response.status_code < 300:
                content = await _read(response, body.cap, who=who, what=body.what)
            else:
                content = await _read_leniently(response, MAX_ERROR_BODY_BYTES)
            return Reply(response.status_code, response.headers, str(target), content)
        finally:
            await response.aclose()
    raise RegistryError(
        f"too many redirects from {who} (more than {MAX_REDIRECTS}); check the registry or"
        " mirror URL"
    )


def _redirect_target(current: httpx.URL, location: str, who: str) -> httpx.URL:
    try:
        target = current.join(location)
    except (httpx.InvalidURL, ValueError):
        raise RegistryError(f"{who} redirected to an invalid URL") from None
    if target.scheme not in ("http", "https") or not target.host:
        raise RegistryError(f"{who} redirected to a URL that is not http or https")
    if target.scheme == "http" and not is_loopback(target.host):
        # Docker refuses to leave TLS too; only a loopback registry speaks plain http.
        raise RegistryError(f"{who} redirected to plain http ({origin(str(target))}); refusing it")
    return target


async def _read(response: httpx.Response, cap: int, *, who: str, what: str) -> bytes:
    """The whole body, decompressed; RegistryError past *cap* bytes or if it cannot be read."""
    too_big = RegistryError(f"{who} sent {what} larger than {size(cap)}; refusing it")
    inflate = _inflater(response.headers.get("Content-Encoding", ""), who=who, what=what)
    declared = response.headers.get("Content-Length", "")
    if inflate is None and declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise too_big  # no need to wait for 500 MB to arrive
    chunks: list[bytes] = []
    total = 0
    async for raw in response.aiter_raw():
        try:
            # max_length: never inflate more than one byte past the cap, however dense.
            piece = raw if inflate is None else inflate.decompress(raw, cap + 1 - total)
        except zlib.error:
            raise RegistryError(f"{who} sent {what} whose gzip compression is corrupt") from None
        total += len(piece)
        if total > cap:
            raise too_big
        chunks.append(piece)
    if inflate is not None and not inflate.eof:
        raise RegistryError(f"{who} sent {what} whose gzip compression is cut short")
    return b"".join(chunks)


async def _read_leniently(response: httpx.Response, cap: int) -> bytes:
    """Up to *cap* bytes of an error answer, b"" if they cannot be read: only its code matters."""
    try:
        inflate = _inflater(response.headers.get("Content-Encoding", ""), who="", what="")
    except RegistryError:
        return b""
    chunks: list[bytes] = []
    total = 0
    async for raw in response.aiter_raw():
        try:
            piece = raw if inflate is None else inflate.decompress(raw, cap - total)
        except zlib.error:
            return b""
        chunks.append(piece)
        total += len(piece)
        if total >= cap:
            break
    return b"".join(chunks)


def _inflater(encoding: str, *, who: str, what: str) -> Any:
    """A bounded gzip decompressor, None for an uncompressed body; RegistryError otherwise."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):  # the only one we ask for (Accept-Encoding: gzip)
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    shown = f" ({encoding.strip()})" if _ENCODING_RE.fullmatch(encoding.strip()) else ""
    raise RegistryError(f"{who} sent {what} in a compression pinner did not ask for{shown}")


def size(count: int) -> str:
    """``2 MiB``, ``64 KiB``: a cap for people."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


# -- failures in words ---------------------------------------------------------------------


def _chain(error: BaseException) -> list[BaseException]:
    """The error and what caused it (bounded: a __context__ chain may, in principle, loop)."""
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def _network_failure(error: httpx.HTTPError, where: str) -> NetworkFailure:
    """What happened, by exception type: never the text of an httpx error, which can quote
    the URL or a header."""
    chain = _chain(error)
    if any(isinstance(e, socket.gaierror) for e in chain):
        # The network or its DNS is down, or the name is wrong: the next try in a second
        # will not differ, and offline every image would wait for it.
        host = urlsplit(where).hostname or where
        return NetworkFailure(f"name resolution failed for {host}", retry=False)
    if any(isinstance(e, OSError) and e.errno in _NO_ROUTE for e in chain):
        return NetworkFailure(f"no route to {where} (is the network up?)", retry=False)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return NetworkFailure(f"{where} refused the connection", retry=True)
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return NetworkFailure(f"the connection was reset by {where}", retry=True)
    if isinstance(error, httpx.ProxyError):
        return NetworkFailure(f"the proxy refused the connection to {where}", retry=True)
    if isinstance(error, httpx.ConnectError):
        if any(isinstance(e, ssl.SSLError) for e in chain):
            return NetworkFailure(f"the TLS handshake with {where} failed", retry=False)
        return NetworkFailure(f"could not connect to {where}", retry=True)
    if isinstance(error, httpx.RemoteProtocolError):
        return NetworkFailure(
            f"{where} closed the connection or broke HTTP before a complete answer", retry=True
        )
    if isinstance(error, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return NetworkFailure(f"the connection to {where} broke", retry=True)
    if isinstance(error, httpx.LocalProtocolError | httpx.UnsupportedProtocol):
        return NetworkFailure(f"pinner could not send its request to {where}", retry=False)
    return NetworkFailure(f"a network error with {where} ({type(error).__name__})", retry=True)


def _certificate_failure(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The ssl error under an httpx.ConnectError (httpx's, from httpcore's, from ssl's)."""
    return next((e for e in _chain(error) if isinstance(e, ssl.SSLCertVerificationError)), None)


def _unverified(where: str, error: ssl.SSLCertVerificationError, registry: str) -> RegistryError:
    # The same certificate comes back on every attempt and for every image: not retried, and
    # reported once for the registry.
    reason = str(error.verify_message or error.reason or "certificate verify failed").rstrip(".")
    _, hint = environment_certificates()
    if hint:
        hint = f"; {hint}"
    elif error.verify_code in _UNKNOWN_ISSUER:
        hint = (
            "; if your organisation's CA signs it, set SSL_CERT_FILE to that CA's certificate (PEM)"
        )
    return UnreachableError(
        f"the TLS certificate of {where} could not be verified ({reason}){hint}", registry
    )


# -- URLs for people -----------------------------------------------------------------------


def origin(url: str) -> str:
    """``scheme://host:port`` of *url*, without user info."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _origin_of(url: httpx.URL) -> tuple[str, str, int | None]:
    """RFC 6454's origin; httpx has already lower-cased the host and dropped a default port."""
    return url.scheme, url.host, url.port


def same_origin(a: str, b: str) -> bool:
    return _origin_of(httpx.URL(a)) == _origin_of(httpx.URL(b))


def _took(response: httpx.Response, elapsed: float) -> str:
    """How long an answer took, for -v, and whether it came to a request sent at start-up
    (pinner.resolve.ping.Ahead), or why that one's could not be taken."""
    ahead = response.extensions.get("pinner_sent_at_start_up")
    if ahead is not None:
        return f"{ahead * 1000:.0f} ms, sent at start-up"
    again = response.extensions.get("pinner_not_taken")
    if again is not None:
        return f"{elapsed:.0f} ms; sent again: at start-up, {again}"
    return f"{elapsed:.0f} ms"


def display(url: httpx.URL) -> str:
    """A URL for -v: no user info (query strings here carry only scope and window)."""
    return str(url.copy_with(username=None, password=None))
