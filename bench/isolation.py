"""Figure 4: what it costs to give every branch its own copy of a growing context.

The context holds two small fields and a ``state`` dict of records (``{"text": ..., "n": ...,
"vals": [...]}``) sized to about 1 KB, 100 KB and 10 MB of JSON (1 MB with ``--quick``). Timed per branch:

* :func:`flowlab.core.context.isolation.isolate` — the engine's per-branch copy (a deep copy);
* a ``pickle`` round trip of the same context — the baseline: another way to get an independent
  copy of plain data, usually the fastest one in pure Python;
* ``isolate(ctx, include_keys=["counter", "status"])`` — what a step that only needs the small
  fields pays; the ratio full / include_keys is what ``include_keys`` saves.
"""

from __future__ import annotations

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

        inner = 1 if huge else max(1, 100_000 // n_bytes) * 10
        loops = (inner, inner, 1_000)  # include_keys copies two small fields: always many calls
        funcs = [_loop(f, k) for f, k in zip((pickled, full, small), loops, strict=True)]
        times = best(funcs, reps, warmup=not huge)
        t_pickle, t_full, t_small = (t / k for t, k in zip(times, loops, strict=True))
        fig.add(
            f"isolate_us_{label}", t_full * 1e6, "us/branch", f"isolate(), {label} ({actual:,} B)"
        )
        fig.add(f"pickle_us_{label}", t_pickle * 1e6, "us/branch", f"  pickle round trip, {label}")
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
    return fig


def _loop(fn: Any, times: int) -> Any:
    def many() -> None:
        for _ in range(times):
            fn()

    return many
