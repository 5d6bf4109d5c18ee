"""The GitHub Action's step: run ``pin``, then set the step's outputs and write its summary.

Run by action.yml as ``python "$GITHUB_ACTION_PATH/action/run.py"`` with the interpreter that
pinner was installed into, and by the tests the same way. Inputs come as INPUT_MODE,
INPUT_PATHS and INPUT_ARGS (shell words); the exit code is pin's own.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MODES = {"check": ["--check"], "update": ["--update"]}


def main() -> int:
    mode = os.environ.get("INPUT_MODE", "check").strip() or "check"
    if mode not in MODES:
        print(f"::error title=pin::mode must be check or update, not {mode!r}", file=sys.stderr)
        return 2
    try:
        paths = shlex.split(os.environ.get("INPUT_PATHS", ""))
        extra = shlex.split(os.environ.get("INPUT_ARGS", ""))
    except ValueError as e:
        print(f"::error title=pin::cannot read the paths or args input: {e}", file=sys.stderr)
        return 2
    folder = os.environ.get("RUNNER_TEMP") or tempfile.gettempdir()
    report = Path(folder) / "pin-report.json"
    command = [sys.executable, "-m", "pinner", *MODES[mode], "--json", *extra, "--", *paths]
    with open(report, "wb") as out:
        code = subprocess.run(command, stdout=out, check=False).returncode
    try:
        document: dict[str, Any] = json.loads(report.read_bytes())
    except ValueError:
        document = {"errors": ["pin printed no JSON report"], "references": []}
    changes = [e for e in document.get("references", []) if e["action"] in CHANGED]
    _append("GITHUB_OUTPUT", f"changed={'true' if changes else 'false'}\nreport={report}\n")
    _append("GITHUB_STEP_SUMMARY", summary(document, mode, changes))
    return code


CHANGED = ("pinned", "updated", "unpinned")


def _append(variable: str, text: str) -> None:
    path = os.environ.get(variable)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)


def _text(text: object) -> str:
    """Text for a Markdown table cell, with what would break the table escaped."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _cell(text: object) -> str:
    """A Markdown table cell as code."""
    code = _text(text).replace("`", "'")
    return f"`{code}`"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def summary(document: dict[str, Any], mode: str, changes: list[dict[str, Any]]) -> str:
    """The Markdown a person reads in the run: what changed, or what failed."""
    title = f"pin --{mode}"
    if errors := document.get("errors", []):
        lines = [f"### {title}: failed, nothing was written", ""]
        return "\n".join(lines + [f"- {_cell(message)}" for message in errors]) + "\n\n"
    references = document.get("references", [])
    findings = [e for e in references if e["action"] in ("stale", "unverified")]
    if not changes and not findings:
        return f"### {title}: every image is pinned, nothing to change\n\n"
    lines = []
    if changes:
        images = _plural(len({e["image"] for e in changes}), "image")
        files = _plural(len({e["file"] for e in changes}), "file")
        verb = "changed" if document.get("written") else "would change"
        rows = [
            [
                _cell(e["file"]),
                str(e["line"]),
                _cell(e["image"]),
                _cell(e["new_digest"] or "not looked up: --check is offline"),
                e["published"] or "",
            ]
            for e in changes
        ]
        lines += [f"### {title}: {images} in {files} {verb}", ""]
        lines += _table(["File", "Line", "Image", "Pinned to", "Built"], rows)
    lines += _package_changes(changes)
    if findings:
        rows = [
            [_cell(e["file"]), str(e["line"]), _cell(e["image"]), _text(e["reason"])]
            for e in findings
        ]
        lines += ["### Pins that failed the checks", ""]
        lines += _table(["File", "Line", "Image", "Why"], rows)
    return "\n".join(lines) + "\n"


def _package_changes(changes: list[dict[str, Any]]) -> list[str]:
    """``--changes`` in args: per moved image, how many packages changed, were added and
    removed, from its SBOMs (the counts a reviewer reads; the JSON report has each package)."""
    rows: list[list[str]] = []
    seen: set[tuple[str, str]] = set()
    for entry in changes:
        if entry["action"] != "updated" or "changes" not in entry:
            continue
        image = str(entry["image"]).partition("@")[0]
        if (image, entry["new_digest"]) in seen:
            continue
        seen.add((image, entry["new_digest"]))
        found = entry["changes"]
        if found is None:
            rows.append([_cell(image), "", "", "", _text(entry.get("changes_reason") or "")])
            continue
        counts = [str(len(found[k])) for k in ("changed", "added", "removed")]
        rows.append([_cell(image), *counts, _text(found.get("platform") or "")])
    if not rows:
        return []
    title = "### What changed in the images (from their SBOMs; signatures not checked)"
    return [title, "", *_table(["Image", "Changed", "Added", "Removed", "Platform"], rows)]


if __name__ == "__main__":
    raise SystemExit(main())
