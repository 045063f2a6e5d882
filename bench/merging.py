"""Figure 3: merge cost by strategy, and how it scales with the number of changes.

Part A — strategies. 100 branches each edit a realistic context (counters, a float total, tags,
a score per branch, nested per-document dicts, a status string, a history list). The branches'
contexts and diffs are built once; then :func:`flowlab.core.merge.merge_branches` is timed for
``overwrite`` (the baseline), ``deep`` and ``accumulate``. The same comparison is also made on
whole ``fl.run`` calls (isolation, branch runs, diffs and merge included).

Part B — scaling. Branches, made as the engine makes them (``isolate(ctx, track=True)``, so their
dicts note which keys they wrote), each change one key of a large ``dict[str, int]``; the
*merge-back* (what the engine does after the branches end: one :func:`flowlab.core.context.isolation.diff` per
branch, then one merge writing into the parent's dict, ``reuse_base=True``) is timed for 10 and 1,000 branches on a 10,000-key dict (100× the changes), and for 100
branches on 10,000 vs 100,000 keys (10× the context, same changes). Linear in changes means the
per-change cost stays flat in the first comparison and the total stays flat in the second. The
diff and the merge are also reported apart, so the part that scales with context size shows.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from pydantic import BaseModel

from bench._core import Figure, Settings, best

__all__ = ["RichCtx", "edit", "merge_cost"]

STRATEGIES = ("overwrite", "deep", "accumulate")


class RichCtx(BaseModel):
    """A realistic context: counters, totals, collected items, per-key scores, nested dicts."""

    processed: int = 0
    cost: float = 0.0
    status: str = "new"
    tags: list[str] = []
    history: list[str] = []
    scores: dict[str, float] = {}
    counters: dict[str, int] = {}
    docs: dict[str, dict[str, Any]] = {}


def rich_base() -> RichCtx:
    """The base context: 50 scores, 20 counters, 30 nested docs, 20 history items."""
    return RichCtx(
        tags=["seed"],
        history=[f"h{i}" for i in range(20)],
        scores={f"s{i}": i / 10 for i in range(50)},
        counters={f"c{i}": i for i in range(20)},
        docs={f"d{i}": {"title": f"doc {i}", "words": 100 * i, "lang": "en"} for i in range(30)},
    )


def edit(i: int, ctx: RichCtx) -> None:
    """What branch ``i`` does to its context."""
    ctx.processed += 1
    ctx.cost += 0.01
    ctx.status = f"done-{i % 7}"
    ctx.tags.append(f"t{i % 10}")
    ctx.history.append(f"b{i}")
    ctx.scores[f"b{i}"] = i / 3
    ctx.counters["c0"] += 1
    ctx.docs[f"d{i % 30}"]["words"] += i


def _branch(i: int) -> Any:
    async def branch(data: Any, ctx: RichCtx) -> None:
        await asyncio.sleep(0)
        edit(i, ctx)

    return branch


class BigCtx(BaseModel):
    """One large ``dict[str, int]`` and a small field."""

    table: dict[str, int] = {}
    note: str = ""


def _branches_one_key(base: BigCtx, n: int) -> list[tuple[str, BigCtx]]:
    """``n`` branches as the engine makes them (``isolate(track=True)``), each changing one key."""
    import flowlab.core.context.isolation as context

    keys = list(base.table)
    step = max(1, len(keys) // n)
    out = []
    for i in range(n):
        b = context.isolate(base, track=True)
        b.table[keys[(i * step) % len(keys)]] += 1
        out.append((f"b{i}", b))
    return out


def merge_cost(settings: Settings) -> Figure:
    """Figure 3."""
    fig = Figure("merge", 3, "Merge cost: strategies vs overwrite; scaling with changes")
    _strategies(fig, settings)
    _scaling(fig, settings)
    _remerge(fig, settings)
    return fig


def _remerge(fig: Figure, settings: Settings) -> None:
    """Part C: ``result.remerge`` of a 1,000-branch step, each branch changing one key."""
    import flowlab as fl

    class Keys(BaseModel):
        d: dict[str, int] = {}

    n = settings.pick(200, 1000)

    def writer(i: int) -> Any:
        def step(data: Any, ctx: Keys) -> None:
            ctx.d[f"k{i}"] = i

        return step

    pipe = fl.Pipeline(fl.Parallel({f"b{i}": writer(i) for i in range(n)}, name="fan"))
    result = fl.run(pipe, Keys(), clock="virtual")
    (t,) = best([lambda: result.remerge(merge="accumulate")], settings.pick(3, 10))
    fig.add(
        "remerge_ms", t * 1e3, "ms", f"result.remerge(merge='accumulate'), {n:,} branches x 1 key",
        target="< 20 ms" if n == 1000 else "", check=(lambda v: v < 20) if n == 1000 else None,
    )  # fmt: skip


def _strategies(fig: Figure, settings: Settings) -> None:
    import flowlab as fl
    import flowlab.core.context.isolation as context
    from flowlab import merge

    n = 100
    base = rich_base()
    pairs: list[tuple[str, BaseModel]] = []
    for i in range(n):
        b = context.isolate(base)
        edit(i, b)
        pairs.append((f"b{i}", b))
    diffs = {name: context.diff(base, b) for name, b in pairs}
    specs = {s: merge.resolve(s) for s in STRATEGIES}

    def merger(s: str) -> Any:
        return lambda: merge.merge_branches(base, pairs, specs[s], diffs=diffs)

    reps = settings.pick(5, 30)
    # the filing, which every strategy does first, is timed in the same rounds as the merges
    *merged, t_file = best([*map(merger, STRATEGIES), lambda: _file_changes(pairs, diffs)], reps)
    times = dict(zip(STRATEGIES, merged, strict=True))
    for s in STRATEGIES:
        fig.add(f"merge_us_{s}", times[s] * 1e6, "us", f"merge_branches, 100 branches, {s}")
    t_over = times["overwrite"]
    fig.add(  # the merge alone: its cost is judged per decided path (below), as issue 22 says
        "ratio_accumulate", times["accumulate"] / t_over, "x", "merge: accumulate / overwrite",
    )  # fmt: skip
    fig.add("ratio_deep", times["deep"] / t_over, "x", "merge: deep / overwrite")
    n_changes = sum(map(len, diffs.values()))
    fig.add(
        "file_us", t_file * 1e6, "us",
        f"  of which filing the {n_changes} changes into the change tree (every strategy)",
    )  # fmt: skip
    fig.add(
        "decide_ratio", (times["accumulate"] - t_file) / max(t_over - t_file, 1e-9), "x",
        "  the rest: accumulate / overwrite",
    )  # fmt: skip
    reports = {s: merge.merge_branches(base, pairs, specs[s], diffs=diffs).rows for s in specs}
    _per_path(fig, times, t_file, reports, reps)

    pipes = {
        s: fl.Pipeline(fl.Parallel({f"b{i}": _branch(i) for i in range(n)}, merge=s, name="fan"))
        for s in STRATEGIES
    }
    runs = [lambda s=s: fl.run(pipes[s], base) for s in STRATEGIES]
    run_times = dict(zip(STRATEGIES, best(runs, settings.pick(5, 20)), strict=True))
    fig.add(  # the accumulate-vs-overwrite target is on whole runs (issue 22)
        "run_ratio_accumulate", run_times["accumulate"] / run_times["overwrite"], "x",
        "whole fl.run: accumulate / overwrite", target="<= 1.1x", check=lambda v: v <= 1.1,
    )  # fmt: skip
    fig.add(
        "run_ratio_deep", run_times["deep"] / run_times["overwrite"], "x",
        "whole fl.run: deep / overwrite",
    )  # fmt: skip


def _per_path(
    fig: Figure, times: dict[str, float], t_file: float, reports: dict[str, Any], reps: int
) -> None:
    """What deciding one path costs each strategy: its merge minus the filing (measured in the
    same rounds), over the paths it reported (its report rows, kept compact, included); and
    what reading those rows costs later, when ``result.merges`` or an error's report is read."""
    for s in ("accumulate", "deep", "overwrite"):
        paths = len(reports[s])
        name = "decide_us_per_path" + ("" if s == "accumulate" else f"_{s}")
        fig.add(
            name, (times[s] - t_file) / paths * 1e6, "us",
            f"  {s}: deciding one of its {paths} paths",
            **({"target": "<= 1 us", "check": lambda v: v <= 1.0} if s == "accumulate" else {}),
        )  # fmt: skip
    paths = len(reports["accumulate"])
    fig.add(
        "budget_us_per_path", (1.1 * times["overwrite"] - t_file) / paths * 1e6, "us",
        "  what <= 1.1x would leave accumulate per path",
    )  # fmt: skip
    rows = reports["accumulate"]
    (t_read,) = best([lambda: list(rows)], reps)
    fig.add(
        "report_read_us_per_row", t_read / paths * 1e6, "us",
        "  a report row made a dict when read (not during the merge)",
    )  # fmt: skip


