"""Figure 4: what it costs to give every branch its own copy of a growing context.

The context holds two small fields and a ``state`` dict of records (``{"text": ..., "n": ...,
"vals": [...]}``) sized to about 1 KB, 100 KB and 10 MB of JSON (1 MB with ``--quick``). Timed per branch:

* copy on write (:mod:`flowlab.core.context.cow`, the engine's default): a branch's context from a step's plan
  (:func:`~flowlab.core.context.cow.cow_isolator`), then its diff (:func:`~flowlab.core.context.cow_diff.cow_diff_into`),
  for a branch that only reads one record ("read") and one that changes one record's number
  ("one write");
* eager: :func:`flowlab.core.context.isolation.isolate` (``isolation="eager"``, a deep copy) and the same
  one-write branch with its diff;
* the baselines ``copy.deepcopy`` and a ``pickle`` round trip of the same context (usually the
  fastest independent copy of plain data in pure Python);
* ``isolate(ctx, include_keys=["counter", "status"])`` — what a step that only needs the small
  fields pays; the ratio full / include_keys is what ``include_keys`` saves.

Then the issue-22 targets on whole runs (:mod:`bench.isolation_runs`).
"""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

from pydantic import BaseModel

from bench._core import Figure, Settings, best

__all__ = ["IsoCtx", "isolation_cost", "sized_context"]


class IsoCtx(BaseModel):
    """Two small fields and a big ``state``."""

    counter: int = 0
    status: str = "new"
    state: dict[str, dict[str, Any]] = {}


def _record(i: int) -> dict[str, Any]:
    return {"text": f"record {i:08d} " + "x" * 48, "n": i, "vals": [i * 0.5, i * 0.25, 1.0]}


def sized_context(n_bytes: int) -> IsoCtx:
    """A context whose ``state`` serialises to about ``n_bytes`` of JSON."""
    per = len(json.dumps({"k00000000": _record(0)}))
    n = max(1, round(n_bytes / per))
    return IsoCtx(state={f"k{i:08d}": _record(i) for i in range(n)})


SIZES = ((1_000, "1KB"), (100_000, "100KB"), (10_000_000, "10MB"))
QUICK_SIZES = ((1_000, "1KB"), (100_000, "100KB"), (1_000_000, "1MB"))


def isolation_cost(settings: Settings) -> Figure:
    """Figure 4."""
    import flowlab.core.context.isolation as context
    from bench.isolation_runs import history_runs, wide_dict_runs
    from flowlab.core.context.cow import cow_isolator
    from flowlab.core.context.cow_diff import cow_diff_into

    fig = Figure("isolation", 4, "Isolation cost per branch as the context grows")
    for n_bytes, label in settings.pick(QUICK_SIZES, SIZES):
        ctx = sized_context(n_bytes)
        actual = len(ctx.model_dump_json())
        huge = n_bytes >= 1_000_000
        reps = settings.pick(2, 3) if huge else settings.pick(10, 100)

        def full(ctx: IsoCtx = ctx) -> None:
            context.isolate(ctx)

        def pickled(ctx: IsoCtx = ctx) -> None:
            pickle.loads(pickle.dumps(ctx, pickle.HIGHEST_PROTOCOL))

        def small(ctx: IsoCtx = ctx) -> None:
            context.isolate(ctx, ["counter", "status"])

        def deep(ctx: IsoCtx = ctx) -> None:
            copy.deepcopy(ctx)

        key = next(iter(ctx.state))

        def eager_write(ctx: IsoCtx = ctx, key: str = key) -> None:
            branch = context.isolate(ctx, track=True)
            branch.state[key]["n"] += 1
            context.diff_into(ctx, branch, [])

        inner = 1 if huge else max(1, 100_000 // n_bytes) * 10
        cow_loops = 10 if huge else 1_000  # a copy-on-write branch costs microseconds

        def cow_read(ctx: IsoCtx = ctx, key: str = key, cow_loops: int = cow_loops) -> None:
            # one step's plan, then its branches
            plan = cow_isolator(ctx)
            for _ in range(cow_loops):
                branch = plan()
                branch.state[key]["n"]
                cow_diff_into(ctx, branch, [])

        def cow_write(ctx: IsoCtx = ctx, key: str = key, cow_loops: int = cow_loops) -> None:
            plan = cow_isolator(ctx)
            for _ in range(cow_loops):
                branch = plan()
                branch.state[key]["n"] += 1
                cow_diff_into(ctx, branch, [])

        loops = (inner, inner, inner, inner, 1_000, cow_loops, cow_loops)
        funcs = [
            _loop(f, k)
            for f, k in zip((pickled, deep, full, eager_write, small), loops, strict=False)
        ]
        funcs += [cow_read, cow_write]
        times = best(funcs, reps, warmup=not huge)
        t_pickle, t_deep, t_full, t_eager_write, t_small, t_read, t_write = (
            t / k for t, k in zip(times, loops, strict=True)
        )
        fig.add(
            f"cow_read_us_{label}",
            t_read * 1e6,
            "us/branch",
            f"copy on write, read-only, {label} ({actual:,} B)",
        )
        fig.add(
            f"cow_write_us_{label}",
            t_write * 1e6,
            "us/branch",
            f"  copy on write, one write + diff, {label}",
        )
        fig.add(f"isolate_us_{label}", t_full * 1e6, "us/branch", f"  eager isolate(), {label}")
        fig.add(
            f"eager_write_us_{label}",
            t_eager_write * 1e6,
            "us/branch",
            f"  eager, one write + diff, {label}",
        )
        fig.add(f"deepcopy_us_{label}", t_deep * 1e6, "us/branch", f"  copy.deepcopy, {label}")
        fig.add(f"pickle_us_{label}", t_pickle * 1e6, "us/branch", f"  pickle round trip, {label}")
        fig.add(
            f"cow_vs_pickle_{label}", t_pickle / t_write, "x", f"  pickle / cow one-write, {label}"
        )
        fig.add(f"ratio_pickle_{label}", t_full / t_pickle, "x", f"  isolate / pickle, {label}")
        fig.add(
            f"include_us_{label}", t_small * 1e6, "us/branch", f"  include_keys (2 small), {label}"
        )
        fig.add(
            f"saving_{label}",
            t_full / t_small,
            "x",
            f"  include_keys saves (full / incl.), {label}",
        )
    history_runs(fig, settings)
    wide_dict_runs(fig, settings)
    return fig


def _loop(fn: Any, times: int) -> Any:
    def many() -> None:
        for _ in range(times):
            fn()

    return many
