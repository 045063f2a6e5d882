"""Figure 8: the same workloads through peer libraries, in the same process.

* **LangGraph** — fan-out with ``Send`` and a reducer: a conditional edge from ``START`` sends one
  ``Send("work", {"i": i})`` per branch; each ``work`` node awaits ``asyncio.sleep(0)`` and returns
  ``{"results": [i]}``, merged by the ``operator.add`` reducer. flowlab's equivalent: a Parallel of
  n branches each appending ``i`` to a ``list`` field with the ``fl.merge.Append()`` rule (no cap on
  either side). Per-branch cost at n = 100 and 1,000; ratio LangGraph / flowlab.
* **anyio** ``TaskGroup`` + ``CapacityLimiter(64)`` and **aiometer** ``run_all(max_at_once=64)`` —
  the figure-1 no-op workload (``await asyncio.sleep(0)``) at N = 10,000 (2,000 with ``--quick``);
  ratio flowlab / peer.

Peers come from the optional ``bench`` extra (``pip install flowlab[bench]``); a missing one is
reported as skipped, by name, with the import error.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import operator
import sys
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel

import flowlab as fl
from bench._core import Figure, Settings, best, median, samples
from bench.workloads import SmallCtx, fanout

__all__ = ["peers"]

CAP = 64


class Collected(BaseModel):
    """flowlab's side of the LangGraph comparison: a list merged by appending (the reducer)."""

    results: Annotated[list[int], fl.merge.Append()] = []


class State(TypedDict):
    """LangGraph's state: a list merged by ``operator.add`` (the reducer)."""

    results: Annotated[list[int], operator.add]


class Item(TypedDict):
    """What one ``Send`` carries to a ``work`` node."""

    i: int


def _missing(name: str) -> str | None:
    try:
        __import__(name)
    except ImportError as err:
        return f"{name} not installed ({err}); pip install 'flowlab[bench]'"
    return None


def peers(settings: Settings) -> Figure:
    """Figure 8."""
    fig = Figure("peers", 8, "Peers: same workload, same process")
    _langgraph(fig, settings)
    _capped(fig, settings)
    skipped = [m.label for m in fig.metrics if m.skipped]
    if skipped:
        fig.notes.append("skipped: " + "; ".join(skipped))
    return fig


# ---- LangGraph --------------------------------------------------------------------------------
def _flowlab_reducer(n: int) -> Any:
    def make(i: int) -> Any:
        async def work(data: Any, ctx: Collected) -> None:
            await asyncio.sleep(0)
            ctx.results.append(i)

        return work

    pipe = fl.Pipeline(fl.Parallel({f"w{i}": make(i) for i in range(n)}, name="fan"))

    def go() -> None:
        res = fl.run(pipe, Collected())
        assert isinstance(res.context, Collected)
        assert len(res.context.results) == n

    return go


def _minimal_reducer(n: int) -> Any:
    """flowlab's workload without flowlab's coordinator: one task per branch in an
    ``asyncio.TaskGroup``, each on the same isolated copy, diffed and merged by the same code,
    but no records, no queue, no cancellation bookkeeping: what the engine adds is the rest."""
    import flowlab.core.context.isolation as context
    from flowlab import merge
    from flowlab.core.context.isolator import isolator

    spec = merge.resolve("overwrite")  # the field's Append rule decides, as in fl.run

    def make(i: int) -> Any:
        async def work(data: Any, ctx: Collected) -> None:
            await asyncio.sleep(0)
            ctx.results.append(i)

        return work

    steps = {f"w{i}": make(i) for i in range(n)}

    async def main() -> None:
        base = Collected()
        copy = isolator(base, None, track=True)
        diffs: dict[str, list[Any]] = {}
        copies: dict[str, Collected] = {}

        async def branch(name: str, step: Any) -> None:
            mine = copy()
            await step(None, mine)
            found: list[Any] = []
            context.diff_into(base, mine, found)
            diffs[name], copies[name] = found, mine

        async with asyncio.TaskGroup() as group:
            for name, step in steps.items():
                group.create_task(branch(name, step))
        pairs = [(name, copies[name]) for name in steps]
        out = merge.merge_branches(base, pairs, spec, diffs=diffs, reuse_base=True)
        assert len(out.context.results) == n  # type: ignore[attr-defined]

    return lambda: asyncio.run(main())


def _langgraph_app(n: int) -> Any:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    def fan(state: State) -> list[Any]:
        return [Send("work", {"i": i}) for i in range(n)]

    async def work(state: Item) -> dict[str, list[int]]:
        await asyncio.sleep(0)
        return {"results": [state["i"]]}

    g = StateGraph(State)
    g.add_node("work", work)
    g.add_conditional_edges(START, fan, ["work"])
    g.add_edge("work", END)
    app = g.compile()

    def go() -> None:
        out = asyncio.run(app.ainvoke({"results": []}, {"recursion_limit": 10}))
        assert len(out["results"]) == n

    return go


