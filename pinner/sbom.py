"""What an image's SBOM says it holds, and what changed between two builds.

Pure: bytes in, values out; the fetching is :mod:`pinner.resolve.attestations`. The layers, from
the outside in (in-toto attestation framework, ``spec/v1``):

* an attestation blob: a DSSE envelope (``{"payloadType", "payload": base64, "signatures"}``,
  cosign's ``application/vnd.dsse.envelope.v1+json`` layers), a Sigstore bundle that holds one
  under ``dsseEnvelope`` (cosign's OCI 1.1 referrers), or a bare in-toto statement
  (``application/vnd.in-toto+json``);
* the statement: ``{"_type", "subject": [{"digest": {"sha256": ...}}], "predicateType",
  "predicate"}``;
* the predicate: an SPDX 2.x JSON document (``https://spdx.dev/Document``, any version) or a
  CycloneDX JSON BOM (``https://cyclonedx.org/bom``).

Signatures are **not** checked: these are the contents a registry served, for a reviewer to
read, not evidence.

Memory: a 50 MB envelope parsed whole is two more 50 MB copies of its text (decoded, then the
payload string), 37 MB of decoded payload and a parsed document several times that. So the
payload is decoded straight out of the envelope's bytes (:func:`payload_of`), the envelope is
dropped by the caller, and the statement is parsed keeping only the fields read
(:func:`read_statement`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pinner.limits import MAX_SBOM_PACKAGES

SPDX = "https://spdx.dev/Document"
CYCLONEDX = "https://cyclonedx.org/bom"
IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"

#: name -> the versions of that name in the image (a name may be installed more than once,
#: at different versions: two Python environments, a vendored copy).
Packages = dict[str, frozenset[str]]


class SbomError(ValueError):
    """An attestation or SBOM that cannot be read; ``str()`` says why, for ``SBOM unreadable:``."""


def sbom_kind(predicate_type: object) -> str | None:
    """``spdx`` or ``cyclonedx`` for a predicate type naming one (any version), else None."""
    if not isinstance(predicate_type, str):
        return None
    for kind, base in (("spdx", SPDX), ("cyclonedx", CYCLONEDX)):
        if predicate_type == base or predicate_type.startswith(base + "/"):
            return kind
    return None


# The payload of a DSSE envelope as it is written: base64 never needs a JSON escape.
_PAYLOAD_RE = re.compile(rb'"payload"\s*:\s*"([A-Za-z0-9+/=]*)"')


def payload_of(blob: bytes) -> bytes:
    """The in-toto statement an attestation blob carries, as bytes: the decoded payload of a
    DSSE envelope (bare, or in a Sigstore bundle), or the blob itself when it is a statement."""
    quick = _quick_payload(blob)
    if quick is not None:
        return quick
    document = _json(blob, "the attestation")
    if not isinstance(document, dict):
        raise SbomError("the attestation is not a JSON object")
    envelope = document.get("dsseEnvelope", document)  # a Sigstore bundle holds one
    if not isinstance(envelope, dict):
        raise SbomError("the attestation's dsseEnvelope is not an object")
    if "_type" in envelope and "predicateType" in envelope:
        return blob  # a bare statement (BuildKit's and cosign's unwrapped layers)
    payload_type, payload = envelope.get("payloadType"), envelope.get("payload")
    if not isinstance(payload, str):
        raise SbomError("the attestation is neither a DSSE envelope nor an in-toto statement")
    if payload_type not in (None, IN_TOTO_PAYLOAD):
        raise SbomError(f"the DSSE envelope carries {str(payload_type)[:80]!r}, not in-toto")
    del document, envelope  # only the payload string is kept from here
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise SbomError("the DSSE payload is not valid base64") from None


def _quick_payload(blob: bytes) -> bytes | None:
    """The envelope's payload decoded straight from *blob*, without the two copies of it that
    parsing the envelope makes (the decoded text, the payload string): for a 50 MB envelope,
    100 MB less at the peak. The envelope less its payload is parsed to make sure the text
    found is its ``payload`` (and not text elsewhere); None when anything is unusual, and the
    envelope is then parsed whole."""
    match = _PAYLOAD_RE.search(blob)
    if match is None:
        return None
    start, end = match.span(1)
    try:
        document = json.loads(blob[:start] + blob[end:])
    except (ValueError, RecursionError):
        return None
    envelope = document.get("dsseEnvelope", document) if isinstance(document, dict) else None
    if not isinstance(envelope, dict) or envelope.get("payload") != "":
        return None
    if envelope.get("payloadType") not in (None, IN_TOTO_PAYLOAD):
        return None  # said by the full parse
    try:
        return binascii.a2b_base64(memoryview(blob)[start:end], strict_mode=True)
    except (binascii.Error, ValueError):
        raise SbomError("the DSSE payload is not valid base64") from None


@dataclass(frozen=True)
class Statement:
    """What one attestation says: its predicate type, whom it is about, the packages in it."""

    predicate_type: str
    subjects: frozenset[str]  # sha256:... digests of the subjects
    packages: Packages


# The keys read from a statement and its SBOM, at any depth: every other one (descriptions,
# licence texts, checksums, files) is dropped as each object is parsed, so the parsed SBOM
# weighs a fraction of its text.
_KEPT = frozenset(
    {
        "_type", "predicateType", "predicate", "subject", "digest", "sha256",
        "packages", "relationships", "documentDescribes",
        "SPDXID", "name", "versionInfo", "primaryPackagePurpose", "externalRefs",
        "referenceLocator", "relationshipType", "spdxElementId", "relatedSpdxElement",
        "components", "type", "version",
    }
)  # fmt: skip


def _slim(obj: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in obj.items() if key in _KEPT}


def read_statement(payload: bytes) -> Statement:
    """The packages of an in-toto statement whose predicate is an SPDX or CycloneDX SBOM."""
    try:
        statement = json.loads(payload, object_hook=_slim)
    except (ValueError, RecursionError):
        raise SbomError("the in-toto statement is not valid JSON") from None
    del payload
    if not isinstance(statement, dict):
        raise SbomError("the in-toto statement is not a JSON object")
    predicate_type = statement.get("predicateType")
    kind = sbom_kind(predicate_type)
    if kind is None:
        raise SbomError(f"the attestation is a {str(predicate_type)[:80]!r}, not an SBOM")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise SbomError("the SBOM attestation has no predicate object")
    packages = spdx_packages(predicate) if kind == "spdx" else cyclonedx_packages(predicate)
    return Statement(str(predicate_type), _subjects(statement.get("subject")), packages)


def _json(data: bytes, what: str) -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise SbomError(f"{what} is not valid JSON") from None


def _subjects(value: object) -> frozenset[str]:
    found: set[str] = set()
    for subject in value if isinstance(value, list) else []:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        if isinstance(digests, dict) and isinstance(digests.get("sha256"), str):
            found.add("sha256:" + digests["sha256"].lower())
    return frozenset(found)


# SPDX 2.3 relationship types (section 11.1) whose related element is not in the image: the
# source a package was built from and the recipe that describes its build. apko's SBOMs list
# both beside each APK (``pkg:github/...@<commit>#glibc.yaml``, the upstream tarball), and they
# would show up as noise, a new "version" at every commit.
_NOT_INSTALLED = frozenset({"GENERATED_FROM", "DESCRIBED_BY"})
# GENERATES and DESCRIBES say the same from the other end: their element is the source.
_NOT_INSTALLED_ELEMENT = frozenset({"GENERATES"})
# primaryPackagePurpose values (SPDX 2.3, 7.24) that are not software installed in the image.
_NOT_A_PACKAGE = frozenset({"CONTAINER", "FILE"})


def spdx_packages(document: dict[str, object]) -> Packages:
    """``packages[].name`` / ``versionInfo`` of an SPDX 2.x JSON document, less what the
    document marks as the image itself or as not installed in it:

    * what the document describes (``documentDescribes``, ``SPDXRef-DOCUMENT DESCRIBES``): the
      image (apko names it by its own digest);
    * an OCI image or layer (a ``pkg:oci/`` purl: apko's layer package is named by the layer's
      digest, new at every build) and a package whose purpose is ``CONTAINER`` or ``FILE``;
    * the source and the build recipe of a package (``GENERATED_FROM``, ``DESCRIBED_BY``).
    """
    skip: set[str] = set()
    described = document.get("documentDescribes")
    if isinstance(described, list):
        skip.update(x for x in described if isinstance(x, str))
    relationships = document.get("relationships")
    for relation in relationships if isinstance(relationships, list) else []:
        if not isinstance(relation, dict):
            continue
        # Only strings are compared: a hostile document's list or object is no identifier.
        kind, element, related = (
            _text(relation.get(k))
            for k in ("relationshipType", "spdxElementId", "relatedSpdxElement")
        )
        if kind in _NOT_INSTALLED or (kind == "DESCRIBES" and element == "SPDXRef-DOCUMENT"):
            skip.add(related)
        elif kind in _NOT_INSTALLED_ELEMENT:
            skip.add(element)
    packages = document.get("packages")
    if not isinstance(packages, list):
        raise SbomError("the SPDX document has no packages list")
    found: dict[str, set[str]] = {}
    for package in packages:
        if not isinstance(package, dict) or _text(package.get("SPDXID")) in skip:
            continue
        if _text(package.get("primaryPackagePurpose")) in _NOT_A_PACKAGE or _is_oci(package):
            continue
        _add(found, package.get("name"), package.get("versionInfo"))
    return {name: frozenset(versions) for name, versions in found.items()}


def _text(value: object) -> str:
    """*value* if it is a string, else "" (which names nothing)."""
    return value if isinstance(value, str) else ""


def _is_oci(package: dict[object, object]) -> bool:
    references = package.get("externalRefs")
    return any(
        isinstance(r, dict) and str(r.get("referenceLocator", "")).startswith("pkg:oci/")
        for r in (references if isinstance(references, list) else [])
    )


def cyclonedx_packages(document: dict[str, object]) -> Packages:
    """``components[].name`` / ``version`` of a CycloneDX JSON BOM, nested components
    included; ``metadata.component`` (the image) is not among them, and components of type
    ``file`` or ``container`` are left out."""
    components = document.get("components", [])
    if not isinstance(components, list):
        raise SbomError("the CycloneDX BOM's components is not a list")
    found: dict[str, set[str]] = {}
    for component in _walk(components):
        if _text(component.get("type")) in ("file", "container"):
            continue
        _add(found, component.get("name"), component.get("version"))
    return {name: frozenset(versions) for name, versions in found.items()}


def _walk(components: list[object]) -> Iterator[dict[str, object]]:
    """Every component, depth first, without recursion (a BOM may nest deeply)."""
    stack = list(reversed(components))
    while stack:
        component = stack.pop()
        if not isinstance(component, dict):
            continue
        yield component
        nested = component.get("components")
        if isinstance(nested, list):
            stack.extend(reversed(nested))


def _add(found: dict[str, set[str]], name: object, version: object) -> None:
    if not isinstance(name, str) or not name:
        return
    if len(found) >= MAX_SBOM_PACKAGES and name not in found:
        raise SbomError(f"the SBOM lists more than {MAX_SBOM_PACKAGES:,} packages")
    # An SBOM may leave a version out (SPDX's versionInfo is optional): "" then.
    found.setdefault(name, set()).add(version if isinstance(version, str) else "")


# -- the diff ----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str


@dataclass(frozen=True, order=True)
class Changed:
    name: str
    old: str
    new: str


@dataclass(frozen=True)
class Changes:
    """What changed between two builds' SBOMs; ``platform`` is the one both describe, None
    when the SBOMs were attached to the pinned digests themselves."""

    added: tuple[Package, ...] = ()
    removed: tuple[Package, ...] = ()
    changed: tuple[Changed, ...] = ()
    platform: str | None = None

    def counts(self) -> str:
        """``3 changed, 1 added, 0 removed``."""
        return f"{len(self.changed)} changed, {len(self.added)} added, {len(self.removed)} removed"

    def lines(self) -> list[str]:
        """``openssl 3.3.1-r0 -> 3.3.2-r0``, ``+ libcrypt1 2.40-r3``, ``- ncurses 6.4-r1``, in
        name order."""
        rows: list[tuple[str, int, str]] = [
            (c.name, 0, f"{c.name} {c.old} -> {c.new}") for c in self.changed
        ]
        rows += [(p.name, 1, f"+ {_shown(p)}") for p in self.added]
        rows += [(p.name, 2, f"- {_shown(p)}") for p in self.removed]
        return [text for _, _, text in sorted(rows)]

    def to_json(self) -> dict[str, object]:
        return {
            "platform": self.platform,
            "added": [{"name": p.name, "version": p.version} for p in self.added],
            "removed": [{"name": p.name, "version": p.version} for p in self.removed],
            "changed": [{"name": c.name, "from": c.old, "to": c.new} for c in self.changed],
        }


def _shown(package: Package) -> str:
    return f"{package.name} {package.version}".rstrip()


def diff(old: Packages, new: Packages, platform: str | None = None) -> Changes:
    """Per name: the versions both builds have are unchanged; one version replaced by one other
    is a change; anything else (two versions become two others) is said as it is, the old
    ones removed and the new ones added, rather than guessing which replaced which."""
    added: list[Package] = []
    removed: list[Package] = []
    changed: list[Changed] = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name, frozenset()), new.get(name, frozenset())
        gone, came = sorted(before - after), sorted(after - before)
        if len(gone) == 1 and len(came) == 1:
            changed.append(Changed(name, gone[0], came[0]))
            continue
        removed.extend(Package(name, v) for v in gone)
        added.extend(Package(name, v) for v in came)
    return Changes(tuple(added), tuple(removed), tuple(changed), platform)
