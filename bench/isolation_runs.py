"""Figure 4's whole-run targets (issue 22): fan-outs over a big context that each touch a little.

* **History.** 100 branches each read a message history (its length and its last message) and
  append one message; the history is ~1 KB (one message) or ~10 MB (10,000 messages of ~1 KB).
  Target: the 10 MB run costs ≤ 2× the 1 KB run, and its peak memory (``tracemalloc``, above
  what was allocated before the run) is ≤ 1.5× the history's size (an eager copy per branch
  would need ~100×).
* **Wide dict.** 1,000 branches each write one key of a ``dict[str, int]`` of 100,000 keys vs
  100 keys. Target: ≤ 3×.

Both are whole ``fl.run`` calls (isolation, the branches, their diffs, the merge, recording),
run with ``isolation="cow"`` and, for reference, ``isolation="eager"``.
"""

from __future__ import annotations

import functools
import gc
import tracemalloc
from typing import Annotated, Any

from pydantic import BaseModel

from bench._core import Figure, Settings, best

__all__ = ["history_runs", "wide_dict_runs"]


def _history_model() -> type[BaseModel]:
    import flowlab as fl

    class Chat(BaseModel):
        turns: int = 0
        history: Annotated[list[dict[str, str]], fl.merge.Append()] = []

    return Chat


def _message(i: int, size: int = 1_000) -> dict[str, str]:
    text = f"message {i:06d} " + "x" * (size - 60)
    return {"role": "user" if i % 2 else "assistant", "content": text}


def _history_pipe(n_branches: int, isolation: str) -> Any:
    import flowlab as fl

    async def reply(data: Any, ctx: Any) -> None:
        last = ctx.history[-1]["content"]  # read: the length and the last message
        ctx.history.append(
            {"role": "assistant", "content": f"re: {last[:20]} ({len(ctx.history)})"}
        )

    branches = {f"b{i}": reply for i in range(n_branches)}
    return fl.Pipeline(fl.Parallel(branches, merge="deep", isolation=isolation, name="fan"))


def history_runs(fig: Figure, settings: Settings) -> None:
    """The history target (module docstring)."""
    import json

    import flowlab as fl

    chat = _history_model()
    n = 100
    sizes = ((1, "1KB"), (settings.pick(1_000, 10_000), settings.pick("1MB", "10MB")))
    contexts = {label: chat(history=[_message(i) for i in range(m)]) for m, label in sizes}
    nbytes = {label: len(json.dumps(ctx.history)) for label, ctx in contexts.items()}  # type: ignore[attr-defined]
    big = sizes[1][1]
    for isolation in ("cow", "eager"):
        pipe = _history_pipe(n, isolation)
        runs = [functools.partial(fl.run, pipe, ctx, clock="virtual") for ctx in contexts.values()]
        reps = settings.pick(2, 5) if isolation == "cow" else 1
        t_small, t_big = best(runs, reps)
        target = {"target": "<= 2x", "check": lambda v: v <= 2.0} if isolation == "cow" else {}
        fig.add(
            f"history_{isolation}_ms_1KB",
            t_small * 1e3,
            "ms",
            f"history {isolation}: 100 branches, 1KB",
        )
        fig.add(
            f"history_{isolation}_ms_{big}",
            t_big * 1e3,
            "ms",
            f"history {isolation}: 100 branches, {big}",
        )
        fig.add(
            f"history_{isolation}_ratio", t_big / t_small, "x",
            f"history {isolation}: {big} / 1KB run", **target,
        )  # fmt: skip
    # A run also passes over the whole history a few times, once per run whatever the branches
    # do: its working copy of the caller's context (the caller's object is never mutated, and
    # the result's context shares nothing with it), the base of its last Parallel kept for
    # remerge, and the merge row's before / after values (frames show values as they were).
    # Each is one walk of the copy policy (flowlab.core.context.copying); one is measured here.
    from flowlab.core.context.isolation import isolate

    (t_copy,) = best([functools.partial(isolate, contexts[big])], settings.pick(3, 7))
    fig.add(
        f"history_copy_ms_{big}", t_copy * 1e3, "ms",
        f"history: one copy of the {big} context (a run makes ~4 such passes)",
    )  # fmt: skip
    # What each branch adds is the run of 100 branches minus the run of one, per branch.
    one, hundred = _history_pipe(1, "cow"), _history_pipe(n, "cow")
    marginal = {}
    for label, ctx in contexts.items():
        t_one, t_all = best(
            [
                functools.partial(fl.run, one, ctx, clock="virtual"),
                functools.partial(fl.run, hundred, ctx, clock="virtual"),
            ],
            settings.pick(2, 5),
        )
        marginal[label] = (t_all - t_one) / (n - 1)
        fig.add(
            f"history_cow_branch_us_{label}", marginal[label] * 1e6, "us/branch",
            f"history cow: per branch beyond the first, {label}",
        )  # fmt: skip
    fig.add(
        "history_cow_branch_ratio", marginal[big] / marginal["1KB"], "x",
        f"history cow: per-branch cost, {big} / 1KB (no target)",
    )  # fmt: skip
    peak = _peak_bytes(lambda: fl.run(_history_pipe(n, "cow"), contexts[big], clock="virtual"))
    fig.add(
        "history_cow_peak_ratio", peak / nbytes[big], "x",
        f"history cow: peak memory above baseline / history size ({big})",
        target="<= 1.5x", check=lambda v: v <= 1.5,
    )  # fmt: skip


def _peak_bytes(fn: Any) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return float(peak - base)


def wide_dict_runs(fig: Figure, settings: Settings) -> None:
    """The wide-dict target (module docstring)."""
    import flowlab as fl

    class Wide(BaseModel):
        table: dict[str, int] = {}

    n = settings.pick(200, 1_000)

    def writer(key: str) -> Any:
        async def write(data: Any, ctx: Any) -> None:
            ctx.table[key] = -1  # one key each (an existing one)

        return write

    def pipe(isolation: str) -> Any:
        branches = {f"b{i}": writer(f"k{i % 100:08d}") for i in range(n)}
        return fl.Pipeline(fl.Parallel(branches, merge="deep", isolation=isolation, name="fan"))

    small = Wide(table={f"k{i:08d}": i for i in range(100)})
    large = Wide(table={f"k{i:08d}": i for i in range(100_000)})
    for isolation in ("cow", "eager"):
        p = pipe(isolation)
        t_small, t_large = best(
            [
                functools.partial(fl.run, p, small, clock="virtual"),
                functools.partial(fl.run, p, large, clock="virtual"),
            ],
            settings.pick(1, 3) if isolation == "cow" else 1,
        )
        target = {"target": "<= 3x", "check": lambda v: v <= 3.0} if isolation == "cow" else {}
        fig.add(
            f"wide_{isolation}_ms_100",
            t_small * 1e3,
            "ms",
            f"wide dict {isolation}: {n} branches x 100 keys",
        )
        fig.add(
            f"wide_{isolation}_ms_100k",
            t_large * 1e3,
            "ms",
            f"wide dict {isolation}: {n} branches x 100k keys",
        )
        fig.add(
            f"wide_{isolation}_ratio", t_large / t_small, "x",
            f"wide dict {isolation}: 100k / 100 keys", **target,
        )  # fmt: skip
