"""The YAML scanners: golden files byte for byte, the offsets under both parsers, the kinds,
what is skipped and why, and the re-parse check that guards every YAML rewrite."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from pinner.errors import FileError, PinError
from pinner.limits import MAX_YAML_DEPTH
from pinner.rewrite import Edit, apply_edits, edit_for
from pinner.scan import yamlfile
from pinner.scan.kinds import check_rewrite, kind_of, scan_file
from pinner.scan.result import Scan
from tests.golden import fake_digest, pin_text

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden-yaml"
# The golden file's kind is the first word of its name; each is read under a name of that kind.
PATHS = {
    "compose": "compose.yaml",
    "github": ".github/workflows/ci.yml",
    "gitlab": ".gitlab-ci.yml",
    "kubernetes": "manifest.yaml",
    "kustomize": "kustomization.yaml",
}
# A Kustomize entry is pinned by a `digest:` pair added after its last key (or before its `}`).
_DIGEST_LINE_RE = re.compile(rb" *digest: sha256:[0-9a-f]{64}\r?")
_DIGEST_PAIR_RE = re.compile(rb", digest: sha256:[0-9a-f]{64}")
NGINX = "cgr.dev/chainguard/nginx:latest"


@pytest.fixture(params=["C", "Python"], autouse=True)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with libyaml's parser and with PyYAML's own: their marks differ."""
    if request.param == "C":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML was built without libyaml")
        monkeypatch.setattr(yamlfile, "_LOADER", yaml.CSafeLoader)
    else:
        monkeypatch.setattr(yamlfile, "_LOADER", yaml.SafeLoader)
    return str(request.param)


def golden_inputs() -> list[str]:
    return sorted(p.name for p in GOLDEN.glob("*.in.*"))


def pin_bytes(data: bytes, path: str) -> bytes:
    text = data.decode("utf-8", "surrogateescape")
    return pin_text(text, fake_digest, path=path).encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("name", golden_inputs())
def test_golden(name: str) -> None:
    before = (GOLDEN / name).read_bytes()
    after = (GOLDEN / name.replace(".in.", ".out.")).read_bytes()
    path = PATHS[name.split("-")[0]]
    assert pin_bytes(before, path) == after  # pin_text also runs the re-parse check
    assert pin_bytes(after, path) == after  # a second run has nothing to do


@pytest.mark.parametrize("name", golden_inputs())
def test_golden_changes_only_image_scalars(name: str) -> None:
    """Line by line, the output differs from the input only by digests added after images."""
    before = (GOLDEN / name).read_bytes().split(b"\n")
    after = (GOLDEN / name.replace(".in.", ".out.")).read_bytes().split(b"\n")
    if name.startswith("kustomize-"):
        kept = [_DIGEST_PAIR_RE.sub(b"", line) for line in after]
        kept = [line for line in kept if not _DIGEST_LINE_RE.fullmatch(line)]
        assert kept != after
        # A last line without a line break gains the file's own (CRLF) before the new line.
        assert [x.removesuffix(b"\r") for x in kept] == [x.removesuffix(b"\r") for x in before]
        return
    assert len(before) == len(after)
    changed = 0
    for old, new in zip(before, after, strict=True):
        if old != new:
            changed += 1
            # An untagged reference gains the tag Docker pulls: postgres -> postgres:latest@...
            expected = (old, old.replace(b"postgres", b"postgres:latest"))
            assert re.sub(rb"@sha256:[0-9a-f]{64}", b"", new) in expected, (old, new)
    assert changed


