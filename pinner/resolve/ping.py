"""Each registry's ``GET /v2/``, asked on a thread while the run is still starting.

A network run spends its first 100-150 ms here importing asyncio, httpx and h11 before it can
send anything; then each registry gets one request alone, whose 401 tells how it
authenticates, before the run's other lookups go. The distribution spec's base endpoint
(``GET /v2/``, end-1: "determining support") answers that very question, 200 or 401 with the
challenge, and Docker asks it before every pull. Asked here, with the standard library, on a
thread of its own as soon as the run knows its registries, its round trip overlaps those
imports instead of following them. What the answer lets :class:`RegistryClient
<pinner.resolve.client.RegistryClient>` do:

* 200: nothing to authenticate; every lookup goes at once;
* 401 with a Bearer challenge (with a realm): the challenge is kept as a 401's would be, so
  the tokens for all the run's repositories are asked for at once (anonymous ones too, for
  public repositories), then every lookup goes;
* anything else (another status, a Basic challenge, an answer that is not plain HTTP/1.1):
  nothing learnt; the registry's first request goes alone, as without the ping. A Basic
  challenge from /v2/ does not say that a repository wants credentials (some registries serve
  public ones to anyone), and Basic has no anonymous answer: that request tries without.

It is a hint, and nothing more. It carries no credential and no body, follows no redirect,
reads the status line and headers (at most :data:`MAX_PING_HEAD_BYTES`) and never the body,
and gives up at the run's ``--timeout``. One that times out counts as the first attempt of
the registry's first request, so that the bounds of :mod:`pinner.resolve.client` hold; one
that fails otherwise (refused, reset, a name that does not resolve, a certificate that does
not verify) is left for that request to meet, and put into words. A registry that answers
/v2/ 200 and a repository 401 costs one 401 per lookup of the first wave, each answered as
without the ping.

Not asked when an environment proxy is set (``pinner.pipeline``): only httpx's own transport
honours ``HTTPS_PROXY`` and ``NO_PROXY``.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from pinner.limits import MAX_PING_HEAD_BYTES
from pinner.registries import DEFAULT_PORTS

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    TlsContext = Callable[[], ssl.SSLContext]

# RFC 9112 4 and 5: "HTTP/1.1 401 Unauthorized", then "name: value" lines, the name a token
# with no space before the colon. A folded line, a bare LF or anything else: not plain HTTP/1.1.
_STATUS_LINE_RE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?")
_FIELD_NAME_RE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD_VALUE_RE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# A path that goes into the request line as it is (a --mirror URL may carry one).
_PATH_RE = re.compile(r"/[A-Za-z0-9._~/%-]*")


class Answer(NamedTuple):
    status: int
    # Every WWW-Authenticate field, joined with ", " as httpx joins a repeated header.
    challenge: str
    elapsed: float  # seconds, from connecting to the end of the headers


class Pings:
    """The run's pings, one thread each, all started at once; and the TLS context they and
    the run's HTTP client share (built once, by the first that needs it)."""

    def __init__(self, urls: Mapping[str, str], *, timeout: float, user_agent: str) -> None:
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self.each = {
            registry: Ping(url, timeout=timeout, user_agent=user_agent, tls=self.certificates)
            for registry, url in urls.items()
        }

    def certificates(self) -> ssl.SSLContext:
        """The CAs that verify registries over https (:mod:`pinner.resolve.tls`)."""
        with self._lock:
            if self._tls is None:
                from pinner.resolve.tls import trusted_certificates

                self._tls = trusted_certificates()
            return self._tls

    def close(self) -> None:
        for ping in self.each.values():
            ping.close()


