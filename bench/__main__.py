"""``python -m bench [--quick] [--only NAME ...] [--out PATH]``: run the suite, print, write JSON.

Every figure runs in a fresh interpreter of its own (as pyperf runs each benchmark in worker
processes), each against a baseline measured in that same process. So a figure measures the same in
a full run as alone with ``--only``: what an earlier figure leaves behind (100,000 branches' worth of
freed memory, a fragmented heap) cannot tax a later one. ``--in-process`` runs every figure in this
one process instead, to see that effect. The table shows each issue-8 target next to the measured
value with PASS or MISS; a figure that cannot be measured says ``skipped: <why>``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._core import Figure, Settings

FIGURES: dict[str, tuple[int, str, str]] = {
    "overhead": (1, "bench.overhead", "engine_overhead"),
    "recording": (2, "bench.overhead", "recording_cost"),
    "merge": (3, "bench.merging", "merge_cost"),
    "isolation": (4, "bench.isolation", "isolation_cost"),
    "breach": (5, "bench.breach", "breach_latency"),
    "deadlock": (6, "bench.deadlock", "deadlock_latency"),
    "virtual": (7, "bench.virtual", "virtual_time"),
    "peers": (8, "bench.peers", "peers"),
    "memory": (9, "bench.memory", "memory"),
    "import": (10, "bench.importtime", "import_time"),
    "dask": (11, "bench.dask_gil", "dask_gil"),
    "exploration": (12, "bench.exploration", "exploration"),
    "rate": (13, "bench.rate", "rate_limit"),
    "map": (14, "bench.map_retry", "map_retry"),
}
DEFAULT_OUT = Path(__file__).with_name("results.json")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run, not numbers to quote"
    )
    p.add_argument(
        "--only", action="append", choices=list(FIGURES), metavar="NAME",
        help=f"run only this figure (repeatable); one of: {', '.join(FIGURES)}",
    )  # fmt: skip
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"JSON path (default {DEFAULT_OUT})"
    )
    p.add_argument(
        "--in-process", action="store_true",
        help="run every figure in this process, one after another (default: a fresh one each)",
    )  # fmt: skip
    # internal: run one figure and write its JSON to --out (what the parent spawns per figure)
    p.add_argument("--worker", choices=list(FIGURES), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_figure(key: str, settings: Settings) -> Figure:
    """Run one figure; an exception becomes a figure with ``skipped`` = the error (and ``error``)."""
    number, module, func = FIGURES[key]
    t0 = time.perf_counter()
    # Each figure measures as if it ran alone (as with --only): what earlier figures left on the
    # heap is collected, and the survivors are frozen out of the garbage collector's scans.
    gc.collect()
    gc.freeze()
    try:
        fn: Callable[[Settings], Figure] = getattr(importlib.import_module(module), func)
        fig = fn(settings)
    except Exception as err:
        fig = Figure(key, number, key, skipped=f"failed: {type(err).__name__}: {err}")
        fig.notes.append("error:\n" + traceback.format_exc(limit=6))
    finally:
        gc.unfreeze()
    fig.seconds = time.perf_counter() - t0
    return fig


def run_figure_apart(key: str, settings: Settings) -> Figure:
    """Run one figure in a fresh interpreter (``python -m bench --worker KEY``) and read it back."""
    import subprocess
    import tempfile

    number = FIGURES[key][0]
    with tempfile.TemporaryDirectory(prefix="flowlab-bench-") as tmp:
        out = Path(tmp) / f"{key}.json"
        cmd = [sys.executable, "-m", "bench", "--worker", key, "--out", str(out)]
        proc = subprocess.run(
            [*cmd, "--quick"] if settings.quick else cmd,
            cwd=Path(__file__).resolve().parents[1],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            fig = Figure(key, number, key, skipped=f"failed: worker exited {proc.returncode}")
            fig.notes.append("error:\n" + proc.stdout[-3000:])
            return fig
        return Figure.from_json(key, json.loads(out.read_text(encoding="utf-8")))


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def render(figures: list[Figure]) -> str:
    """The human-readable table."""
    lines = [f"{'metric':<58} {'value':>10} {'unit':<10} {'target':<16} status", "-" * 104]
    for fig in figures:
        lines.append(f"[{fig.number}] {fig.title}  ({fig.seconds:.1f} s)")
        if fig.skipped:
            lines.append(f"    skipped: {fig.skipped.removeprefix('skipped: ')}")
        for m in fig.metrics:
            if m.skipped:
                lines.append(
                    f"    {m.label:<54} {'-':>10} {m.unit:<10} {m.target:<16} skipped: {m.skipped}"
                )
                continue
            lines.append(
                f"    {m.label:<54} {_fmt(m.value):>10} {m.unit:<10} {m.target:<16} {m.status}"
            )
        for note in fig.notes:
            if not note.startswith("error:"):
                lines.append(f"    note: {note}")
    targets = [m for f in figures for m in f.metrics if m.target]
    passed = sum(m.status == "PASS" for m in targets)
    missed = [
        f"{m.label} ({_fmt(m.value)} {m.unit}, target {m.target})"
        for m in targets
        if m.status == "MISS"
    ]
    lines.append("-" * 104)
    lines.append(
        f"targets: {passed} PASS, {len(missed)} MISS, {len(targets) - passed - len(missed)} skipped"
    )
    lines.extend(f"  MISS: {m}" for m in missed)
    return "\n".join(lines)


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    cmd = "python -m bench" + (" --quick" if args.quick else "")
    cmd += "".join(f" --only {o}" for o in args.only or [])
    cmd += " --in-process" if args.in_process else ""
    try:
        import flowlab

        version = flowlab.__version__
    except Exception as err:
        version = f"import failed: {err}"
    return {
        "command": cmd,
        "commit": _commit(),
        "quick": bool(args.quick),
        "figures_run": "one process" if args.in_process else "a fresh process each",
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "flowlab": version,
    }


def _commit() -> str:
    """The checked-out commit, with ``+dirty`` when flowlab/ has uncommitted changes."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "flowlab"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    """Run the selected figures; return 1 if any figure failed with an error, else 0."""
    args = _parse(argv)
    settings = Settings(quick=args.quick)
    if args.worker:
        fig = run_figure(args.worker, settings)
        args.out.write_text(json.dumps(fig.to_json()) + "\n", encoding="utf-8")
        return 0
    keys = [k for k in FIGURES if not args.only or k in args.only]
    figures: list[Figure] = []
    for key in keys:
        print(f"running [{FIGURES[key][0]}] {key} ...", file=sys.stderr, flush=True)
        run = run_figure if args.in_process else run_figure_apart
        figures.append(run(key, settings))
    out = {"meta": _meta(args), "figures": {f.key: f.to_json() for f in figures}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(render(figures))
    print(f"\nwritten: {args.out}")
    failed = [f for f in figures if f.skipped and f.skipped.startswith("failed:")]
    for f in failed:
        print(f"\n[{f.number}] {f.key} {f.skipped}\n" + "\n".join(f.notes), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
