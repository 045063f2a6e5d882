"""Profile the hot paths: ``python -m bench.profiling [CASE ...] [--top N] [--tree]``.

Cases:

* ``overhead`` — ``fl.run`` of 10,000 no-op branches, cap 64, recording on (figure 1);
* ``merge`` — ``merge_branches`` of 100 realistic branches, ``accumulate`` and ``overwrite``
  (figure 3, part A);
* ``scaling`` — the merge-back (diff + merge) of 1,000 branches changing 1 key of a 10,000-key
  dict (figure 3, part B);
* ``isolate`` — :func:`flowlab.core.context.isolation.isolate` of the 100 KB context (figure 4).

``python -m bench.profiling --ablate`` instead runs the figure-1 workload (10k no-op branches, cap
64) with one engine part at a time replaced by a no-op (monkeypatched here, never in the engine):
the saving is that part's cost per branch, measured without a profiler, in CPU time, best of
several alternating runs, with the garbage collector off (its share is measured apart, on and off).

For each case, cProfile gives exact call counts and per-function times, printed as **µs per
branch** (``tottime`` / branches, i.e. time spent in the function's own code, and ``cumtime`` /
branches), sorted by own time; ``--tree`` adds a pyinstrument call tree (sampling, so closer to
real time: cProfile's own overhead inflates tiny, frequently called functions).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["CASES", "ablate", "main", "profile_case"]


def _overhead() -> tuple[Callable[[], Any], int]:
    import flowlab as fl
    from bench.workloads import SmallCtx, fanout

    n = 10_000
    pipe = fanout(n, cap=64)
    ctx = SmallCtx()
    fl.run(pipe, ctx)  # warm up
    return (lambda: fl.run(pipe, ctx)), n


def _merge(strategy: str) -> Callable[[], tuple[Callable[[], Any], int]]:
    def setup() -> tuple[Callable[[], Any], int]:
        import flowlab.core.context.isolation as context
        from bench.merging import edit, rich_base
        from flowlab import merge

        base = rich_base()
        pairs: list[tuple[str, Any]] = []
        for i in range(100):
            b = context.isolate(base)
            edit(i, b)
            pairs.append((f"b{i}", b))
        diffs = {name: context.diff(base, b) for name, b in pairs}
        spec = merge.resolve(strategy)

        def go() -> None:
            for _ in range(20):
                merge.merge_branches(base, pairs, spec, diffs=diffs)

        return go, 100 * 20

    return setup


def _scaling() -> tuple[Callable[[], Any], int]:
    from bench.merging import _merge_back
    from flowlab import merge

    table = {f"k{i:06d}": i for i in range(10_000)}
    spec = merge.resolve("deep")
    return (lambda: _merge_back(table, 1_000, spec)), 1_000


def _isolate() -> tuple[Callable[[], Any], int]:
    import flowlab.core.context.isolation as context
    from bench.isolation import sized_context

    ctx = sized_context(100_000)

    def go() -> None:
        for _ in range(50):
            context.isolate(ctx)

    return go, 50


CASES: dict[str, Callable[[], tuple[Callable[[], Any], int]]] = {
    "overhead": _overhead,
    "merge-accumulate": _merge("accumulate"),
    "merge-overwrite": _merge("overwrite"),
    "scaling": _scaling,
    "isolate": _isolate,
}


def profile_case(name: str, *, top: int = 25, tree: bool = False) -> str:
    """Profile one case; return the report text."""
    fn, per = CASES[name]()
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    total = 0.0
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tt
        short = file.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append((tt, ct, nc, f"{short}:{line}({func})"))
    rows.sort(reverse=True)
    lines = [
        f"== {name}: cProfile, per branch (N={per:,}); total own time {total / per * 1e6:.1f} us/branch"
    ]
    lines.append(f"{'own us/br':>10} {'cum us/br':>10} {'calls/br':>9}  function")
    for tt, ct, nc, where in rows[:top]:
        lines.append(f"{tt / per * 1e6:10.2f} {ct / per * 1e6:10.2f} {nc / per:9.2f}  {where}")
    if tree:
        from pyinstrument import Profiler

        fn, per = CASES[name]()
        p = Profiler(interval=0.0002, async_mode="disabled")
        p.start()
        fn()
        p.stop()
        lines.append(p.output_text(unicode=False, color=False, show_all=False))
    return "\n".join(lines)


# ---- ablation ----------------------------------------------------------------------------------
def _ablations() -> dict[str, Callable[[], Callable[[], None]]]:
    """``{name: patch}``; a patch replaces one engine part and returns the function undoing it."""
    import copy as copy_mod

    import flowlab.core.context.isolation as context
    import flowlab.engine.coordinator as engine

    def swap(obj: Any, attr: str, value: Any) -> Callable[[], None]:
        old = getattr(obj, attr)
        setattr(obj, attr, value)
        return lambda: setattr(obj, attr, old)

    def unrecorded() -> Callable[[], None]:
        init = engine.Run.__init__

        def without_record(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **{**kwargs, "record": False})

        return swap(engine.Run, "__init__", without_record)

    return {
        "isolate -> shallow copy": lambda: swap(
            context, "isolate", lambda c, keys=None, track=False: copy_mod.copy(c)
        ),
        "diff -> []": lambda: swap(context, "diff", lambda a, b, fields=None: []),
        "record=False (no event log)": unrecorded,
    }


def ablate(repeat: int = 7, n: int = 10_000) -> str:
    """Cost per branch of each engine part (see the module docstring); returns the report."""
    import gc
    import time

    import flowlab as fl
    from bench._core import forget_last_result
    from bench.workloads import SmallCtx, fanout, run_raw

    pipe = fanout(n, cap=64)
    ctx = SmallCtx()
    patches = _ablations()

    def once(fn: Callable[[], Any], collect: bool) -> float:
        forget_last_result()
        gc.collect()
        if not collect:
            gc.disable()
        try:
            t0 = time.process_time()
            fn()
            return time.process_time() - t0
        finally:
            gc.enable()

    def flow() -> None:
        fl.run(pipe, ctx)

    def raw() -> None:
        run_raw(n, 64)

    names = ["raw (gc on)", "raw", "flowlab (gc on)", "flowlab", *patches]
    samples: dict[str, list[float]] = {k: [] for k in names}
    flow()
    for _ in range(repeat):
        samples["raw (gc on)"].append(once(raw, True))
        samples["raw"].append(once(raw, False))
        samples["flowlab (gc on)"].append(once(flow, True))
        samples["flowlab"].append(once(flow, False))
        for name, patch in patches.items():
            undo = patch()
            try:
                samples[name].append(once(flow, False))
            finally:
                undo()
    us = {k: min(v) / n * 1e6 for k, v in samples.items()}
    lines = [f"== ablation: {n:,} no-op branches, cap 64, CPU us/branch (best of {repeat})"]
    lines.append(f"{'variant':<28} {'us/branch':>10} {'saves':>8}")
    for k in names:
        ref = us["flowlab"] if k in patches else None
        saves = f"{ref - us[k]:8.2f}" if ref is not None else ""
        lines.append(f"{k:<28} {us[k]:10.2f} {saves}")
    lines.append(
        f"garbage collection: flowlab {us['flowlab (gc on)'] - us['flowlab']:.2f} us/branch, "
        f"raw {us['raw (gc on)'] - us['raw']:.2f} us/branch"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Profile the named cases (all by default) and print the reports."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.profiling", description=__doc__.splitlines()[0]
    )
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"one of: {', '.join(CASES)}")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--tree", action="store_true", help="also print a pyinstrument call tree")
    parser.add_argument("--ablate", action="store_true", help="per-part costs of figure 1 instead")
    args = parser.parse_args(argv)
    if args.ablate:
        print(ablate())
        return 0
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    for name in args.cases or list(CASES):
        print(profile_case(name, top=args.top, tree=args.tree), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
