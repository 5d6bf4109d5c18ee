"""YAML read for a byte-exact rewrite: the documents' nodes, each image scalar's exact span.

PyYAML, with libyaml's C parser when it is there (ten times faster than the pure-Python
one): its events carry marks, and given a ``str`` a mark's ``index`` counts characters, the
offsets :mod:`pinner.rewrite` splices at. Two quirks, both pinned down by the tests for both
parsers: libyaml does not count a leading BOM (so it is cut off before parsing and its length
added back to every offset), and a node's start mark sits on its anchor or tag, not on its
scalar (so a scalar is located from its end mark). The events are composed into PyYAML's node
classes by :func:`_compose`, a loop rather than PyYAML's recursive composer. Lines are
counted at ``\\n`` only, as for Dockerfiles, although YAML 1.1 also breaks lines at NEL, LS
and PS.

Nothing is ever constructed or dumped: the nodes are only read. A scalar is pinned only when
its text in the file *is* its value (plain or quoted on one line, no escapes); otherwise it is
skipped with the reason. After a rewrite, :func:`check_rewrite` parses the new text and
compares every event with the old one.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pinner.errors import FileError, PinError, ReferenceError_
from pinner.limits import MAX_YAML_DEPTH
from pinner.reference import parse_reference
from pinner.rewrite import Edit, apply_edits
from pinner.scan.result import Found, Scan, Skipped

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_NULL = "tag:yaml.org,2002:null"
STR_TAG = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_RESOLVER: Any = yaml.resolver.Resolver()
# The first characters of the values an implicit tag (bool, int, null, merge...) can match.
_RESOLVABLE = frozenset(yaml.resolver.Resolver.yaml_implicit_resolvers)
_BOM = "\ufeff"
# A comment on the line right before a key that tells pin to leave its image alone.
_IGNORE_RE = re.compile(r"#\s*pin:\s*ignore\b.*")
IGNORED = "left alone by a `# pin: ignore` comment"
# Ends the reason of a malformed reference, which pin reports as an error: Compose, the kubelet
# and CI runners refuse it as docker build does.
UNPULLABLE = "no runtime can pull it as written: fix the reference"
# The one text a rewrite may add outside a scalar: a Kustomize digest field, on a line of its
# own or as one more pair of a flow mapping.
_DIGEST_KEY_RE = re.compile(r"(?:\r?\n *|, )digest: sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Spot:
    """A node where a file kind says an image is written, and how to read it."""

    value: Node
    where: str  # services.web.image, spec.template.spec.containers[0].image, ...
    key: Node | None  # the key of the value; None for a sequence item
    prefix: str = ""  # text before the image in the scalar: "docker://" for a `uses:` step
    reason: str | None = None  # why the kind says to leave it alone, if it does


Spots = Callable[[Node], Iterator[Spot]]


def entries(
    node: Node | None, _merging: frozenset[int] = frozenset()
) -> Iterator[tuple[str, Node, Node]]:
    """(key, key node, value node) of a mapping; merge keys (``<<: *base``) followed after the
    mapping's own keys, which win. Nothing for a node that is not a mapping."""
    if not isinstance(node, MappingNode) or id(node) in _merging:
        return
    own = {k.value for k, _ in node.value if isinstance(k, ScalarNode) and k.tag != _MERGE}
    merges: list[Node] = []
    for key, value in node.value:
        if key.tag == _MERGE:
            merges.extend(value.value if isinstance(value, SequenceNode) else [value])
        elif isinstance(key, ScalarNode):
            yield key.value, key, value
    inner = _merging | {id(node)}
    for merged in merges:
        for name, key, value in entries(merged, inner):
            if name not in own:
                own.add(name)
                yield name, key, value


def get(node: Node | None, name: str) -> Node | None:
    """The value of key *name* in a mapping (merges followed), else None."""
    return next((value for key, _, value in entries(node) if key == name), None)


def items(node: Node | None) -> list[Node]:
    """The items of a sequence; nothing for any other node."""
    return list(node.value) if isinstance(node, SequenceNode) else []


