"""Each registry's ``GET /v2/``, asked on a thread while the run is still starting.

A network run spends its first 100-150 ms here importing asyncio, httpx and h11 before it can
send anything; then each registry gets one request alone, whose 401 tells how it
authenticates, before the run's other lookups go. The distribution spec's base endpoint
(``GET /v2/``, end-1: "determining support") answers that very question, 200 or 401 with the
challenge, and Docker asks it before every pull. Asked here, with the standard library, on a
thread of its own as soon as the run knows its registries, its round trip overlaps those
imports instead of following them. What the answer lets :class:`RegistryClient
<pinner.resolve.client.RegistryClient>` do:

* 200: nothing to authenticate; every lookup goes at once, and the first of them (each tag's
  manifest ``HEAD``, at most the lookups in flight at once) went already: the ping's thread
  sends them as soon as the 200 is in (:class:`Ahead`), and the run takes their answers;
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

The ping and the lookups sent ahead are one code path: non-blocking steps (:class:`_Request`)
that one selector on the ping's thread runs together (:func:`_drive`). One thread, not one a
request: each thread started waits for the imports running on the main thread to let go of
the GIL. In one traced P3 run each way, the 40 lookups were all connected 44 ms after the
ping's answer with a thread each, 24 ms with the selector.

Not asked when an environment proxy is set (``pinner.pipeline``): only httpx's own transport
honours ``HTTPS_PROXY`` and ``NO_PROXY``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import selectors  # socket imports it anyway
import socket
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from pinner.limits import MAX_PING_HEAD_BYTES
from pinner.registries import DEFAULT_PORTS

if TYPE_CHECKING:
    import asyncio
    import ssl

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


class Early(NamedTuple):
    """The answer to a lookup sent at start-up (:class:`Ahead`)."""

    head: bytes  # its status line and fields, up to and with the blank line that ends them
    elapsed: float  # seconds, from connecting to the end of the headers


# A lookup sent ahead names its registry's path and its headers; Pings makes the URL.
Lookup = tuple[str, Sequence[tuple[str, str]]]


class Pings:
    """The run's pings, one thread each, all started at once; the lookups to send at start-up
    to a registry whose ping is answered 200 (:class:`Ahead`); and the TLS context they and
    the run's HTTP client share (built once, by the first that needs it)."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        timeout: float,
        user_agent: str,
        ahead: Mapping[str, Sequence[Lookup]] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        lookups = ahead or {}
        self.ahead = {
            registry: [
                Ahead(url + path, headers, timeout=timeout, tls=self.certificates)
                for path, headers in lookups.get(registry, ())
            ]
            for registry, url in urls.items()
        }
        self.each = {
            registry: Ping(
                url,
                timeout=timeout,
                user_agent=user_agent,
                tls=self.certificates,
                ahead=self.ahead[registry],
            )
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


class _Request:
    """One request by the standard library, run with others on one thread by :func:`_drive`:
    connect (and the TLS handshake), send, read the status line and headers (never a body, at
    most :data:`MAX_PING_HEAD_BYTES`), hang up; all within a deadline. :meth:`close` hangs up
    from another thread."""

    def __init__(self, url: str, *, timeout: float, tls: TlsContext) -> None:
        self.url = url
        self._timeout = timeout
        self.deadline = time.monotonic() + timeout
        self._tls = tls
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.closed = False
        # Where it connected: the lookups sent ahead go there too, with no name to resolve.
        self.address: tuple[int, Any] | None = None

    def close(self) -> None:
        """Hang up, if the request is still out, and never send it again."""
        with self._lock:
            self.closed = True
        self.hang_up()

    def hang_up(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()

    def _steps(
        self, method: str, headers: Sequence[tuple[str, str]], addresses: Sequence[tuple[int, Any]]
    ) -> Generator[int, None, Early | None]:
        """``METHOD url`` with *headers* (and Host) to the first of *addresses* that takes
        the connection, yielding the selector event it waits for before each next step; the
        head of the answer, or None if it is not plain HTTP/1.1, too large, or cut short.
        OSError if the exchange fails below HTTP."""
        parts = urlsplit(self.url)
        host = parts.hostname
        if not host or parts.scheme not in DEFAULT_PORTS or not _PATH_RE.fullmatch(parts.path):
            return None
        fields = [("Host", parts.netloc), *headers, ("Connection", "close")]
        if parts.query or not all(_sendable(name, value) for name, value in fields):
            return None
        lines = "".join(f"{name}: {value}\r\n" for name, value in fields)
        request = f"{method} {parts.path} HTTP/1.1\r\n{lines}\r\n".encode("ascii")
        started = time.monotonic()
        connection = yield from self._connect(addresses)
        # What a non-blocking socket raises to say what it waits for: over TLS, it may be
        # either whatever it was asked to do (a handshake message may come in the way).
        wants_read: type[OSError] = BlockingIOError
        wants_write: type[OSError] = BlockingIOError
        if parts.scheme == "https":
            import ssl  # only here: plain http never pays for it before the ping goes

            wants_read, wants_write = ssl.SSLWantReadError, ssl.SSLWantWriteError
            connection = self._tls().wrap_socket(
                connection, server_hostname=host, do_handshake_on_connect=False
            )
            self._hold(connection)
            while True:
                try:
                    connection.do_handshake()
                    break
                except wants_read:
                    yield _READ
                except wants_write:
                    yield _WRITE
        left = memoryview(request)
        while left:
            try:
                left = left[connection.send(left) :]
            except (BlockingIOError, wants_write):
                yield _WRITE
            except wants_read:
                yield _READ
        head = b""
        while b"\r\n\r\n" not in head:
            if len(head) > MAX_PING_HEAD_BYTES:
                return None
            try:
                chunk = connection.recv(MAX_PING_HEAD_BYTES)
            except (BlockingIOError, wants_read):
                yield _READ
                continue
            except wants_write:
                yield _WRITE
                continue
            if not chunk:
                return None  # closed before the end of the headers
            head += chunk
        head = head[: head.index(b"\r\n\r\n") + 4]
        if len(head) > MAX_PING_HEAD_BYTES:  # it came in one read with its end
            return None
        return Early(head, time.monotonic() - started)

    def _connect(self, addresses: Sequence[tuple[int, Any]]) -> Generator[int, None, socket.socket]:
        """A connected, non-blocking socket to the first of *addresses* that takes it (as
        ``socket.create_connection`` tries them); the last one's OSError if none does."""
        failure = OSError("no address to connect to")
        for family, address in addresses:
            connection = socket.socket(family, socket.SOCK_STREAM)
            self._hold(connection)
            connection.setblocking(False)
            code = connection.connect_ex(address)
            if code == errno.EINPROGRESS:
                yield _WRITE
                code = connection.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                self.address = (family, address)
                return connection
            connection.close()
            failure = OSError(code, os.strerror(code))
        raise failure

    def _hold(self, connection: socket.socket) -> None:
        with self._lock:
            self._socket = connection
            if self.closed:
                connection.close()


_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_LOOK_AGAIN = 0.1  # seconds


_R = TypeVar("_R", bound=_Request)


def _drive(
    steps: Mapping[_R, Generator[int, None, Early | None]],
    done: Callable[[_R, Early | Exception | None], None],
) -> None:
    """Run each request's *steps* on this thread, waiting on all their sockets at once; as
    each ends, *done* gets what it returned (an Early, or None) or the exception it raised
    (TimeoutError past its deadline)."""
    waiting: dict[int, _R] = {}  # by file descriptor
    selector = selectors.DefaultSelector()

    def end(request: _R, outcome: Early | Exception | None) -> None:
        request.hang_up()
        done(request, outcome)

    def advance(request: _R) -> None:
        try:
            event = next(steps[request])
        except StopIteration as stop:
            end(request, stop.value)
        except Exception as e:  # OSError, and whatever a hostile answer could raise
            end(request, e)
        else:
            descriptor = request._socket.fileno() if request._socket is not None else -1
            if descriptor < 0:  # closed meanwhile (the run is over)
                end(request, OSError("closed"))
                return
            waiting[descriptor] = request
            selector.register(descriptor, event)

    try:
        for request in steps:
            advance(request)
        while waiting:
            now = time.monotonic()
            for descriptor, request in list(waiting.items()):
                if request.deadline <= now or request.closed:
                    selector.unregister(descriptor)
                    del waiting[descriptor]
                    late = not request.closed
                    end(request, TimeoutError("no answer in time") if late else OSError("closed"))
            if not waiting:
                break
            left = min(request.deadline for request in waiting.values()) - now
            # A socket closed from another thread (the run is over) wakes no selector: look
            # again now and then.
            for key, _ in selector.select(min(max(left, 0.0), _LOOK_AGAIN)):
                request = waiting.pop(key.fd)
                selector.unregister(key.fd)
                advance(request)
    finally:
        selector.close()
        for request, generator in steps.items():
            generator.close()
            request.hang_up()


class Ping(_Request):
    """``GET <url>/v2/`` on a daemon thread, started at once; :meth:`answer` waits for it.
    If it is answered 200, the lookups *ahead* go next, on the same thread; if not, none of
    them does."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        user_agent: str,
        tls: TlsContext,
        ahead: Sequence[Ahead] = (),
    ) -> None:
        super().__init__(f"{url}/v2/", timeout=timeout, tls=tls)
        self._user_agent = user_agent
        self._ahead = ahead
        self._done = threading.Event()
        self._answer: Answer | None = None
        self._failure: OSError | None = None
        threading.Thread(target=self._run, name=f"pin ping {url}", daemon=True).start()

    async def answer(self) -> Answer | None:
        """The answer's status and challenge; None if it was not plain HTTP/1.1 (or too
        large); the OSError if the ping failed below HTTP (TimeoutError past the deadline)."""
        if not self._done.is_set():
            import asyncio

            left = self.deadline - time.monotonic()
            if not await asyncio.to_thread(self._done.wait, max(left, 0.0)):
                raise TimeoutError("no answer in time")
        if self._failure is not None:
            raise self._failure
        return self._answer

    def close(self) -> None:
        """Hang up, if the ping or a lookup sent ahead is still out, and wake whoever waits
        for them: the run is over."""
        super().close()
        for ahead in self._ahead:
            ahead.close()
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
        if self._answer is None or self._answer.status != 200 or self.address is None:
            for ahead in self._ahead:
                ahead.close()
            return
        address = [self.address]  # where the ping went: no name to resolve again
        steps = {ahead: ahead.steps(address) for ahead in self._ahead}
        with contextlib.suppress(Exception):  # each lookup's own request meets whatever it was
            _drive(steps, lambda ahead, outcome: ahead.finish(outcome))
        for ahead in self._ahead:
            ahead.close()  # those the run is over for, or that a failure above left

    def _ask(self) -> Answer | None:
        parts = urlsplit(self.url)
        if not parts.hostname or parts.scheme not in DEFAULT_PORTS:
            return None  # no request to send: the run's own says what is wrong with the URL
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        addresses = [(family, address) for family, _, _, _, address in found]
        headers = [("User-Agent", self._user_agent), ("Accept", "application/json")]
        outcomes: list[Early | Exception | None] = []
        _drive({self: self._steps("GET", headers, addresses)}, lambda _, o: outcomes.append(o))
        [outcome] = outcomes
        if isinstance(outcome, Exception):
            raise outcome
        if outcome is None:
            return None
        return _parsed(outcome.head[:-4], outcome.elapsed)


class Ahead(_Request):
    """A lookup sent at start-up: ``HEAD`` of a manifest, sent once its registry's ping has
    been answered 200 (nothing to authenticate), on the ping's thread, with the others of its
    registry, while the run is still importing what it needs to send it. The run's transport
    (:mod:`pinner.resolve.http11`) takes the head of its answer for the same request (same
    URL and fields) instead of sending that, and reads it as it reads any answer.

    What it sends is what that request would: the same URL and fields, no credential (after a
    200 the run's first requests carry none). Whatever goes wrong (not sent, refused, reset,
    timed out, an answer that is not plain HTTP/1.1 or is over the cap, a 1xx), there is no
    answer to take, and the run sends the request itself, which meets and words the fault.
    """

    def __init__(
        self, url: str, headers: Sequence[tuple[str, str]], *, timeout: float, tls: TlsContext
    ) -> None:
        super().__init__(url, timeout=timeout, tls=tls)
        self.headers = tuple(headers)
        self._early: Early | None = None
        self._finished = False
        self.started = False  # sent, or being sent
        # Once finished without an answer to take, after it was sent: why, for -v.
        self.why: str | None = None
        # (event loop, future) of each coroutine waiting for the answer.
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def dropped(self) -> bool:
        """Closed before it was sent (its ping was not answered 200): no answer will come."""
        return self.closed and not self.started

    def steps(self, addresses: Sequence[tuple[int, Any]]) -> Generator[int, None, Early | None]:
        """Its exchange, for :func:`_drive`, with a deadline from now."""
        self.deadline = time.monotonic() + self._timeout
        self.started = True
        return self._steps("HEAD", self.headers, addresses)

    def close(self) -> None:
        """Hang up (or never send), and wake whoever waits: there is no answer to take."""
        super().close()
        self._settle(None, "it was closed before its answer came")

    async def answer(self) -> Early | None:
        """The head of the answer once it is in; None if there is none to take."""
        import asyncio

        with self._lock:
            waiter = None
            if not self._finished:
                loop = asyncio.get_running_loop()
                waiter = loop.create_future()
                self._waiters.append((loop, waiter))
        if waiter is not None:
            await waiter  # bounded by the deadline of the exchange that waits
        return self._early

    def finish(self, outcome: Early | Exception | None) -> None:
        """Keep the answer *outcome* holds, if it is one to take (not a 1xx, nor one h11 would
        not read), else why there is none (:attr:`why`); wake whoever waits. Only the first
        call counts: a close() after the end changes nothing."""
        early, why = None, None
        if isinstance(outcome, Early):
            answer = _parsed(outcome.head[:-4], outcome.elapsed)
            if answer is None:
                why = "its answer was not plain HTTP/1.1"
            elif answer.status < 200:
                why = f"it was answered {answer.status}, an interim status"
            else:
                early = outcome
        elif outcome is None:
            why = "its answer was cut short, or its headers over 16 KiB"
        else:
            why = _failure(outcome)
        self._settle(early, why)

    def _settle(self, early: Early | None, why: str | None) -> None:
        with self._lock:
            if self._finished:
                return
            self._early, self._finished = early, True
            self.why = why if self.started else None
            waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: its run is over
                loop.call_soon_threadsafe(_wake, waiter)


def _failure(error: Exception) -> str:
    """An exchange's failure in words that quote nothing the network sent."""
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, ConnectionResetError):
        return "the connection was reset"
    if isinstance(error, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"it failed ({type(error).__name__})"


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # not cancelled by its exchange's deadline meanwhile
        waiter.set_result(None)


def _sendable(name: str, value: str) -> bool:
    return bool(
        name.isascii()
        and value.isascii()
        and _FIELD_NAME_RE.fullmatch(name.encode())
        and _FIELD_VALUE_RE.fullmatch(value.encode())
    )


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
