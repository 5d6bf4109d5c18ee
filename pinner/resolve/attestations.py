"""The SBOM attached to an image digest, found the way cosign finds attestations.

Two places an attestation can be, tried in this order:

1. **cosign's tag scheme**: ``GET /v2/<repo>/manifests/sha256-<hex>.att``, an image manifest
   whose layers are attestations, each ``application/vnd.dsse.envelope.v1+json`` with a
   ``predicateType`` annotation (cosign's ``specs/ATTESTATION_SPEC.md``; ``cosign attest`` sets
   the annotation). This is where Chainguard's are read from (``cosign download attestation
   --platform linux/amd64 --predicate-type https://spdx.dev/Document``, in Chainguard's guide),
   it is cosign's default, and it costs one request on any registry: so it comes first.
2. **the OCI 1.1 referrers API**: ``GET /v2/<repo>/referrers/<digest>``, an index of the
   manifests whose ``subject`` is the digest (distribution spec, "Listing Referrers"); cosign
   stores Sigstore bundles there (``dev.sigstore.bundle.predicateType`` annotation). Many
   registries (distribution 2.8 among them) answer 404, which means "none here".

An index is looked at itself first; when nothing is attached to it, the manifest of the platform
asked for (``linux/amd64`` by default) is: Chainguard attaches its SBOMs to each platform's
image, since an index has no filesystem to list.

Nothing here fails a pin: every outcome is an :class:`Sbom`, with packages or with the reason
there are none. Each blob is read with its own cap and checked against its digest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pinner.errors import NotFoundError, PinError
from pinner.limits import (
    MAX_ATTESTATION_LAYERS,
    MAX_ATTESTATION_MANIFEST_BYTES,
    MAX_SBOM_BYTES,
)
from pinner.platforms import Platform, is_index, read_document, select
from pinner.reference import ImageReference, is_sha256_digest
from pinner.resolve.client import RegistryClient
from pinner.resolve.distribution import DistributionResolver
from pinner.resolve.transport import Body
from pinner.sbom import Packages, SbomError, payload_of, read_statement, sbom_kind

DEFAULT_PLATFORM = Platform("linux", "amd64")
_MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
# Where producers put an attestation's predicate type: cosign's tag-scheme layers, BuildKit's
# and in-toto's layers, cosign's Sigstore bundles in the referrers API.
_PREDICATE_ANNOTATIONS = (
    "predicateType",
    "in-toto.io/predicate-type",
    "dev.sigstore.bundle.predicateType",
)
_ATTESTATION_MANIFEST = Body("an attestation manifest", MAX_ATTESTATION_MANIFEST_BYTES)
_REFERRERS = Body("a referrers index", MAX_ATTESTATION_MANIFEST_BYTES)
_SBOM = Body("an SBOM attestation", MAX_SBOM_BYTES)

NO_SBOM = "no SBOM attached"


@dataclass(frozen=True)
class Sbom:
    """The packages an image's SBOM lists, or why there are none (``reason``)."""

    packages: Packages | None
    platform: str | None = None  # the index child it describes; None: the digest itself
    reason: str | None = None


@dataclass(frozen=True)
class _Layer:
    digest: str
    kind: str | None  # spdx, cyclonedx, None: not annotated
    annotated: bool


