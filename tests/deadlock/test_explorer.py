"""The schedule explorer: finds what FIFO hides, replays exactly, bounded and reduced search."""

from __future__ import annotations

import asyncio

import pytest

import flowlab.deadlock as dl
from flowlab.errors import ConfigError
from flowlab.study.deadlock.examples import plain_runs, transfers
from flowlab.study.deadlock.explorer import explore, replay
from flowlab.study.deadlock.scheduler import decode, encode


def test_plain_runs_miss_the_deadlock_that_the_explorer_finds() -> None:
    assert plain_runs(transfers, 20) == {"ok": 20, "deadlock": 0}
    found = explore(transfers, strategy="dpor")
    assert found.deadlocks > 0 and found.exhausted
    assert found.first_failing_schedule == "0*2.1*3"
    report = found.first_failure.report  # type: ignore[union-attr]
    assert report is not None
    assert report.cycle == [
        "alice_to_bob",
        "Lock 'bob'",
        "bob_to_alice",
        "Lock 'alice'",
        "alice_to_bob",
    ]


def test_replay_reproduces_the_failing_schedule_every_time() -> None:
    found = explore(transfers, strategy="dpor", stop_on_first=True)
    first = found.first_failure
    assert first is not None and found.schedules <= 6
    for _ in range(20):
        again = found.replay()
        assert again.status == "deadlock"
        assert again.schedule == first.schedule
        assert again.interleaving == first.interleaving
        assert again.report is not None and again.report.cycle == first.report.cycle  # type: ignore[union-attr]
    assert replay(transfers, "").status == "ok"  # the FIFO schedule is asyncio's own


def test_delay_bound_zero_is_fifo_only_and_misses_it() -> None:
    fifo_only = explore(transfers, strategy="exhaustive", preemption_bound=None, delay_bound=0)
    assert (fifo_only.schedules, fifo_only.deadlocks, fifo_only.exhausted) == (1, 0, True)
    one = explore(transfers, strategy="exhaustive", preemption_bound=None, delay_bound=1)
    assert one.deadlocks == 0  # the bug needs two delays
    two = explore(transfers, strategy="exhaustive", preemption_bound=None, delay_bound=2)
    assert two.deadlocks > 0


def test_partial_order_reduction_prunes_independent_steps() -> None:
    async def independent() -> None:
        a, b = dl.Lock(name="a"), dl.Lock(name="b")

        async def use(lock: dl.Lock) -> None:
            for _ in range(3):
                async with lock:
                    await asyncio.sleep(0)

        await asyncio.gather(use(a), use(b))

    full = explore(independent, strategy="exhaustive", preemption_bound=3)
    reduced = explore(independent, strategy="dpor", preemption_bound=3)
    traced = explore(independent, strategy="dpor", preemption_bound=3, assume_traced=True)
    assert full.exhausted and reduced.exhausted and traced.exhausted
    # each step after ``sleep(0)`` may touch untraced state, so by default nothing is pruned;
    # the promise that all shared state is traced lets the reduction run a single schedule
    assert traced.schedules == 1 < reduced.schedules == full.schedules
    assert full.deadlocks == reduced.deadlocks == traced.deadlocks == 0


@pytest.mark.parametrize("strategy", ["pct", "random"])
def test_randomised_strategies_are_seeded(strategy: str) -> None:
    one = explore(transfers, strategy=strategy, max_schedules=40, seed=7)
    two = explore(transfers, strategy=strategy, max_schedules=40, seed=7)
    assert one.runs == two.runs
    assert one.deadlocks > 0
    other = explore(transfers, strategy=strategy, max_schedules=40, seed=8)
    assert other.runs != one.runs


def test_fixed_scenario_has_no_deadlock_in_its_whole_bounded_space() -> None:
    result = explore("lock_order", fixed=True, strategy="exhaustive")
    assert result.exhausted and result.deadlocks == 0 and result.first_failure is None
    with pytest.raises(ConfigError, match="nothing failed"):
        result.replay()


def test_exhaustive_search_finds_a_lost_update_assertion() -> None:
    async def counter() -> int:
        box = {"n": 0}

        async def add() -> None:
            seen = box["n"]
            await asyncio.sleep(0)  # read-modify-write across an await
            box["n"] = seen + 1

        await asyncio.gather(add(), add())
        assert box["n"] == 2, f"lost update: {box['n']}"
        return box["n"]

    result = explore(counter, strategy="exhaustive")
    assert result.failures > 0 and result.schedules > result.failures
    failing = result.replay()
    assert failing.status == "failed" and isinstance(failing.error, AssertionError)


def test_global_hang_without_watch_is_a_deadlock_even_on_untraced_futures() -> None:
    async def hang() -> None:
        await asyncio.get_running_loop().create_future()

    outcome = replay(hang, "")
    assert outcome.status == "deadlock" and outcome.report is not None
    assert outcome.report.kind == "untraced"
    assert "plain asyncio primitives" in outcome.report.explain()

    async def crossed() -> None:
        a, b = dl.Lock(name="A"), dl.Lock(name="B")

        async def one(x: dl.Lock, y: dl.Lock) -> None:
            async with x:
                await asyncio.sleep(0)
                async with y:
                    pass

        await asyncio.gather(one(a, b), one(b, a))

    traced = replay(crossed, "")
    assert traced.report is not None and traced.report.kind == "cycle"
    assert set(traced.report.cycle[1::2]) == {"Lock 'A'", "Lock 'B'"}


def test_livelock_hits_the_step_limit() -> None:
    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    result = explore(spin, strategy="random", max_schedules=2, max_steps=50)
    assert result.step_limits == 2 and result.frame["status"].tolist() == ["step_limit"] * 2


def test_schedule_strings_round_trip_and_validate() -> None:
    assert encode([0, 0, 0, 0, 1, 0, 0, 2, 0, 0]) == "0*4.1.0*2.2"
    assert decode("0*4.1.0*2.2") == [0, 0, 0, 0, 1, 0, 0, 2]
    assert decode("") == [] and encode([0, 0]) == ""
    with pytest.raises(ConfigError, match=r"schedule='x\.y'"):
        decode("x.y")
    with pytest.raises(ConfigError, match="choice point 0 has 2 ready tasks, index 5"):
        replay(transfers, "5")


def test_bad_arguments_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="strategy='bfs' is not valid"):
        explore(transfers, strategy="bfs")
    with pytest.raises(ConfigError, match="max_schedules=0"):
        explore(transfers, max_schedules=0)
    with pytest.raises(ConfigError, match="target=42"):
        explore(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="name='nope'"):
        explore("nope")


def test_explore_works_from_inside_a_running_loop() -> None:
    async def cell() -> int:
        return explore(transfers, strategy="dpor").deadlocks

    assert asyncio.run(cell()) > 0


def test_main_finishing_on_the_step_that_hits_the_step_limit_cleans_up() -> None:
    from flowlab.study.deadlock.runner import run_schedule

    async def three_steps() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    for limit in range(1, 6):  # one of these limits is hit on the step main finishes
        out = run_schedule(three_steps, lambda point, options, prev: 0, max_steps=limit)
        assert out.status in ("ok", "step_limit")
