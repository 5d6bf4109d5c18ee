"""Kubernetes manifests: the ``image`` of every container, init container and ephemeral
container, wherever the pod spec sits.

A pod spec is found by its shape, not by the kind: a ``containers``, ``initContainers`` or
``ephemeralContainers`` key holding a list (PodSpec, core/v1). So a Pod, a Deployment's or a
Job's ``spec.template.spec``, a CronJob's ``spec.jobTemplate.spec.template.spec``, a ``List``'s
items and a custom resource that embeds a pod template are all read the same way. Only
documents with ``apiVersion`` and ``kind`` are manifests; any other YAML is not pin's to touch.
"""

from __future__ import annotations

from collections.abc import Iterator

from yaml.nodes import MappingNode, Node, SequenceNode

from pinner.scan.yamlfile import Spot, entries, is_scalar

_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})


def is_manifest(document: Node) -> bool:
    """Whether *document* is a Kubernetes object: a mapping with apiVersion and kind."""
    keys = {key for key, _, value in entries(document) if is_scalar(value)}
    return {"apiVersion", "kind"} <= keys


def spots(document: Node) -> Iterator[Spot]:
    if is_manifest(document):
        yield from _walk(document, "", set())


def _walk(node: Node, path: str, seen: set[int]) -> Iterator[Spot]:
    if id(node) in seen:  # an alias of a collection already walked (or an alias cycle)
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        for key, _, value in entries(node):
            here = f"{path}.{key}" if path else key
            if key in _CONTAINER_LISTS and isinstance(value, SequenceNode):
                for index, container in enumerate(value.value):
                    for name, key_node, image in entries(container):
                        if name == "image":
                            yield Spot(image, f"{here}[{index}].image", key_node)
            else:
                yield from _walk(value, here, seen)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk(item, f"{path}[{index}]", seen)
