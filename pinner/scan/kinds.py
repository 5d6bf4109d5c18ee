"""Which scanner reads which file: by name first, then, for other YAML, by content.

- ``compose.y*ml``, ``docker-compose.y*ml``, ``(docker-)compose.*.y*ml``: Compose;
- ``.github/workflows/*.y*ml``: GitHub Actions;
- ``.gitlab-ci.yml``: GitLab CI;
- ``kustomization.yaml``, ``kustomization.yml``, ``Kustomization``: Kustomize;
- any other ``*.yml`` / ``*.yaml``: Kubernetes, when a document has apiVersion and kind; else
  it is not pin's to touch;
- anything else: a Dockerfile (a file named on the command line, or one of the names
  :mod:`pinner.discover` searches for).

YAML is imported only when a YAML file is read: the offline check of a Dockerfile-only
repository starts as fast as before.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from pinner.errors import FileError, PinError
from pinner.scan.result import Scan

if TYPE_CHECKING:
    from pinner.rewrite import Edit

Kind = Literal["dockerfile", "compose", "github", "gitlab", "kubernetes", "kustomize"]
# The names kustomize build looks for (konfig.RecognizedKustomizationFileNames).
KUSTOMIZATION_NAMES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})
_COMPOSE_RE = re.compile(r"(docker-)?compose(\.[^/]+)?\.ya?ml")
_NOTHING = Scan((), ())


def is_yaml(name: str) -> bool:
    return name.endswith((".yml", ".yaml"))


def kind_of(path: str) -> Kind:
    """The kind of file *path* is read as, from its name alone."""
    name = os.path.basename(path)
    if not is_yaml(name):  # every kind but the Dockerfile is YAML, named *.y*ml but this one
        return "kustomize" if name == "Kustomization" else "dockerfile"
    if _COMPOSE_RE.fullmatch(name):
        return "compose"
    if name == ".gitlab-ci.yml":
        return "gitlab"
    if name in KUSTOMIZATION_NAMES:
        return "kustomize"
    if not is_yaml(name):
        return "dockerfile"
    folder = os.path.dirname(os.path.abspath(path))
    if (
        os.path.basename(folder) == "workflows"
        and os.path.basename(os.path.dirname(folder)) == ".github"
    ):
        return "github"
    return "kubernetes"


def scan_file(path: str, text: str, *, searched: bool = False) -> Scan:
    """The references in the file *path* holding *text*.

    A YAML file found by searching a directory (*searched*) that is no kind pin reads, or
    that does not parse, is left alone; one named on the command line, or with the name of a
    kind pin reads, is an error naming it.
    """
    kind = kind_of(path)
    if kind == "dockerfile":
        from pinner.dockerfile import scan

        return scan(text)
    lenient = searched and kind == "kubernetes"
    if lenient and not ("apiVersion" in text and "image" in text):
        return _NOTHING  # cannot be a manifest with an image: not even parsed
    from pinner.scan import compose, github, gitlab, kubernetes, kustomize
    from pinner.scan.yamlfile import YamlText

    try:
        document = YamlText(text)
    except FileError as e:
        if lenient:
            return _NOTHING
        raise FileError(f"{path}: {e}") from None
    if kind == "kubernetes" and not any(kubernetes.is_manifest(d) for d in document.documents):
        if lenient:
            return _NOTHING
        raise FileError(
            f"{path}: not a file pin reads: not named like a Compose, GitHub Actions or GitLab CI"
            " file, and no document has apiVersion and kind"
        )
    if kind == "kustomize":
        return kustomize.scan(document)
    scanners = {
        "compose": compose.spots,
        "github": github.spots,
        "gitlab": gitlab.spots,
        "kubernetes": kubernetes.spots,
    }
    return document.scan(scanners[kind])


def check_rewrite(path: str, before: str, after: str, edits: Iterable[Edit]) -> None:
    """Raise a PinError naming *path* unless its rewrite changed only the images' text.

    YAML only: the text is parsed again and compared event by event, because what a splice
    means in YAML depends on the context (a plain scalar in a flow mapping, a comment
    marker), and a wrong file is worse than none. Dockerfile rewrites are checked by the tests.
    """
    if kind_of(path) == "dockerfile" or before == after:
        return
    from pinner.scan.yamlfile import check_rewrite as check

    try:
        check(before, after, edits)
    except PinError as e:
        raise PinError(f"{path}: {e}; nothing was written (please report it)") from None
