"""Import httpx (and httpcore) without what pin never uses: its command-line client, and trio.

``import httpx`` runs ``from ._main import main`` for the ``httpx`` command, which imports
click, rich's console, syntax and table, and pygments when they are installed (rich is, for
pin's progress bar): 40-100 ms of a run's start-up for a function pin never calls. httpcore
imports trio, if installed, to pick its locks (``httpcore/_synchronization.py``); pin runs on
asyncio, for which httpcore uses anyio, and trio's import alone is ~100 ms. Both are kept out
only while httpx is first imported; the ``httpx.main`` left behind imports the real one when
called, and a later ``import trio`` works as ever.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def _main(*args: Any, **kwargs: Any) -> Any:
    """``httpx.main``, imported when called (pin never calls it)."""
    from httpx._main import main

    return main(*args, **kwargs)


def import_httpx() -> None:
    if "httpx" in sys.modules:
        return
    stub = types.ModuleType("httpx._main")
    stub.main = _main  # type: ignore[attr-defined]
    # A None entry makes `import trio` raise ImportError, which httpcore expects when trio is
    # not installed (typeshed's sys.modules does not say that None is allowed there).
    modules: dict[str, Any] = sys.modules
    blocked = {"httpx._main": stub} | ({} if "trio" in modules else {"trio": None})
    modules.update(blocked)
    try:
        # httpx imports httpcore only when a client is built: import it here, under the block.
        import httpcore  # noqa: F401
        import httpx  # noqa: F401
    finally:
        for name, module in blocked.items():
            if modules.get(name) is module:
                del modules[name]
