"""Compose files: ``services.<name>.image`` (the Compose specification, services.md).

A service that also has ``build:`` is skipped: its ``image`` is the name Compose tags the
image it builds with (build.md, "Using build and image"), and a digest cannot be a tag.
"""

from __future__ import annotations

from collections.abc import Iterator

from yaml.nodes import Node

from pinner.scan.yamlfile import Spot, entries, get

_BUILT = "the service has build:, so this is the name Compose tags what it builds with"


def spots(document: Node) -> Iterator[Spot]:
    for name, _, service in entries(get(document, "services")):
        built = get(service, "build") is not None
        for key, key_node, value in entries(service):
            if key == "image":
                yield Spot(
                    value, f"services.{name}.image", key_node, reason=_BUILT if built else None
                )
