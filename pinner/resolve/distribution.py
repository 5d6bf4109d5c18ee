"""Any registry: the tag's current digest from the distribution API.

``HEAD /v2/<name>/manifests/<tag>`` answers the digest in ``Docker-Content-Digest``
(distribution spec, "Checking if content exists"). The Accept header lists the
index and manifest-list types first, so a multi-platform tag gives its index
digest, which is what ``docker pull`` of the tag resolves. HEAD does not count
against Docker Hub's pull limit; GET is only the fallback for a registry that
sends no digest on HEAD, and then the digest is computed from the body, which
must be a manifest of one of the accepted types: a schema 1 manifest's digest is
not the hash of its body, and a 200 page from a captive portal or a misconfigured
mirror is not a manifest at all.
"""

from __future__ import annotations

import hashlib
import json

from pinner.errors import RegistryError
from pinner.limits import MAX_MANIFEST_BYTES
from pinner.reference import ImageReference, is_sha256_digest
from pinner.resolve import Resolution
from pinner.resolve.client import RegistryClient
from pinner.resolve.lookups import ACCEPT, MANIFEST_TYPES, manifest_path
from pinner.resolve.transport import Body
from pinner.timestamps import Cutoff

_MANIFEST = Body("a manifest", MAX_MANIFEST_BYTES)


class DistributionResolver:
    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    async def resolve(self, reference: ImageReference, cutoff: Cutoff | None) -> Resolution:
        if cutoff is not None:
            raise RegistryError(
                f"{reference.registry} keeps no tag history, so --before cannot be answered for it"
            )
        return Resolution(await self.manifest_digest(reference, reference.effective_tag))

    async def manifest_digest(self, reference: ImageReference, tag_or_digest: str) -> str:
        path = manifest_path(reference.repository, tag_or_digest)
        headers = {"Accept": ACCEPT}
        head = await self.client.request(
            "HEAD", reference.registry, reference.repository, path, headers=headers
        )
        digest = head.headers.get("Docker-Content-Digest")
        if digest:  # some proxies send the header empty: as good as no digest
            return _checked(digest)
        response = await self.client.request(
            "GET", reference.registry, reference.repository, path, headers=headers, body=_MANIFEST
        )
        body = response.body
        _check_manifest(body)
        computed = "sha256:" + hashlib.sha256(body).hexdigest()
        claimed = response.headers.get("Docker-Content-Digest")
        if claimed and claimed != computed:
            raise RegistryError("the manifest's Docker-Content-Digest does not match its content")
        return computed

    async def manifest(self, reference: ImageReference, digest: str) -> bytes:
        """The body of the manifest or index *digest* names in the reference's repository,
        checked against the digest (content-addressed: a body that does not hash to it is
        refused, whatever the registry claims)."""
        path = f"/v2/{reference.repository}/manifests/{digest}"
        response = await self.client.request(
            "GET",
            reference.registry,
            reference.repository,
            path,
            headers={"Accept": ACCEPT},
            body=_MANIFEST,
        )
        body = response.body
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryError(f"the manifest sent for {digest} does not match that digest")
        _check_manifest(body)
        return body

    async def blob(self, reference: ImageReference, digest: str, cap: Body) -> bytes:
        """The blob *digest* names in the reference's repository (a config, an attestation),
        read within *cap* and checked against the digest."""
        response = await self.client.request(
            "GET",
            reference.registry,
            reference.repository,
            f"/v2/{reference.repository}/blobs/{digest}",
            body=cap,
        )
        if "sha256:" + hashlib.sha256(response.body).hexdigest() != digest:
            raise RegistryError(f"the blob sent for {digest} does not match that digest")
        return response.body


def _checked(digest: str) -> str:
    if not is_sha256_digest(digest):
        raise RegistryError(f"the registry sent an invalid digest {digest[:80]!r}")
    return digest


def _check_manifest(body: bytes) -> None:
    """Refuse a GET answer whose hash would not be the digest of a manifest we asked for.

    The Content-Type is not enough: some registries label every manifest application/json,
    and a proxy can keep the header while the body is its own error page.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        document = None
    # schemaVersion 2 and, where the manifest names it (OCI allows leaving it out), one of the
    # types we asked for.
    if (
        isinstance(document, dict)
        and document.get("schemaVersion") == 2
        and document.get("mediaType", MANIFEST_TYPES[0]) in MANIFEST_TYPES
    ):
        return
    raise RegistryError(
        "the registry answered the manifest request with something that is not an image"
        " manifest or index; refusing to pin to it"
    )