# What each golden file claims to hold, checked on the bytes, so that an editor or a git setting
# that normalises line endings, strips a BOM or re-encodes cannot empty a case.
CLAIMS: dict[str, Callable[[bytes], bool]] = {
    "compose-crlf.in.yaml": lambda b: b.count(b"\r\n") == b.count(b"\n") == 7,
    "compose-bom.in.yaml": lambda b: b.startswith(b"\xef\xbb\xbf# BOM") and "é😀".encode() in b,
    "compose-bom-crlf.in.yaml": lambda b: (
        b.startswith(b"\xef\xbb\xbf")
        and b.count(b"\r\n") == b.count(b"\n") == 5
        and not b.endswith(b"\n")
    ),
    "compose-nonascii.in.yaml": lambda b: "日本語".encode() in b and "😀".encode() in b,
    "compose-plain.in.yaml": lambda b: b"latest   \n" in b,  # trailing spaces
    "compose-flow.in.yaml": lambda b: b.startswith(b"services: {web: {image: "),
    "kubernetes-multidoc.in.yaml": lambda b: b.count(b"\n---\n") == 4 and b"\n...\n" in b,
    "kustomize-crlf.in.yaml": lambda b: (
        b.count(b"\r\n") == b.count(b"\n") == 6 and not b.endswith(b"\n")
    ),
    "kustomize-flow.in.yaml": lambda b: b.count(b"  - {name: ") == 2,
    "kustomize-block.in.yaml": lambda b: b"-   name: " in b and b"# pin: ignore" in b,
}


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_golden_fixtures_hold_what_they_claim(name: str) -> None:
    assert CLAIMS[name]((GOLDEN / name).read_bytes())


# -- offsets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "# café 日本 😀\n",  # non-ASCII, a 4-byte character among them
        "\ufeff",  # a BOM: libyaml does not count it
        "\ufeff# é\r\n",
        "a: 'ü'\r\nb: \"😀\"\r\n",
        "x: &a |\n  é\n  😀\n",
    ],
)
@pytest.mark.parametrize("quote", ["", "'", '"'])
def test_offsets_are_character_offsets_into_the_text(prefix: str, quote: str) -> None:
    text = f"{prefix}services:\n  web: {{image: {quote}{NGINX}{quote}}}\n"
    (found,) = scan_file("compose.yaml", text).found
    assert text[found.start : found.end] == NGINX
    assert found.offsets == tuple(range(found.start, found.end))
    assert found.line == text.count("\n", 0, found.start) + 1


def test_anchor_and_tag_before_the_scalar_are_not_part_of_it() -> None:
    text = f"services:\n  a: {{image: &img !!str '{NGINX}'}}\n  b: {{image: *img}}\n"
    (found,) = scan_file("compose.yaml", text).found
    assert text[found.start : found.end] == NGINX
    assert found.where == "services.a.image"


# -- kinds -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("compose.yaml", "compose"),
        ("compose.yml", "compose"),
        ("docker-compose.yml", "compose"),
        ("docker-compose.yaml", "compose"),
        ("a/compose.override.yml", "compose"),
        ("docker-compose.prod.yaml", "compose"),
        (".github/workflows/ci.yml", "github"),
        ("repo/.github/workflows/release.yaml", "github"),
        (".github/ci.yml", "kubernetes"),
        ("workflows/ci.yml", "kubernetes"),
        (".gitlab-ci.yml", "gitlab"),
        ("deploy/app.yaml", "kubernetes"),
        ("kustomization.yaml", "kustomize"),
        ("overlays/prod/kustomization.yml", "kustomize"),
        ("base/Kustomization", "kustomize"),
        ("my-kustomization.yaml", "kubernetes"),
        ("mycompose.yaml", "kubernetes"),
        ("Dockerfile", "dockerfile"),
        ("build/ci.Dockerfile", "dockerfile"),
        ("compose.json", "dockerfile"),  # named on the command line: read as a Dockerfile
    ],
)
def test_kind_of(path: str, kind: str) -> None:
    assert kind_of(path) == kind


def test_yaml_that_is_no_kind_of_pins_is_left_alone_when_found_and_an_error_when_named() -> None:
    text = (GOLDEN / "unknown-docs.yml").read_text()
    assert scan_file("docs/mkdocs.yml", text, searched=True) == Scan((), ())
    with pytest.raises(FileError, match=r"^docs/mkdocs.yml: not a file pin reads"):
        scan_file("docs/mkdocs.yml", text)


