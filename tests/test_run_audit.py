"""The truth audit of runs and frames: random programs of the newer features against their leaves'
own journal (``audit_gen`` / ``audit_check``), and one regression test per fault it found.

The property runs 100 seeded programs in the normal lane (a few seconds);
``FLOWLAB_STRESS=1`` runs ``FLOWLAB_STRESS_EXAMPLES`` (default 10,000; about 15 minutes) of them:
``FLOWLAB_STRESS=1 pytest tests/test_run_audit.py -o faulthandler_timeout=0``. A failure names
its seeds; ``audit_check.check(audit_check.drive(audit_gen.program(seed)))`` replays one.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

import pytest
from audit_check import check, drive
from audit_gen import program
from pydantic import BaseModel

import flowlab as fl

STRESS = os.environ.get("FLOWLAB_STRESS", "") not in ("", "0")
SEEDS = int(os.environ.get("FLOWLAB_STRESS_EXAMPLES", "10000")) if STRESS else 100


class Ctx(BaseModel):
    n: int = 0


@pytest.mark.timeout(0 if STRESS else 600)  # (under FLOWLAB_STRESS: minutes, not seconds)
def test_random_programs_tell_the_truth() -> None:
    failures = []
    for seed in range(SEEDS):
        try:
            check(drive(program(seed)))
        except AssertionError as err:  # keep going: report every failing seed at once
            failures.append(f"seed={seed}: {str(err)[:300]}")
    assert not failures, "\n".join(failures[:10])


def test_a_branch_the_rate_lets_through_as_its_step_is_cancelled_ends_with_it() -> None:
    # The inner step waits for its rate to let b through at 1.0; in that same instant the outer
    # branch's branch_timeout cancels the inner step. b's task used to run on, orphaned: its
    # step had ended, it was recorded twice, and it kept running (and charging) until 6.0.
    ran: list[str] = []

    async def quick(data: Any, ctx: Ctx) -> None:
        pass

    async def slow(data: Any, ctx: Ctx) -> None:
        ran.append("started")
        await asyncio.sleep(5)
        ran.append("ended")

    async def later(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(10)

    inner = fl.Parallel({"a": quick, "b": slow}, rate=fl.limits.Rate(per_second=1), name="inner")
    outer = fl.Parallel({"x": inner}, branch_timeout=1.0, on_failure="ignore", name="outer")
    result = fl.run(fl.Pipeline(outer, later), Ctx(), clock="virtual")
    assert "ended" not in ran
    events = result.events
    ends = events.loc[events["kind"] == "branch_finished", "branch"].tolist()
    assert sorted(ends) == sorted(result.branches["path"].tolist())  # each closed once
    row = result.branches.set_index("path").loc["outer:x/inner:b"]
    assert row["status"] == "cancelled" and row["finished_s"] == 1.0


class Abort(BaseException):
    """Neither an Exception nor a cancellation (pytest's Failed, gevent's Timeout)."""


def test_a_branch_failed_by_a_base_exception_is_in_errors_and_the_stream() -> None:
    err = Abort("stop")

    async def boom(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(1)
        raise err

    async def slow(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(5)

    async def main() -> tuple[fl.RunResult, list[Any]]:
        handle = fl.start(fl.Parallel({"a": boom, "b": slow}, name="fan"), Ctx(), clock="virtual")
        seen = [o async for o in handle.as_completed()]
        return await handle.wait(), seen

    from flowlab.engine.clock import run_virtual

    result, seen = run_virtual(main())
    rows = result.branches.set_index("branch")
    assert rows.loc["a", "status"] == "failed" and rows.loc["a", "error"] == "Abort: stop"
    assert result.errors["a"] is err  # was missing: a failed row with no error object
    outcome = next(o for o in seen if o.branch == "a")
    assert outcome.status == "failed" and outcome.error is err


def test_the_run_rate_counts_a_retry_when_it_starts() -> None:
    # a fails at once and is retried; the retry waits for its step's rate after the run's: it
    # took the run-wide token at 1.0, started at 3.0 together with c, 2 requests in one instant
    # under a run-wide 1 per second.
    starts: list[float] = []
    calls: dict[str, int] = {}

    def leaf(name: str, fails: int) -> Any:
        async def step(data: Any, ctx: Ctx) -> None:
            starts.append(asyncio.get_running_loop().time())
            calls[name] = calls.get(name, 0) + 1
            if calls[name] <= fails:
                raise ValueError(name)

        return step

    pipe = fl.Parallel(
        {"a": leaf("a", 1), "b": leaf("b", 0), "c": leaf("c", 0)},
        rate=fl.limits.Rate(per_second=1),
        retry=fl.Retry(attempts=2, backoff=0.0, jitter=0),
        name="fan",
    )
    result = fl.run(pipe, Ctx(), clock="virtual", rate=fl.limits.Rate(per_second=1))
    assert result.status == "ok"
    starts.sort()
    assert len(starts) == 4
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(starts)), starts


def test_the_concurrency_plot_counts_a_retried_leaf_only_while_it_runs() -> None:
    # a fails at 1.0 and waits 2 s before its retry, holding no run-wide slot; b runs 1.0-2.0 in
    # that slot. The plot counted a's step row (0.0-4.0): 2 leaf steps in flight under a drawn
    # run-wide cap of 1, while summary() said a peak of 1.
    calls: dict[str, int] = {}

    def leaf(name: str, fails: int) -> Any:
        async def step(data: Any, ctx: Ctx) -> None:
            calls[name] = calls.get(name, 0) + 1
            await asyncio.sleep(1)
            if calls[name] <= fails:
                raise ValueError(name)

        return step

    pipe = fl.Parallel(
        {"a": leaf("a", 1), "b": leaf("b", 0)},
        retry=fl.Retry(attempts=2, backoff=2.0, jitter=0),
        name="fan",
    )
    result = fl.run(pipe, Ctx(), clock="virtual", max_concurrency=1)
    ax = fl.plot.concurrency(result, limit=1)
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "in_flight"]
    drawn = list(zip(line.get_xdata().tolist(), line.get_ydata().tolist(), strict=True))
    assert drawn == [(0.0, 1), (2.0, 0), (3.0, 1), (4.0, 0)]
    assert result.summary()["peak_concurrency"] == 1


@pytest.mark.parametrize("retry", [None, fl.Retry(attempts=2, jitter=0)], ids=["plain", "retried"])
def test_an_interrupted_leaf_is_recorded_as_its_branch_is(retry: fl.Retry | None) -> None:
    # The branch row said cancelled ("interrupted by KeyboardInterrupt"), the step row and the
    # attempt row of the very leaf that was interrupted said failed.
    async def interrupt(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(1)
        raise KeyboardInterrupt("stop")

    pipe = fl.Parallel({"a": fl.Step(interrupt, name="leaf", retry=retry)}, name="fan")
    with pytest.raises(KeyboardInterrupt):
        fl.run(pipe, Ctx(), clock="virtual")
    result = fl.last_result()
    assert result is not None
    branch = result.branches.set_index("branch").loc["a"]
    step = result.steps.set_index("path").loc["fan:a/leaf"]
    assert branch["status"] == step["status"] == "cancelled"
    assert step["error"] == branch["reason"] == "interrupted by KeyboardInterrupt: stop"
    if retry is not None:
        (status,) = result.attempts["status"].astype(str).tolist()
        assert status == "cancelled"


@pytest.mark.parametrize("retry", [False, True], ids=["starts", "retries"])
def test_a_rated_step_under_a_run_wide_cap_spaces_its_real_starts(retry: bool) -> None:
    # The rate let b1, b2, b3 through at 0, 1 and 2 s (their dispatch), but each then waited for
    # the run-wide slot that `busy` held until 2.5: all three requests went out at 2.5 s under
    # a rate of one per second. Retries (a new request each) took their token before waiting
    # for the slot, too.
    starts: list[float] = []
    calls: dict[str, int] = {}

    def leaf(name: str, seconds: float) -> Any:
        async def step(data: Any, ctx: Ctx) -> None:
            starts.append(asyncio.get_running_loop().time()) if name != "busy" else None
            calls[name] = calls.get(name, 0) + 1
            await asyncio.sleep(seconds)
            if retry and name != "busy" and calls[name] == 1:
                raise ValueError("429")

        return step

    rated = fl.Parallel(
        {f"b{i}": leaf(f"b{i}", 0) for i in range(3)},
        rate=fl.limits.Rate(per_second=1),
        retry=fl.Retry(attempts=2, backoff=0, jitter=0) if retry else None,
        name="rated",
    )
    pipe = fl.Parallel({"busy": leaf("busy", 2.5), "r": rated}, name="outer")
    result = fl.run(pipe, Ctx(), clock="virtual", max_concurrency=1)
    assert result.status == "ok"
    assert len(starts) == (6 if retry else 3)
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(sorted(starts))), sorted(starts)
    rows = result.branches.loc[result.branches["step"] == "rated", "started_s"].tolist()
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(sorted(rows))), rows


def test_a_cancel_that_names_no_branch_of_the_run_is_flagged() -> None:
    # A Map's branches are known only when it runs, so handle.cancel() takes any name for them;
    # a mistyped one ("doc_b" for "b") cancelled nothing, and the ok run did not say so.
    class Docs(BaseModel):
        docs: list[str] = ["a", "b"]

    async def work(doc: str, ctx: Docs) -> str:
        await asyncio.sleep(1)
        return doc

    async def main() -> fl.RunResult:
        handle = fl.start(fl.Map(work, over="docs", key=lambda d: d, name="m"), Docs(),
                          clock="virtual")  # fmt: skip
        handle.cancel("doc_b")
        handle.cancel("a")  # matches: no warning for it
        return await handle.wait()

    from flowlab.engine.clock import run_virtual

    with pytest.warns(fl.errors.CancelNotMatchedWarning, match="'doc_b'") as seen:
        result = run_virtual(main())
    assert len(seen) == 1 and "'a'" not in str(seen[0].message)
    assert result.status == "ok"
    assert result.branches["status"].astype(str).tolist() == ["cancelled", "ok"]
    events = result.events
    assert events.loc[events["kind"] == "cancel_unmatched", "branch"].tolist() == ["doc_b"]


def test_branch_timeout_counts_from_the_branch_start_under_a_run_wide_cap() -> None:
    # b2 waited 1.5 s for the run-wide slot, then ran 0.5 s and was recorded "timeout:
    # branch_timeout=2s exceeded" with a duration_s of 0.5 (its timer started at dispatch).
    async def work(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(1.5)

    pipe = fl.Parallel({"b1": work, "b2": work}, branch_timeout=2.0, name="fan")
    result = fl.run(pipe, Ctx(), clock="virtual", max_concurrency=1)
    rows = result.branches.set_index("branch")
    assert result.status == "ok"
    assert rows["status"].astype(str).tolist() == ["ok", "ok"]
    assert rows.loc["b2", "started_s"] == 1.5 and rows.loc["b2", "finished_s"] == 3.0

    async def slow(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(5)

    pipe = fl.Parallel({"b1": work, "b2": slow}, branch_timeout=2.0, name="fan")
    result = fl.run(pipe, Ctx(), clock="virtual", max_concurrency=1, raise_on_error=False)
    row = result.branches.set_index("branch").loc["b2"]
    assert row["status"] == "timeout" and row["started_s"] == 1.5 and row["finished_s"] == 3.5


class Files(BaseModel):
    files: list[str] = ["dir/a", "dir"]


def test_a_map_item_named_like_a_path_under_another_is_not_its_child() -> None:
    # Branch paths join names with "/", and a Map keyed by file path or URL has "/" in its
    # names: "m:dir" was taken for the parent of "m:dir/a". Under a run-wide cap it was
    # recorded started at 0.0 (when dir/a got its slot; it waited until 1.0) ...
    starts: dict[str, float] = {}

    async def read(f: str, ctx: Files) -> None:
        starts[f] = asyncio.get_running_loop().time()
        await asyncio.sleep(1)

    m = fl.Map(read, over="files", key=lambda f: f, name="m")
    result = fl.run(m, Files(), clock="virtual", max_concurrency=1)
    rows = result.branches.set_index("branch")
    assert starts == {"dir/a": 0.0, "dir": 1.0}
    assert rows.loc["dir", "started_s"] == 1.0 and rows.loc["dir", "wait_s"] == 1.0

    # ... and when dir/a crossed the budget, "m:dir" was spared as its "ancestor": it ran on
    # to 5.0 and its own charge was counted after the breach.
    async def costly(f: str, ctx: Files) -> None:
        await asyncio.sleep(1 if f == "dir/a" else 5)
        fl.charge(cost=1.0)

    m = fl.Map(costly, over="files", key=lambda f: f, name="m")
    result = fl.run(m, Files(), clock="virtual", usage=fl.UsageLimits(cost=0.5),
                    raise_on_error=False)  # fmt: skip
    rows = result.branches.set_index("branch")
    assert result.status == "usage_limit_exceeded" and result.cost == 1.0
    assert rows.loc["dir", "status"] == "cancelled" and rows.loc["dir", "finished_s"] == 1.0


def test_a_parallel_run_once_per_map_item_keeps_its_runs_apart() -> None:
    # "inner" runs once per item: in item 0 only a writes, in item 1 only b. The merges and
    # diffs frames had no column telling the runs apart, and the timeline starred a and b in
    # both items (a win was matched by the step's name alone); fl.plot.merges folded both runs
    # into one row per name.
    class Items(BaseModel):
        items: list[int] = [0, 1]
        note: str = ""

    def writer(which: int) -> Any:
        async def step(item: int, ctx: Items) -> None:
            await asyncio.sleep(1)
            if item == which:
                ctx.note = str(which)

        return step

    inner = fl.Parallel({"a": writer(0), "b": writer(1)}, name="inner")
    result = fl.run(fl.Map(inner, over="items", name="m"), Items(), clock="virtual")
    merges = result.merges.loc[result.merges["step"] == "inner"]
    assert merges[["parent", "winner"]].values.tolist() == [["m:0", "a"], ["m:1", "b"]]
    diffs = result.diffs.loc[result.diffs["step"] == "inner"]
    assert diffs[["parent", "branch"]].values.tolist() == [["m:0", "a"], ["m:1", "b"]]
    ax = fl.plot.timeline(result)
    (stars,) = [c for c in ax.collections if c.get_gid() == "winners"]
    bar_y = {
        p.get_gid(): p.get_y() + p.get_height() / 2
        for p in ax.patches
        if str(p.get_gid()).startswith("run:")
    }
    star_y = {float(y) for _, y in stars.get_offsets()}
    starred = sorted(g.removeprefix("run:") for g, y in bar_y.items() if y in star_y)
    assert starred == ["m:0/inner:a", "m:1", "m:1/inner:b"]
    ax = fl.plot.merges(result)
    winners = sorted(ln.get_gid() for ln in ax.lines if str(ln.get_gid()).startswith("winner"))
    assert winners == ["winner:m:0/inner:a|note", "winner:m:1/inner:b|note", "winner:m:1|note"]


def test_a_branch_named_like_a_path_does_not_keep_a_siblings_held_thread() -> None:
    # "m:dir/a" is cancelled while its sync step blocks in its thread: it keeps its slot of the
    # cap until the thread returns. "m:dir" then ended and was taken to hold that step too
    # ("m:dir/a/item" starts with "m:dir/"): it kept its slot as well, and "x" waited for a
    # thread that was none of its business.
    import threading

    entered, go, done, dir_go, x_ran = (threading.Event() for _ in range(5))
    x_saw_done: list[bool] = []

    def step(item: str, ctx: Files) -> None:
        if item == "dir/a":
            entered.set()
            go.wait(20)
            done.set()
        elif item == "dir":
            dir_go.wait(20)
        else:
            x_saw_done.append(done.is_set())
            x_ran.set()

    class Three(BaseModel):
        files: list[str] = ["dir/a", "dir", "x"]

    async def main() -> fl.RunResult:
        m = fl.Map(step, over="files", key=lambda f: f, max_concurrency=2, name="m")
        handle = fl.start(m, Three(), clock="virtual")
        await asyncio.to_thread(entered.wait, 20)
        handle.cancel("m:dir/a")
        for _ in range(50):
            await asyncio.sleep(0)
        dir_go.set()
        # dir's thread returns and its slot goes to x, which runs while dir/a's thread still
        # blocks (a real wait, not a count of loop turns: the threads run at the machine's pace;
        # with the fault x waits for dir/a's thread, so this gives up after 10 s and x sees done)
        await asyncio.to_thread(x_ran.wait, 10)
        go.set()
        return await handle.wait()

    from flowlab.engine.clock import run_virtual

    result = run_virtual(main())
    assert x_saw_done == [False]  # x started while dir/a's thread still ran
    rows = result.branches.set_index("branch")["status"].astype(str).to_dict()
    assert rows == {"dir/a": "cancelled", "dir": "ok", "x": "ok"}