def _langgraph(fig: Figure, settings: Settings) -> None:
    reason = _missing("langgraph")
    for n in (100, 1_000):
        target = ">= 10x" if n == 1_000 else ""
        label = f"LangGraph / flowlab per branch, n={n:,}"
        if reason:
            fig.skip_metric(f"langgraph_ratio_{n}", "x", label, reason, target)
            continue
        reps = settings.pick(3, 20)
        sides = [_langgraph_app(n), _flowlab_reducer(n)]
        if n == 1_000:
            sides.append(_minimal_reducer(n))
        lg, fl_, *minimal = samples(sides, reps)
        t_lg, t_fl = min(lg), min(fl_)
        fig.add(
            f"langgraph_us_{n}", t_lg / n * 1e6, "us/branch", f"LangGraph Send + reducer, n={n:,}"
        )
        fig.add(f"flowlab_us_{n}", t_fl / n * 1e6, "us/branch", f"flowlab Append rule, n={n:,}")
        check = (lambda v: v >= 10) if target else None
        fig.add(f"langgraph_ratio_{n}", t_lg / t_fl, "x", label, target=target, check=check)
        if n == 1_000:  # a second estimate of the same ratio, from each round's own pair
            paired = median([a / b for a, b in zip(lg, fl_, strict=True)])
            fig.add("langgraph_ratio_paired", paired, "x", "  median of the rounds' ratios")
            fig.add(
                "minimal_us_1000", min(minimal[0]) / n * 1e6, "us/branch",
                "  same work, no engine (TaskGroup, no records)",
            )  # fmt: skip
    if not reason:
        _langgraph_other_heaps(fig, settings)


def _langgraph_other_heaps(fig: Figure, settings: Settings) -> None:
    """The n = 1,000 comparison again, (a) in this process with nothing frozen (each side's
    collections also scan every module and object the other imported and built), and (b) each
    side alone in a fresh interpreter of its own, nothing frozen: its own imports only, as a
    user's process runs it."""
    n = 1_000
    reps = settings.pick(1, 7)
    gc.unfreeze()
    t_lg, t_fl = best([_langgraph_app(n), _flowlab_reducer(n)], reps, freeze=False)
    fig.add(
        "langgraph_ratio_unfrozen", t_lg / t_fl, "x",
        f"  same process, heap not frozen ({t_lg / n * 1e6:.0f} / {t_fl / n * 1e6:.1f} us)",
    )  # fmt: skip
    alone: dict[str, list[float]] = {"langgraph": [], "flowlab": []}
    for _ in range(settings.pick(1, 2)):  # alternating fresh processes
        for side in alone:
            alone[side].append(_alone(side, n, reps))
    t_lg, t_fl = min(alone["langgraph"]), min(alone["flowlab"])
    fig.add(
        "langgraph_ratio_alone", t_lg / t_fl, "x",
        f"  each alone in a fresh process ({t_lg * 1e6:.0f} / {t_fl * 1e6:.1f} us)",
    )  # fmt: skip


def _alone(side: str, n: int, reps: int) -> float:
    """Seconds per branch of ``side`` run alone in a fresh interpreter (``python -m bench.peers``)."""
    import subprocess
    from pathlib import Path

    proc = subprocess.run(
        [sys.executable, "-m", "bench.peers", side, str(n), str(reps)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(proc.stdout.split()[-1])


def _main(argv: list[str]) -> None:
    """``python -m bench.peers {langgraph|flowlab} N REPS``: best seconds per branch, alone."""
    side, n, reps = argv[0], int(argv[1]), int(argv[2])
    make = _langgraph_app if side == "langgraph" else _flowlab_reducer
    (t,) = best([make(n)], reps, freeze=False)
    print(t / n)


# ---- capped no-op fan-out ---------------------------------------------------------------------
async def _noop() -> None:
    await asyncio.sleep(0)


def _anyio(n: int) -> Any:
    import anyio

    async def main() -> None:
        limiter = anyio.CapacityLimiter(CAP)

        async def one() -> None:
            async with limiter:
                await asyncio.sleep(0)

        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)

    return lambda: anyio.run(main)


def _aiometer(n: int) -> Any:
    import aiometer

    async def main() -> None:
        await aiometer.run_all([functools.partial(_noop) for _ in range(n)], max_at_once=CAP)

    return lambda: asyncio.run(main())


def _capped(fig: Figure, settings: Settings) -> None:
    n = settings.pick(2_000, 10_000)
    k = f"N={n // 1000}k"
    pipe = fanout(n, cap=CAP)
    ctx = SmallCtx()
    peers_: list[tuple[str, str, Any]] = []
    for name, label, factory in (
        ("anyio", "anyio TaskGroup + CapacityLimiter(64)", _anyio),
        ("aiometer", "aiometer run_all(max_at_once=64)", _aiometer),
    ):
        reason = _missing(name)
        if reason:
            fig.skip_metric(f"{name}_ratio", "x", f"flowlab / {label}", reason)
        else:
            peers_.append((name, label, factory(n)))
    if not peers_:
        return
    times = best([lambda: fl.run(pipe, ctx), *(p[2] for p in peers_)], settings.pick(2, 5))
    fig.add("flowlab_us_capped", times[0] / n * 1e6, "us/branch", f"flowlab cap 64, {k}")
    for (name, label, _), t in zip(peers_, times[1:], strict=True):
        fig.add(f"{name}_us", t / n * 1e6, "us/branch", f"{label}, {k}")
        fig.add(f"{name}_ratio", times[0] / t, "x", f"flowlab / {name}")


if __name__ == "__main__":
    _main(sys.argv[1:])