@pytest.mark.parametrize("path", ["compose.yaml", "deploy.yaml", ".gitlab-ci.yml"])
def test_yaml_that_does_not_parse_is_an_error_naming_it(path: str) -> None:
    text = "apiVersion: v1\nkind: Pod\nspec: {containers: [image: x\n"
    with pytest.raises(FileError, match=rf"^{path}: not valid YAML \(line 4, column 1\): "):
        scan_file(path, text)


def test_a_found_yaml_file_that_does_not_parse_is_left_alone_unless_its_name_is_a_kind() -> None:
    helm = "apiVersion: v1\nkind: Pod\n{{- if .Values.x }}\nimage: {{ .Values.image }}\n"
    assert scan_file("chart/templates/pod.yaml", helm, searched=True) == Scan((), ())
    with pytest.raises(FileError, match=r"^compose\.yaml: not valid YAML"):
        scan_file("compose.yaml", "services: [\n", searched=True)


def test_yaml_that_is_not_utf8_is_an_error() -> None:
    text = b"services:\n  web: {image: nginx}  # caf\xe9\n".decode("utf-8", "surrogateescape")
    with pytest.raises(FileError, match=r"^compose\.yaml: not valid UTF-8"):
        scan_file("compose.yaml", text)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    # libyaml's composer recurses in C: 50,000 levels crash the interpreter outright.
    with pytest.raises(FileError, match=r"^compose\.yaml: nested more than 300 levels deep"):
        scan_file("compose.yaml", "services: " + "[" * 50_000 + "]" * 50_000 + "\n")


def test_an_undefined_alias_is_an_error_naming_its_place() -> None:
    with pytest.raises(FileError, match=r"\(line 2, column 14\): found undefined alias nope$"):
        scan_file("compose.yaml", "services:\n  a: {image: *nope}\n")


def test_an_anchor_defined_again_names_the_newer_node() -> None:
    text = "x: &i a:1\ny: &i b:1\nservices:\n  s: {image: *i}\n"
    assert where(scan_file("compose.yaml", text)) == [(2, "services.s.image", "b:1")]


def test_nesting_up_to_the_limit_is_read() -> None:
    deep = "{a: " * (MAX_YAML_DEPTH - 4) + "b" + "}" * (MAX_YAML_DEPTH - 4)
    text = f"apiVersion: v1\nkind: Pod\nspec:\n  containers: [{{image: nginx, x: {deep}}}]\n"
    assert where(scan_file("pod.yaml", text)) == [(4, "spec.containers[0].image", "nginx")]


