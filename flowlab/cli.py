"""The ``flowlab`` command.

::

    flowlab demo [--out DIR] [--repeat N]   run the built-in fan-out, print a summary, write a report
    flowlab version                          print the versions flowlab runs with
    flowlab --help

Each subcommand is a function ``(args) -> exit code`` registered in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]

_DESCRIPTION = (
    "flowlab: run, see, compare and debug the parallel branches of a pipeline step. "
    "Start with `flowlab demo`, then open the notebooks in notebooks/."
)


def _unusable_folder(out: str | None) -> str:
    """Why ``--out`` cannot hold the demo's files ("" when it can): checked before any run."""
    if out is None:
        return ""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        return "is a file, not a folder"
    parent = folder if folder.exists() else next((p for p in folder.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        return f"{str(parent)!r} is a file, not a folder"
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write in {str(parent)!r}"
    return ""


def _cmd_demo(args: argparse.Namespace) -> int:
    from flowlab.demo import GRID, run_demo

    problem = _unusable_folder(args.out)
    if problem:
        print(f"flowlab demo: --out {args.out}: {problem}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    runs = len(GRID["merge"]) * len(GRID["max_concurrency"]) * args.repeat
    print(
        f"flowlab demo: document enrichment, {runs} runs on the virtual clock "
        f"(merge × max_concurrency{' × repeat' if args.repeat > 1 else ''})",
        flush=True,
    )
    outcome = run_demo(args.out, repeat=args.repeat, progress="auto" if not args.quiet else False)
    frame = outcome.comparison.summary()
    table = frame[
        ["merge", "max_concurrency", "ok", "makespan_s", "peak_concurrency", "conflicts",
         "dropped", "ctx.processed", "ctx.tokens_used"]
    ].rename(columns={"peak_concurrency": "peak", "ctx.processed": "processed",
                      "ctx.tokens_used": "tokens_used", "ok": f"ok/{args.repeat}"})  # fmt: skip
    print(table.to_string(index=False, na_rep="none", float_format=lambda v: f"{v:g}"))
    print(
        "(max_concurrency caps the branches of each Parallel step; peak counts every leaf step "
        "running at once in the whole run, so a branch that is itself a Parallel adds its own "
        "branches: the peak can exceed the cap. dropped: branch writes that lost under "
        "overwrite / keep_first.)"
    )
    chosen = outcome.result.summary()
    print(
        f"\ndetail run (merge=accumulate, max_concurrency=2): status={chosen['status']} "
        f"makespan={chosen['makespan_s']:g}s peak={chosen['peak_concurrency']} "
        f"utilization={chosen['utilization']:.0%} cost={chosen['cost']:.4f} tokens={chosen['tokens']}"
    )
    if outcome.report is not None:
        print(f"report: {outcome.report.resolve()}")
        print(
            f"trace:  {outcome.trace.resolve() if outcome.trace else '-'}  (open in https://ui.perfetto.dev)"
        )
    print(f"done in {time.perf_counter() - t0:.2f} s wall time")
    return 0


def _cmd_version(args: argparse.Namespace) -> int:
    from importlib.metadata import PackageNotFoundError, version

    import flowlab

    print(f"flowlab {flowlab.__version__} (Python {platform.python_version()})")
    for dist in (
        "pydantic",
        "pandas",
        "matplotlib",
        "ipywidgets",
        "nest-asyncio2",
        "psutil",
        "tqdm",
    ):
        try:
            print(f"  {dist} {version(dist)}")
        except PackageNotFoundError:
            print(f"  {dist} (not installed)")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; give an integer >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from flowlab._version import __version__

    parser = argparse.ArgumentParser(prog="flowlab", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"flowlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    demo = sub.add_parser(
        "demo",
        help="run the built-in document-enrichment fan-out and write an HTML report",
        description=(
            "Run a realistic fan-out (fetch, nested scorers, tags, a flaky entity tagger, a "
            "summary) on the virtual clock under every merge strategy and max_concurrency 1, 2 "
            "and 4; print a summary table; write DIR/report.html (timeline, concurrency, merge and "
            "comparison plots) and DIR/trace.json (Chrome trace for Perfetto)."
        ),
    )
    demo.add_argument("--out", type=Path, default=Path("flowlab-demo"), metavar="DIR",
                      help="output directory (default: ./flowlab-demo)")  # fmt: skip
    demo.add_argument("--repeat", type=_positive_int, default=1, metavar="N",
                      help="runs per combination (default: 1; virtual time makes repeats identical)")  # fmt: skip
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_cmd_demo)

    version = sub.add_parser("version", help="print flowlab's version and its dependencies'")
    version.set_defaults(func=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowlab`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover - `python -m flowlab.cli`
    sys.exit(main())