def is_scalar(node: Node | None) -> bool:
    return isinstance(node, ScalarNode)


def _body(text: str) -> tuple[str, int]:
    """*text* without a leading BOM, and the BOM's length: what the parsers are given."""
    base = 1 if text.startswith(_BOM) else 0
    body = text[base:]
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        raise FileError("not valid UTF-8, which YAML requires") from None
    return body, base


def _compose(body: str) -> list[Node]:
    """The documents of *body* as node graphs, built from the parser's events.

    PyYAML's own composer would do, but it recurses (in C with libyaml, which crashes the
    interpreter some 20,000 levels down) and resolves the tag of every scalar. This loop
    refuses nesting past MAX_YAML_DEPTH and resolves plain scalars only (quoted ones are
    strings); an alias is the very node of its anchor, as in PyYAML.
    """
    documents: list[Node] = []
    anchors: dict[str, Node] = {}
    open_: list[tuple[Node, list[Node]]] = []  # collections being built, each with a pending key
    root: Node | None = None
    events: Iterator[Any] = yaml.parse(body, Loader=_LOADER)  # libyaml's marks are untyped
    for event in events:
        kind = type(event)  # compared by identity: this loop sees every event of the file
        node: Node
        if kind is yaml.ScalarEvent:
            tag = event.tag
            if tag is None and event.implicit[0]:
                tag = _plain_tag(event.value)
            elif tag is None or tag == "!":
                tag = STR_TAG
            node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        elif kind is yaml.MappingStartEvent:
            node = MappingNode(event.tag or _MAP, [], event.start_mark, None, event.flow_style)
        elif kind is yaml.SequenceStartEvent:
            node = SequenceNode(event.tag or _SEQ, [], event.start_mark, None, event.flow_style)
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            open_.pop()[0].end_mark = event.end_mark
            continue
        elif kind is yaml.AliasEvent:
            node = _anchored(anchors, event)
        elif kind is yaml.DocumentStartEvent:
            anchors = {}
            continue
        elif kind is yaml.DocumentEndEvent:
            if root is not None:
                documents.append(root)
            root = None
            continue
        else:  # the stream's start and end
            continue
        if kind is not yaml.AliasEvent and event.anchor is not None:
            anchors[event.anchor] = node
        if not open_:
            root = node
        else:
            parent, pending = open_[-1]
            if isinstance(parent, SequenceNode):
                parent.value.append(node)
            elif pending:
                parent.value.append((pending.pop(), node))
            else:
                pending.append(node)
        if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            open_.append((node, []))
            if len(open_) > MAX_YAML_DEPTH:
                raise FileError(f"nested more than {MAX_YAML_DEPTH} levels deep; not read")
    return documents


def _plain_tag(value: str) -> str:
    """The tag YAML 1.1 gives a plain scalar: the resolver is asked only about values whose
    first character some implicit tag can start with (most keys and images cannot)."""
    if value[:1] in _RESOLVABLE:
        tag: str = _RESOLVER.resolve(ScalarNode, value, (True, False))
        return tag
    return STR_TAG


def _anchored(anchors: dict[str, Node], alias: Any) -> Node:
    if alias.anchor not in anchors:
        mark = alias.start_mark
        raise FileError(
            f"not valid YAML (line {mark.line + 1}, column {mark.column + 1}):"
            f" found undefined alias {alias.anchor}"
        )
    return anchors[alias.anchor]


