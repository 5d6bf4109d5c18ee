"""benchmarks/bench.py must not rot: a tiny run of every figure, one run each, and of some.

No timing is asserted: what is checked is that each case ran pin to completion (the benchmark
exits when a run fails or pins nothing) and produced a figure with its ratios.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def _load(monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    return bench


def test_quick_benchmark_measures_every_figure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _load(monkeypatch)
    figures = bench.main(["--quick", "--runs", "1"])

    assert [f.name[:2] for f in figures] == ["P1", "P2", "P3", "P4"]
    has_registry = shutil.which("docker-registry") is not None
    for figure in figures:
        if figure.name.startswith("P3") and not has_registry:
            assert math.isnan(figure.pin)
            continue
        assert figure.pin > 0
    printed = capsys.readouterr().out
    for figure in figures:
        assert figure.name in printed
    assert "pin/floor" in printed and "pin/pindock" in printed


def test_only_the_figures_asked_for_are_measured(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _load(monkeypatch)
    figures = bench.main(["--quick", "--runs", "1", "--only", "P4", "--only", "P2"])
    assert [f.name[:2] for f in figures] == ["P2", "P4"]
    printed = capsys.readouterr().out
    assert "P1" not in printed and "P3" not in printed


def test_instructions_are_counted_in_one_more_run_of_each_figure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("valgrind") is None:  # as for docker-registry (tests/distribution.py)
        missing = "valgrind is not installed (apt-get install valgrind; scripts/test does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    bench = _load(monkeypatch)
    figures = bench.main(["--quick", "--runs", "1", "--only", "P2", "--instructions"])
    # Python's start-up alone is tens of millions of instructions.
    assert [f.name[:2] for f in figures] == ["P2"] and figures[0].pin_instructions > 10**7
    printed = capsys.readouterr().out
    assert "pin instructions" in printed
    assert f"{figures[0].pin_instructions / 1e6:,.1f} M" in printed
