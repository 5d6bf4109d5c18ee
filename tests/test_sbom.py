"""pinner.sbom: from an attestation blob to packages, and the diff of two package sets."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest

from pinner.sbom import (
    Changed,
    Package,
    SbomError,
    cyclonedx_packages,
    diff,
    payload_of,
    read_statement,
    sbom_kind,
    spdx_packages,
)
from tests.attest import SPDX_TYPE, envelope, sbom_envelope, spdx, statement

DIGEST = "sha256:" + "ab" * 32


def test_an_apko_sbom_lists_the_installed_packages_only() -> None:
    document = spdx(DIGEST, [("openssl", "3.3.1-r0"), ("glibc", "2.40-r3")])
    # The image, its layer, and each APK's upstream source and melange recipe are left out; the
    # source of openssl is also named openssl, at another version.
    assert spdx_packages(document) == {
        "openssl": frozenset({"3.3.1-r0"}),
        "glibc": frozenset({"2.40-r3"}),
        "wolfi": frozenset({"20230201"}),
    }


def test_an_envelope_is_read_to_its_packages() -> None:
    found = read_statement(payload_of(sbom_envelope(DIGEST, [("zlib", "1.3.1-r0")])))
    assert found.predicate_type == SPDX_TYPE
    assert found.subjects == {DIGEST}
    assert found.packages["zlib"] == {"1.3.1-r0"}


def test_a_sigstore_bundle_and_a_bare_statement_are_read_too() -> None:
    bare = statement(DIGEST, SPDX_TYPE + "/v2.3", spdx(DIGEST, [("zlib", "1.3")]))
    bundle = json.dumps({"dsseEnvelope": json.loads(envelope(bare))}).encode()
    for blob in (bare, bundle):
        assert read_statement(payload_of(blob)).packages["zlib"] == {"1.3"}


def test_cyclonedx_nested_components_are_read_and_files_left_out() -> None:
    bom = {
        "bomFormat": "CycloneDX",
        "metadata": {"component": {"type": "container", "name": "python"}},
        "components": [
            {"type": "library", "name": "openssl", "version": "3.3.2-r0"},
            {
                "type": "application",
                "name": "python",
                "version": "3.12.5",
                "components": [{"type": "library", "name": "pip", "version": "24.2"}],
            },
            {"type": "file", "name": "/etc/passwd"},
        ],
    }
    assert cyclonedx_packages(bom) == {
        "openssl": {"3.3.2-r0"},
        "python": {"3.12.5"},
        "pip": {"24.2"},
    }
    payload = statement(DIGEST, "https://cyclonedx.org/bom", bom)
    assert read_statement(payload).packages["pip"] == {"24.2"}


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"<html>", "the attestation is not valid JSON"),
        (b"[]", "the attestation is not a JSON object"),
        (b'{"payload": "***"}', "the DSSE payload is not valid base64"),
        (b'{"signatures": []}', "neither a DSSE envelope nor an in-toto statement"),
        (
            json.dumps({"payloadType": "text/plain", "payload": ""}).encode(),
            "carries 'text/plain', not in-toto",
        ),
    ],
)
def test_a_blob_that_is_no_envelope_says_why(blob: bytes, message: str) -> None:
    with pytest.raises(SbomError, match=message):
        payload_of(blob)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{", "the in-toto statement is not valid JSON"),
        (statement(DIGEST, "https://slsa.dev/provenance/v1", {}), "not an SBOM"),
        (statement(DIGEST, SPDX_TYPE, "x"), "no predicate object"),
        (statement(DIGEST, SPDX_TYPE, {"spdxVersion": "SPDX-2.3"}), "no packages list"),
    ],
)
def test_a_statement_that_is_no_sbom_says_why(payload: bytes, message: str) -> None:
    with pytest.raises(SbomError, match=message):
        read_statement(payload)


def test_predicate_types_of_any_version() -> None:
    assert sbom_kind("https://spdx.dev/Document") == "spdx"
    assert sbom_kind("https://spdx.dev/Document/v2.3") == "spdx"
    assert sbom_kind("https://cyclonedx.org/bom/v1.5") == "cyclonedx"
    assert sbom_kind("https://spdx.dev/Documentation") is None
    assert sbom_kind(None) is None


def p(**versions: str | tuple[str, ...]) -> dict[str, frozenset[str]]:
    return {
        name.replace("_", "-"): frozenset((v,) if isinstance(v, str) else v)
        for name, v in versions.items()
    }


def test_the_diff_of_two_builds() -> None:
    old = p(openssl="3.3.1-r0", ncurses="6.4-r1", glibc="2.40-r3")
    new = p(openssl="3.3.2-r0", libcrypt1="2.40-r3", glibc="2.40-r3")
    changes = diff(old, new, "linux/amd64")
    assert changes.changed == (Changed("openssl", "3.3.1-r0", "3.3.2-r0"),)
    assert changes.added == (Package("libcrypt1", "2.40-r3"),)
    assert changes.removed == (Package("ncurses", "6.4-r1"),)
    assert changes.counts() == "1 changed, 1 added, 1 removed"
    assert changes.lines() == [
        "+ libcrypt1 2.40-r3",
        "- ncurses 6.4-r1",
        "openssl 3.3.1-r0 -> 3.3.2-r0",
    ]
    assert changes.to_json() == {
        "platform": "linux/amd64",
        "added": [{"name": "libcrypt1", "version": "2.40-r3"}],
        "removed": [{"name": "ncurses", "version": "6.4-r1"}],
        "changed": [{"name": "openssl", "from": "3.3.1-r0", "to": "3.3.2-r0"}],
    }


def test_a_name_installed_twice_diffs_by_version() -> None:
    # One of two versions replaced: a change of that one; the other stays unmentioned.
    assert diff(p(pip=("23.0", "24.0")), p(pip=("23.0", "24.2"))).changed == (
        Changed("pip", "24.0", "24.2"),
    )
    # A second copy installed: an addition, not a change.
    moved = diff(p(pip="24.0"), p(pip=("24.0", "24.2")))
    assert moved.added == (Package("pip", "24.2"),) and not moved.changed
    # Two versions replaced by two others: which replaced which is not guessed.
    both = diff(p(pip=("23.0", "24.0")), p(pip=("23.1", "24.2")))
    assert both.removed == (Package("pip", "23.0"), Package("pip", "24.0"))
    assert both.added == (Package("pip", "23.1"), Package("pip", "24.2"))
    assert not both.changed
    assert diff(p(pip="1"), p(pip="1")).counts() == "0 changed, 0 added, 0 removed"


def test_a_huge_base64_payload_decodes() -> None:
    packages = [(f"pkg{i}", f"{i}.0-r0") for i in range(5000)]
    blob = sbom_envelope(DIGEST, packages)
    assert base64.b64decode(json.loads(blob)["payload"])
    assert len(read_statement(payload_of(blob)).packages) == 5001  # and wolfi


def test_an_envelope_written_unusually_is_read_the_same() -> None:
    """The payload found in place (see pinner.sbom._quick_payload) and an envelope parsed whole
    agree: escaped slashes, the key written twice, keys in another order, a decoy field."""
    payload = statement(DIGEST, SPDX_TYPE, spdx(DIGEST, [("zlib", "1.3?")]))
    encoded = base64.b64encode(payload).decode()
    assert "/" in encoded and encoded.endswith("=")  # what an escape or a cut could break
    plain = json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": encoded})
    variants = [
        plain,
        plain.replace("/", "\\/"),
        json.dumps({"payload": encoded, "signatures": [{"keyid": '"payload": "AAAA"'}]}),
        json.dumps({"note": {"payload": "AAAA"}, "payload": encoded}),
        json.dumps({"dsseEnvelope": {"payload": encoded}, "mediaType": "bundle"}),
    ]
    for text in variants:
        assert read_statement(payload_of(text.encode())).packages["zlib"] == {"1.3?"}, text


def test_only_the_fields_read_are_kept() -> None:
    document = spdx(DIGEST, [("zlib", "1.3")])
    document["hasExtractedLicensingInfos"] = [{"licenseId": "X", "extractedText": "y" * 10**6}]
    found = read_statement(statement(DIGEST, SPDX_TYPE, document))
    assert found.packages["zlib"] == {"1.3"}


@pytest.mark.parametrize("junk", [[], {}, 1, None, True, [["x"]]])
def test_fields_of_the_wrong_type_are_passed_over(junk: object) -> None:
    """A hostile SBOM's lists and objects where strings belong: never a crash."""
    document = spdx(DIGEST, [("zlib", "1.3")])
    document["documentDescribes"] = [junk]
    document["relationships"] += [  # type: ignore[operator]
        {"spdxElementId": junk, "relationshipType": junk, "relatedSpdxElement": junk},
        junk,
    ]
    document["packages"] += [  # type: ignore[operator]
        {"SPDXID": junk, "name": "a", "versionInfo": junk, "primaryPackagePurpose": junk},
        {"name": junk, "externalRefs": junk},
        {"name": "b", "externalRefs": [junk, {"referenceLocator": junk}]},
        junk,
    ]
    packages = spdx_packages(document)
    assert packages["zlib"] == {"1.3"} and packages["a"] == {""} and packages["b"] == {""}
    bom = {"components": [junk, {"type": junk, "name": "c", "components": junk}]}
    assert cyclonedx_packages(bom) == {"c": {""}}
    for predicate in (junk, {"packages": junk}, {"components": junk}):
        for kind in (SPDX_TYPE, "https://cyclonedx.org/bom"):
            with contextlib.suppress(SbomError):  # an SbomError is an answer; nothing else is
                read_statement(statement(DIGEST, kind, predicate))