def _file_changes(pairs: list[tuple[str, BaseModel]], diffs: dict[str, Any]) -> Any:
    """What every strategy does first: file each branch's changes into one tree (the first part
    of :func:`flowlab.core.merge.merge_branches`, with the same code: ``ChangeNode.file``)."""
    from flowlab.core.merge.nodes import ChangeNode

    root = ChangeNode()
    for i, (name, _) in enumerate(pairs):
        changes = diffs.get(name)
        if changes:
            root.file(i, changes)
    return root


def _merge_back(table: dict[str, int], n: int, spec: Any) -> tuple[float, float]:
    """CPU seconds for the diffs and for the merge of ``n`` one-key branches, as the engine does
    them (the merge writes into the parent's dict, so every sample starts from a fresh parent)."""
    import flowlab.core.context.isolation as context
    from flowlab import merge

    base = BigCtx(table=dict(table))
    pairs = _branches_one_key(base, n)
    gc.collect()
    t0 = time.process_time()
    diffs = {name: context.diff(base, b) for name, b in pairs}
    t1 = time.process_time()
    merge.merge_branches(base, pairs, spec, diffs=diffs, reuse_base=True)
    t2 = time.process_time()
    return t1 - t0, t2 - t1


def _best_merge_back(table: dict[str, int], n: int, spec: Any, reps: int) -> tuple[float, float]:
    samples = [_merge_back(table, n, spec) for _ in range(reps)]
    return min(s[0] for s in samples), min(s[1] for s in samples)


