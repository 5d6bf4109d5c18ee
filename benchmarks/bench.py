"""Issue 9's figures, P1-P4, measured side by side in one run and printed as ratios.

    python benchmarks/bench.py            # from the repository root, with the project installed
    python benchmarks/bench.py --runs 3   # fewer runs per figure (default 5)
    python benchmarks/bench.py --only P3  # one figure (again for more)
    python benchmarks/bench.py --only P3 --instructions  # and pin's instructions, counted

Each figure is the median wall time of several runs of the installed ``pin`` and of pindock
(``pip install pindock``, a Go pinner; "n/a" where it is not installed), against

- the floor: start-up (``python -c pass``, measured in this run) plus the round trips that
  cannot overlap at the injected latency. ``pin --version`` is printed too: typer's start-up,
  which --version, --help and unusual command lines pay and a plain one does not (pinner.cli);
- pindock doing the same job. It pins through the manifest endpoint (cgr.dev's tag history is
  pin's own), so against the fake cgr.dev it names the registry by its loopback address, which
  it reaches over plain http as Docker does; pin is sent there with ``--mirror``.

P1  30 files x 4 FROM over 40 unique cgr.dev images (20 repos x 2 tags), each answer of the
    fake registry 100 ms late. Floor: challenge, token, history = 3 round trips.
P2  offline ``--check`` of one pinned Dockerfile.
P3  200 files over 40 images on the real CNCF registry (``docker-registry``) behind a proxy that
    delays each request 50 ms. Floor: the manifest HEAD, 1 round trip.
P4  offline ``--check`` of 10,000 pinned Dockerfiles in a directory tree.

Absolute times on a shared machine are noise; the ratios are the figures. The last column is
each tool's CPU time (user + system, its child processes included): what a run costs the
machine, where the time is what the user waits.

Nothing leaves loopback: pinned files name no outside registry (pindock ``check`` would look
one up), and both tools run with an empty HOME so that no credential helper is called. Every
command runs in the benchmark's own folder (not in pinner's checkout, whose pyproject.toml pin
would read), and each run of P1 and P3 pins files of its own, in a new folder (see fresh()).
Numbers, not assertions: the tests do not time things (tests/test_bench.py runs a tiny case).

``--instructions`` also runs pin once more per figure under valgrind's cachegrind and prints
the instructions it executed in user space (forked processes included; the kernel's work, such
as creating and fsyncing files, is not counted). Times here move by 10% from one minute to the
next; these counts move by less than 0.1%, so they tell two versions of pin apart where the
times cannot, for changes to what pin itself computes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import itertools
import os
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pinner.resolve.lookups import ACCEPT
from tests.fakeregistry import running_registry
from tests.relay import Relay

TIMEOUT = 300  # seconds, for any one command
LOOPBACK = "127.0.0.1"
# Pinned files name this registry: loopback with nothing listening, should a tool look.
OFFLINE_REGISTRY = f"{LOOPBACK}:9"


@dataclass(frozen=True)
class Sizes:
    p1_files: int = 30
    p1_froms: int = 4
    repos: int = 20  # x 2 tags = the unique images of P1 and P3
    p3_files: int = 200
    p4_files: int = 10_000
    p1_latency: float = 0.1
    p3_latency: float = 0.05


FIGURES = ("P1", "P2", "P3", "P4")
QUICK = Sizes(p1_files=2, p1_froms=2, repos=2, p3_files=4, p4_files=20, p1_latency=0.01)


@dataclass(frozen=True)
class Figure:
    name: str
    pin: float
    pindock: float | None
    floor: float | None
    must: str
    goal: str
    # CPU seconds (user + system, child processes included), medians like the times.
    pin_cpu: float | None = None
    pindock_cpu: float | None = None
    pin_instructions: int | None = None  # --instructions
    # P3: seconds the registry took to answer a minimal client's lookups, all sent at once.
    registry_pace: float | None = None


@dataclass(frozen=True)
class Tools:
    pin: str
    # As installed by pip: a Python launcher that execs the Go binary. That is what users run
    # and what issue 9 measured; the binary alone would not pay a Python start-up.
    pindock: str | None
    env: dict[str, str]  # an empty HOME: no docker config, no credential helper
    runs: int
    # Where every command runs: the benchmark's folder, as a user runs pin in a repository of
    # theirs. In pinner's checkout, pin would read pinner's own pyproject.toml for settings.
    cwd: Path
    instructions: bool = False  # count pin's instructions in one more run of each figure


def images(sizes: Sizes) -> list[tuple[str, str]]:
    """(repository, tag) of every unique image of P1 and P3."""
    return [(f"chainguard/image{r}", tag) for r in range(sizes.repos) for tag in ("1.25", "1.26")]


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def dockerfile(base: str, runtime: str) -> str:
    """A typical two-stage Dockerfile: one continued RUN, COPY --from a stage."""
    return (
        # Pinned, as pin leaves it: the frontend is an image too (nothing looks it up).
        f"# syntax=docker/dockerfile:1@{digest('frontend')}\n"
        f"FROM {base} AS build\n"
        "WORKDIR /app\n"
        "COPY requirements.txt .\n"
        "RUN pip install --no-cache-dir -r requirements.txt \\\n"
        "    && rm -rf /root/.cache\n"
        "COPY . .\n"
        "\n"
        f"FROM {runtime}\n"
        "WORKDIR /app\n"
        "COPY --from=build /app /app\n"
        "ENV PYTHONUNBUFFERED=1\n"
        "USER nonroot\n"
        'ENTRYPOINT ["python", "/app/main.py"]\n'
    )


def pinned_dockerfile(index: int) -> str:
    name = f"{OFFLINE_REGISTRY}/chainguard/python"
    return dockerfile(
        f"{name}:latest-dev@{digest(f'dev{index % 40}')}",
        f"{name}:latest@{digest(str(index % 40))}",
    )


def run(argv: list[str], tools: Tools) -> tuple[float, float]:
    """Wall time and CPU time of one run of *argv*; exits the benchmark when the tool failed.

    CPU time is user + system, the processes the tool forked and waited for included: what the
    run cost the machine, where the wall time is what the user waits.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        argv, env=tools.env, cwd=tools.cwd, capture_output=True, text=True, timeout=TIMEOUT
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{argv[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


def nothing() -> None:
    pass


@dataclass(frozen=True)
class Job:
    argv: list[str]
    prepare: Callable[[], None] = nothing  # before each run, not timed
    check: Callable[[], None] = nothing  # after each run, not timed


@dataclass(frozen=True)
class Times:
    pin: float
    pindock: float | None
    start: float  # python -c pass
    pin_cpu: float
    pindock_cpu: float | None
    pin_instructions: int | None = None

    def figure(self, name: str, floor: float | None, must: str, goal: str) -> Figure:
        return Figure(
            name,
            self.pin,
            self.pindock,
            floor,
            must,
            goal,
            self.pin_cpu,
            self.pindock_cpu,
            self.pin_instructions,
        )


def race(tools: Tools, pin: Job, pindock: Job | None) -> Times:
    """Medians of ``python -c pass``, *pin* and *pindock*, run in turn, round after round.

    Taking turns gives each the same share of whatever else the machine is doing.
    """
    jobs = {"start": Job([sys.executable, "-c", "pass"]), "pin": pin}
    if pindock is not None and tools.pindock is not None:
        jobs["pindock"] = pindock
    times: dict[str, list[float]] = {name: [] for name in jobs}
    cpu: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(tools.runs):
        for name, job in jobs.items():
            job.prepare()
            elapsed, used = run(job.argv, tools)
            times[name].append(elapsed)
            cpu[name].append(used)
            job.check()
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpus = {name: statistics.median(values) for name, values in cpu.items()}
    counted = None
    if tools.instructions:
        pin.prepare()
        counted = instructions(pin.argv, tools)
        pin.check()
    return Times(
        medians["pin"],
        medians.get("pindock"),
        medians["start"],
        cpus["pin"],
        cpus.get("pindock"),
        counted,
    )


def instructions(argv: list[str], tools: Tools) -> int:
    """The instructions one run of *argv* executed in user space, its forked processes
    included (each writes its own count), as valgrind's cachegrind counts them."""
    with tempfile.TemporaryDirectory() as logs:
        counter = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
        counter += ["--cachegrind-out-file=/dev/null", f"--log-file={logs}/%p"]
        run([*counter, *argv], tools)
        counts = [_REFS.search(log.read_text()) for log in Path(logs).iterdir()]
    return sum(int(found[1].replace(",", "")) for found in counts if found)


# cachegrind's summary line: "==1234== I   refs:      646,312,118".
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def write(paths: list[Path], texts: list[str]) -> None:
    for path, text in zip(paths, texts, strict=True):
        path.write_text(text)


def fresh(folder: Path, runs: Iterator[int]) -> None:
    """A new, empty *folder*, in block groups of its own (see spread()); the last run's is set
    aside beside it, not deleted.

    Each run writes the case into a folder of its own, as files at rest in a user's
    repository. Rewritten in place, the files a tool replaced by renaming (as pin does) were
    freed a second earlier, and every run created its files slower than the last (P3's pin
    runs went from 0.36 to 0.70 s of CPU over 20 runs, on the same work). That cost belongs
    to running a tool 20 times a minute, not to the tool.
    """
    if folder.exists():
        folder.rename(folder.with_name(f"{folder.name}.run{next(runs)}"))
    # Made under a name of its own, then renamed: ext4 starts its search for a top directory's
    # group from a hash of the name, and "p3" would go where the last benchmark's "p3" was.
    made = folder.with_name(f"{folder.name}.{secrets.token_hex(8)}")
    made.mkdir()
    made.rename(folder)


def spread(folder: Path) -> None:
    """Have the file system put the folders made in *folder* in block groups of their own.

    On ext4 without a journal (this machine's disk), creating a file passes over each inode
    of its block group that was freed in the last minutes, one by one (recently_deleted() in
    fs/ext4/ialloc.c, consulted only when there is no journal). A benchmark frees thousands
    when it ends (P4's tree alone is 20,000 inodes), and the next one's folders went to the
    same groups: 200 files took 90-104 ms to create there, 4-5 ms in a fresh group, and pin's
    P3 runs took 0.15 s more CPU for the same work straight after another benchmark. With
    the Orlov "top directory" flag (``chattr +T``), ext4 spreads the folders made in *folder*
    over the disk, as it does those made at its root, so that each run's files are created
    away from the last run's leftovers, as in a fresh checkout. Not always: ext4 also prefers
    the groups with the fewest folders, which the last benchmark's clean-up has just emptied.
    A file system without the flag (or a machine without chattr) is left as it is.
    """
    if shutil.which("chattr") is not None:
        subprocess.run(["chattr", "+T", str(folder)], capture_output=True, check=False)


def check_pinned(paths: list[Path], expected: int) -> None:
    """A run that pinned nothing would be fast for the wrong reason."""
    found = sum(path.read_text().count("@sha256:") for path in paths)
    if found != expected:
        sys.exit(f"expected {expected} pinned references in {paths[0].parent}, found {found}")


# --- P1 and P3: resolving over the network ---------------------------------------------------


def resolve_case(
    tools: Tools, folder: Path, registry: str, refs: list[str], per_file: int, mirror: list[str]
) -> Times:
    """Pin and pindock pinning files of *per_file* FROM lines each over *refs*.

    pin reads ``cgr.dev`` or *registry* names (sent to *registry* by *mirror*); pindock
    reads *registry* names.
    """
    paths = [folder / f"{i}.Dockerfile" for i in range(len(refs) // per_file)]

    def texts(host: str) -> list[str]:
        return [
            "".join(f"FROM {host}/{refs[i * per_file + j]} AS s{j}\n" for j in range(per_file))
            for i in range(len(paths))
        ]

    def prepare(host: str) -> Callable[[], None]:
        def prepare() -> None:
            fresh(folder, runs)
            write(paths, texts(host))

        return prepare

    runs = itertools.count()
    pin_host = "cgr.dev" if mirror else registry
    names = [str(path) for path in paths]
    pinned = functools.partial(check_pinned, paths, len(paths) * per_file)
    pin = Job([tools.pin, *mirror, *names], prepare(pin_host), pinned)
    pindock = Job([str(tools.pindock), "run", *names], prepare(registry), pinned)
    return race(tools, pin, pindock)


def p1(tools: Tools, folder: Path, sizes: Sizes) -> Figure:
    with running_registry() as registry:
        for repo, tag in images(sizes):
            registry.add_nightly(repo, tag, 30, datetime.now(UTC) - timedelta(days=30))
        registry.delay(sizes.p1_latency, times=10**9)
        unique = [f"{repo}:{tag}" for repo, tag in images(sizes)]
        # Each file names p1_froms images; together they name every unique one several times.
        refs = [unique[i % len(unique)] for i in range(sizes.p1_files * sizes.p1_froms)]
        mirror = ["--mirror", f"cgr.dev={registry.url}"]
        times = resolve_case(tools, folder, registry.host, refs, sizes.p1_froms, mirror)
    name = (
        f"P1 {sizes.p1_files} files x {sizes.p1_froms} FROM, {len(unique)} cgr.dev images,"
        f" {sizes.p1_latency * 1000:.0f} ms"
    )
    floor = times.start + 3 * sizes.p1_latency
    return times.figure(name, floor, "1.6x floor", "1.3x floor")


@contextlib.contextmanager
def distribution(folder: Path, sizes: Sizes) -> Iterator[str | None]:
    """The URL of a running ``docker-registry``, or None when it is not installed."""
    if shutil.which("docker-registry") is None:
        yield None
        return
    from tests.distribution import running_distribution

    with running_distribution(folder) as registry:
        for repo, tag in images(sizes):
            registry.push_image(repo, tag, seed=f"{repo}:{tag}")
        yield registry.url


def p3(tools: Tools, folder: Path, sizes: Sizes) -> Figure:
    name = f"P3 {sizes.p3_files} files, {len(images(sizes))} images, docker-registry, 50 ms"
    with distribution(folder / "registry", sizes) as url:
        if url is None:
            print("P3: docker-registry is not installed (apt-get install -y docker-registry)")
            return Figure(name, float("nan"), None, None, "0.6x pindock", "0.5x pindock")
        port = int(url.rsplit(":", 1)[1])
        with Relay((LOOPBACK, port), sizes.p3_latency) as proxy:
            unique = [f"{repo}:{tag}" for repo, tag in images(sizes)]
            refs = [unique[i % len(unique)] for i in range(sizes.p3_files)]
            times = resolve_case(tools, folder / "p3", f"{LOOPBACK}:{proxy.port}", refs, 1, [])
            pace = statistics.median(heads(proxy.port, images(sizes)) for _ in range(tools.runs))
    floor = times.start + sizes.p3_latency
    return replace(times.figure(name, floor, "0.6x pindock", "0.5x pindock"), registry_pace=pace)


def heads(port: int, unique: list[tuple[str, str]]) -> float:
    """Seconds from sending P3's manifest HEADs (pin's), one connection each and all at once,
    to the last answer: what the registry and the proxy take, on this machine's cores, for a
    client that spends next to nothing. A client that needs those answers waits about this
    long after its start-up: more than the one round trip of the floor column."""
    connections = [socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) for _ in unique]
    try:
        started = time.perf_counter()
        for connection, (repo, tag) in zip(connections, unique, strict=True):
            connection.sendall(
                f"HEAD /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n"
                f"Accept: {ACCEPT}\r\n\r\n".encode()
            )
        for connection in connections:
            if not connection.recv(65536).startswith(b"HTTP/1.1 200"):
                sys.exit("P3: the registry did not answer a manifest HEAD with 200")
        return time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()


# --- P2 and P4: the offline check ------------------------------------------------------------


def p2(tools: Tools, folder: Path) -> Figure:
    path = folder / "Dockerfile"
    path.write_text(pinned_dockerfile(0))
    times = race(
        tools, Job([tools.pin, "--check", str(path)]), Job([str(tools.pindock), "check", str(path)])
    )
    name = "P2 offline --check, 1 pinned file"
    return times.figure(name, times.start, "2.0x pindock", "1.5x pindock")


def p4(tools: Tools, folder: Path, sizes: Sizes) -> Figure:
    tree = folder / "p4"
    for i in range(sizes.p4_files):
        service = tree / f"team{i // 100:03d}" / f"service{i % 100:02d}"
        service.mkdir(parents=True)
        (service / "Dockerfile").write_text(pinned_dockerfile(i))
    times = race(
        tools,
        Job([tools.pin, "--check", str(tree)]),
        Job([str(tools.pindock), "check", "-C", str(tree)]),
    )
    name = f"P4 offline --check, {sizes.p4_files:,} pinned files"
    return times.figure(name, None, "2.5x pindock", "2x pindock")


# --- the table -------------------------------------------------------------------------------


def ratio(value: float, against: float | None) -> str:
    return "n/a" if against is None or value != value else f"{value / against:.2f}x"


def seconds(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f} s"


def table(figures: list[Figure]) -> str:
    rows: list[tuple[str, ...]] = [
        ("figure", "pin", "pindock", "floor", "pin/floor", "pin/pindock", "must", "goal", "cpu")
    ]
    rows += [
        (
            f.name,
            seconds(f.pin),
            seconds(f.pindock),
            seconds(f.floor),
            ratio(f.pin, f.floor),
            ratio(f.pin, f.pindock),
            f.must,
            f.goal,
            f"pin {seconds(f.pin_cpu)}, pindock {seconds(f.pindock_cpu)}",
        )
        for f in figures
    ]
    if any(f.pin_instructions is not None for f in figures):
        rows[0] += ("pin instructions",)
        rows[1:] = [
            (*row, "n/a" if f.pin_instructions is None else f"{f.pin_instructions / 1e6:,.1f} M")
            for row, f in zip(rows[1:], figures, strict=True)
        ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def installed(command: str) -> str | None:
    """*command* beside this interpreter (the project's venv), else on PATH."""
    return shutil.which(command, path=os.path.dirname(sys.executable)) or shutil.which(command)


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--only",
        action="append",
        choices=FIGURES,
        help="measure this figure only (again for more than one), to compare two changes faster",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count pin's instructions in one more run of each figure (valgrind)",
    )
    args = parser.parse_args(argv)
    only = args.only or FIGURES
    sizes = QUICK if args.quick else Sizes()
    pin = installed("pin")
    if pin is None:
        sys.exit("install the project first: pip install .")
    if args.instructions and shutil.which("valgrind") is None:
        sys.exit("--instructions counts with valgrind: install it (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        spread(folder)
        home = folder / "home"
        home.mkdir()
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"}
        if "PYTHONPATH" in os.environ:  # to measure another checkout with the same install
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        tools = Tools(pin, installed("pindock"), env, args.runs, folder, args.instructions)
        if tools.pindock is None:
            print("pindock is not installed (pip install pindock): its ratios are n/a")
        startup = race(tools, Job([pin, "--version"]), None)
        cases: dict[str, Callable[[], Figure]] = {
            "P1": lambda: p1(tools, folder / "p1", sizes),
            "P2": lambda: p2(tools, folder),
            "P3": lambda: p3(tools, folder, sizes),
            "P4": lambda: p4(tools, folder, sizes),
        }
        figures = []
        for name, case in cases.items():
            if name in only:
                figures.append(case())
                print(f"{figures[-1].name}: done", file=sys.stderr)
    print(
        f"start-up: python -c pass {startup.start * 1000:.0f} ms,"
        f" pin --version {startup.pin * 1000:.0f} ms"
    )
    print(table(figures))
    for figure in figures:
        if figure.registry_pace is not None:
            print(
                f"{figure.name[:2]}: the registry answered a minimal client's lookups, all sent"
                f" at once, in {seconds(figure.registry_pace)} (median)"
            )
    return figures


if __name__ == "__main__":
    main()
