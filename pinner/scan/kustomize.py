"""Kustomize's ``kustomization.yaml`` (``.yml``, or ``Kustomization``): its ``images:`` list,
pinned through Kustomize's own ``digest:`` field (kubectl.docs.kubernetes.io, Kustomization
reference, "images").

An entry names ``newName`` (else ``name``) with ``newTag``; its ``digest`` replaces the tag in
every matching container ("If digest is present NewTag value is ignored", api/types/image.go;
since kustomize#4406 both are written, ``name:tag@digest``, kustomize#5664), so ``newTag`` stays
for people to read and the digest is what is pulled. An entry without ``newTag`` keeps the tag
of the manifests it edits (the reference's example: ``newName: nginx-special`` turns
``nginx:old`` into ``nginx-special:old``): that tag is not in this file, so pin leaves it alone.
"""

from __future__ import annotations

import re

from yaml.nodes import MappingNode, Node, ScalarNode

from pinner.errors import ReferenceError_
from pinner.reference import parse_reference
from pinner.scan.result import DigestField, Found, Scan, Skipped
from pinner.scan.yamlfile import IGNORED, STR_TAG, UNPULLABLE, YamlText, get, items, template

_FIELDS = ("name", "newName", "newTag", "digest")
# What may stand before the entry's last key on its line: indentation, and the dash of the item.
_INDENT_RE = re.compile(r" *(?:- +)*")
_AFTER_RE = re.compile(r"[ \t]*(?:#.*)?")  # after the last value: spaces and a comment
_NO_TAG = (
    "no newTag: the tag is the one in the manifests it edits; set newTag to pin it here,"
    " or pin the manifests"
)


def scan(document: YamlText) -> Scan:
    found: list[Found] = []
    skipped: list[Skipped] = []
    seen: set[int] = set()
    for root in document.documents:
        for index, entry in enumerate(items(get(root, "images"))):
            if id(entry) in seen:  # an alias of an entry: pinned where it is written
                continue
            seen.add(id(entry))
            result = _entry(document, entry, f"images[{index}]")
            if isinstance(result, Found):
                found.append(result)
            elif result is not None:
                skipped.append(result)
    return Scan(tuple(found), tuple(skipped))


def _entry(document: YamlText, node: Node, where: str) -> Found | Skipped | None:
    line = document.line_of(document.base + node.start_mark.index)
    if not isinstance(node, MappingNode) or not node.value:
        return Skipped(_head(document, node), line, where, "not a mapping with fields; left alone")
    fields: dict[str, ScalarNode] = {}
    for key, value in node.value:
        if not isinstance(key, ScalarNode) or key.tag != STR_TAG:
            reason = "a merge key, or a key that is not a string; left alone"
            return Skipped(_head(document, node), line, where, reason)
        if key.value not in _FIELDS:
            continue
        if not isinstance(value, ScalarNode) or value.tag != STR_TAG or value.value == "":
            shown = value.value if isinstance(value, ScalarNode) else _head(document, value)
            why = f"{key.value} is empty or not a string; quote it to pin this entry"
            return Skipped(shown, line, where, why)
        unsafe = template(value.value) or _inexact(document, value)
        if unsafe is not None:
            return Skipped(value.value.strip(), line, where, unsafe)
        fields[key.value] = value
    values = {name: value.value for name, value in fields.items()}
    if "name" not in values:
        return Skipped(_head(document, node), line, where, "no name; not an image entry")
    image = values.get("newName", values["name"])
    if document.ignored(node):
        return Skipped(image, line, where, IGNORED)
    tag, digest = values.get("newTag"), values.get("digest")
    if tag is None and digest is None:
        reason = _NO_TAG if "newName" in values else "sets neither newTag nor digest"
        return Skipped(image, line, where, reason)
    text = image + (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest else "")
    try:
        reference = parse_reference(text)
    except ReferenceError_ as e:
        reason = f"not an image reference ({e}); {UNPULLABLE}"
        return Skipped(text, line, where, reason, malformed=True)
    place: DigestField | str
    if "digest" in fields:
        token = document.token(fields["digest"])
        place = token if isinstance(token, str) else DigestField(*token)
    else:
        place = _insertion(document, node)
    if isinstance(place, str):
        return Skipped(text, line, where, place)
    return Found(text, reference, line, where, (), digest_field=place)


def _inexact(document: YamlText, value: ScalarNode) -> str | None:
    """Why *value* is not written as it is, on one line (see YamlText.token), or None."""
    token = document.token(value)
    return token if isinstance(token, str) else None


def _insertion(document: YamlText, entry: MappingNode) -> DigestField | str:
    """Where ``digest:`` goes in *entry*: after its last value, as a new line indented like
    its keys (block style), or as one more pair before the ``}`` (flow style)."""
    text, base = document.text, document.base
    key, value = entry.value[-1]
    if not isinstance(value, ScalarNode) or isinstance(document.token(value), str):
        return "its last field is not a one-line value; add digest: by hand, pin updates it"
    end = base + value.end_mark.index
    if entry.flow_style:
        close = base + entry.end_mark.index - 1
        if text[close : close + 1] != "}" or "\n" in text[end:close]:
            return "a flow mapping over several lines; add digest: by hand, pin updates it"
        return DigestField(end, end, ", digest: ")
    start = base + key.start_mark.index
    line_start = text.rfind("\n", 0, start) + 1
    indent = text[line_start:start]
    eol = text.find("\n", end)
    if eol < 0:  # the last line, without a line break: the file's own
        eol, newline = len(text), "\r\n" if "\r\n" in text else "\n"
    elif text[eol - 1] == "\r":
        eol, newline = eol - 1, "\r\n"
    else:
        newline = "\n"
    if (
        not _INDENT_RE.fullmatch(indent)
        or "\n" in text[start:end]
        or not _AFTER_RE.fullmatch(text[end:eol])
    ):
        return "its last field is not on a line of its own; add digest: by hand, pin updates it"
    return DigestField(eol, eol, f"{newline}{' ' * len(indent)}digest: ")


def _head(document: YamlText, node: Node) -> str:
    start = document.base + node.start_mark.index
    end = document.base + node.end_mark.index
    return document.text[start:end].split("\n", 1)[0].strip()
