"""A TCP relay on loopback, between pin and a registry: it counts the connections it accepts
and notes, in order, when each was accepted and first carried a request
(tests/test_connections.py), and can hold what a client sends back a while, one injected round
trip per request, as a far registry would (benchmarks/bench.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


class Relay:
    """Forwards each connection it accepts to *upstream*, what the client sends *latency*
    seconds late (HTTP/1.1 requests on a connection are not pipelined, so each request
    arrives that much later); without *upstream*, holds it and answers nothing."""

    def __init__(self, upstream: tuple[str, int] | None = None, latency: float = 0.0) -> None:
        self.upstream = upstream
        self.latency = latency
        self.accepted = 0
        # ("accepted", n) and ("sent", n) for the n-th connection, in the order they happened.
        self.events: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self.server = socket.create_server((LOOPBACK, 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.stopping = threading.Event()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> Relay:
        self._start(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for sock in self.sockets:  # unblocks the pumps' recv()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()
        self.server.close()

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            with self._lock:
                number = self.accepted
                self.accepted += 1
                self.events.append(("accepted", number))
            self.sockets.append(client)
            if self.upstream is None:
                continue
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.settimeout(None)
            self.sockets.append(upstream)
            self._start(self._pump, client, upstream, self.latency, number)
            self._start(self._pump, upstream, client, 0.0)

    def _pump(
        self, source: socket.socket, sink: socket.socket, delay: float, number: int | None = None
    ) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if number is not None:  # the client's side: note its first request
                    with self._lock:
                        self.events.append(("sent", number))
                    number = None
                if delay:
                    time.sleep(delay)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
