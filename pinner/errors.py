"""The one error tree of pinner.

    PinError                 anything pin reports as one line and exit code 2
    ├── UsageError           a flag or value the user gave cannot be understood
    ├── FileError            a Dockerfile cannot be read or written
    ├── ReferenceError_      an image reference is malformed
    └── RegistryError        a registry could not give a trustworthy answer
        ├── AuthError        401/403, a bad token answer, a credential that cannot be used
        ├── NotFoundError    404: unknown repository or tag
        ├── NoBuildError     the history has no build at or before the cut-off
        └── UnreachableError the registry cannot be used at all (network, TLS): reported
                             once per registry, not once per image

Transport errors from httpx are translated into these at the resolver boundary
(``raise RegistryError(...) from e``), so nothing above it ever sees httpx.
"""

from __future__ import annotations


class PinError(Exception):
    """Base of every error pin reports to the user; ``str()`` is the one-line message."""


class UsageError(PinError):
    """A command-line value cannot be understood."""


class FileError(PinError):
    """A file cannot be read, decoded or written."""


class ReferenceError_(PinError):
    """An image reference is not valid Docker reference syntax."""


class RegistryError(PinError):
    """A registry request failed or answered something that cannot be trusted."""


class AuthError(RegistryError):
    """The registry refused us, or the credential exchange failed."""


class NotFoundError(RegistryError):
    """The registry does not know the repository or the tag."""


class NoBuildError(RegistryError):
    """The tag history has no build at or before the requested cut-off."""

    def __init__(self, message: str, oldest_ns: int | None = None) -> None:
        super().__init__(message)
        self.oldest_ns = oldest_ns  # when the tag's oldest build was published, if any


class UnreachableError(RegistryError):
    """No request to ``registry`` can succeed in this run: its name does not resolve, it
    refuses or drops connections, it does not answer in time, its certificate does not
    verify. Nothing more is asked of it, and the run reports it once."""

    def __init__(self, message: str, registry: str = "") -> None:
        super().__init__(message)
        self.registry = registry
