"""HTTP/1.1 to registries: h11 over asyncio streams, connections kept alive per origin.

This is the transport under pin's ``httpx.AsyncClient``, unless an environment proxy is set
(``HTTPS_PROXY`` and the like): httpx honours those, and ``NO_PROXY``, only with its own.
httpx's default transport, httpcore's connection pool, re-examines every connection of the
pool each time a request is added or a response closed (``_assign_requests_to_connections``
in httpcore 1.0), asking anyio for each idle one whether it has been closed, which builds a
mapping of socket attributes every time. With the 40 lookups of a monorepo in flight that is
~3.6 ms of CPU a request, more than the round trip it waits on; here it is a fraction of a
millisecond. httpcore also brings anyio, ~40 ms of imports before the first request.

The protocol itself is h11's (the parser httpcore uses): this module only moves bytes and
keeps idle connections. What it leaves to others, on purpose:

* the deadline of an exchange is :mod:`pinner.resolve.transport`'s ``asyncio.timeout`` over
  all of it, connection included, so there are no per-phase timeouts here;
* redirects, size caps and decompression are :mod:`pinner.resolve.transport`'s too: bodies
  are handed up raw, as they arrive;
* failures are raised as httpx's exception types with the ``OSError`` or ``ssl`` error as
  their cause, which is what :mod:`pinner.resolve.transport` puts into words.

Connections can be opened ahead (:meth:`Transport.preconnect`): while the lookups of a
registry wait (for their token, or for the answer of the registry's first request), the
connections they will need are set up, so that the connection and TLS handshakes of the next
wave overlap that wait instead of following it. Such a connection that fails is dropped
without a word: the request that would have used it connects itself, and says what fails.

And a request may have been sent before this module was even imported: a lookup sent at
start-up (:class:`pinner.resolve.ping.Ahead`), for a registry whose ping was answered 200.
The request with the same method, URL and fields (``Host`` and ``Connection`` aside: they
belong to the connection) takes its answer: h11 reads that head as it reads any, from the
bytes the thread read, and the exchange goes on from there. Each is taken once; one that got
no answer to take leaves the request to be sent here, as any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import h11
import httpx

from pinner.registries import DEFAULT_PORTS

if TYPE_CHECKING:
    from pinner.resolve.ping import Ahead

_READ_SIZE = 64 * 1024
_Origin = tuple[str, str, int]  # scheme, host, port
# A request, as far as an answer to it goes: method, URL and fields (lower-case names, sorted).
_Asked = tuple[str, str, tuple[tuple[bytes, bytes], ...]]
_OF_THE_CONNECTION = frozenset({b"host", b"connection"})


class Transport(httpx.AsyncBaseTransport):
    """Sends each request on an idle connection to its origin, or on a new one."""

    def __init__(
        self, tls: ssl.SSLContext, *, keep_alive: int, ahead: Iterable[Ahead] = ()
    ) -> None:
        self._tls = tls
        self._keep_alive = keep_alive  # idle connections kept, per origin
        # Requests sent at start-up, whose answers the same requests take (once).
        self._ahead: dict[_Asked, Ahead] = {}
        for lookup in ahead:
            fields = [(name.encode(), value.encode()) for name, value in lookup.headers]
            with contextlib.suppress(httpx.InvalidURL):  # then no request matches it
                self._ahead.setdefault(_asked("HEAD", httpx.URL(lookup.url), fields), lookup)
        self._idle: dict[_Origin, list[_Connection]] = {}
        # Connections to open ahead once the next request to their origin is sent (how many,
        # and the time each may take), then those being opened, not yet taken by a request.
        self._wanted: dict[_Origin, tuple[int, float]] = {}
        self._opening: dict[_Origin, list[asyncio.Task[_Connection | None]]] = {}
        # Requests connecting themselves, per origin: fewer connections are wanted ahead.
        self._connecting: dict[_Origin, int] = {}

    def preconnect(self, url: str, count: int, now: bool = False, *, timeout: float) -> None:
        """Open *count* connections to the origin of *url* in the background, each within
        *timeout* seconds, from when the next request to it has been sent (opened before,
        they would hold it up), or at once if *now* (nothing goes there first: the token the
        lookups wait for comes from another host); a request takes one of them before it
        opens one of its own."""
        origin = _origin(httpx.URL(url))
        self._wanted[origin] = (self._wanted.get(origin, (0, 0.0))[0] + count, timeout)
        if now:
            self._open_wanted(origin)

    def _open_wanted(self, origin: _Origin) -> None:
        count, timeout = self._wanted.pop(origin, (0, 0.0))
        # Those that went meanwhile (the lookups after a token from another host) have theirs.
        count -= self._connecting.get(origin, 0)
        opening = self._opening.setdefault(origin, [])
        for _ in range(count):
            task = asyncio.ensure_future(self._open_quietly(origin, timeout))
            opening.append(task)
            task.add_done_callback(lambda done: self._opened(origin, done))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = _origin(request.url)
        extensions: dict[str, object] = {}
        if self._ahead:
            lookup = self._ahead.pop(_asked(request.method, request.url, request.headers.raw), None)
            early = None if lookup is None else await lookup.answer()
            if lookup is not None and early is None and lookup.why is not None:
                extensions["pinner_not_taken"] = lookup.why  # for -v: why it is sent again
            if early is not None:
                answered = _Answered(early.head)
                response = await answered.send(request, sent=lambda: self._open_wanted(origin))
                return httpx.Response(
                    response.status_code,
                    headers=response.headers,
                    stream=_Body(answered, self, origin),
                    extensions={
                        "http_version": b"HTTP/" + response.http_version,
                        "pinner_sent_at_start_up": early.elapsed,
                    },
                )
        connection = self._reuse(origin) or await self._opened_ahead(origin)
        if connection is None:
            self._connecting[origin] = self._connecting.get(origin, 0) + 1
            try:
                connection = await self._connect(origin)
            finally:
                self._connecting[origin] -= 1
        try:
            response = await connection.send(request, sent=lambda: self._open_wanted(origin))
        except BaseException:
            connection.close()
            raise
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Body(connection, self, origin),
            extensions={"http_version": b"HTTP/" + response.http_version, **extensions},
        )

    async def aclose(self) -> None:
        opening = [task for tasks in self._opening.values() for task in tasks]
        for task in opening:
            task.cancel()
        await asyncio.gather(*opening, return_exceptions=True)
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _reuse(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.usable():
                return connection
            connection.close()  # the server closed it while it waited
        return None

    async def _opened_ahead(self, origin: _Origin) -> _Connection | None:
        """A connection opened ahead for *origin*, waited for if still opening; None if there
        is none left (or it failed)."""
        opening = self._opening.get(origin)
        while opening:
            task = opening.pop()
            try:
                connection = await asyncio.shield(task)
            except asyncio.CancelledError:
                # This request was cancelled, not the opening: keep what it brings.
                task.add_done_callback(lambda done: self._opened(origin, done, taken=False))
                raise
            if connection is not None:
                return connection
        return None

    def _opened(
        self, origin: _Origin, task: asyncio.Task[_Connection | None], *, taken: bool = True
    ) -> None:
        """A connection opened ahead that no request has taken goes to the idle ones."""
        opening = self._opening.get(origin, [])
        if task in opening:
            opening.remove(task)
        elif taken:
            return  # a request took it
        connection = None if task.cancelled() or task.exception() else task.result()
        if connection is not None:
            self._keep(origin, connection)

    async def _open_quietly(self, origin: _Origin, timeout: float) -> _Connection | None:
        try:
            async with asyncio.timeout(timeout):
                return await self._connect(origin)
        except Exception:  # whatever it was, the request that needs it meets it and says so
            return None

    def _keep(self, origin: _Origin, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if connection.usable() and len(idle) < self._keep_alive:
            idle.append(connection)
        else:
            connection.close()

    async def _connect(self, origin: _Origin) -> _Connection:
        """A new connection to *origin*; httpx.ConnectError (its cause the OSError or ssl
        error) if it cannot be opened."""
        scheme, host, port = origin
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"{scheme} is not http or https")
        tls = self._tls if scheme == "https" else None
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=host if tls else None
            )
        except OSError as e:  # ssl.SSLError is one: the chain keeps it for the message
            raise httpx.ConnectError("could not connect") from e
        return _Connection(reader, writer)


def _origin(url: httpx.URL) -> _Origin:
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme, 0)


def _asked(method: str, url: httpx.URL, fields: Sequence[tuple[bytes, bytes]]) -> _Asked:
    kept = sorted((n.lower(), v) for n, v in fields if n.lower() not in _OF_THE_CONNECTION)
    return method, str(url), tuple(kept)


class _Connection:
    """One socket and its h11 state machine."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._h11 = h11.Connection(h11.CLIENT)

    def usable(self) -> bool:
        """Whether the next request may go on it: the last exchange is over, both sides
        kept the connection open, and the server has not closed it since."""
        if self._h11.our_state is not h11.IDLE or self._h11.their_state is not h11.IDLE:
            return False
        return not (self._writer.is_closing() or self._reader.at_eof())

    def close(self) -> None:
        self._writer.close()

    async def send(
        self, request: httpx.Request, sent: Callable[[], None] | None = None
    ) -> h11.Response:
        """Send *request* (then call *sent*) and read its answer's status line and headers."""
        body = await request.aread()
        target = request.url.raw_path
        try:
            out = self._h11.send(
                h11.Request(method=request.method, target=target, headers=request.headers.raw)
            )
            if body:
                out += self._h11.send(h11.Data(data=body))
            out += self._h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError as e:  # a header h11 will not send; never quoted
            raise httpx.LocalProtocolError("a request h11 refuses to send") from e
        await self._write(out)
        if sent is not None:
            sent()
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                return event
            if not isinstance(event, h11.InformationalResponse):  # 100 Continue, 103 Early Hints
                raise httpx.RemoteProtocolError("the server closed the connection")

    async def _write(self, out: bytes) -> None:
        try:
            self._writer.write(out)
            await self._writer.drain()
        except OSError as e:
            raise httpx.WriteError("could not send") from e

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:  # ConnectionClosed: h11 raises first when a body is cut short, but be sure
                raise httpx.RemoteProtocolError("the server closed the connection")

    async def _next_event(self) -> h11.Event:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as e:
                raise httpx.RemoteProtocolError("broken HTTP from the server") from e
            if isinstance(event, h11.Event):
                return event
            if event is h11.PAUSED:  # only after a complete answer: never read past it
                raise httpx.RemoteProtocolError("the server sent more than one answer")
            try:
                data = await self._reader.read(_READ_SIZE)
            except OSError as e:
                raise httpx.ReadError("could not read") from e
            try:
                self._h11.receive_data(data)  # b"": the server closed the connection
            except h11.RemoteProtocolError as e:
                raise httpx.RemoteProtocolError("broken HTTP from the server") from e

    def ended(self) -> bool:
        """Whether the answer is over without another byte to read: the answer to a HEAD,
        or one with an empty body, whose end h11 knows from the headers alone."""
        if self._h11.their_state is h11.DONE:
            return True
        try:
            return isinstance(self._h11.next_event(), h11.EndOfMessage)
        except h11.RemoteProtocolError:
            return False

    def finish(self) -> bool:
        """After a whole answer: ready the connection for the next request, if it can be."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            with contextlib.suppress(h11.LocalProtocolError):
                self._h11.start_next_cycle()
        return self.usable()


class _Answered(_Connection):
    """A request sent at start-up, and the head of its answer (a HEAD's answer has no body):
    h11 goes through the exchange as on any connection, but nothing is written, and what it
    reads is that head, then the end (the thread hung up). Never reused."""

    def __init__(self, head: bytes) -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(head)
        reader.feed_eof()
        self._reader = reader
        self._h11 = h11.Connection(h11.CLIENT)

    def usable(self) -> bool:
        return False

    def close(self) -> None:
        pass  # closed already, by the thread that sent the request

    async def _write(self, out: bytes) -> None:
        pass  # sent already


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives; its connection goes back to the pool once it has all
    been read, and is closed if the body was left unread."""

    def __init__(self, connection: _Connection, transport: Transport, origin: _Origin) -> None:
        self._connection = connection
        self._transport = transport
        self._origin = origin
        self._complete = False
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._connection.body():
                yield chunk
        except BaseException:
            await self.aclose()
            raise
        self._complete = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if (self._complete or self._connection.ended()) and self._connection.finish():
            self._transport._keep(self._origin, self._connection)
        else:
            self._connection.close()