def _parsed(parse: Callable[[], list[Any]]) -> list[Any]:
    """*parse*'s result; a YAML error as one line."""
    try:
        return parse()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise FileError(f"not valid YAML{where}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise FileError(f"not valid YAML: {str(e).splitlines()[0]}") from None


class YamlText:
    """The documents of one YAML text, and the image references at the spots a kind names."""

    def __init__(self, text: str) -> None:
        self.text = text
        body, self.base = _body(text)
        self.documents: list[Node] = _parsed(lambda: _compose(body))
        self._starts = [0]
        newline = text.find("\n")
        while newline >= 0:
            self._starts.append(newline + 1)
            newline = text.find("\n", newline + 1)

    def line_of(self, offset: int) -> int:
        """1-based line of the character at *offset*."""
        return bisect.bisect_right(self._starts, offset)

    def _line_text(self, line: int) -> str:
        start = self._starts[line - 1]
        end = self._starts[line] - 1 if line < len(self._starts) else len(self.text)
        return self.text[start:end].rstrip("\r")

    def ignored(self, node: Node) -> bool:
        line = self.line_of(self.base + node.start_mark.index)
        return line > 1 and _IGNORE_RE.fullmatch(self._line_text(line - 1).strip()) is not None

    def scan(self, spots: Spots) -> Scan:
        """The references at every spot of every document; an aliased scalar once."""
        found: list[Found] = []
        skipped: list[Skipped] = []
        seen: set[int] = set()
        for document in self.documents:
            for spot in spots(document):
                if id(spot.value) in seen:
                    continue
                seen.add(id(spot.value))
                result = self._take(spot)
                if isinstance(result, Found):
                    found.append(result)
                elif result is not None:
                    skipped.append(result)
        return Scan(tuple(found), tuple(skipped))

    def _take(self, spot: Spot) -> Found | Skipped | None:
        node = spot.value
        start = self.base + node.start_mark.index
        end = self.base + node.end_mark.index
        line = self.line_of(start)
        if not isinstance(node, ScalarNode):
            head = self.text[start:end].split("\n", 1)[0].strip()
            return Skipped(head, line, spot.where, "not a single string; left alone")
        if node.tag == _NULL or node.value == "":
            return None  # `image:`, `image: ''`: no value
        if node.tag != STR_TAG:
            return Skipped(node.value, line, spot.where, "not a string; left alone")
        value = node.value
        token = self.token(node)
        if isinstance(token, str):
            shown = value.strip() if node.style in ("|", ">") else value
            return Skipped(shown, line, spot.where, token)
        token_start, token_end = token
        line = self.line_of(token_start)
        image = value[len(spot.prefix) :]
        reason = template(image) or spot.reason
        if self.ignored(spot.key if spot.key is not None else node):
            reason = IGNORED
        if reason is not None:
            return Skipped(image, line, spot.where, reason)
        try:
            reference = parse_reference(image)
        except ReferenceError_ as e:
            # The field names an image whatever the tool (Compose, the kubelet, a CI runner):
            # one that cannot be parsed cannot be pulled, so it is an error, as in a Dockerfile.
            reason = f"not an image reference ({e}); {UNPULLABLE}"
            return Skipped(image, line, spot.where, reason, malformed=True)
        first = token_start + len(spot.prefix)
        return Found(image, reference, line, spot.where, tuple(range(first, token_end)))

    def token(self, node: ScalarNode) -> tuple[int, int] | str:
        """The offsets of *node*'s value in the text, when the text there is its value (plain
        or quoted on one line, no escapes); else why it cannot be spliced exactly."""
        start = self.base + node.start_mark.index
        end = self.base + node.end_mark.index
        value = node.value
        style = node.style or ""
        if style in ("|", ">"):
            return "a block scalar (| or >); write the image on one line to pin it"
        quote = style  # "", "'" or '"'
        token_end = end - len(quote)
        token_start = token_end - len(value)
        before = self.text[start : token_start - len(quote)]
        exact = (
            token_start - len(quote) >= start
            and self.text[token_start:token_end] == value
            and (not quote or self.text[token_start - 1] == quote)
            and (not before or before[-1] in " \t")
            and "\n" not in value
        )
        if not exact:
            return _inexact(self.text[start:end], quote)
        return token_start, token_end


def _inexact(span: str, quote: str) -> str:
    if "\n" in span:
        return "spans several lines; write the image on one line to pin it"
    if quote == '"' and "\\" in span:
        return "has escape sequences in double quotes; write it without them to pin it"
    if quote == "'" and "''" in span:
        return "has an escaped quote; not an image"
    return "written in a form pin does not rewrite"


def template(image: str) -> str | None:
    """Why *image* is a template that only its tool can fill in, or None."""
    if "${{" in image:
        return "a GitHub Actions expression, known only when the workflow runs"
    if "{{" in image:
        return "a template (Helm, Go templates); pin the value it is filled in with"
    if "$" in image:
        return "made of variables (interpolated when the file is used); pin the value they hold"
    return None


def check_rewrite(before: str, after: str, edits: Iterable[Edit]) -> None:
    """Raise unless *after* parses to *before*'s events with only the edited scalars changed,
    each to the value the edits give it."""
    edits = list(edits)
    old_body, base = _body(before)
    new_body, _ = _body(after)
    old = _parsed(lambda: list(yaml.parse(old_body, Loader=_LOADER)))
    try:
        new = _parsed(lambda: list(yaml.parse(new_body, Loader=_LOADER)))
    except FileError as e:
        raise PinError(f"the rewrite breaks the YAML: {e}") from None
    keys = [e for e in edits if e.start == e.end and _DIGEST_KEY_RE.fullmatch(e.replacement)]
    for key in keys:
        new = _without_digest_key(new, key, edits, base)
    edits = [e for e in edits if e not in keys]
    used = 0
    if len(old) != len(new):
        raise PinError("the rewrite changes the YAML's structure")
    for a, b in zip(old, new, strict=True):
        if type(a) is not type(b) or _shape(a) != _shape(b):
            raise PinError(f"the rewrite changes the YAML at line {_line(before, base, a)}")
        if not isinstance(a, yaml.ScalarEvent) or a.end_mark is None:
            continue
        quote = a.style if a.style in ("'", '"') else ""
        end = base + a.end_mark.index - len(quote)
        start = end - len(a.value)
        exact = before[start:end] == a.value
        inside = [e for e in edits if exact and start <= e.start and e.end <= end]
        expected = apply_edits(
            a.value, [Edit(e.start - start, e.end - start, e.replacement) for e in inside]
        )
        if b.value != expected:
            raise PinError(f"the rewrite changes the YAML at line {_line(before, base, a)}")
        used += len(inside)
    if used != len(edits):
        raise PinError("the rewrite touches text outside the image scalars")


def _without_digest_key(events: list[Any], key: Edit, edits: list[Edit], base: int) -> list[Any]:
    """*events* without the ``digest: sha256:...`` pair that *key* inserts (a Kustomize
    images entry's digest field, see :mod:`pinner.scan.kustomize`); raise unless the pair is
    there, plain, as the last pair of the mapping whose last value it follows."""
    shift = sum(len(e.replacement) - (e.end - e.start) for e in edits if e.start < key.start)
    at = key.start + shift + key.replacement.index("digest: ") - base
    digest = key.replacement.rpartition(" ")[2]
    for i, event in enumerate(events):
        mark = event.start_mark if isinstance(event, yaml.ScalarEvent) else None
        if mark is not None and mark.index == at:
            pair = events[i : i + 3]
            # Between the scalar before and the mapping's end: a pair of that very mapping.
            if (
                len(pair) == 3
                and [_plain(e) for e in pair[:2]] == ["digest", digest]
                and isinstance(pair[2], yaml.MappingEndEvent)
                and isinstance(events[i - 1], yaml.ScalarEvent)
            ):
                return events[:i] + events[i + 2 :]
            break
    raise PinError("the rewrite changes the YAML's structure")


def _plain(event: Any) -> str | None:
    """The value of a plain scalar with no anchor or tag; else None."""
    plain = isinstance(event, yaml.ScalarEvent) and not event.style and event.tag is None
    return event.value if plain and event.anchor is None else None


def _shape(event: Any) -> tuple[Any, ...]:
    """Everything an event says but its scalar value and marks."""
    names = ("anchor", "tag", "implicit", "style", "flow_style", "explicit", "version", "tags")
    return tuple(getattr(event, name, None) for name in names)


def _line(text: str, base: int, event: Any) -> int:
    return text.count("\n", 0, base + event.start_mark.index) + 1
