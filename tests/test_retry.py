"""fl.Retry on steps, Parallels and Maps: attempts, exact backoff, isolation, budgets (issue 21)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.engine.current import current_run


class Ctx(BaseModel):
    n: int = 0
    log: list[str] = []


class Flaky:
    """A step that fails its first ``fails`` calls (each after ``seconds``), then returns."""

    def __init__(self, fails: int, seconds: float = 1.0, error: type[Exception] = ValueError):
        self.fails, self.seconds, self.error, self.calls = fails, seconds, error, 0
        self.__name__ = "flaky"

    async def __call__(self, data: Any, ctx: Ctx) -> str:
        self.calls += 1
        ctx.n += 1  # written by every attempt: only the successful one's write may stay
        ctx.log.append(f"attempt {self.calls}")
        await asyncio.sleep(self.seconds)
        if self.calls <= self.fails:
            raise self.error(f"429 #{self.calls}")
        return f"ok after {self.calls}"


def rows(result: fl.RunResult, *cols: str) -> list[tuple[Any, ...]]:
    frame = result.attempts
    return [tuple(r) for r in frame[list(cols)].itertuples(index=False)]


# ---- attempts and exact backoff ----------------------------------------------------------------


def test_backoff_is_exact_on_virtual_time_and_each_attempt_is_a_row() -> None:
    step = fl.Step(Flaky(2), retry=fl.Retry(attempts=4, backoff=2.0, factor=2.0, jitter=0))
    result = fl.run(step, Ctx(), clock="virtual")
    assert result.output == "ok after 3"
    # attempt 1: 0-1, wait 2; attempt 2: 3-4, wait 4; attempt 3: 8-9
    assert rows(result, "attempt", "delay_s", "started_s", "finished_s", "status") == [
        (1, 0.0, 0.0, 1.0, "failed"),
        (2, 2.0, 3.0, 4.0, "failed"),
        (3, 4.0, 8.0, 9.0, "ok"),
    ]
    assert list(result.attempts["error"]) == ["ValueError: 429 #1", "ValueError: 429 #2", ""]
    assert result.makespan_s == 9.0
    # one steps row for the leaf, from its first attempt's start to its last attempt's end
    [leaf] = result.steps.itertuples()
    assert (leaf.started_s, leaf.finished_s, leaf.status) == (0.0, 9.0, "ok")


def test_delays_grow_by_factor_and_stop_at_max_backoff() -> None:
    policy = fl.Retry(attempts=6, backoff=1.0, factor=3.0, max_backoff=5.0, jitter=0)
    result = fl.run(
        fl.Step(Flaky(10, seconds=0.0), retry=policy), Ctx(), clock="virtual", raise_on_error=False
    )
    assert list(result.attempts["delay_s"]) == [0.0, 1.0, 3.0, 5.0, 5.0, 5.0]
    assert list(result.attempts["started_s"]) == [0.0, 1.0, 4.0, 9.0, 14.0, 19.0]
    assert result.status == "failed"
    assert list(result.attempts["status"]) == ["failed"] * 6
    assert isinstance(result.error, fl.StepFailed)
    assert "429 #6" in str(result.error)  # the last attempt's error is the step's


def test_huge_attempt_numbers_stay_at_max_backoff() -> None:
    policy = fl.Retry(attempts=5000, backoff=1.0, factor=10.0, max_backoff=7.0, jitter=0)
    assert policy.delay(4000) == 7.0


def test_jitter_shortens_delays_repeatably_and_differently_per_branch() -> None:
    policy = fl.Retry(attempts=3, backoff=4.0, factor=1.0, jitter=0.5)
    pipe = fl.Parallel({"a": Flaky(2, 0.0), "b": Flaky(2, 0.0)}, retry=policy, name="fan")

    def delays() -> dict[str, list[float]]:
        fresh = fl.Parallel({"a": Flaky(2, 0.0), "b": Flaky(2, 0.0)}, retry=policy, name="fan")
        r = fl.run(fresh, Ctx(), clock="virtual")
        return {b: list(g["delay_s"]) for b, g in r.attempts.groupby("branch")}

    first, again = delays(), delays()
    assert first == again  # the same on every run
    for waits in first.values():
        assert waits[0] == 0.0
        assert all(2.0 <= w <= 4.0 for w in waits[1:])  # [d * (1 - jitter), d]
    assert first["fan:a"] != first["fan:b"]  # siblings do not come back in lockstep
    assert pipe.retry is policy
    other = fl.Retry(attempts=3, backoff=4.0, factor=1.0, jitter=0.5, seed=1)
    assert [other.delay(1, "fan:a/flaky")] != [policy.delay(1, "fan:a/flaky")]


# ---- isolation and budgets -----------------------------------------------------------------------


def test_a_failed_attempt_writes_are_discarded_at_the_top_level() -> None:
    result = fl.run(
        fl.Step(Flaky(2, 0.0), retry=fl.Retry(3, backoff=0)), Ctx(n=10), clock="virtual"
    )
    assert result.context.n == 11
    assert result.context.log == ["attempt 3"]


def test_a_failed_attempt_writes_are_discarded_inside_a_branch() -> None:
    pipe = fl.Parallel(
        {"a": Flaky(1, 0.0), "b": Flaky(2, 0.0)},
        merge="accumulate",
        retry=fl.Retry(attempts=3, backoff=0.5, jitter=0),
        name="fan",
    )
    result = fl.run(pipe, Ctx(n=10), clock="virtual")
    assert result.context.n == 12  # one successful +1 per branch
    assert result.context.log == ["attempt 2", "attempt 3"]
    diffs = result.diffs
    assert set(diffs[diffs["path"] == "n"]["after"]) == {11}


def test_each_attempt_gets_its_own_copy_of_the_input() -> None:
    seen: list[list[int]] = []

    def mutate(data: list[int], ctx: Ctx) -> int:
        seen.append(list(data))
        data.append(99)
        if len(seen) < 3:
            raise ValueError("again")
        return len(data)

    pipe = fl.Pipeline(lambda: [1, 2], fl.Step(mutate, retry=fl.Retry(3, backoff=0)))
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert seen == [[1, 2], [1, 2], [1, 2]]
    assert result.output == 3


def test_every_attempt_is_charged_and_on_its_row() -> None:
    async def paid(data: Any, ctx: Ctx) -> None:
        fl.charge(cost=1.0, tokens=10)
        if len(calls) < 2:
            calls.append(1)
            raise ValueError("503")

    calls: list[int] = []
    pipe = fl.Parallel({"a": fl.Step(paid, retry=fl.Retry(3, backoff=1, jitter=0))}, name="fan")
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert (result.cost, result.tokens) == (3.0, 30)
    assert list(result.attempts["cost"]) == [1.0, 1.0, 1.0]
    assert list(result.attempts["tokens"]) == [10, 10, 10]
    assert result.branches.loc[0, "cost"] == 3.0  # the branch row holds every attempt's charge


def test_a_crossed_budget_is_not_retried() -> None:
    async def paid(data: Any, ctx: Ctx) -> None:
        fl.charge(cost=1.0)
        raise ValueError("503")

    pipe = fl.Parallel({"a": fl.Step(paid, retry=fl.Retry(10, backoff=0))}, name="fan")
    with pytest.raises(fl.UsageLimitExceeded) as info:
        fl.run(pipe, Ctx(), usage=fl.UsageLimits(cost=2.5), clock="virtual")
    result = info.value.result
    assert result is not None
    assert list(result.attempts["status"]) == ["failed", "failed", "failed"]
    assert "UsageLimitExceeded" in result.attempts["error"].iloc[-1]
    assert result.cost == 3.0


# ---- timeouts and cancellation -------------------------------------------------------------------


def test_timeout_is_per_attempt() -> None:
    durations = iter([5.0, 5.0, 0.5])

    async def slow(data: Any, ctx: Ctx) -> str:
        await asyncio.sleep(next(durations))
        return "done"

    step = fl.Step(slow, timeout=1.0, retry=fl.Retry(3, backoff=0.5, factor=1, jitter=0))
    result = fl.run(step, Ctx(), clock="virtual")
    assert result.output == "done"
    assert rows(result, "started_s", "finished_s", "status") == [
        (0.0, 1.0, "timeout"),
        (1.5, 2.5, "timeout"),
        (3.0, 3.5, "ok"),
    ]


def test_branch_timeout_covers_every_attempt_and_the_waits() -> None:
    pipe = fl.Parallel(
        {"a": Flaky(100, 1.0)},
        retry=fl.Retry(attempts=10, backoff=1.0, factor=1.0, jitter=0),
        branch_timeout=3.5,
        on_failure="ignore",
        name="fan",
    )
    result = fl.run(pipe, Ctx(), clock="virtual")
    branch = result.branches.iloc[0]
    assert (branch["status"], branch["finished_s"]) == ("timeout", 3.5)
    # attempt 1: 0-1, wait 1, attempt 2: 2-3, wait 1 -> cancelled by the branch timeout at 3.5
    assert rows(result, "attempt", "started_s", "finished_s", "status") == [
        (1, 0.0, 1.0, "failed"),
        (2, 2.0, 3.0, "failed"),
    ]
    assert result.steps[result.steps["kind"] == "step"]["status"].tolist() == ["cancelled"]


def test_a_cancelled_attempt_is_never_retried() -> None:
    async def fails_later(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(1.0)
        raise RuntimeError("b broke")

    slow = Flaky(0, seconds=10.0)
    pipe = fl.Parallel(
        {"a": fl.Step(slow, retry=fl.Retry(5, backoff=0)), "b": fails_later},
        on_failure="fail_fast",
        name="fan",
    )
    result = fl.run(pipe, Ctx(), clock="virtual", raise_on_error=False)
    assert slow.calls == 1
    assert rows(result, "attempt", "finished_s", "status") == [(1, 1.0, "cancelled")]


def test_an_error_raised_while_cancelled_is_not_retried() -> None:
    calls: list[int] = []

    async def stubborn(data: Any, ctx: Ctx) -> None:
        calls.append(1)
        try:
            await asyncio.sleep(10.0)
        except asyncio.CancelledError:
            raise ValueError("cleaning up went wrong") from None

    pipe = fl.Parallel(
        {"a": fl.Step(stubborn, retry=fl.Retry(5, backoff=0))},
        branch_timeout=1.0,
        on_failure="ignore",
        name="fan",
    )
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert calls == [1]
    assert rows(result, "attempt", "finished_s", "status") == [(1, 1.0, "failed")]
    assert "cleaning up went wrong" in result.branches.loc[0, "error"]


class Boom(BaseException):
    """Neither an Exception nor a cancellation."""


def test_base_exceptions_are_never_retried() -> None:
    calls: list[int] = []

    def boom(data: Any, ctx: Ctx) -> None:
        calls.append(1)
        raise Boom("stop")

    with pytest.raises(Boom):
        fl.run(fl.Step(boom, retry=fl.Retry(5, backoff=0)), Ctx(), clock="virtual")
    assert calls == [1]
    assert not fl.Retry().retries(KeyboardInterrupt())
    assert not fl.Retry().retries(asyncio.CancelledError())


def test_on_selects_what_is_retried() -> None:
    only_key = fl.Step(Flaky(1, 0.0), retry=fl.Retry(3, backoff=0, on=KeyError))
    result = fl.run(only_key, Ctx(), clock="virtual", raise_on_error=False)
    assert (result.status, len(result.attempts)) == ("failed", 1)

    rate_limited = fl.Retry(3, backoff=0, on=lambda err: "429" in str(err))
    result = fl.run(fl.Step(Flaky(2, 0.0), retry=rate_limited), Ctx(), clock="virtual")
    assert (result.status, len(result.attempts)) == ("ok", 3)
    assert fl.Retry(on=(TimeoutError, ValueError)).retries(fl.StepTimeout("late"))
    assert not fl.Retry(on=ValueError).retries(fl.ConfigError("a bug in the pipeline"))


# ---- where a policy applies ----------------------------------------------------------------------


def test_a_parallel_policy_reaches_every_leaf_and_a_step_policy_beats_it() -> None:
    own = Flaky(5, 0.0)
    inner_a, inner_b = Flaky(1, 0.0), Flaky(1, 0.0)
    pipe = fl.Parallel(
        {
            "own": fl.Step(own, retry=fl.Retry(2, backoff=0)),
            "nested": fl.Pipeline(fl.Step(inner_a, name="first"), fl.Step(inner_b, name="then")),
        },
        retry=fl.Retry(4, backoff=0),
        on_failure="ignore",
        name="fan",
    )
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert own.calls == 2  # its own policy: 2 attempts, not 4
    assert (inner_a.calls, inner_b.calls) == (2, 2)
    counts = result.attempts.groupby("path")["attempt"].max().to_dict()
    assert counts == {"fan:own/flaky": 2, "fan:nested/first": 2, "fan:nested/then": 2}
    assert set(result.attempts["branch"]) == {"fan:own", "fan:nested"}
    # in the two-step branch, each step's failed first attempt left nothing behind
    assert (result.context.n, result.context.log) == (2, ["attempt 2", "attempt 2"])
    failed_branch = result.diffs[result.diffs["branch"] == "own"]
    assert set(failed_branch["branch_status"]) == {"failed"}  # recorded, never merged


def test_a_map_policy_reaches_its_items() -> None:
    class Docs(BaseModel):
        docs: list[int] = [1, 2, 3]

    failed: set[int] = set()

    async def embed(doc: int, ctx: Docs) -> int:
        await asyncio.sleep(1.0)
        if doc == 2 and doc not in failed:
            failed.add(doc)
            raise ConnectionError("reset")
        return doc * 10

    pipe = fl.Map(embed, over="docs", retry=fl.Retry(2, backoff=1.0, jitter=0), name="embed")
    result = fl.run(pipe, Docs(), clock="virtual")
    assert result.output == [10, 20, 30]
    assert rows(result, "branch", "attempt", "started_s", "status") == [
        ("embed:0", 1, 0.0, "ok"),
        ("embed:1", 1, 0.0, "failed"),
        ("embed:2", 1, 0.0, "ok"),
        ("embed:1", 2, 2.0, "ok"),
    ]
    assert result.makespan_s == 3.0


def test_the_run_wide_cap_is_given_back_while_waiting() -> None:
    async def steady(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(2.0)

    pipe = fl.Parallel(
        {"a": fl.Step(Flaky(1, 1.0), retry=fl.Retry(2, backoff=5.0, jitter=0)), "b": steady},
        name="fan",
    )
    result = fl.run(pipe, Ctx(), clock="virtual", max_concurrency=1)
    leaves = result.steps[result.steps["kind"] == "step"].set_index("path")
    assert leaves.loc["fan:b/steady", "started_s"] == 1.0  # b runs while a waits out its backoff
    assert rows(result, "started_s", "finished_s") == [(0.0, 1.0), (6.0, 7.0)]


def test_the_run_wide_rate_spaces_every_attempt() -> None:
    # A retried request is a request: each attempt takes a token of fl.run(rate=...), the first
    # one included (a leaf with a policy used to skip the run's rate altogether). Waiting starts
    # go by the branch's place in the tree, as under the run-wide cap: a's retries before b.
    pipe = fl.Parallel(
        {"a": Flaky(2, 0.0), "b": Flaky(0, 0.0)},
        retry=fl.Retry(3, backoff=0.0, jitter=0),
        name="fan",
    )
    result = fl.run(pipe, Ctx(), clock="virtual", rate=fl.limits.Rate(per_second=1))
    assert rows(result, "branch", "attempt", "started_s", "status") == [
        ("fan:a", 1, 0.0, "failed"),
        ("fan:a", 2, 1.0, "failed"),
        ("fan:a", 3, 2.0, "ok"),
        ("fan:b", 1, 3.0, "ok"),
    ]
    assert (result.limits["event"] == "wait").sum() == 3


def test_sync_steps_are_retried_in_their_thread() -> None:
    calls: list[int] = []

    def blocking(data: Any, ctx: Ctx) -> int:
        calls.append(1)
        if len(calls) < 2:
            raise OSError("busy")
        return len(calls)

    result = fl.run(fl.Step(blocking, retry=fl.Retry(2, backoff=0.25)), Ctx(), clock="virtual")
    assert result.output == 2
    assert list(result.attempts["status"]) == ["failed", "ok"]


def test_attempts_frame_is_empty_without_a_policy_and_typed() -> None:
    result = fl.run(fl.Parallel({"a": Flaky(0, 0.0)}), Ctx(), clock="virtual")
    frame = result.attempts
    assert len(frame) == 0
    assert list(frame.columns) == [
        "step", "path", "branch", "attempt", "delay_s", "started_s", "finished_s", "duration_s",
        "status", "error", "cost", "tokens",
    ]  # fmt: skip
    assert str(frame["started_s"].dtype) == "float64"
    assert str(frame["status"].dtype) == "category"


def test_compare_can_sweep_retry_policies() -> None:
    calls: dict[int, int] = {}

    async def first_call_fails(data: Any, ctx: Ctx) -> None:  # in every run
        run = id(current_run())
        calls[run] = calls.get(run, 0) + 1
        await asyncio.sleep(1.0)
        if calls[run] == 1:
            raise ValueError("cold start")

    pipe = fl.Pipeline(fl.Parallel({"a": first_call_fails}, on_failure="ignore", name="fan"))
    policies = [None, fl.Retry(2, backoff=1.0, jitter=0)]
    cmp = fl.compare(pipe, Ctx(), grid={"fan.retry": policies}, clock="virtual")
    assert list(cmp.frame["fan.retry"]) == [None, repr(policies[1])]  # shown by its repr
    assert list(cmp.frame["makespan_s"]) == [1.0, 3.0]  # the retried run waited and tried again
    assert [len(r.attempts) for r in cmp.results] == [0, 2]
    assert [r.branches.loc[0, "status"] for r in cmp.results] == ["failed", "ok"]


# ---- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"attempts": 0}, ["attempts=0", ">= 1"]),
        ({"attempts": 2.5}, ["attempts=2.5", "whole number"]),
        ({"attempts": True}, ["attempts=True", "whole number"]),
        ({"backoff": -1.0}, ["backoff=-1.0", ">= 0"]),
        ({"backoff": math.nan}, ["backoff=nan", ">= 0"]),
        ({"factor": 0.5}, ["factor=0.5", ">= 1"]),
        ({"factor": math.nan}, ["factor=nan", ">= 1"]),
        ({"max_backoff": math.inf}, ["max_backoff=inf", ">= 0"]),
        ({"backoff": 5.0, "max_backoff": 1.0}, ["max_backoff=1.0", ">= backoff=5.0"]),
        ({"jitter": 1.5}, ["jitter=1.5", "between 0 and 1"]),
        ({"jitter": -0.1}, ["jitter=-0.1", "between 0 and 1"]),
        ({"jitter": "some"}, ["jitter='some'", "between 0 and 1"]),
        ({"on": "ValueError"}, ["on='ValueError'", "Exception subclass"]),
        ({"on": (int,)}, ["on=(<class 'int'>,)", "Exception subclass"]),
        ({"on": ()}, ["on=()", "Exception subclass"]),
        ({"on": (KeyboardInterrupt,)}, ["KeyboardInterrupt", "never retried"]),
        ({"seed": "x"}, ["seed='x'", "whole number"]),
    ],
)
def test_bad_retry_arguments_are_config_errors(kwargs: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(fl.ConfigError) as info:
        fl.Retry(**kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("make", [
    lambda: fl.Step(print, retry=3),
    lambda: fl.Parallel({"a": print}, retry="fast"),
    lambda: fl.Map(print, retry={"attempts": 3}),
])  # fmt: skip
def test_retry_must_be_a_retry_object(make: Any) -> None:
    with pytest.raises(fl.ConfigError, match=r"retry=.* is not valid; give fl.Retry\("):
        make()


def test_a_steps_own_rate_spaces_its_retries_too() -> None:
    # A retry is a new request: under the Parallel's own rate= it waits for a token like a
    # branch start (on virtual time, exactly one second apart at 1/s).
    calls: list[float] = []

    async def flaky(data: Any, ctx: Ctx) -> str:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) < 3:
            raise ValueError("429")
        return "done"

    pipe = fl.Parallel(
        {"a": flaky},
        rate=fl.limits.Rate(per_second=1),
        retry=fl.Retry(attempts=3, backoff=0, jitter=0),
        name="fan",
    )
    result = fl.run(pipe, Ctx(), clock="virtual")
    assert result.output == {"a": "done"}
    assert list(result.attempts["started_s"]) == [0.0, 1.0, 2.0]
    waits = result.limits[(result.limits["event"] == "wait") & (result.limits["step"] == "fan")]
    assert list(waits["wait_s"]) == [1.0, 1.0]  # each held retry is a row


def test_a_maps_rate_spaces_retries_and_branch_starts_together() -> None:
    tries: dict[int, int] = {}

    async def flaky(item: int, ctx: Ctx) -> int:
        tries[item] = tries.get(item, 0) + 1
        if item == 0 and tries[item] == 1:
            raise ValueError("429")
        return item

    class Items(BaseModel):
        items: list[int] = [0, 1, 2]

    pipe = fl.Map(
        flaky, over="items", rate=fl.limits.Rate(per_second=1),
        retry=fl.Retry(attempts=2, backoff=0, jitter=0), name="m",
    )  # fmt: skip
    result = fl.run(pipe, Items(), clock="virtual")
    assert result.output == [0, 1, 2]
    starts = sorted(result.attempts["started_s"])
    assert starts == [0.0, 1.0, 2.0, 3.0]  # 3 branch starts and 1 retry: one token each