def test_a_billion_laughs_is_walked_once_per_node() -> None:
    lines = ["apiVersion: v1", "kind: List", "a0: &a0 {containers: [{image: nginx}]}"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    (found,) = scan_file("list.yaml", "\n".join(lines) + "\n").found
    assert found.text == "nginx"


# -- what is found where -----------------------------------------------------------------------


def where(scan: Scan) -> list[tuple[int, str, str]]:
    return [(f.line, f.where, f.text) for f in scan.found]


def skips(scan: Scan) -> list[tuple[int, str, str]]:
    return [(s.line, s.where, s.reason) for s in scan.skipped]


def test_compose_reads_services_image_only() -> None:
    text = (
        "x-note: {image: nginx}\n"
        "services:\n"
        "  web:\n"
        "    image: nginx\n"
        "    labels: {image: not-this}\n"
        "configs: {image: {file: ./x}}\n"
    )
    assert where(scan_file("compose.yaml", text)) == [(4, "services.web.image", "nginx")]


def test_an_alias_is_pinned_once_where_the_anchor_is_written() -> None:
    text = "x-img: &img nginx:1\nservices:\n  a: {image: *img}\n  b: {image: *img}\n"
    assert where(scan_file("compose.yaml", text)) == [(1, "services.a.image", "nginx:1")]


def test_merge_keys_give_way_to_the_mappings_own_keys() -> None:
    text = (
        "x-base: &base {image: base:1, restart: always}\n"
        "services:\n"
        "  a: {<<: *base, image: own:1}\n"
    )
    assert where(scan_file("compose.yaml", text)) == [(3, "services.a.image", "own:1")]


def test_kubernetes_finds_pod_specs_wherever_they_sit() -> None:
    text = (
        "apiVersion: example.com/v1\n"
        "kind: Pipeline\n"
        "spec:\n"
        "  stages:\n"
        "    - template:\n"
        "        spec:\n"
        "          containers: [{name: a, image: 'a:1'}]\n"
        "          initContainers: [{name: b, image: 'b:1'}]\n"
        "  schema: {containers: {type: array}}\n"
    )
    assert where(scan_file("pipeline.yaml", text)) == [
        (7, "spec.stages[0].template.spec.containers[0].image", "a:1"),
        (8, "spec.stages[0].template.spec.initContainers[0].image", "b:1"),
    ]


def test_only_documents_with_apiversion_and_kind_are_manifests() -> None:
    text = (
        "containers: [{image: a}]\n"
        "---\n"
        "apiVersion: v1\nkind: Pod\nspec: {containers: [{image: b}]}\n"
    )
    assert where(scan_file("pod.yaml", text)) == [(5, "spec.containers[0].image", "b")]


def test_github_uses_other_than_docker_are_not_images() -> None:
    text = (
        "jobs:\n  a:\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - uses: ./local\n"
        "      - uses: docker://nginx\n"
    )
    found = scan_file(".github/workflows/x.yml", text).found
    assert where(Scan(found, ())) == [(6, "jobs.a.steps[2].uses", "nginx")]
    assert text[found[0].start : found[0].end] == "nginx"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("${TAG}", "made of variables"),
        ("nginx:${TAG:-latest}", "made of variables"),
        ("$IMAGE", "made of variables"),
        ('"{{ .Values.image }}"', "a template (Helm, Go templates)"),
        ('"${{ matrix.image }}"', "a GitHub Actions expression"),
        ("|\n      nginx", "a block scalar"),
        ('"ngi\\x6ex"', "has escape sequences in double quotes"),
        ("'it''s'", "has an escaped quote"),
        ("nginx\n      :1", "spans several lines"),
        ("[nginx]", "not a single string"),
        ("{{ .Values.image }}", "not a single string"),  # unquoted, YAML reads a flow mapping
        ("1.5", "not a string"),
        ("Not An Image", "not an image reference"),
    ],
)
def test_skipped_with_a_reason(value: str, reason: str) -> None:
    text = f"services:\n  web:\n    image: {value}\n"
    scan = scan_file("compose.yaml", text)
    assert scan.found == ()
    ((line, place, why),) = skips(scan)
    assert (line, place) == (3, "services.web.image")
    assert why.startswith(reason), why


def test_pin_ignore_on_the_line_before_the_key() -> None:
    text = (
        "services:\n"
        "  a:\n"
        "    # pin: ignore\n"
        "    image: nginx:1\n"
        "  b:\n"
        "    image: nginx:2\n"
        "  c:\n"
        "    # pin: ignore because\n"
        "\n"
        "    image: nginx:3\n"
    )
    scan = scan_file("compose.yaml", text)
    assert where(scan) == [(6, "services.b.image", "nginx:2"), (10, "services.c.image", "nginx:3")]
    assert skips(scan) == [(4, "services.a.image", yamlfile.IGNORED)]


def test_pin_ignore_before_a_sequence_item() -> None:
    text = "services:\n  # pin: ignore\n  - postgres:16\n  - redis:7\n"
    scan = scan_file(".gitlab-ci.yml", text)
    assert where(scan) == [(4, "services[1]", "redis:7")]
    assert skips(scan) == [(3, "services[0]", yamlfile.IGNORED)]


def test_null_and_empty_values_are_nothing() -> None:
    text = "services:\n  a: {image: }\n  b:\n    image: null\n  c:\n    image: ''\n"
    scan = scan_file("compose.yaml", text)
    assert scan.found == () and skips(scan) == []


# -- the re-parse check ------------------------------------------------------------------------


