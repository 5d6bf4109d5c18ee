"""Where a registry's requests go: ``--mirror`` mappings, and https except on loopback.

Kept apart from the HTTP client so that reading ``--mirror`` costs no httpx import.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from pinner.errors import UsageError
from pinner.reference import DOCKER_HUB, DOCKER_HUB_API

#: The port of a URL that names none.
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """Whether *host* (no port) is this machine: localhost or a loopback address."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def hostname(registry: str) -> str:
    """The host part of ``host[:port]`` (IPv6 in brackets kept whole)."""
    if registry.startswith("["):
        return registry[: registry.index("]") + 1]
    return registry.rsplit(":", 1)[0] if ":" in registry else registry


def redact(text: str) -> str:
    """*text* with the user info of a URL in it replaced by ``***``: for messages."""
    scheme, sep, rest = text.partition("://")
    if sep and "@" in rest:
        # Up to the last "@": a password may itself hold "/", "?", "#" or "@".
        return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
    return text


def parse_mirror(text: str) -> tuple[str, str]:
    """``HOST=URL`` from ``--mirror``; plain http only for loopback URLs.

    No message repeats a password typed into the URL: each shows it redacted.
    """
    host, eq, url = text.partition("=")
    host, url = host.strip().lower(), url.strip().rstrip("/")
    shown = repr(redact(text))
    if not url.isascii() or not url.isprintable() or " " in url:
        raise UsageError(f"--mirror {shown}: the URL must be printable ASCII without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError past 65535 or when not a number
    except ValueError:
        raise UsageError(f"--mirror {shown}: not a valid URL (check the host and port)") from None
    if not eq or not host or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--mirror {shown}: expected HOST=URL, e.g. cgr.dev=https://mirror.example"
        )
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            f"--mirror {shown}: credentials in the URL are not used; remove them (pin sends"
            f" the credentials of `docker login {host}`)"
        )
    if port == 0:
        raise UsageError(f"--mirror {shown}: port 0 is not a port to connect to")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(f"--mirror {shown}: plain http is allowed only for loopback addresses")
    if parts.query or parts.fragment:
        raise UsageError(f"--mirror {shown}: the URL must not carry a query or a fragment")
    if host in ("index.docker.io", "registry-1.docker.io"):
        host = DOCKER_HUB
    return host, url


def mirrors_from(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Every ``--mirror HOST=URL``, validated; the last one for a host wins."""
    mirrors = dict(parse_mirror(value) for value in values)
    return tuple(mirrors.items())


def base_url(registry: str, mirrors: Mapping[str, str]) -> str:
    """Where requests for *registry* go: its mirror, else https (plain http on loopback, as
    Docker does for localhost registries)."""
    if registry in mirrors:
        return mirrors[registry]
    if registry == DOCKER_HUB:
        return f"https://{DOCKER_HUB_API}"
    scheme = "http" if is_loopback(hostname(registry)) else "https"
    return f"{scheme}://{registry}"
