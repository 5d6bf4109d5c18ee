"""Measure what users wait for: the offline check's start-up, and round trips when resolving.

    python benchmarks/bench.py            # from the repository root, with the project installed

1. ``pin --check`` on one file, offline: the pre-commit path. Median wall time of 15 runs of
   the installed command, and whether it imported an HTTP client.
2. A monorepo: 400 FROM lines over 40 unique cgr.dev images in 20 files, against the fake
   registry with 50 ms added to every answer (a far registry). Wall time and requests made,
   against the lower bound of one resolution round trip per unique image.

Numbers, not assertions: tests do not time things.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakeregistry import running_registry

LATENCY = 0.05


def offline_check(folder: Path) -> None:
    pin = shutil.which("pin")
    if pin is None:
        sys.exit("install the project first: pip install .")
    path = folder / "Dockerfile"
    path.write_text("FROM cgr.dev/chainguard/python:latest\nRUN echo hi\n")
    times = []
    for _ in range(15):
        started = time.perf_counter()
        subprocess.run([pin, "--check", str(path)], capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    probe = (
        "import sys; from pinner.cli import main; main(['--check', sys.argv[1]]);"
        "print(any(m in sys.modules for m in ('httpx', 'asyncio')), file=sys.stderr)"
    )
    imported = (
        subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=False
        )
        .stderr.strip()
        .splitlines()[-1]
    )
    baseline = []
    for _ in range(15):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=False)
        baseline.append(time.perf_counter() - started)
    print(
        f"offline pin --check: median {statistics.median(times) * 1000:.0f} ms"
        f" (python -c pass: {statistics.median(baseline) * 1000:.0f} ms);"
        f" httpx or asyncio imported: {imported}"
    )


def monorepo(folder: Path) -> None:
    pin = shutil.which("pin")
    assert pin is not None
    with running_registry() as registry:
        images = [f"chainguard/image{i}" for i in range(40)]
        for image in images:
            registry.add_nightly(image, "latest", 30, datetime.now(UTC) - timedelta(days=30))
        files = []
        for f in range(20):
            lines = [
                f"FROM cgr.dev/{images[(f * 20 + i) % 40]}:latest AS s{i}\n" for i in range(20)
            ]
            path = folder / f"{f}.Dockerfile"
            path.write_text("".join(lines))
            files.append(str(path))
        registry.delay(LATENCY, times=100_000)
        started = time.perf_counter()
        result = subprocess.run(
            [pin, "--mirror", f"cgr.dev={registry.url}", *files],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
        requests = registry.requests
    history = [r for r in requests if "/_chainguard/history/" in r.path]
    tokens = [r for r in requests if r.path.startswith("/token")]
    print(
        f"monorepo: 400 references, 40 unique, exit {result.returncode}: {elapsed:.2f} s,"
        f" {len(requests)} requests ({len(history)} history, {len(tokens)} token),"
        f" {LATENCY * 1000:.0f} ms added to each answer;"
        f" serial lower bound {40 * 3 * LATENCY:.1f} s, one round trip {LATENCY:.2f} s"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        offline_check(Path(temp))
        monorepo(Path(temp))


if __name__ == "__main__":
    main()
