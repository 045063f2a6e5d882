"""Figures 1 and 2: engine overhead against raw asyncio, and what recording costs.

Figure 1 runs N no-op branches (``await asyncio.sleep(0)``, context of five small fields, no
changes) through ``fl.run`` with ``max_concurrency=64`` on the Parallel and recording on, and the
same awaits through a hand-written ``asyncio.TaskGroup`` + ``asyncio.Semaphore(64)``. Both make a
fresh event loop per run. Reported: µs per branch for each, and flowlab / baseline.

Every timed call starts from a clean heap (flowlab's ``last_result`` dropped, a collection done);
figure 1 also times the 10k run while the previous run's result is still alive, as in a notebook
that re-runs ``r = fl.run(...)``.

Figure 2 is the same flowlab run with ``record=False`` against ``record=True``.
"""

from __future__ import annotations

from bench._core import Figure, Settings, best
from bench.workloads import SmallCtx, bump, fanout, run_raw

__all__ = ["engine_overhead", "recording_cost"]

CAP = 64


def _sizes(settings: Settings) -> list[int]:
    return settings.pick([1_000, 10_000], [1_000, 10_000, 100_000])


def _repeat(n: int, settings: Settings) -> int:
    if n >= 100_000:
        return settings.pick(1, 3)
    if n >= 10_000:
        return settings.pick(2, 9)
    return settings.pick(3, 15)


def _label(n: int) -> str:
    return f"{n // 1000}k"


def engine_overhead(settings: Settings) -> Figure:
    """Figure 1: flowlab (cap 64, recording on) vs TaskGroup + Semaphore(64), µs per branch."""
    import flowlab as fl

    fig = Figure("overhead", 1, "Engine overhead vs asyncio.TaskGroup + Semaphore(64)")
    for n in _sizes(settings):
        pipe = fanout(n, cap=CAP)
        ctx = SmallCtx()

        def flow(pipe: object = pipe, ctx: SmallCtx = ctx) -> None:
            fl.run(pipe, ctx, record=True)

        def raw(n: int = n) -> None:
            run_raw(n, CAP)

        t_raw, t_flow = best([raw, flow], _repeat(n, settings), warmup=n <= 10_000)
        k = _label(n)
        fig.add(f"baseline_us_{k}", t_raw / n * 1e6, "us/branch", f"TaskGroup+Semaphore, N={k}")
        fig.add(f"flowlab_us_{k}", t_flow / n * 1e6, "us/branch", f"flowlab, N={k}")
        ratio = t_flow / t_raw
        if n == 10_000:
            fig.add(
                f"ratio_{k}", ratio, "x", f"flowlab / baseline, N={k}",
                target="<= 1.5x", check=lambda v: v <= 1.5,
            )  # fmt: skip
        else:
            fig.add(f"ratio_{k}", ratio, "x", f"flowlab / baseline, N={k}")
        if n == 10_000:
            _previous_alive(fig, pipe, ctx, t_flow, settings)
            _changing(fig, t_raw, settings)
    return fig


def _changing(fig: Figure, t_raw: float, s: Settings) -> None:
    """The same fan-out where every branch changes a field (``accumulate``): each branch is
    diffed, its changes recorded and merged."""
    import flowlab as fl

    pipe = fanout(10_000, cap=CAP, branch=bump, merge="accumulate")

    def flow() -> None:
        fl.run(pipe, SmallCtx())

    (t_changing,) = best([flow], _repeat(10_000, s))
    fig.add(
        "flowlab_us_changing", t_changing / 10_000 * 1e6, "us/branch",
        "flowlab, N=10k, every branch changes a field",
    )  # fmt: skip
    fig.add("changing_ratio", t_changing / t_raw, "x", "  changing branches / baseline")


def _previous_alive(fig: Figure, pipe: object, ctx: SmallCtx, t_clean: float, s: Settings) -> None:
    """The same run while the previous run's result is still referenced.

    That is the state of a notebook re-running ``r = fl.run(...)``: the old ``r`` is only dropped
    once the new run returns, so the garbage collector walks its records during the new run.
    """
    import flowlab as fl

    previous = fl.run(pipe, ctx)

    def flow() -> None:
        fl.run(pipe, ctx)

    (t_held,) = best([flow], _repeat(10_000, s))
    n = len(previous.recorder.branches)
    fig.add(
        "flowlab_us_prev_alive",
        t_held / n * 1e6,
        "us/branch",
        "flowlab, N=10k, previous result alive",
    )
    fig.add("prev_alive_ratio", t_held / t_clean, "x", "  previous result alive / clean")


def recording_cost(settings: Settings) -> Figure:
    """Figure 2: the figure-1 run with recording on vs off."""
    import flowlab as fl

    fig = Figure("recording", 2, "Recording cost: record=True vs record=False")
    n = settings.pick(2_000, 10_000)
    k = f"N={n // 1000}k"
    pipe = fanout(n, cap=CAP)
    ctx = SmallCtx()

    def on() -> None:
        fl.run(pipe, ctx, record=True)

    def off() -> None:
        fl.run(pipe, ctx, record=False)

    t_off, t_on = best([off, on], settings.pick(3, 9))
    fig.add("off_us", t_off / n * 1e6, "us/branch", f"record=False, {k}")
    fig.add("on_us", t_on / n * 1e6, "us/branch", f"record=True, {k}")
    fig.add(
        "ratio", t_on / t_off, "x", f"on / off, {k}", target="<= 1.2x", check=lambda v: v <= 1.2
    )
    return fig
