"""Every catalog scenario, broken and fixed: the right tool finds the bug, every fix passes.

The independent model is a plain asyncio run of the same coroutines (``gather`` on a virtual-time
loop, no detector, no explorer): a broken deadlock scenario hangs there (it times out), a fixed one
finishes; a race passes there (asyncio's FIFO schedule hides it), which is why the explorer is
the tool that finds it.
"""

from __future__ import annotations

import asyncio

import pytest

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual
from flowlab.errors import ConfigError
from flowlab.study.deadlock.bodies import Scenario
from flowlab.study.deadlock.report import DeadlockReport
from flowlab.study.deadlock.runner import Outcome

NEW = ["rendezvous", "reusable_barrier", "self_deadlock", "bounded_queue_cycle", "nested_pool",
       "slot_held", "lost_update", "order_violation", "condition_if_while"]  # fmt: skip
RACES = ["lost_update", "order_violation", "condition_if_while"]
VARIANTS = [(name, fixed) for name, sc in dl.SCENARIOS.items() for fixed in sc.variants]


def plain(sc: Scenario, fixed: bool | str) -> str:
    """Run the scenario's coroutines with plain ``asyncio.gather``: ok, hang or the error."""
    coros, _ = sc.build(fixed)

    async def main() -> str:
        try:
            await asyncio.wait_for(asyncio.gather(*coros), 1000)
        except TimeoutError:
            return "hang"
        except Exception as err:
            return type(err).__name__
        return "ok"

    return run_virtual(main())


def test_the_catalog_has_at_least_fourteen_scenarios_with_texts_and_source() -> None:
    frame = dl.catalog()
    assert len(frame) >= 14 and set(NEW) <= set(frame["name"])
    assert list(frame.columns) == ["name", "title", "primitives", "problem", "fix", "finder",
                                   "fixes"]  # fmt: skip
    assert sorted(frame.loc[frame["finder"] == "explorer", "name"]) == sorted(RACES)
    assert frame.loc[frame["name"] == "dining_philosophers", "fixes"].item() == "footman"
    for sc in dl.SCENARIOS.values():
        assert sc.source.startswith("def ") and "fixed" in sc.source, sc.name
        assert len(sc.problem) > 40 and len(sc.fix) > 40, sc.name


# The broken await cycle has no plain-asyncio counterpart: tasks awaiting each other in a ring
# make asyncio itself recurse when the ring is cancelled, so there is nothing independent to
# compare with. The detector's verdict on it is checked in the next test.
PLAIN_VARIANTS = [v for v in VARIANTS if v != ("await_cycle", False)]


@pytest.mark.parametrize(("name", "fixed"), PLAIN_VARIANTS)
def test_each_variant_against_a_plain_asyncio_run(name: str, fixed: bool | str) -> None:
    sc = dl.SCENARIOS[name]
    expected = "ok" if fixed or sc.finder == "explorer" else "hang"
    assert plain(sc, fixed) == expected


@pytest.mark.parametrize(("name", "fixed"), VARIANTS)
def test_the_right_tool_finds_every_broken_variant_and_passes_every_fix(
    name: str, fixed: bool | str
) -> None:
    sc = dl.SCENARIOS[name]
    result = dl.run(name, fixed=fixed)
    text = result.explain()
    assert sc.fix_text(fixed) in text
    if sc.finder == "detector":
        assert isinstance(result, DeadlockReport)
        assert result.deadlocked is (not fixed)
        assert result.leaked == []
    else:
        assert isinstance(result, Outcome)
        assert result.failed is (not fixed) and result.report is None
        if not fixed:
            assert isinstance(result.error, AssertionError)
            assert "Not a deadlock, so the detector cannot see it" in text
            assert "asyncio's own FIFO schedule passes" in text
            assert result.preemptions <= 1  # shrunk: at most one preemption opens the window
            assert dl.replay(name, result.schedule).status == "failed"
            assert "What went wrong" in text
        else:
            assert "none" not in text or "0 failed" in text
            assert "0 deadlocked, 0 failed" in text


@pytest.mark.parametrize("name", RACES)
def test_a_fixed_race_survives_the_whole_bounded_search(name: str) -> None:
    found = dl.explore(name, fixed=True)
    assert found.first_failure is None and found.exhausted
    assert "is a race, not a deadlock" in found.summary()


@pytest.mark.parametrize("name", [n for n, s in dl.SCENARIOS.items() if s.finder == "detector"])
def test_fixed_deadlock_scenarios_never_fail_under_explored_schedules(name: str) -> None:
    found = dl.explore(name, fixed=True, max_schedules=60)
    assert found.first_failure is None, found.summary()
    assert "hangs: dl.run" in found.summary()


@pytest.mark.parametrize(("name", "cycle"), [
    ("rendezvous", {"a", "b", "Semaphore 'a_arrived'", "Semaphore 'b_arrived'"}),
    ("self_deadlock", {"save", "Semaphore 'db'"}),
    ("bounded_queue_cycle", {"a", "b", "Queue 'to_a'", "Queue 'to_b'"}),
    ("slot_held", {"load_a", "extract", "Event 'extract done'", "Semaphore 'tag 'db' slots'"}),
    ("nested_pool", {"thread-1", "thread-2", "Event 'dependent_task(1)#1 result'",
                     "Event 'dependent_task(2)#1 result'"}),
])  # fmt: skip
def test_new_deadlocks_name_their_cycle(name: str, cycle: set[str]) -> None:
    report = dl.run(name)
    assert isinstance(report, DeadlockReport)
    assert report.kind == "cycle" and set(report.cycle) == cycle


def test_reusable_barrier_is_stuck_when_every_worker_waits() -> None:
    report = dl.run("reusable_barrier")
    assert isinstance(report, DeadlockReport)
    assert sorted(report.stuck) == ["worker0", "worker1", "worker2"]
    assert {w.resource for w in report.waits} == {"Semaphore 'turnstile'",
                                                  "Semaphore 'turnstile2'"}  # fmt: skip


def test_unknown_fix_name_lists_the_fixes() -> None:
    with pytest.raises(ConfigError, match="fixed='waiter' is not valid; choose one of 'footman'"):
        dl.run("dining_philosophers", fixed="waiter")


def test_a_race_outcome_narrates_and_draws_its_swimlanes() -> None:
    import matplotlib.pyplot as plt

    outcome = dl.run("order_violation")
    assert isinstance(outcome, Outcome)
    story = outcome.narrate()
    assert story.index("handler ran") < story.index("init ran")  # the handler went first
    ax = outcome.plot()
    lanes = [t.get_text() for t in ax.get_yticklabels()]
    assert set(lanes) >= {"init", "handler"}
    assert "failed" in ax.get_title() and "AssertionError" in ax.get_title()
    assert len(ax.lines) >= 2  # the red end line and the cross
    _, given = plt.subplots()
    assert dl.plot_swimlanes(outcome, ax=given) is given
    assert "<pre>" in outcome._repr_html_()


def test_swimlanes_of_a_deadlock_and_of_a_clean_run() -> None:
    found = dl.explore(dl.transfers, stop_on_first=True)
    assert found.first_failure is not None
    stuck = found.shrink()
    ax = stuck.plot()
    turns = len(ax.collections)  # one bar per turn
    assert turns == stuck.narrate().count(" ran ")
    assert "deadlock" in ax.get_title() and len(ax.lines) == 2
    clean = dl.replay(dl.transfers, "")
    ax = clean.plot()
    assert clean.status == "ok" and "ok" in ax.get_title() and len(ax.lines) == 0