def _scaling(fig: Figure, settings: Settings) -> None:
    from flowlab import merge

    spec = merge.resolve("deep")
    reps = settings.pick(1, 5)
    keys = settings.pick(2_000, 10_000)
    few, many = 10, settings.pick(200, 1_000)
    k = f"{keys // 1000}k"
    small = {f"k{i:06d}": i for i in range(keys)}
    d_few, m_few = _best_merge_back(small, few, spec, reps * 4)
    d_many, m_many = _best_merge_back(small, many, spec, reps)
    t_few, t_many = d_few + m_few, d_many + m_many
    scale = many / few
    fig.add("scale_few_ms", t_few * 1e3, "ms", f"merge-back, {few} branches x 1 key of {k}")
    fig.add("scale_many_ms", t_many * 1e3, "ms", f"merge-back, {many:,} branches x 1 key of {k}")
    fig.add(
        "scale_ratio", t_many / t_few, "x", f"{many:,} / {few} branches ({scale:g}x the changes)"
    )
    fig.add(
        "per_change_ratio", t_many / t_few / scale, "x",
        f"cost per change: {many:,} vs {few} branches", target="<= 2x (linear)",
        check=lambda v: v <= 2,
    )  # fmt: skip
    fig.add("merge_only_ratio", m_many / m_few / scale, "x", "  merge only, per change")
    fig.add("diff_only_ratio", d_many / d_few / scale, "x", "  diff only, per change")
    fig.add(
        "diff_us_per_branch", d_many / many * 1e6, "us/branch", f"  diff of one branch, {k} keys"
    )
    fig.add(
        "merge_us_per_branch", m_many / many * 1e6, "us/branch", f"  merge, per branch, {k} keys"
    )

    n = settings.pick(20, 100)
    big = keys * 10
    ds, ms = _best_merge_back(small, n, spec, reps)
    large = {f"k{i:06d}": i for i in range(big)}
    dl, ml = _best_merge_back(large, n, spec, reps)
    kb = f"{big // 1000}k"
    fig.add(
        "context_ratio", (dl + ml) / (ds + ms), "x",
        f"merge-back, {n} branches: {kb}-key / {k}-key dict", target="<= 2x (flat)",
        check=lambda v: v <= 2,
    )  # fmt: skip
    fig.add("context_merge_only_ratio", ml / ms, "x", f"  merge only: {kb} / {k} keys")
    fig.add("context_diff_only_ratio", dl / ds, "x", f"  diff only: {kb} / {k} keys")
    fig.add(
        "diff_us_per_branch_large", dl / n * 1e6, "us/branch", f"  diff of one branch, {kb} keys"
    )
