"""Smoke test of the benchmark suite: ``python -m bench --quick`` runs and reports every figure.

Only the shape of the report is checked — every figure of issue 8 is present, and every metric has
a number or an explicit reason it was skipped. Targets are *not* asserted: timing belongs in
``bench/``, never in a test.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, TypeAlias

import pytest

QuickRun: TypeAlias = "tuple[subprocess.CompletedProcess[str], dict[str, Any]]"
ROOT = Path(__file__).resolve().parents[1]
FIGURES = (
    "overhead",
    "recording",
    "merge",
    "isolation",
    "breach",
    "deadlock",
    "virtual",
    "peers",
    "memory",
    "import",
    "dask",
    "exploration",
    "rate",
    "map",
)


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> QuickRun:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.exists(), f"no results written; stderr:\n{proc.stderr[-3000:]}"
    return proc, json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_quick_run_exits_cleanly_and_prints_the_table(quick_run: QuickRun) -> None:
    proc, data = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "targets:" in proc.stdout
    for fig in data["figures"].values():
        assert f"[{fig['number']}]" in proc.stdout
    assert data["meta"]["quick"] is True
    assert data["meta"]["command"] == "python -m bench --quick"


@pytest.mark.slow
def test_every_figure_has_numbers_or_a_skip_reason(quick_run: QuickRun) -> None:
    _, data = quick_run
    figures = data["figures"]
    assert list(figures) == list(FIGURES)
    assert [f["number"] for f in figures.values()] == list(range(1, len(FIGURES) + 1))
    for key, fig in figures.items():
        if fig["skipped"] is not None:
            assert isinstance(fig["skipped"], str), key
            assert fig["skipped"].strip(), key
            assert not fig["skipped"].startswith("failed:"), f"{key}: {fig['skipped']}"
            continue
        assert fig["metrics"], f"figure {key} has neither metrics nor a skip reason"
        for name, metric in fig["metrics"].items():
            value = metric["value"]
            if value is None:
                assert isinstance(metric.get("skipped"), str), f"{key}.{name}"
                assert metric["skipped"].strip(), f"{key}.{name}"
            else:
                assert isinstance(value, int | float), f"{key}.{name}"
                assert math.isfinite(value), f"{key}.{name} = {value}"
                assert value >= 0, f"{key}.{name} = {value}"
            if "target" in metric:
                assert metric["status"] in ("PASS", "MISS", "skipped"), f"{key}.{name}"


@pytest.mark.slow
def test_every_figure_is_a_ratio_against_a_baseline(quick_run: QuickRun) -> None:
    _, data = quick_run
    for key, fig in data["figures"].items():
        if fig["skipped"] is None:
            units = {m["unit"] for m in fig["metrics"].values() if m["value"] is not None}
            assert "x" in units, f"figure {key} reports no ratio"