class Ping:
    """``GET <url>/v2/`` on a daemon thread, started at once; :meth:`answer` waits for it."""

    def __init__(self, url: str, *, timeout: float, user_agent: str, tls: TlsContext) -> None:
        self.url = f"{url}/v2/"
        self._deadline = time.monotonic() + timeout
        self._user_agent = user_agent
        self._tls = tls
        self._done = threading.Event()
        self._answer: Answer | None = None
        self._failure: OSError | None = None
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._closed = False
        threading.Thread(target=self._run, name=f"pin ping {url}", daemon=True).start()

    async def answer(self) -> Answer | None:
        """The answer's status and challenge; None if it was not plain HTTP/1.1 (or too
        large); the OSError if the ping failed below HTTP (TimeoutError past the deadline)."""
        if not self._done.is_set():
            import asyncio

            left = self._deadline - time.monotonic()
            if not await asyncio.to_thread(self._done.wait, max(left, 0.0)):
                raise TimeoutError("no answer in time")
        if self._failure is not None:
            raise self._failure
        return self._answer

    def close(self) -> None:
        """Hang up, if the ping is still out (its thread then ends), and wake whoever waits
        for it: the run is over."""
        with self._lock:
            self._closed = True
            if self._socket is not None:
                self._socket.close()
        self._done.set()

    def _run(self) -> None:
        try:
            self._answer = self._ask()
        except OSError as e:  # ssl.SSLError and TimeoutError are OSErrors too
            self._failure = e
        except Exception:  # a hint only: the run's own request meets whatever this was,
            self._answer = None  # and a thread's traceback would reach the terminal
        finally:
            self._done.set()

    def _ask(self) -> Answer | None:
        parts = urlsplit(self.url)
        host = parts.hostname
        if not host or parts.scheme not in DEFAULT_PORTS or not _PATH_RE.fullmatch(parts.path):
            return None
        request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"User-Agent: {self._user_agent}\r\nAccept: application/json\r\n"
            f"Connection: close\r\n\r\n"
        ).encode("ascii")
        started = time.monotonic()
        connection = socket.create_connection(
            (host, parts.port or DEFAULT_PORTS[parts.scheme]), timeout=self._left()
        )
        self._hold(connection)
        try:
            if parts.scheme == "https":
                connection.settimeout(self._left())
                # The handshake happens here, under the socket's timeout.
                connection = self._tls().wrap_socket(connection, server_hostname=host)
                self._hold(connection)
            connection.settimeout(self._left())
            connection.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                if len(head) > MAX_PING_HEAD_BYTES:
                    return None
                connection.settimeout(self._left())
                chunk = connection.recv(MAX_PING_HEAD_BYTES)
                if not chunk:
                    return None  # closed before the end of the headers
                head += chunk
        finally:
            connection.close()
        head = head.partition(b"\r\n\r\n")[0]
        if len(head) > MAX_PING_HEAD_BYTES:  # it came in one read with its end
            return None
        return _parsed(head, time.monotonic() - started)

    def _left(self) -> float:
        """Seconds left until the deadline, for the next blocking step; TimeoutError if none."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer in time")
        return left

    def _hold(self, connection: socket.socket) -> None:
        with self._lock:
            self._socket = connection
            if self._closed:
                connection.close()


def _parsed(head: bytes, elapsed: float) -> Answer | None:
    """The status and challenges of a response head (status line and fields, without the
    blank line); None if any line of it is not plain HTTP/1.1 or the challenge not ASCII."""
    status_line, *fields = head.split(b"\r\n")
    status = _STATUS_LINE_RE.fullmatch(status_line)
    if status is None:
        return None
    challenges: list[bytes] = []
    for field in fields:
        name, colon, value = field.partition(b":")
        if not (colon and _FIELD_NAME_RE.fullmatch(name) and _FIELD_VALUE_RE.fullmatch(value)):
            return None
        if name.lower() == b"www-authenticate":
            challenges.append(value.strip(b" \t"))
    try:
        challenge = b", ".join(challenges).decode("ascii")
    except UnicodeDecodeError:
        return None
    return Answer(int(status[1]), challenge, elapsed)
