"""Limits, cancellation, shared budgets (issue 4)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.core.limits import AIMD, Adaptive, Fixed
from flowlab.engine.clock import run_virtual


class Ctx(BaseModel):
    n: int = 0


def sleeper(seconds: float, bump: int = 0):
    async def step(data, ctx: Ctx):
        await asyncio.sleep(seconds)
        ctx.n += bump

    return step


def leaf_peak(result: fl.RunResult) -> int:
    """Most leaf steps in flight at once, from the steps frame (sweep line)."""
    leaves = result.steps[result.steps["kind"] == "step"]
    points = sorted(
        [(t, 1) for t in leaves["started_s"]] + [(t, -1) for t in leaves["finished_s"]],
        key=lambda p: (p[0], p[1]),
    )
    peak = cur = 0
    for _, d in points:
        cur += d
        peak = max(peak, cur)
    return peak


def nested(depth: int, width: int) -> fl.Parallel:
    if depth == 0:
        return fl.Parallel(
            {f"leaf{i}": sleeper(1, 1) for i in range(width)}, merge="accumulate", name="level0"
        )
    return fl.Parallel(
        {f"b{i}": nested(depth - 1, width) for i in range(width)},
        merge="accumulate",
        name=f"level{depth}",
    )


def test_run_wide_cap_cannot_deadlock_with_nesting_deeper_than_the_cap() -> None:
    # 3 levels of 3-way fan-out (27 leaves); the run-wide cap is 2, smaller than the depth.
    result = fl.run(nested(2, 3), Ctx(), clock="virtual", max_concurrency=2)
    assert result.status == "ok"
    assert result.context.n == 27
    assert leaf_peak(result) == 2
    assert result.summary()["peak_concurrency"] == 2
    assert result.makespan_s == 14.0  # ceil(27 / 2) * 1 s


def test_run_cap_one_serialises_everything() -> None:
    result = fl.run(nested(1, 4), Ctx(), clock="virtual", max_concurrency=1)
    assert result.makespan_s == 16.0
    assert leaf_peak(result) == 1


def test_handle_cancel_one_branch_while_it_runs() -> None:
    async def main() -> fl.RunResult:
        pipe = fl.Parallel(
            {"a": sleeper(10, 100), "b": sleeper(1, 1), "c": sleeper(2, 2)}, merge="accumulate"
        )
        handle = fl.start(pipe, Ctx())
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, handle.cancel, "a")
        result = await handle
        return result

    result = run_virtual(main())
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "cancelled"
    assert rows.loc["a", "reason"] == "cancelled by handle"
    assert rows.loc["a", "finished_s"] == 0.5
    assert result.status == "ok"
    assert result.context.n == 3  # a's changes are not merged


def test_handle_cancel_queued_branch_and_progress() -> None:
    async def main() -> tuple[dict[str, int], fl.RunResult]:
        pipe = fl.Parallel(
            {f"b{i}": sleeper(1, 1) for i in range(4)}, max_concurrency=1, merge="accumulate"
        )
        handle = fl.start(pipe, Ctx())
        await asyncio.sleep(0.5)
        progress = handle.progress
        handle.cancel("b3")
        return progress, await handle

    progress, result = run_virtual(main())
    assert progress == {"done": 0, "running": 1, "queued": 3, "total": 4}
    rows = result.branches.set_index("branch")
    assert rows.loc["b3", "status"] == "cancelled"
    assert pd_isna(rows.loc["b3", "started_s"])
    assert result.makespan_s == 3.0
    assert result.context.n == 3


def pd_isna(x: object) -> bool:
    import pandas as pd

    return bool(pd.isna(x))


def test_handle_cancel_everything() -> None:
    async def main() -> fl.RunResult:
        handle = fl.start(fl.Parallel({"a": sleeper(10), "b": sleeper(20)}), Ctx())
        asyncio.get_running_loop().call_later(1, handle.cancel)
        with pytest.raises(fl.RunCancelled) as info:
            await handle
        assert info.value.result is not None
        return info.value.result

    result = run_virtual(main())
    assert result.status == "cancelled"
    assert set(result.branches["status"]) == {"cancelled"}
    assert result.makespan_s == 1.0


def charger(cost: float, *, after: float = 0.0, then_sleep: float = 0.0):
    async def step(data, ctx):
        await asyncio.sleep(after)
        fl.charge(cost=cost)
        await asyncio.sleep(then_sleep)

    return step


def test_budget_is_shared_never_split() -> None:
    pipe = fl.Parallel({"big": charger(0.10), "small": charger(0.01)})
    result = fl.run(pipe, Ctx(), clock="virtual", usage=fl.UsageLimits(cost=0.15))
    assert result.status == "ok"
    assert result.cost == pytest.approx(0.11)


def test_third_charge_breaches_siblings_cancelled_at_once_total_exact() -> None:
    pipe = fl.Parallel(
        {f"c{i}": charger(0.05, after=i, then_sleep=100) for i in range(5)}, name="fan"
    )
    with pytest.raises(fl.UsageLimitExceeded) as info:
        fl.run(pipe, Ctx(), clock="virtual", usage=fl.UsageLimits(cost=0.12))
    err = info.value
    assert err.branch == "fan:c2"
    assert err.totals["cost"] == pytest.approx(0.15)
    result = err.result
    assert result is not None and result.status == "usage_limit_exceeded"
    assert result.cost == pytest.approx(0.15)
    rows = result.branches.set_index("branch")
    assert rows.loc["c2", "status"] == "failed"
    assert rows.loc["c2", "cost"] == pytest.approx(0.05)
    # every sibling is cancelled at the very instant of the crossing charge (t = 2 s)
    for name in ["c0", "c1", "c3", "c4"]:
        assert rows.loc[name, "status"] == "cancelled"
        assert rows.loc[name, "finished_s"] == 2.0
    assert result.branches["cost"].sum() == pytest.approx(0.15)


def test_charge_from_sync_step_in_a_thread() -> None:
    def sync_charge(data, ctx):
        fl.charge(cost=0.2, tokens=10)

    result = fl.run(
        fl.Parallel({"a": sync_charge, "b": sync_charge}), Ctx(), usage=fl.UsageLimits(tokens=100)
    )
    assert result.tokens == 20
    assert result.cost == pytest.approx(0.4)


def test_tokens_limit_breach() -> None:
    async def t(data, ctx):
        fl.charge(tokens=60)

    with pytest.raises(fl.UsageLimitExceeded, match="tokens"):
        fl.run(
            fl.Parallel({"a": t, "b": t}), Ctx(), clock="virtual", usage=fl.UsageLimits(tokens=100)
        )


def test_fixed_limiter_repr_and_statistics() -> None:
    state = Fixed(3).new_state()
    assert repr(state) == "<Fixed limit=3 in_flight=0 waiting=0 peak=0>"
    assert state.statistics().limit == 3


def test_adaptive_limiter_moves_with_injected_cpu_and_moves_are_recorded() -> None:
    readings = iter([(0.1, 0.2)] * 4 + [(0.99, 0.2)] * 100)
    lim = Adaptive(1, 4, target_cpu=0.8, interval_s=0.0, reader=lambda: next(readings))
    pipe = fl.Parallel({f"b{i}": sleeper(1) for i in range(12)}, max_concurrency=lim, name="fan")
    result = fl.run(pipe, Ctx(), clock="virtual")
    limits = result.limits
    assert len(limits) >= 3
    assert limits["limit"].max() > 1  # grew while the CPU was idle
    assert limits["limit"].iloc[-1] < limits["limit"].max()  # then backed off
    assert limits["limit"].between(1, 4).all()
    assert leaf_peak(result) <= 4


def test_aimd_increases_on_fast_and_halves_on_slow() -> None:
    durations = [0.1] * 6 + [5.0] * 2 + [0.1] * 4
    pipe = fl.Parallel(
        {f"b{i}": sleeper(d) for i, d in enumerate(durations)},
        max_concurrency=AIMD(1, 8, latency_target_s=1.0),
        name="fan",
    )
    result = fl.run(pipe, Ctx(), clock="virtual")
    limits = result.limits.loc[result.limits["event"] != "wait", "limit"].tolist()  # start, moves
    assert limits[0] == 1  # the start is recorded too
    moves = limits[1:]
    assert moves[:3] == [2, 3, 4]
    assert any(b < a for a, b in itertools.pairwise(moves))  # a multiplicative decrease
    assert min(moves) >= 1 and max(moves) <= 8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_concurrency": 0}, "max_concurrency=0"),
        ({"max_concurrency": 2.5}, "max_concurrency=2.5"),
        ({"max_concurrency": -1}, "max_concurrency=-1"),
    ],
)
def test_bad_caps_are_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(fl.ConfigError, match=match):
        fl.Parallel({"a": sleeper(1)}, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(fl.ConfigError, match=match):
        fl.run(fl.Pipeline(sleeper(1)), Ctx(), **kwargs)  # type: ignore[arg-type]


def test_run_wide_wait_shows_in_the_branch_frame_and_limits_record_every_start() -> None:
    pipe = fl.Parallel({f"b{i}": sleeper(1) for i in range(4)}, max_concurrency=4, name="fan")
    result = fl.run(pipe, Ctx(), clock="virtual", max_concurrency=3)
    rows = result.branches.set_index("branch")
    assert rows.loc["b3", "wait_s"] == 1.0  # waited for a run-wide slot
    assert rows.loc["b3", "duration_s"] == 1.0
    starts = result.limits.groupby("step")["limit"].first().to_dict()
    assert starts == {"run": 3, "fan": 4}
    leaves = result.steps[result.steps["kind"] == "step"].set_index("path")
    assert leaves.loc["fan:b3/step", "queued_s"] == 0.0
    assert leaves.loc["fan:b3/step", "started_s"] == 1.0


def test_cancel_right_after_start_before_the_branch_is_queued() -> None:
    async def main() -> fl.RunResult:
        pipe = fl.Pipeline(
            sleeper(1), fl.Parallel({"a": sleeper(5, 1), "b": sleeper(1, 1)}, merge="accumulate")
        )
        handle = fl.start(pipe, Ctx())
        handle.cancel("a")  # "a" is queued only after the first step, 1 s later
        return await handle

    result = run_virtual(main())
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "cancelled"
    assert result.context.n == 1
    assert result.makespan_s == 2.0


def test_cancel_a_background_thread_run_from_another_thread() -> None:
    import threading

    gate = threading.Event()

    def first(data, ctx):  # a sync step: runs in a worker thread until the test opens the gate
        assert gate.wait(30)

    pipe = fl.Pipeline(
        first, fl.Parallel({"a": sleeper(5, 1), "b": sleeper(1, 1)}, merge="accumulate")
    )
    handle = fl.start(pipe, Ctx(), clock="virtual")  # no loop here: runs in a background thread
    handle.cancel("a")  # from this (other) thread, before "a" is queued
    gate.set()
    result = handle.result(timeout=30)
    assert result.branches.set_index("branch").loc["a", "status"] == "cancelled"
    assert result.context.n == 1


def test_a_cap_wait_row_says_the_limit_as_it_was_when_the_wait_began() -> None:
    # AIMD starts at 1 and grows while branches wait: the wait row is stamped at the spell's
    # start, so its limit and in_flight are the ones of that moment (not of its end)
    async def one(data: object, ctx: BaseModel) -> None:
        await asyncio.sleep(1)

    aimd = fl.limits.AIMD(min=1, max=4, latency_target_s=2.0)
    res = fl.run(
        fl.Parallel({f"b{i}": one for i in range(8)}, max_concurrency=aimd, name="fan"),
        _Empty(), clock="virtual",
    )  # fmt: skip
    waits = res.limits.loc[res.limits["event"] == "wait"]
    assert len(waits) == 1
    row = waits.iloc[0]
    assert (row["time_s"], row["limit"], row["in_flight"]) == (0.0, 1, 1)
    for r in (fl.run(fl.Parallel({f"b{i}": one for i in range(4)}, name="fan"), _Empty(),
                     clock="virtual", max_concurrency=fl.limits.AIMD(min=1, max=4,
                     latency_target_s=2.0)),):  # fmt: skip
        run_waits = r.limits.loc[(r.limits["event"] == "wait") & (r.limits["step"] == "run")]
        assert (run_waits.iloc[0]["limit"], run_waits.iloc[0]["time_s"]) == (1, 0.0)


class _Empty(BaseModel):
    pass


def test_a_release_without_an_acquire_is_refused_and_changes_nothing() -> None:
    state = Fixed(2).new_state()
    with pytest.raises(fl.BookkeepingError, match="release\\(\\) without a matching acquire"):
        state.release()
    assert state.in_flight == 0 and state.limit == 2
