"""Import httpx without what pin never uses: its command-line client, and trio.

``import httpx`` runs ``from ._main import main`` for the ``httpx`` command, which imports
click, rich's console, syntax and table, and pygments when they are installed (rich is, for
pin's progress bar): 40-100 ms of a run's start-up for a function pin never calls. So a
stand-in ``httpx._main`` waits in ``sys.modules`` for that import (:func:`leave_out_httpx_cli`,
which imports nothing: the modules that need httpx import it themselves, and
:mod:`pinner.resolve.ping` needs none).

pin sends its requests through :mod:`pinner.resolve.http11`, so httpcore (and anyio) are
imported only when httpx builds its own transport for an environment proxy (``HTTPS_PROXY``);
httpcore then imports trio, if installed, to pick its locks (``httpcore/_synchronization.py``),
and trio's import alone is ~100 ms: :func:`without_trio` keeps it out while the client is built.
The ``httpx.main`` left behind imports the real one when called, and a later ``import trio``
works as ever.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any


def _main(*args: Any, **kwargs: Any) -> Any:
    """``httpx.main``, imported when called (pin never calls it)."""
    modules: dict[str, Any] = sys.modules
    if getattr(modules.get("httpx._main"), "main", None) is _main:
        del modules["httpx._main"]  # the stand-in: make way for the real one
    from httpx._main import main

    return main(*args, **kwargs)


@contextlib.contextmanager
def _blocked(blocked: Mapping[str, Any]) -> Iterator[None]:
    # A None entry makes `import trio` raise ImportError, which httpcore expects when trio is
    # not installed (typeshed's sys.modules does not say that None is allowed there).
    modules: dict[str, Any] = sys.modules
    blocked = {name: module for name, module in blocked.items() if name not in modules}
    modules.update(blocked)
    try:
        yield
    finally:
        for name, module in blocked.items():
            if modules.get(name) is module:
                del modules[name]


def leave_out_httpx_cli() -> None:
    """Have the next ``import httpx`` take a stand-in for its command-line client."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stub = types.ModuleType("httpx._main")
    stub.main = _main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stub


def without_trio() -> contextlib.AbstractContextManager[None]:
    """Around building an ``httpx.AsyncClient``: httpcore, if an environment proxy makes httpx
    import it, picks asyncio's locks without importing trio."""
    return _blocked({"trio": None})
