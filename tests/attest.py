"""Attestations for tests, as cosign and Chainguard publish them.

* :func:`spdx` builds an SPDX 2.3 document shaped like apko's (Chainguard's image SBOMs): the
  image itself (``documentDescribes``, a ``pkg:oci`` purl), its layer (named by its digest), the
  operating system, the APKs, and beside each APK its upstream source and melange recipe
  (``GENERATED_FROM``, ``DESCRIBED_BY``), which are not installed in the image.
* :func:`envelope` wraps an in-toto statement about a digest in a DSSE envelope (cosign's
  ``application/vnd.dsse.envelope.v1+json`` layer; the signature is a placeholder: pin does
  not check signatures).
* :func:`attach` stores an attestation manifest under cosign's ``sha256-<hex>.att`` tag, on the
  fake cgr.dev or on the real docker-registry; :func:`refer` stores a Sigstore bundle as an
  OCI 1.1 referrer (fake registry only: distribution 2.8 has no referrers API).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence

from tests.distribution import Distribution
from tests.fakeregistry import FakeRegistry

SPDX_TYPE = "https://spdx.dev/Document"
CYCLONEDX_TYPE = "https://cyclonedx.org/bom"
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
DSSE = "application/vnd.dsse.envelope.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"

Packages = Sequence[tuple[str, str]]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def spdx(image_digest: str, packages: Packages) -> dict[str, object]:
    image_id = "SPDXRef-Package-" + image_digest.replace(":", "-")
    layer = sha256(image_digest.encode())
    layer_id = "SPDXRef-Package-" + layer.replace(":", "-")
    items: list[dict[str, object]] = [
        {
            "SPDXID": image_id,
            "name": image_digest,
            "versionInfo": image_digest,
            "primaryPackagePurpose": "CONTAINER",
            "externalRefs": [_purl(f"pkg:oci/image@{image_digest}")],
        },
        {
            "SPDXID": layer_id,
            "name": layer,
            "versionInfo": layer,
            "description": "apko operating system layer",
            "externalRefs": [_purl(f"pkg:oci/image@{layer}")],
        },
        {
            "SPDXID": "SPDXRef-OperatingSystem",
            "name": "wolfi",
            "versionInfo": "20230201",
            "primaryPackagePurpose": "OPERATING_SYSTEM",
        },
    ]
    relationships: list[dict[str, str]] = [_relation(image_id, "CONTAINS", layer_id)]
    for name, version in packages:
        apk = f"SPDXRef-Package-{name}-{version}"
        source = f"SPDXRef-Package-github.com-{name}-{version}-source"
        recipe = f"SPDXRef-Package-{name}.yaml-{hashlib.sha1(version.encode()).hexdigest()}"
        items += [
            {
                "SPDXID": apk,
                "name": name,
                "versionInfo": version,
                "externalRefs": [_purl(f"pkg:apk/wolfi/{name}@{version}?arch=x86_64")],
            },
            {"SPDXID": source, "name": name, "versionInfo": "release-" + version.split("-")[0]},
            {"SPDXID": recipe, "name": f"{name}.yaml", "versionInfo": recipe[-40:]},
        ]
        relationships += [
            _relation(image_id, "CONTAINS", apk),
            _relation(apk, "GENERATED_FROM", source),
            _relation(apk, "DESCRIBED_BY", recipe),
        ]
    return {
        "SPDXID": "SPDXRef-DOCUMENT",
        "spdxVersion": "SPDX-2.3",
        "name": "sbom-" + image_digest,
        "documentDescribes": [image_id],
        "packages": items,
        "relationships": relationships,
    }


def _purl(locator: str) -> dict[str, str]:
    return {
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceLocator": locator,
        "referenceType": "purl",
    }


def _relation(element: str, kind: str, related: str) -> dict[str, str]:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def statement(subject: str, predicate_type: str, predicate: object) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": predicate_type,
            "subject": [{"name": "cgr.dev/chainguard/x", "digest": {"sha256": subject[7:]}}],
            "predicate": predicate,
        }
    ).encode()


def envelope(payload: bytes) -> bytes:
    return json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": "bm90IGNoZWNrZWQ="}],
        }
    ).encode()


def sbom_envelope(subject: str, packages: Packages) -> bytes:
    return envelope(statement(subject, SPDX_TYPE, spdx(subject, packages)))


Layer = tuple[bytes, str | None]  # the blob, its predicateType annotation (None: none)


def att_manifest(layers: Sequence[Layer]) -> tuple[bytes, bytes, list[bytes]]:
    """An attestation manifest as cosign writes it, its config, and its layer blobs."""
    config = json.dumps({"architecture": "", "os": "", "rootfs": {"type": "layers"}}).encode()
    descriptors: list[dict[str, object]] = []
    for blob, predicate_type in layers:
        descriptor: dict[str, object] = {
            "mediaType": DSSE,
            "size": len(blob),
            "digest": sha256(blob),
        }
        if predicate_type is not None:
            descriptor["annotations"] = {"predicateType": predicate_type}
        descriptors.append(descriptor)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": sha256(config),
        },
        "layers": descriptors,
    }
    return json.dumps(manifest).encode(), config, [blob for blob, _ in layers]


def att_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".att"


def attach(registry: FakeRegistry | Distribution, repo: str, digest: str, *layers: Layer) -> None:
    """Store *layers* as cosign's attestation manifest of *digest* (tag ``sha256-<hex>.att``)."""
    manifest, config, blobs = att_manifest(layers)
    if isinstance(registry, FakeRegistry):
        for blob in (config, *blobs):
            registry.put_blob(repo, blob)
        registry.put_tag(repo, att_tag(digest), registry.put_manifest(repo, manifest, OCI_MANIFEST))
    else:
        for blob in (config, *blobs):
            registry.push_blob(repo, blob)
        registry.push_manifest(repo, att_tag(digest), manifest, OCI_MANIFEST)


def attach_sbom(
    registry: FakeRegistry | Distribution, repo: str, digest: str, packages: Packages
) -> None:
    """cosign's layout with Chainguard's attestations: provenance, then the SPDX SBOM."""
    provenance = envelope(statement(digest, PROVENANCE_TYPE, {"buildType": "apko"}))
    attach(
        registry,
        repo,
        digest,
        (provenance, PROVENANCE_TYPE),
        (sbom_envelope(digest, packages), SPDX_TYPE),
    )


def refer(registry: FakeRegistry, repo: str, digest: str, packages: Packages) -> str:
    """An SPDX attestation as cosign stores it through the OCI 1.1 referrers API: a manifest
    whose ``subject`` is *digest* and whose layer is a Sigstore bundle around the envelope."""
    dsse = json.loads(sbom_envelope(digest, packages))
    bundle = json.dumps({"mediaType": BUNDLE, "dsseEnvelope": dsse}).encode()
    empty = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "size": 2,
            "digest": registry.put_blob(repo, empty),
        },
        "layers": [
            {"mediaType": BUNDLE, "size": len(bundle), "digest": registry.put_blob(repo, bundle)}
        ],
        "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": 1},
        "annotations": {
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": SPDX_TYPE,
        },
    }
    return registry.put_manifest(repo, json.dumps(manifest).encode(), OCI_MANIFEST)
