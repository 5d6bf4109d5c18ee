"""Platform names and index children, matched as containerd matches them."""

from __future__ import annotations

import json

import pytest

from pinner.platforms import (
    Platform,
    children,
    is_index,
    normalize,
    parse_platform,
    platform_of_config,
    read_document,
    select,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/amd64/v1", Platform("linux", "amd64")),
        ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
        ("linux/arm64", Platform("linux", "arm64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/arm/7", Platform("linux", "arm", "v7")),
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("linux/armel", Platform("linux", "arm", "v6")),
        ("linux/i686", Platform("linux", "386")),
        ("Linux/AMD64", Platform("linux", "amd64")),
        ("macos/arm64", Platform("darwin", "arm64")),
        ("linux/s390x", Platform("linux", "s390x")),
    ],
)
def test_a_platform_is_read_under_every_spelling_containerd_accepts(
    text: str, expected: Platform
) -> None:
    assert parse_platform(text) == expected


@pytest.mark.parametrize(
    "text", ["linux", "", "linux/", "/amd64", "linux/arm/v7/x", "linux/am d64"]
)
def test_a_malformed_platform_is_refused_with_the_form_to_write(text: str) -> None:
    with pytest.raises(ValueError, match="os/architecture"):
        parse_platform(text)


def test_a_platform_prints_as_users_write_it() -> None:
    assert str(normalize("linux", "aarch64", "v8")) == "linux/arm64"
    assert str(normalize("linux", "arm")) == "linux/arm/v7"


INDEX = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "a" * 64,
            "size": 1,
            "platform": {"os": "linux", "architecture": "amd64"},
        },
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "b" * 64,
            "size": 1,
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
        },
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "c" * 64,
            "size": 1,
            "platform": {"os": "unknown", "architecture": "unknown"},
        },
        "not an entry",
        {"digest": 7},
    ],
}


def test_the_child_for_a_platform_is_the_one_containerd_would_pull() -> None:
    document = read_document(json.dumps(INDEX).encode())
    assert document is not None and is_index(document)
    arm = select(document, parse_platform("linux/arm64"))
    assert arm is not None and arm.digest == "sha256:" + "b" * 64
    amd = select(document, parse_platform("linux/x86_64"))
    assert amd is not None and amd.digest == "sha256:" + "a" * 64
    assert select(document, parse_platform("linux/s390x")) is None
    assert len(children(document)) == 3  # the malformed entries are left out


def test_an_image_manifest_is_not_an_index() -> None:
    image = {"schemaVersion": 2, "config": {}, "layers": []}
    assert not is_index(image)
    assert is_index({"schemaVersion": 2, "manifests": []})
    assert read_document(b"[1]") is None and read_document(b"{") is None


def test_a_config_blob_names_its_platform() -> None:
    config = {"os": "linux", "architecture": "arm", "variant": "v7", "rootfs": {}}
    assert platform_of_config(json.dumps(config).encode()) == Platform("linux", "arm", "v7")
    assert platform_of_config(b'{"os": "linux"}') is None
