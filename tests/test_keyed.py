"""fl.limits.Keyed: caps per key (per model, per host) as a Parallel's max_concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.core.keyed import BranchInfo


class Ctx(BaseModel):
    n: int = 0


def sleeper(seconds: float) -> Any:
    async def step(data: object, ctx: Ctx) -> float:
        await asyncio.sleep(seconds)
        return seconds

    return step


def model_of(branch: BranchInfo) -> str:
    return branch.name.split("-")[0]


def models(gpt: int, claude: int, llama: int = 0, seconds: float = 1.0) -> dict[str, Any]:
    names = [f"gpt-{i}" for i in range(gpt)] + [f"claude-{i}" for i in range(claude)]
    names += [f"llama-{i}" for i in range(llama)]
    return {n: sleeper(seconds) for n in names}


def starts(result: fl.RunResult) -> dict[str, float]:
    return {str(k): float(v) for k, v in result.branches.set_index("branch")["started_s"].items()}


def test_each_key_has_its_own_cap_and_star_caps_each_other_key() -> None:
    lim = fl.limits.Keyed(key=model_of, limits={"gpt": 2, "*": 1})
    result = fl.run(fl.Parallel(models(4, 2, 2), max_concurrency=lim, name="fan"), Ctx(),
                    clock="virtual")  # fmt: skip
    assert starts(result) == {
        "gpt-0": 0.0, "gpt-1": 0.0, "gpt-2": 1.0, "gpt-3": 1.0,
        "claude-0": 0.0, "claude-1": 1.0,  # "*": 1 for claude ...
        "llama-0": 0.0, "llama-1": 1.0,  # ... and 1 for llama, each on its own
    }  # fmt: skip
    assert result.steps.set_index("path").loc["fan", "peak_concurrency"] == 4


def test_a_full_key_does_not_hold_up_another_key() -> None:
    # declared order puts every gpt first; claude still starts at 0
    lim = fl.limits.Keyed(key=model_of, limits={"gpt": 1, "claude": 1})
    result = fl.run(fl.Parallel(models(3, 1), max_concurrency=lim, name="fan"), Ctx(),
                    clock="virtual")  # fmt: skip
    assert starts(result) == {"gpt-0": 0.0, "gpt-1": 1.0, "gpt-2": 2.0, "claude-0": 0.0}


def test_priority_orders_within_a_key() -> None:
    lim = fl.limits.Keyed(key=model_of, limits={"*": 1})
    pipe = fl.Parallel(models(3, 0), max_concurrency=lim, priority={"gpt-2": 9}, name="fan")
    assert starts(fl.run(pipe, Ctx(), clock="virtual")) == {
        "gpt-2": 0.0, "gpt-0": 1.0, "gpt-1": 2.0,
    }  # fmt: skip


def test_the_key_callable_gets_a_branch_info() -> None:
    seen: list[BranchInfo] = []

    def key(branch: BranchInfo) -> str:
        seen.append(branch)
        return "all"

    lim = fl.limits.Keyed(key=key, limits={"all": 5})
    fl.run(fl.Parallel({"a": sleeper(0), "b": sleeper(0)}, max_concurrency=lim, name="fan"),
           Ctx(), clock="virtual")  # fmt: skip
    assert seen == [BranchInfo("a", 0, "fan", None), BranchInfo("b", 1, "fan", None)]


def test_keyed_waits_and_key_starts_land_in_result_limits() -> None:
    lim = fl.limits.Keyed(key=model_of, limits={"gpt": 1, "*": 2})
    result = fl.run(fl.Parallel(models(3, 1), max_concurrency=lim, name="fan"), Ctx(),
                    clock="virtual")  # fmt: skip
    limits = result.limits
    assert (limits["limiter"] == "keyed").all()
    rows = limits[["time_s", "event", "key", "limit", "wait_s"]].values.tolist()
    assert rows == [
        [0.0, "start", "gpt", 1, 0.0],
        [0.0, "start", "claude", 2, 0.0],
        [0.0, "wait", "gpt", 1, 1.0],  # gpt-1 held from 0 to 1
        [0.0, "wait", "gpt", 1, 2.0],  # gpt-2 held from 0 to 2 (its wait_s; was 1 to 2)
    ]
    # one row per held start, as long as its branch row's wait_s; in flight: the key's then
    waited = result.branches.set_index("branch")["wait_s"]
    assert limits.loc[limits["event"] == "wait", "wait_s"].tolist() == [
        waited["gpt-1"],
        waited["gpt-2"],
    ]
    assert (limits.loc[limits["event"] == "wait", "in_flight"] == 1).all()


def test_concurrency_plot_shades_full_key_waits_and_draws_no_bogus_cap() -> None:
    lim = fl.limits.Keyed(key=model_of, limits={"gpt": 1, "*": 2})
    result = fl.run(fl.Parallel(models(3, 1), max_concurrency=lim, name="fan"), Ctx(),
                    clock="virtual")  # fmt: skip
    ax = fl.plot.concurrency(result)
    assert not [ln for ln in ax.lines if str(ln.get_gid()).startswith("limit")]
    spans = [p for p in ax.patches if p.get_gid() == "wait:keyed:fan"]
    extents = [p.get_path().transformed(p.get_patch_transform()).get_extents() for p in spans]
    assert [(e.x0, e.x1) for e in extents] == [(0.0, 2.0)]


def test_keyed_state_repr_and_statistics() -> None:
    state = fl.limits.Keyed(key=model_of, limits={"gpt": 2}).new_state()
    key = state.key_of(BranchInfo("gpt-0", 0, "fan"))
    assert state.try_acquire_key(key)
    assert repr(state) == "<Keyed in_flight={'gpt': 1} waiting=0 peak=1>"
    assert state.statistics().per_key == {"gpt": 1}
    state.release_key(key)
    assert state.statistics().per_key == {"gpt": 0} and state.in_flight == 0


# ---- bad input ----------------------------------------------------------------------------
def test_an_unknown_key_without_star_fails_the_step_before_anything_starts() -> None:
    ran: list[str] = []

    async def step(data: object, ctx: Ctx) -> None:
        ran.append("x")

    lim = fl.limits.Keyed(key=model_of, limits={"gpt": 2})
    pipe = fl.Parallel({"gpt-0": step, "claude-0": step}, max_concurrency=lim, name="fan")
    with pytest.raises(fl.ConfigError) as err:
        fl.run(pipe, Ctx(), clock="virtual")
    assert str(err.value) == (
        "Keyed: key 'claude' (of branch 'claude-0') is not valid; choose one of 'gpt', or add "
        "a '*' entry for every other key."
    )
    assert ran == []
    assert err.value.result is not None
    assert err.value.result.steps.set_index("path").loc["fan", "status"] == "failed"


def test_a_key_callable_that_raises_is_a_config_error_chained() -> None:
    def key(branch: BranchInfo) -> str:
        raise KeyError(branch.name)

    pipe = fl.Parallel({"a": sleeper(0)}, max_concurrency=fl.limits.Keyed(key, {"*": 1}))
    with pytest.raises(fl.ConfigError, match=r"raised KeyError: 'a' for branch 'a'") as err:
        fl.run(pipe, Ctx(), clock="virtual")
    assert isinstance(err.value.__cause__, KeyError)


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        ({}, r"limits=\{\} is not valid; give a non-empty dict"),
        ([("gpt", 2)], r"limits=\[\('gpt', 2\)\] is not valid"),
        ({"gpt": 0}, r"limits\['gpt'\]=0 is not valid; a cap is an integer >= 1"),
        ({"*": 1.5}, r"limits\['\*'\]=1.5 is not valid"),
        ({"gpt": True}, r"limits\['gpt'\]=True is not valid"),
    ],
)
def test_bad_limits(limits: Any, match: str) -> None:
    with pytest.raises(fl.ConfigError, match=match):
        fl.limits.Keyed(key=model_of, limits=limits)


@pytest.mark.parametrize("key", ["model", None, int])
def test_bad_key(key: Any) -> None:
    with pytest.raises(fl.ConfigError, match=r"key=.* is not valid; give a callable branch -> key"):
        fl.limits.Keyed(key=key, limits={"*": 1})


def test_keyed_is_refused_as_a_run_wide_cap() -> None:
    lim = fl.limits.Keyed(key=model_of, limits={"*": 1})
    with pytest.raises(fl.ConfigError, match=r"is not valid for a whole run.*HINT: give it to"):
        fl.run(fl.Parallel({"a": sleeper(0)}), Ctx(), max_concurrency=lim)


def test_under_a_map_the_key_is_given_the_item_as_design_writes_it() -> None:
    from pydantic import BaseModel as _Base

    class Job(_Base):
        model: str
        n: int

    class Jobs(_Base):
        jobs: list[Job] = []

    running: dict[str, int] = {}
    peaks: dict[str, int] = {}

    async def ask(job: Job, ctx: Jobs) -> int:
        running[job.model] = running.get(job.model, 0) + 1
        peaks[job.model] = max(peaks.get(job.model, 0), running[job.model])
        await asyncio.sleep(1.0)
        running[job.model] -= 1
        return job.n

    jobs = [Job(model=m, n=i) for i, m in enumerate(["gpt", "gpt", "gpt", "claude", "claude"])]
    caps = fl.limits.Keyed(key=lambda item: item.model, limits={"gpt": 2, "*": 1})
    result = fl.run(
        fl.Map(ask, over="jobs", max_concurrency=caps), Jobs(jobs=jobs), clock="virtual"
    )
    assert result.output == [0, 1, 2, 3, 4]
    assert peaks == {"gpt": 2, "claude": 1}
    assert result.makespan_s == 2.0  # gpt: 2 then 1; claude: 1 then 1