def edits_for(text: str, old: str, new: str) -> Iterator[Edit]:
    start = text.index(old)
    yield Edit(start, start + len(old), new)


@pytest.mark.parametrize(
    ("text", "old", "new"),
    [
        # a splice that would change the document beyond the image, each caught
        ("a: {image: nginx}\n", "nginx", "nginx, b: c"),  # a new key in a flow mapping
        ("image: nginx\n", "nginx", "nginx # c"),  # the scalar shrinks to nginx
        ("image: nginx\nb: 1\n", "nginx", "nginx\nc: 2"),  # a new key
        ("image: 'nginx'\n", "nginx", "ng'inx"),  # breaks the quotes
        ("image: nginx\nb: 1\n", "b: 1", "b: 2"),  # text outside any image
    ],
)
def test_check_rewrite_catches_a_splice_that_changes_more_than_the_image(
    text: str, old: str, new: str
) -> None:
    edits = list(edits_for(text, old, new))
    after = apply_edits(text, edits)
    with pytest.raises(PinError, match=r"^compose.yaml: .*nothing was written"):
        check_rewrite("compose.yaml", text, after, edits)


def test_check_rewrite_accepts_exactly_the_intended_change() -> None:
    text = 'services:\n  a: {image: "nginx"}\n'
    edits = list(edits_for(text, "nginx", "nginx@sha256:" + "a" * 64))
    check_rewrite("compose.yaml", text, apply_edits(text, edits), edits)


# -- Kustomize ---------------------------------------------------------------------------------

KUSTOMIZATION = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n"
DIGEST = "sha256:" + "a" * 64


def test_kustomize_resolves_new_name_else_name_with_new_tag() -> None:
    text = KUSTOMIZATION + (
        "  - name: nginx\n    newName: cgr.dev/chainguard/nginx\n    newTag: '1'\n"
        "  - {name: cgr.dev/chainguard/go, newTag: latest}\n"
        f"  - name: cgr.dev/chainguard/python\n    newTag: latest\n    digest: {DIGEST}\n"
    )
    scan = scan_file("base/Kustomization", text)
    assert where(scan) == [
        (4, "images[0]", "cgr.dev/chainguard/nginx:1"),
        (7, "images[1]", "cgr.dev/chainguard/go:latest"),
        (8, "images[2]", f"cgr.dev/chainguard/python:latest@{DIGEST}"),
    ]
    pinned = scan.found[2]
    assert pinned.reference.digest == DIGEST and pinned.digest_field is not None
    assert text[pinned.digest_field.start : pinned.digest_field.end] == DIGEST
    assert all(f.offsets == () for f in scan.found)  # the image is written nowhere as one


def test_kustomize_an_existing_digest_is_replaced_and_an_equal_one_left_alone() -> None:
    text = (
        KUSTOMIZATION
        + f"  - name: cgr.dev/chainguard/go\n    newTag: latest\n    digest: {DIGEST}\n"
    )
    (found,) = scan_file("kustomization.yaml", text).found
    assert edit_for(found, f"cgr.dev/chainguard/go:latest@{DIGEST}") is None
    new = "sha256:" + "b" * 64
    edit = edit_for(found, f"cgr.dev/chainguard/go:latest@{new}")
    assert edit is not None and apply_edits(text, [edit]) == text.replace(DIGEST, new)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("{name: alpine, newName: my/alpine}", "no newTag: the tag is the one in the manifests"),
        ("{name: alpine}", "sets neither newTag nor digest"),
        ("{newTag: latest}", "no name"),
        ("{name: alpine, newTag: 1.20}", "newTag is empty or not a string"),
        ("{name: alpine, newTag: '${TAG}'}", "made of variables"),
        ("{name: '{{ .Values.image }}', newTag: x}", "a template"),
        ("{name: Alpine, newTag: x}", "not an image reference"),
        ("alpine", "not a mapping"),
        ("{<<: {name: a}, newTag: x}", "a merge key"),
        (f'{{name: alpine, newTag: x, digest: "sha256:\\x61{"a" * 63}"}}', "has escape sequences"),
        ("name: a\n    newTag: |\n      x\n", "a block scalar"),
        ("name: a\n    newTag: x\n    other: |\n      x\n", "its last field is not"),
        ("name: a\n    newTag: x\n    other: [1,\n      2]\n", "its last field is not"),
        ("{name: a, newTag: x\n    }", "a flow mapping over several lines"),
    ],
)
def test_kustomize_skipped_with_a_reason(entry: str, reason: str) -> None:
    scan = scan_file("kustomization.yaml", KUSTOMIZATION + f"  - {entry}\n")
    assert scan.found == ()
    ((line, place, why),) = skips(scan)
    assert (line, place) == (4, "images[0]")
    assert why.startswith(reason), why


