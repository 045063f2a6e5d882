"""fl.limits.Rate: starts per second / minute and a rolling token window, exact on virtual time."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.core.rate import RateState
from flowlab.engine.clock import run_virtual


class Ctx(BaseModel):
    n: int = 0


async def instant(data: object, ctx: Ctx) -> None:
    return None


def sleeper(seconds: float, tokens: int = 0) -> Any:
    async def step(data: object, ctx: Ctx) -> float:
        if tokens:
            fl.charge(tokens=tokens)
        await asyncio.sleep(seconds)
        return seconds

    return step


def fan(n: int, step: Any = instant, **options: Any) -> fl.Parallel:
    return fl.Parallel({f"b{i}": step for i in range(n)}, name="fan", **options)


# ---- the bucket, exactly --------------------------------------------------------------------
def test_fifty_instant_branches_at_ten_per_second_start_a_tenth_apart() -> None:
    result = fl.run(fan(50, rate=fl.limits.Rate(per_second=10)), Ctx(), clock="virtual")
    starts = result.branches["started_s"].tolist()
    assert starts == [i / 10 for i in range(50)]
    assert starts[-1] == 4.9
    assert result.makespan_s == 4.9


def test_per_minute_is_the_same_grid_in_minutes() -> None:
    result = fl.run(fan(5, rate=fl.limits.Rate(per_minute=30)), Ctx(), clock="virtual")
    assert result.branches["started_s"].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_a_burst_starts_at_once_then_the_rate_spaces_the_rest() -> None:
    result = fl.run(fan(6, rate=fl.limits.Rate(per_second=2, burst=3)), Ctx(), clock="virtual")
    assert result.branches["started_s"].tolist() == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]


def test_the_bucket_refills_during_an_idle_spell() -> None:
    state = fl.limits.Rate(per_second=1, burst=2).new_state()
    for t in (0.0, 0.0):
        assert state.delay(t) == 0.0
        state.take(t)
    assert state.delay(0.0) == 1.0
    assert state.delay(10.0) == 0.0  # idle long enough: the bucket is full again
    state.take(10.0)
    state.take(10.0)
    assert state.delay(10.0) == 1.0


def test_a_rate_and_a_cap_together_each_bind() -> None:
    # 4 branches of 1 s, at most 2 at once, at most 10 starts per second
    result = fl.run(fan(4, sleeper(1.0), rate=fl.limits.Rate(per_second=10), max_concurrency=2),
                    Ctx(), clock="virtual")  # fmt: skip
    assert result.branches["started_s"].tolist() == [0.0, 0.1, 1.0, 1.1]
    assert result.makespan_s == 2.1


def test_priority_still_orders_the_starts_under_a_rate() -> None:
    pipe = fan(3, rate=fl.limits.Rate(per_second=1), priority={"b2": 5})
    rows = fl.run(pipe, Ctx(), clock="virtual").branches.set_index("branch")
    assert rows["started_s"].to_dict() == {"b2": 0.0, "b0": 1.0, "b1": 2.0}


def test_run_wide_rate_spaces_leaf_starts_across_parallels_and_nesting() -> None:
    inner = fl.Parallel({"x": instant, "y": instant}, name="inner")
    pipe = fl.Pipeline(fl.Parallel({"a": instant, "b": inner, "c": instant}, name="outer"))
    result = fl.run(pipe, Ctx(), clock="virtual", rate=fl.limits.Rate(per_second=4))
    leaves = result.steps.loc[result.steps["kind"] == "step"]
    assert sorted(leaves["started_s"].tolist()) == [0.0, 0.25, 0.5, 0.75]
    rows = result.branches.set_index("path")
    # a branch starts when its first leaf passes the rate
    assert rows.loc["outer:b", "started_s"] == rows["started_s"].loc[["outer:b/inner:x",
                                                                    "outer:b/inner:y"]].min()  # fmt: skip


def test_run_wide_rate_fifty_branches() -> None:
    result = fl.run(fan(50), Ctx(), clock="virtual", rate=fl.limits.Rate(per_second=10))
    assert result.branches["started_s"].tolist() == [i / 10 for i in range(50)]


def test_arun_and_start_take_a_rate() -> None:
    async def main() -> tuple[float, float]:
        a = await fl.arun(fan(3), Ctx(), clock="virtual", rate=fl.limits.Rate(per_second=2))
        b = await fl.start(fan(3), Ctx(), clock="virtual", rate=fl.limits.Rate(per_second=4))
        return a.makespan_s, b.makespan_s

    assert run_virtual(main()) == (1.0, 0.5)


def test_fail_fast_under_a_rate_drops_the_queue_and_does_not_wait_for_the_rate() -> None:
    async def bad(data: object, ctx: Ctx) -> None:
        raise ValueError("no")

    branches = {"bad": bad, **{f"b{i}": instant for i in range(5)}}
    pipe = fl.Parallel(branches, rate=fl.limits.Rate(per_minute=1), on_failure="fail_fast",
                       name="fan")  # fmt: skip
    result = fl.run(pipe, Ctx(), clock="virtual", raise_on_error=False)
    assert result.status == "failed"
    assert result.makespan_s == 0.0  # not 60 s: nothing is left for the rate to let through
    rows = result.branches.set_index("branch")
    assert rows.loc["bad", "status"] == "failed"
    assert (rows.loc[[f"b{i}" for i in range(5)], "status"] == "cancelled").all()


def test_a_step_timeout_under_a_rate_ends_at_the_timeout() -> None:
    pipe = fan(5, rate=fl.limits.Rate(per_second=1), timeout=2.5)
    result = fl.run(pipe, Ctx(), clock="virtual", raise_on_error=False)
    assert result.status == "timeout"
    assert result.makespan_s == 2.5
    assert result.branches["started_s"].dropna().tolist() == [0.0, 1.0, 2.0]


def test_a_handle_cancel_of_a_queued_branch_under_a_rate() -> None:
    async def main() -> list[float]:
        handle = fl.start(fan(4, rate=fl.limits.Rate(per_second=1)), Ctx(), clock="virtual")
        await asyncio.sleep(0.5)
        handle.cancel("b1")  # still queued: it leaves the queue, b2 takes its start time
        result = await handle
        return result.branches["started_s"].fillna(-1).tolist()

    assert run_virtual(main()) == [0.0, -1, 1.0, 2.0]


# ---- the token window ---------------------------------------------------------------------
def test_token_window_holds_starts_until_the_window_ages_out() -> None:
    # each branch charges 60 tokens at its start, one at a time; 100 tokens per minute
    pipe = fan(4, sleeper(1.0, tokens=60), max_concurrency=1,
               rate=fl.limits.Rate(tokens_per_minute=100))  # fmt: skip
    result = fl.run(pipe, Ctx(), clock="virtual")
    # b0 at 0 (window 60), b1 at 1 (120: full), b2 when b0's 60 leave the window (t=60),
    # b3 when b1's leave (t=61)
    assert result.branches["started_s"].tolist() == [0.0, 1.0, 60.0, 61.0]
    waits = result.limits.loc[
        (result.limits["event"] == "wait") & (result.limits["limiter"] == "rate")
    ]
    assert waits[["time_s", "wait_s"]].values.tolist() == [[2.0, 58.0]]


def test_run_wide_token_window_counts_every_branch_charge() -> None:
    pipe = fan(3, sleeper(1.0, tokens=50))
    result = fl.run(pipe, Ctx(), clock="virtual", max_concurrency=1,
                    rate=fl.limits.Rate(tokens_per_minute=100))  # fmt: skip
    assert result.branches["started_s"].tolist() == [0.0, 1.0, 60.0]


def test_requests_and_tokens_in_one_rate() -> None:
    rate = fl.limits.Rate(per_second=1, tokens_per_minute=100)
    result = fl.run(fan(3, sleeper(0.0, tokens=60), rate=rate), Ctx(), clock="virtual")
    assert result.branches["started_s"].tolist() == [0.0, 1.0, 60.0]


def test_window_state_is_exact_at_its_edge() -> None:
    state = fl.limits.Rate(tokens_per_minute=10).new_state()
    state.add_tokens(5.0, 10)
    assert state.delay(5.0) == 60.0
    assert state.delay(64.0) == 1.0
    assert state.delay(65.0) == 0.0
    assert state.tokens_in_window == 0.0


# ---- records and plots --------------------------------------------------------------------
def test_waits_land_in_result_limits() -> None:
    result = fl.run(fan(5, rate=fl.limits.Rate(per_second=10)), Ctx(), clock="virtual")
    limits = result.limits
    assert list(limits.columns) == ["time_s", "step", "limit", "in_flight", "time", "limiter",
                                    "event", "key", "wait_s"]  # fmt: skip
    start = limits.loc[limits["event"] == "start"]
    assert start[["step", "limiter", "limit"]].values.tolist() == [["fan", "rate", 1]]
    waits = limits.loc[limits["event"] == "wait"]
    assert waits["time_s"].tolist() == [0.0, 0.1, 0.2, 0.3]
    assert [round(w, 12) for w in waits["wait_s"]] == [0.1] * 4


def test_a_plain_caps_spell_of_holding_branches_back_is_one_wait_row() -> None:
    # 5 branches of 1 s under a cap of 2: the last queued branch starts at 2 s
    result = fl.run(fan(5, sleeper(1.0), max_concurrency=2), Ctx(), clock="virtual")
    waits = result.limits.loc[result.limits["event"] == "wait"]
    assert waits[["step", "limiter", "time_s", "wait_s"]].values.tolist() == [
        ["fan", "fixed", 0.0, 2.0]
    ]


def test_the_run_wide_caps_spell_is_a_wait_row_of_run() -> None:
    result = fl.run(fan(5, sleeper(1.0)), Ctx(), clock="virtual", max_concurrency=2)
    waits = result.limits.loc[result.limits["event"] == "wait"]
    assert waits[["step", "limiter", "time_s", "wait_s"]].values.tolist() == [
        ["run", "fixed", 0.0, 2.0]
    ]


def test_concurrency_plot_shades_the_rate_waits() -> None:
    result = fl.run(fan(5, sleeper(0.05), rate=fl.limits.Rate(per_second=10)), Ctx(),
                    clock="virtual")  # fmt: skip
    ax = fl.plot.concurrency(result)
    shaded = [p for p in ax.patches if str(p.get_gid()).startswith("wait:rate:fan")]
    assert len(shaded) == 1  # four touching waits joined into one band
    box = shaded[0].get_path().transformed(shaded[0].get_patch_transform()).get_extents()
    x0, x1 = box.x0, box.x1
    assert (x0, round(x1, 9)) == (0.0, 0.4)
    assert "held by the rate (fan)" in ax.get_legend_handles_labels()[1]


def test_chrome_trace_has_the_waits() -> None:
    result = fl.run(fan(3, rate=fl.limits.Rate(per_second=10)), Ctx(), clock="virtual")
    names = [e["name"] for e in result.to_chrome_trace()["traceEvents"] if e.get("cat") == "limit"]
    assert len(names) == 2 and all(n.startswith("rate fan holds starts back") for n in names)


def test_state_repr_and_statistics() -> None:
    state = fl.limits.Rate(per_second=10).new_state()
    state.take(0.0)
    assert repr(state) == "<Rate per_second=10 burst=1 granted=1 next_in=0.1s>"
    assert state.statistics().granted == 1


def test_parallel_repr_and_replace_keep_the_rate() -> None:
    p = fan(2, rate=fl.limits.Rate(per_minute=60))
    assert "rate=Rate(per_minute=60)" in repr(p)
    assert p.replace(rate=None).rate is None
    assert p.replace(merge="deep").rate is p.rate


# ---- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "10", True])
@pytest.mark.parametrize("param", ["per_second", "per_minute", "tokens_per_minute"])
def test_bad_rates_are_config_errors_naming_parameter_value_and_choices(
    param: str, value: Any
) -> None:
    with pytest.raises(fl.ConfigError, match=rf"{param}={value!r}".replace("(", r"\(")) as err:
        fl.limits.Rate(**{param: value})
    assert "per_second=, per_minute= and/or tokens_per_minute=" in str(err.value)


def test_missing_or_doubled_rates_are_config_errors() -> None:
    with pytest.raises(fl.ConfigError, match=r"Rate\(\) has no rate; give at least one of"):
        fl.limits.Rate()
    with pytest.raises(fl.ConfigError, match="per_second=10 and per_minute=600 are both given"):
        fl.limits.Rate(per_second=10, per_minute=600)


@pytest.mark.parametrize("burst", [0, -2, 1.5, True])
def test_bad_burst(burst: Any) -> None:
    with pytest.raises(fl.ConfigError, match=rf"burst={burst!r} is not valid; give an integer"):
        fl.limits.Rate(per_second=1, burst=burst)


def test_a_number_for_rate_is_a_config_error_with_a_hint() -> None:
    with pytest.raises(fl.ConfigError, match=r"rate=10 is not valid.*HINT: rate=fl.limits.Rate"):
        fan(2, rate=10)
    with pytest.raises(fl.ConfigError, match=r"rate='fast' is not valid"):
        fl.run(fan(2), Ctx(), rate="fast")  # type: ignore[arg-type]


def test_a_rate_given_as_max_concurrency_says_where_it_goes() -> None:
    with pytest.raises(fl.ConfigError, match=r"HINT: pass it as rate=Rate\(per_second=5\)"):
        fan(2, max_concurrency=fl.limits.Rate(per_second=5))


def test_rate_states_are_fresh_per_run() -> None:
    pipe = fan(3, rate=fl.limits.Rate(per_second=10))
    first = fl.run(pipe, Ctx(), clock="virtual").branches["started_s"].tolist()
    second = fl.run(pipe, Ctx(), clock="virtual").branches["started_s"].tolist()
    assert first == second == [0.0, 0.1, 0.2]
    assert isinstance(pipe.rate.new_state(), RateState)  # type: ignore[union-attr]
