"""Which certificate authorities verify registries over https.

Kept apart from the HTTP client so that a registry's ping (:mod:`pinner.resolve.ping`) can
build the run's TLS context on its thread before httpx has been imported.
"""

from __future__ import annotations

import os
import ssl


def trusted_certificates(*, needed: bool = True) -> ssl.SSLContext:
    """The CAs that verify registries: ``SSL_CERT_FILE``/``SSL_CERT_DIR`` if set, else certifi's.

    Loading a CA bundle costs ~17 ms; when no registry of the run is reached over https (all on
    loopback), *needed* is False and the context holds no CA at all, so that anything that
    still came to ask for TLS would fail verification rather than pass it.

    The variables OpenSSL and curl read, so a corporate CA is trusted the usual way. httpx reads
    them too, but differently by version: 0.27 skips an SSL_CERT_FILE that is not a file, 0.28
    raises FileNotFoundError while building the client. Here one that cannot be loaded is left
    out, and named when a certificate then fails to verify. Without either, certifi's bundle,
    as ``httpx.create_ssl_context`` builds it (httpx 0.28).
    """
    if not needed:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and trusts no one
    context, _ = environment_certificates()
    if context is not None:
        return context
    import certifi  # httpx's own dependency

    return ssl.create_default_context(cafile=certifi.where())


def environment_certificates() -> tuple[ssl.SSLContext | None, str]:
    """A context from SSL_CERT_FILE and SSL_CERT_DIR, or None and why not ("" if unset)."""
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        return None, ""
    try:
        return ssl.create_default_context(cafile=cafile, capath=capath), ""
    except ssl.SSLError:
        why = "it holds no PEM certificate"
    except OSError as e:
        why = e.strerror or str(e)
    return None, f"SSL_CERT_FILE={cafile} was not used: {why}"
