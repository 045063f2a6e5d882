"""fl.compare: the grid's cross product, one frame row per run, outcomes that follow the rules."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

import pandas as pd
import pytest
from pydantic import BaseModel

import flowlab as fl

N, D = 7, 1.5  # branches, seconds each
BASE = 100


class Ctx(BaseModel):
    counter: int = BASE  # no field rule: the strategy decides
    done: Annotated[int, fl.merge.Sum()] = 0
    scores: dict[str, float] = {}
    note: str = ""


def branch(i: int) -> Any:
    async def step(data: Any, ctx: Ctx) -> int:
        await asyncio.sleep(D)
        ctx.counter += i + 1  # branch i adds i + 1
        ctx.done += 1
        ctx.scores[f"b{i}"] = float(i)
        ctx.note = f"b{i}"
        return i

    return step


def fanout(name: str = "fan") -> fl.Parallel:
    return fl.Parallel({f"b{i}": branch(i) for i in range(N)}, name=name)


@pytest.fixture(scope="module")
def sweep() -> fl.Comparison:
    return fl.compare(
        fl.Pipeline(fanout()), Ctx(),
        grid={"merge": ["overwrite", "keep_first", "accumulate"], "max_concurrency": [1, 2, 4]},
        repeat=2, progress=False,
    )  # fmt: skip


def test_three_strategies_by_three_caps_by_two_repeats_is_18_rows(sweep: fl.Comparison) -> None:
    frame = sweep.frame
    assert len(frame) == len(sweep.results) == 18
    assert list(frame.columns[:3]) == ["merge", "max_concurrency", "repeat"]
    for col in ("makespan_s", "peak_concurrency", "utilization", "status", "conflicts", "cost",
                "tokens", "ctx.counter", "ctx.done", "ctx.note"):  # fmt: skip
        assert col in frame.columns
    assert "ctx.scores" not in frame.columns  # default fields: scalars only
    combos = frame.groupby(["merge", "max_concurrency"], observed=True)["repeat"].apply(sorted)
    assert len(combos) == 9 and all(r == [0, 1] for r in combos)
    assert (frame["status"].astype(str) == "ok").all()
    assert (
        str(frame["merge"].dtype) == "category" and str(frame["max_concurrency"].dtype) == "Int64"
    )


def test_makespans_on_virtual_time_are_ceil_n_over_k_times_d(sweep: fl.Comparison) -> None:
    for row in sweep.frame.itertuples():
        k = int(row.max_concurrency)
        assert row.makespan_s == pytest.approx(math.ceil(N / k) * D, abs=1e-9)
        assert row.peak_concurrency == min(k, N)


def test_merged_counter_follows_each_strategys_rule(sweep: fl.Comparison) -> None:
    increments = [i + 1 for i in range(N)]
    expected = {
        "overwrite": BASE + increments[-1],  # last writer in declared order wins
        "keep_first": BASE + increments[0],  # first writer wins
        "accumulate": BASE + sum(increments),  # base + Σ(branch − base)
    }
    got = sweep.frame.groupby("merge", observed=True)["ctx.counter"].unique()
    assert {m: list(v) for m, v in got.items()} == {m: [v] for m, v in expected.items()}
    # a Sum field adds up under every strategy
    assert (sweep.frame["ctx.done"] == N).all()
    notes = sweep.frame.groupby("merge", observed=True)["ctx.note"].first().to_dict()
    assert notes == {"overwrite": f"b{N - 1}", "keep_first": "b0", "accumulate": f"b{N - 1}"}


def test_results_line_up_with_rows(sweep: fl.Comparison) -> None:
    for row, result in zip(sweep.frame.to_dict("records"), sweep.results, strict=True):
        assert result.summary()["makespan_s"] == row["makespan_s"]
        assert result.context.counter == row["ctx.counter"]
    picked = sweep.result(merge="keep_first", max_concurrency=2, repeat=1)
    i = sweep.results.index(picked)
    assert sweep.frame.loc[i, ["merge", "max_concurrency", "repeat"]].tolist() == [
        "keep_first",
        2,
        1,
    ]
    assert picked.context.counter == BASE + 1
    with pytest.raises(fl.ConfigError, match=r"no run with \{'merge': 'deep'\}"):
        sweep.result(merge="deep")
    with pytest.raises(
        fl.ConfigError,
        match=r"grid key='order' is not valid; choose one of 'merge', 'max_concurrency'",
    ):
        sweep.result(order="declared")


def test_summary_has_one_row_per_combination(sweep: fl.Comparison) -> None:
    summary = sweep.summary()
    assert len(summary) == 9
    row = summary.loc[(summary["merge"] == "accumulate") & (summary["max_concurrency"] == 4)].iloc[
        0
    ]
    assert row["runs"] == 2 and row["ok"] == 2
    assert row["makespan_s"] == pytest.approx(math.ceil(N / 4) * D)
    assert row["makespan_std"] == 0.0
    assert row["ctx.counter"] == BASE + sum(range(1, N + 1))


def test_step_key_targets_one_parallel() -> None:
    pipe = fl.Pipeline(fanout("first"), fanout("second"))
    cmp = fl.compare(
        pipe, Ctx(), grid={"second.max_concurrency": [1, 7]}, progress=False, fields=[]
    )
    assert list(cmp.frame.columns[:2]) == ["second.max_concurrency", "repeat"]
    # "first" stays uncapped (D seconds); "second" takes ceil(N/k)·D
    assert cmp.frame["makespan_s"].tolist() == pytest.approx([D + N * D, D + D])
    assert [c for c in cmp.frame.columns if c.startswith("ctx.")] == []


def test_plain_key_applies_to_every_parallel_including_nested() -> None:
    inner = fl.Parallel({"x": branch(0), "y": branch(1)}, name="inner")
    outer = fl.Parallel({"a": branch(2), "n": fl.Pipeline(inner)}, name="outer")
    cmp = fl.compare(outer, Ctx(), grid={"max_concurrency": [1]}, progress=False)
    # outer serial: a (D), then n whose inner is serial too (2 D)
    assert cmp.frame["makespan_s"].tolist() == pytest.approx([3 * D])


def test_run_level_cap_bounds_leaf_steps_across_the_run() -> None:
    inner = fl.Parallel({"x": branch(0), "y": branch(1), "z": branch(2)}, name="inner")
    outer = fl.Parallel({"a": branch(3), "n": fl.Pipeline(inner)}, name="outer")
    cmp = fl.compare(outer, Ctx(), grid={"run.max_concurrency": [1, 2, None]}, progress=False)
    frame = cmp.frame
    assert frame["run.max_concurrency"].tolist()[:2] == [1, 2]
    assert frame["makespan_s"].tolist() == pytest.approx([4 * D, 2 * D, D])
    assert frame["peak_concurrency"].tolist() == [1, 2, 4]


def test_failed_runs_become_rows_with_status_and_conflicts() -> None:
    cmp = fl.compare(
        fanout(), Ctx(), grid={"merge": ["overwrite", "error_on_conflict"]}, progress=False
    )
    frame = cmp.frame.set_index("merge")
    assert str(frame.loc["overwrite", "status"]) == "ok"
    assert frame.loc["overwrite", "conflicts"] == 0
    assert str(frame.loc["error_on_conflict", "status"]) == "failed"
    assert frame.loc["error_on_conflict", "error"].startswith("MergeConflict: ")
    conflicting = cmp.results[1].merges["conflict"].sum()
    assert frame.loc["error_on_conflict", "conflicts"] == conflicting >= 2  # counter and note
    assert frame.loc["error_on_conflict", "ctx.counter"] == BASE  # nothing was applied


def test_fields_reach_dict_keys_and_validate() -> None:
    cmp = fl.compare(fanout(), Ctx(), grid={"merge": ["overwrite", "deep"]}, fields=["scores.b0", "counter"],
                     progress=False)  # fmt: skip
    assert list(cmp.frame.columns[-2:]) == ["ctx.scores.b0", "ctx.counter"]
    # overwrite keeps the last writer's whole dict (no b0); deep merges keys
    b0 = cmp.frame["ctx.scores.b0"]
    assert pd.isna(b0.iat[0]) and b0.iat[1] == 0.0
    with pytest.raises(
        fl.ConfigError, match=r"fields='nope' is not valid; choose one of 'counter', 'done'"
    ):
        fl.compare(fanout(), Ctx(), grid={"merge": ["deep"]}, fields=["nope"], progress=False)


def test_usage_and_cost_are_tabulated() -> None:
    async def paid(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(1)
        fl.charge(cost=0.25, tokens=100)

    cmp = fl.compare(fl.Parallel({"a": paid, "b": paid}), Ctx(), grid={"max_concurrency": [1, 2]},
                     usage=fl.UsageLimits(cost=0.4), progress=False)  # fmt: skip
    # the shared budget breaks at the second charge in both runs
    assert cmp.frame["status"].astype(str).tolist() == ["usage_limit_exceeded"] * 2
    assert cmp.frame["cost"].tolist() == [0.5, 0.5]
    assert cmp.frame["tokens"].tolist() == [200, 200]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (
            {"merj": ["deep"]},
            r"grid key 'merj' is not valid; choose one of 'merge', 'order', 'max_concurrency'.*'fan'.*'run.max_concurrency'",
        ),
        ({"nope.merge": ["deep"]}, r"grid key 'nope.merge' is not valid.*<step> one of 'fan'"),
        ({"fan.color": ["red"]}, r"grid key 'fan.color' is not valid"),
        ({"run.merge": ["deep"]}, r"grid key 'run.merge' is not valid"),
        ({"merge": []}, r"grid\['merge'\]=\[\] is not valid; give a non-empty list"),
        ({"merge": "deep"}, r"grid\['merge'\]='deep' is not valid"),
        ({}, r"grid=\{\} is not valid"),
    ],
)
def test_bad_grids_name_the_key_and_the_valid_ones(grid: dict[str, Any], message: str) -> None:
    with pytest.raises(fl.ConfigError, match=message):
        fl.compare(fanout(), Ctx(), grid=grid, progress=False)


def test_a_bad_value_fails_before_any_run_and_chains_the_cause() -> None:
    calls: list[int] = []

    async def counted(data: Any, ctx: Ctx) -> None:
        calls.append(1)

    with pytest.raises(
        fl.ConfigError, match=r"grid combination \{'max_concurrency': 0\}: max_concurrency=0"
    ) as info:
        fl.compare(
            fl.Parallel({"a": counted}), Ctx(), grid={"max_concurrency": [2, 0]}, progress=False
        )
    assert isinstance(info.value.__cause__, fl.ConfigError)
    assert calls == []


def test_bad_keywords() -> None:
    with pytest.raises(fl.ConfigError, match="raise_on_error is not a compare"):
        fl.compare(fanout(), Ctx(), grid={"merge": ["deep"]}, raise_on_error=True)
    with pytest.raises(
        fl.ConfigError, match=r"run keyword='inptu' is not valid; choose one of 'input'"
    ):
        fl.compare(fanout(), Ctx(), grid={"merge": ["deep"]}, inptu=1)
    with pytest.raises(fl.ConfigError, match=r"max_concurrency= is given both"):
        fl.compare(fanout(), Ctx(), grid={"run.max_concurrency": [1]}, max_concurrency=2)
    with pytest.raises(fl.ConfigError, match=r"repeat=0 is not valid"):
        fl.compare(fanout(), Ctx(), grid={"merge": ["deep"]}, repeat=0)
    with pytest.raises(
        fl.ConfigError, match=r"progress='yes' is not valid; choose one of True, False, 'auto'"
    ):
        fl.compare(fanout(), Ctx(), grid={"merge": ["deep"]}, progress="yes")
    with pytest.raises(fl.ConfigError, match=r"pipeline has no Parallel step"):
        fl.compare(fl.Pipeline(branch(0)), Ctx(), grid={"merge": ["deep"]})


def test_progress_bar_counts_runs(capsys: pytest.CaptureFixture[str]) -> None:
    fl.compare(fanout(), Ctx(), grid={"max_concurrency": [1, 2, 3]}, progress=True)
    err = capsys.readouterr().err
    assert "compare" in err and "0/3" in err and "max_concurrency=3" in err
    fl.compare(fanout(), Ctx(), grid={"max_concurrency": [1, 2, 3]}, progress=False)
    assert capsys.readouterr().err == ""


def test_compare_works_inside_a_running_loop() -> None:
    async def cell() -> fl.Comparison:
        return fl.compare(fanout(), Ctx(), grid={"max_concurrency": [2]}, progress=False)

    cmp = asyncio.run(cell())
    assert cmp.frame["makespan_s"].tolist() == pytest.approx([math.ceil(N / 2) * D])


def test_limiter_objects_appear_as_their_repr() -> None:
    cmp = fl.compare(
        fanout(), Ctx(), grid={"max_concurrency": [fl.limits.Fixed(3), None]}, progress=False
    )
    assert cmp.frame["max_concurrency"].tolist() == ["Fixed(3)", None]
    assert cmp.result(max_concurrency=fl.limits.Fixed(3)).summary()["peak_concurrency"] == 3


def test_display_and_html_escape_user_strings(tmp_path: Any) -> None:
    async def evil(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(1)
        ctx.note = "<script>alert(1)</script>"

    cmp = fl.compare(
        fl.Parallel({"<img src=x>": evil}), Ctx(), grid={"merge": ["overwrite"]}, progress=False
    )
    html = cmp._repr_html_()
    assert (
        "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    )
    assert html.count("<img") == 1  # the plot, not the branch name
    page = cmp.to_html(tmp_path / "cmp.html")
    assert (tmp_path / "cmp.html").read_text(encoding="utf-8") == page
    assert "<script>" not in page
    assert repr(cmp).startswith("<Comparison runs=1 grid={'merge': ['overwrite']}")


def test_plot_method_draws_the_comparison(sweep: fl.Comparison) -> None:
    from matplotlib.figure import Figure

    ax = sweep.plot(ax=Figure().add_subplot())
    assert ax.get_xlabel() == "max_concurrency" and ax.get_ylabel() == "makespan_s"
    assert sorted(c.get_label() for c in ax.containers) == ["accumulate", "keep_first", "overwrite"]
    means = sweep.frame.groupby("max_concurrency")["makespan_s"].mean()
    for c in ax.containers:
        assert list(c.lines[0].get_ydata()) == pytest.approx(means.tolist())
    assert isinstance(sweep.frame, pd.DataFrame)