class AttestationReader:
    def __init__(self, client: RegistryClient, distribution: DistributionResolver) -> None:
        self.client = client
        self.distribution = distribution

    async def sbom(
        self, registry: str, repository: str, digest: str, platform: Platform | None
    ) -> Sbom:
        """The SBOM of *digest*, or of its *platform* child when it is an index (see the
        module doc). Never raises a PinError: a failure is the reason of the answer."""
        reference = ImageReference(registry, repository, None, None)
        described: str | None = None  # the platform child read, once the index is left
        try:
            found = await self._attached(reference, digest)
            if found is not None:
                return Sbom(found)
            body = await self.distribution.manifest(reference, digest)
            document = read_document(body)
            if document is None or not is_index(document):
                return Sbom(None, reason=NO_SBOM)
            want = platform or DEFAULT_PLATFORM
            child = select(document, want)
            if child is None:
                return Sbom(None, str(want), f"{NO_SBOM} (the index has no {want} image)")
            if not is_sha256_digest(child.digest):
                raise SbomError(f"the index names an invalid digest for {want}")
            described = str(want)
            found = await self._attached(reference, child.digest)
            if found is None:
                return Sbom(None, described, NO_SBOM)
            return Sbom(found, described)
        except (SbomError, PinError) as e:
            return Sbom(None, described, f"SBOM unreadable: {e}")

    async def _attached(self, reference: ImageReference, digest: str) -> Packages | None:
        """The packages of the SBOM attached to *digest* itself, None if none is."""
        found = await self._read_layers(
            reference, digest, await self._tag_scheme(reference, digest)
        )
        if found is not None:
            return found
        layers: list[_Layer] = []
        for manifest in await self._referrers(reference, digest):
            layers += _layers(await self.distribution.manifest(reference, manifest))
        return await self._read_layers(reference, digest, layers)

    async def _tag_scheme(self, reference: ImageReference, digest: str) -> list[_Layer]:
        tag = digest.replace(":", "-", 1) + ".att"  # cosign: sha256-<hex>.att
        try:
            reply = await self.client.request(
                "GET",
                reference.registry,
                reference.repository,
                f"/v2/{reference.repository}/manifests/{tag}",
                headers={"Accept": ", ".join(_MANIFEST_TYPES)},
                body=_ATTESTATION_MANIFEST,
            )
        except NotFoundError:
            return []
        return _layers(reply.body)

    async def _referrers(self, reference: ImageReference, digest: str) -> list[str]:
        """The manifests the referrers API lists for *digest* whose annotations or artifact
        type may be an SBOM attestation; [] where the API is not served (404)."""
        try:
            reply = await self.client.request(
                "GET",
                reference.registry,
                reference.repository,
                f"/v2/{reference.repository}/referrers/{digest}",
                headers={"Accept": _INDEX_TYPE},
                body=_REFERRERS,
            )
        except NotFoundError:
            return []
        document = read_document(reply.body)
        entries = document.get("manifests") if document is not None else None
        if not isinstance(entries, list):
            raise SbomError("the referrers answer is not an index")
        found: list[str] = []
        for entry, kind in _descriptors(entries):
            artifact = str(entry.get("artifactType", ""))
            # A Sigstore bundle or an in-toto artifact without an annotation may still be one.
            maybe = kind is None and ("sigstore.bundle" in artifact or "in-toto" in artifact)
            if kind is not None or maybe:
                found.append(str(entry["digest"]))
        return found[:MAX_ATTESTATION_LAYERS]

    async def _read_layers(
        self, reference: ImageReference, digest: str, layers: list[_Layer]
    ) -> Packages | None:
        """The packages of the first SBOM among *layers*: those annotated as SPDX first, then
        CycloneDX, then a few without an annotation (read to learn what they are)."""
        ordered = [layer for layer in layers if layer.kind == "spdx"]
        ordered += [layer for layer in layers if layer.kind == "cyclonedx"]
        ordered += [layer for layer in layers if not layer.annotated][:MAX_ATTESTATION_LAYERS]
        for layer in ordered:
            try:
                return await self._read_sbom(reference, digest, layer.digest)
            except SbomError:
                if layer.annotated:
                    raise  # it says it is an SBOM and cannot be read: that is the answer
                continue  # an unannotated attestation of another kind (provenance, ...)
        return None

    async def _read_sbom(self, reference: ImageReference, subject: str, blob: str) -> Packages:
        body = await self.distribution.blob(reference, blob, _SBOM)
        payload = payload_of(body)
        del body  # the envelope goes before the statement is parsed: see pinner.sbom
        statement = read_statement(payload)
        if statement.subjects and subject not in statement.subjects:
            raise SbomError(f"the SBOM attached to {subject} names another image as its subject")
        return statement.packages


def _annotated_kind(annotations: dict[object, object]) -> str | None:
    for key in _PREDICATE_ANNOTATIONS:
        if key in annotations:
            return sbom_kind(annotations[key]) or "other"
    return None


def _layers(body: bytes) -> list[_Layer]:
    """The attestation layers of an attestation manifest."""
    document = read_document(body)
    layers = document.get("layers") if document is not None else None
    if not isinstance(layers, list):
        raise SbomError("the attestation manifest has no layers")
    return [
        _Layer(str(layer["digest"]), kind, kind is not None) for layer, kind in _descriptors(layers)
    ]


def _descriptors(entries: list[object]) -> Iterator[tuple[dict[str, object], str | None]]:
    """Each descriptor of *entries* that names a valid digest, with the SBOM kind its
    annotations name (None when they name none); the others are passed over."""
    for entry in entries:
        if isinstance(entry, dict) and is_sha256_digest(str(entry.get("digest"))):
            annotations = entry.get("annotations")
            yield entry, _annotated_kind(annotations if isinstance(annotations, dict) else {})
