"""The be-the-scheduler game model, without a browser: goals, hints, stable moves, lines, picture."""

from __future__ import annotations

import asyncio

import pytest
from matplotlib.patches import FancyArrowPatch

import flowlab.deadlock as dl
from flowlab.errors import ConfigError
from flowlab.ui.plot._deadlock import HOLD_COLOR, WAIT_COLOR


async def confused_counter() -> None:
    """The Deadlock Empire's confusedCounter, in asyncio: ``a += 1`` is a read, an await, a write."""
    a, b = dl.Shared(0, name="a"), dl.Shared(0, name="b")

    async def bump(delay: int) -> None:
        for _ in range(delay):
            await asyncio.sleep(0)  # FIFO: the second worker starts after the first is done
        seen = a.get()
        await asyncio.sleep(0)
        a.set(seen + 1)
        b.set(b.get() + 1)

    await asyncio.gather(bump(0), bump(3))
    assert a.value == b.value, f"a={a.value} but b={b.value}"


async def critical_section() -> None:
    """A flag checked, then set: both tasks can get into the critical section."""
    busy, inside = dl.Shared(False, name="busy"), dl.Shared(0, name="inside")

    async def enter(delay: int) -> None:
        for _ in range(delay):
            await asyncio.sleep(0)
        if busy.get():
            return  # someone is inside: give up (TryEnter-style, no spinning)
        await asyncio.sleep(0)  # the window between the check and the set
        busy.set(True)
        inside.set(inside.get() + 1)
        await asyncio.sleep(0)  # work inside the critical section
        assert inside.get() == 1, "both tasks are in the critical section"
        inside.set(inside.get() - 1)
        busy.set(False)

    await asyncio.gather(
        asyncio.create_task(enter(0), name="first"),
        asyncio.create_task(enter(2), name="second"),
    )


def _play_hints(game: dl.SchedulerGame) -> None:
    for _ in range(100):
        if game.outcome is not None:
            return
        move = game.hint()
        assert move is not None, game.describe()
        game.choose(move)
    raise AssertionError("the hints never ended the game")


def test_plain_fifo_passes_both_race_programs() -> None:
    assert dl.replay(confused_counter, "").status == "ok"
    assert dl.replay(critical_section, "").status == "ok"


def test_hint_leads_to_the_failure_from_move_one_of_confused_counter() -> None:
    game = dl.SchedulerGame(confused_counter)
    assert game.goal == "any"
    assert game.hint() is not None  # was None: only deadlocks counted
    _play_hints(game)
    assert game.outcome is not None and game.outcome.status == "failed"
    assert game.won
    assert isinstance(game.outcome.error, AssertionError)
    assert game.describe().startswith("You reached the failure! AssertionError: a=1 but b=2.")
    assert str(game.outcome.error).startswith("a=1 but b=2")
    assert dl.replay(confused_counter, game.schedule).status == "failed"


def test_reach_the_failure_goal_both_tasks_in_the_critical_section() -> None:
    game = dl.SchedulerGame(critical_section, goal="failure")
    _play_hints(game)
    assert game.won and game.outcome is not None
    assert str(game.outcome.error).startswith("both tasks are in the critical section")


def test_race_scenarios_default_to_the_failure_goal_and_fifo_loses() -> None:
    game = dl.SchedulerGame("lost_update")
    assert game.goal == "failure"
    assert "goal: reach the failure" in game.describe()
    while game.outcome is None:  # always the first button: FIFO-like, the race is missed
        game.choose(game.options[0])
    assert game.outcome.status == "ok" and not game.won
    assert game.describe().startswith("The run ended ok: the goal (reach the failure) was missed.")
    game.reset()
    _play_hints(game)
    assert game.won and "lost update" in str(game.outcome.error)


def test_a_deadlock_is_no_win_when_the_goal_is_the_failure() -> None:
    game = dl.SchedulerGame(dl.transfers, goal="failure")
    for move in ["alice_to_bob", "bob_to_alice", "bob_to_alice", "bob_to_alice", "alice_to_bob"]:
        game.choose(move)
    assert game.outcome is not None and game.outcome.deadlocked and not game.won
    assert dl.SchedulerGame("lost_update", fixed=True).hint() is None
    with pytest.raises(ConfigError, match=r"goal='win' is not valid; choose one of 'deadlock'"):
        dl.SchedulerGame(goal="win")


def test_options_keep_creation_order_while_the_ready_queue_reorders() -> None:
    game = dl.SchedulerGame(critical_section)
    seen_reordered = False
    while game.outcome is None:
        pos = game.position
        assert pos is not None
        assert game.options == [t for t in pos.tasks if t in pos.ready]  # creation order
        assert set(game.options) == set(pos.ready)
        seen_reordered |= game.options != pos.ready
        game.choose(game.options[0])  # always the first button: it runs, then queues last
    assert seen_reordered  # FIFO order changed under the buttons, their order did not


def test_choose_by_index_counts_in_button_order() -> None:
    by_name, by_index = dl.SchedulerGame(critical_section), dl.SchedulerGame(critical_section)
    while by_name.outcome is None:
        by_name.choose(by_name.options[0])
        by_index.choose(0)
    assert by_name.schedule == by_index.schedule


def test_each_task_shows_its_next_source_line() -> None:
    game = dl.SchedulerGame(dl.transfers)
    game.choose("alice_to_bob")
    pos = game.position
    assert pos is not None
    line = pos.lines["alice_to_bob"]
    assert line.startswith("examples.py:") and "(transfer): await asyncio.sleep(0)" in line
    text = game.describe()
    assert f"alice_to_bob (ready) at {line}" in text.split("\n")


def test_a_task_that_has_not_started_says_so() -> None:
    game = dl.SchedulerGame("lost_update")
    assert game.position is not None
    line = game.position.lines["deposit#1"]
    assert line.startswith("races.py:") and "(deposit): not started (async def deposit(" in line
    assert game.position.lines["bank"].endswith(
        "await asyncio.gather(deposit(10, 0), deposit(20, 3))"
    )


def test_plot_draws_who_holds_and_who_waits() -> None:
    game = dl.SchedulerGame(dl.transfers)
    for move in ["alice_to_bob", "bob_to_alice", "bob_to_alice", "bob_to_alice"]:
        game.choose(move)
    ax = game.plot()
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    import matplotlib.colors as mcolors

    holds = [p for p in arrows if mcolors.same_color(p.get_edgecolor(), HOLD_COLOR)]
    assert len(holds) == 2 and len(arrows) == 2
    labels = [t.get_text() for t in ax.texts]
    assert {"alice_to_bob", "bob_to_alice", "Lock 'alice'", "Lock 'bob'"} <= set(labels)
    assert "move 5" in ax.get_title()
    game.choose("alice_to_bob")  # the cycle closes: both wait as well
    import matplotlib.pyplot as plt

    _, ax0 = plt.subplots()
    assert game.plot(ax=ax0) is ax0
    arrows = [p for p in ax0.patches if isinstance(p, FancyArrowPatch)]
    waits = [p for p in arrows if mcolors.same_color(p.get_edgecolor(), WAIT_COLOR)]
    assert len(arrows) == 4 and len(waits) == 2
    assert "deadlock" in ax0.get_title()