def test_kustomize_pin_ignore_before_an_entry() -> None:
    text = KUSTOMIZATION + "  # pin: ignore\n  - {name: a, newTag: x}\n  - {name: b, newTag: y}\n"
    scan = scan_file("kustomization.yaml", text)
    assert where(scan) == [(6, "images[1]", "b:y")]
    assert skips(scan) == [(5, "images[0]", yamlfile.IGNORED)]


def test_kustomize_an_aliased_entry_is_pinned_once_where_it_is_written() -> None:
    text = KUSTOMIZATION + "  - &a {name: a, newTag: x}\n  - *a\n"
    assert pin_text(text, fake_digest, path="kustomization.yaml").count("digest: ") == 1


def test_kustomize_images_in_a_manifest_are_not_read() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nimages:\n  - {name: a, newTag: x}\n"
    assert scan_file("deploy.yaml", text) == Scan((), ())


def insertion(text: str, at: str, lead: str) -> list[Edit]:
    offset = text.index(at) + len(at)
    return [Edit(offset, offset, f"{lead}digest: {DIGEST}")]


@pytest.mark.parametrize(
    ("text", "at", "lead"),
    [
        # the digest pair where it changes what the document means, each caught
        ("images:\n- name: a\n  newTag: x\n", "name: a", "\n  "),  # not the last key
        ("images:\n- name: a\n  newTag: x\n", "newTag: x", "\n"),  # a key of the root
        ("images:\n- name: a\n  newTag: x\n", "newTag: x", "\n    "),  # breaks the YAML
        ("images:\n- {name: a, newTag: x}\n", "name: a", ", "),  # not the last pair
        ("a: b\n", "a: b", "\n#"),  # not the pair the lead says
    ],
)
def test_check_rewrite_accepts_a_digest_pair_only_as_a_mappings_last(
    text: str, at: str, lead: str
) -> None:
    edits = insertion(text, at, lead)
    after = apply_edits(text, edits)
    with pytest.raises(PinError, match=r"^kustomization.yaml: .*nothing was written"):
        check_rewrite("kustomization.yaml", text, after, edits)


def test_check_rewrite_accepts_a_digest_pair_after_an_entrys_last_key() -> None:
    text = "images:\n- name: a\n  newTag: x  # c\r\n- {name: b, newTag: y}\n"
    edits = insertion(text, "newTag: x", "\r\n  ") + insertion(text, "newTag: y", ", ")
    check_rewrite("kustomization.yaml", text, apply_edits(text, edits), edits)


def test_golden_kustomize_update_replaces_the_digest_in_place() -> None:
    text = (GOLDEN / "kustomize-update.before.yaml").read_text()
    edits = []
    for found in scan_file("kustomization.yaml", text).found:
        edit = edit_for(found, found.reference.with_digest(fake_digest(found.reference)))
        assert edit is not None and found.digest_field is not None
        assert (edit.start, edit.end) == (found.digest_field.start, found.digest_field.end)
        edits.append(edit)
    after = apply_edits(text, edits)
    check_rewrite("kustomization.yaml", text, after, edits)
    assert after == (GOLDEN / "kustomize-update.after.yaml").read_text()
    assert len(edits) == 2 and after.count(DIGEST[:7] + "0" * 64) == 0
