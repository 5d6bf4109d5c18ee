"""GitLab CI (``.gitlab-ci.yml``), per GitLab's CI/CD YAML syntax reference: ``image`` and
``services`` (each a string, or a mapping with ``name``), at the top level (the deprecated
globals), in ``default:`` and in every job.
"""

from __future__ import annotations

from collections.abc import Iterator

from yaml.nodes import MappingNode, Node

from pinner.scan.yamlfile import Spot, entries, items

# Top-level keys that are not jobs (GitLab's "global keywords", and the header's spec).
_NOT_JOBS = frozenset(
    {"default", "include", "stages", "variables", "workflow", "spec"}
    | {"image", "services", "cache", "before_script", "after_script"}
)


def spots(document: Node) -> Iterator[Spot]:
    yield from _job(document, "")
    for key, _, value in entries(document):
        if key not in _NOT_JOBS:
            yield from _job(value, f"{key}.")
        elif key == "default":
            yield from _job(value, "default.")


def _job(job: Node, prefix: str) -> Iterator[Spot]:
    for key, key_node, value in entries(job):
        if key == "image":
            yield from _named(value, f"{prefix}image", key_node)
        elif key == "services":
            for index, service in enumerate(items(value)):
                yield from _named(service, f"{prefix}services[{index}]", None)


def _named(node: Node, path: str, key_node: Node | None) -> Iterator[Spot]:
    """A string, or the ``name`` of a mapping (``image: {name: ..., entrypoint: [...]}``).

    Anything else (``!reference [.job, image]``) is yielded as it is, to be reported skipped.
    """
    if not isinstance(node, MappingNode):
        yield Spot(node, path, key_node)
        return
    for key, name_key, value in entries(node):
        if key == "name":
            yield Spot(value, f"{path}.name", name_key)
