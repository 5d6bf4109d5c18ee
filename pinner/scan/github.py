"""GitHub Actions workflows (``.github/workflows/*.yml``), per GitHub's workflow syntax:
``jobs.<id>.container`` (a string, or a mapping with ``image``),
``jobs.<id>.services.<id>.image``, and ``jobs.<id>.steps[*].uses: docker://IMAGE``.
"""

from __future__ import annotations

from collections.abc import Iterator

from yaml.nodes import Node, ScalarNode

from pinner.scan.yamlfile import Spot, entries, get, items

_DOCKER = "docker://"


def spots(document: Node) -> Iterator[Spot]:
    for job_id, _, job in entries(get(document, "jobs")):
        job_path = f"jobs.{job_id}"
        for key, key_node, value in entries(job):
            if key == "container" and isinstance(value, ScalarNode):
                yield Spot(value, f"{job_path}.container", key_node)
            elif key == "container":
                yield from _image(value, f"{job_path}.container")
            elif key == "services":
                for service_id, _, service in entries(value):
                    yield from _image(service, f"{job_path}.services.{service_id}")
            elif key == "steps":
                for index, step in enumerate(items(value)):
                    for name, name_node, uses in entries(step):
                        if name == "uses" and _is_docker(uses):
                            where = f"{job_path}.steps[{index}].uses"
                            yield Spot(uses, where, name_node, prefix=_DOCKER)


def _is_docker(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.value.startswith(_DOCKER)


def _image(node: Node, path: str) -> Iterator[Spot]:
    for key, key_node, value in entries(node):
        if key == "image":
            yield Spot(value, f"{path}.image", key_node)
