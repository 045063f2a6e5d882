"""Headless widgets and the scheduler game: set .value, click(), inspect outputs."""

from __future__ import annotations

import subprocess
import sys

import pytest

import flowlab.deadlock as dl
from flowlab.errors import ConfigError


@pytest.mark.slow  # renders two PNG figures
def test_lab_runs_the_selected_scenario_and_fills_every_tab() -> None:
    lab = dl.Lab()
    lab.scenario.value = "lock_order"
    lab.run_button.click()
    assert lab.report is not None and lab.report.deadlocked
    text = "".join(o["text"] for o in lab.explanation.outputs)
    assert "Cycle: alice_to_bob → Lock 'bob'" in text
    assert "image/png" in lab.graph.outputs[0]["data"]
    assert len(lab.timeline.outputs) == 2
    lab.fixed.value = True
    lab.run_button.click()
    assert not lab.report.deadlocked
    assert "No deadlock" in lab.explanation.outputs[0]["text"]


@pytest.mark.slow  # renders a PNG figure
def test_lab_explores_a_race_and_shows_its_story_and_swimlanes() -> None:
    lab = dl.Lab()
    lab.scenario.value = "lost_update"
    lab.run_button.click()
    assert isinstance(lab.report, dl.Outcome) and lab.report.status == "failed"
    text = "".join(o["text"] for o in lab.explanation.outputs)
    assert "Not a deadlock, so the detector cannot see it" in text and "1. main ran" in text
    assert "image/png" in lab.graph.outputs[0]["data"] and lab.timeline.outputs == ()


def test_game_forces_the_deadlock_that_fifo_hides() -> None:
    game = dl.SchedulerGame()
    assert game.options == ["alice_to_bob", "bob_to_alice"]
    assert "Ready: alice_to_bob, bob_to_alice" in game.describe()
    for move in ["alice_to_bob", "bob_to_alice", "bob_to_alice", "bob_to_alice"]:
        game.choose(move)
    assert game.position is not None  # both hold one lock: whoever moves next closes the cycle
    assert set(game.position.holds) == {
        ("alice_to_bob", "Lock 'alice'"),
        ("bob_to_alice", "Lock 'bob'"),
    }
    game.choose("alice_to_bob")
    assert game.outcome is not None and game.outcome.deadlocked
    assert game.schedule == "0*2.1*2"
    assert dl.replay(dl.transfers, game.schedule).deadlocked
    assert "You forced the deadlock!" in game.describe()
    with pytest.raises(ConfigError, match="the run is over"):
        game.choose(0)


def test_game_position_shows_holders_and_rejects_bad_moves() -> None:
    game = dl.SchedulerGame()
    game.choose("alice_to_bob")
    assert game.position is not None
    assert ("alice_to_bob", "Lock 'alice'") in game.position.holds
    with pytest.raises(ConfigError, match="task='carol' is not valid; choose one of"):
        game.choose("carol")
    game.reset()
    assert game.choices == [] and game.position is not None


def test_hint_points_at_a_winning_move_and_none_on_a_fixed_scenario() -> None:
    game = dl.SchedulerGame()
    game.choose("alice_to_bob")
    game.choose("bob_to_alice")
    assert game.hint() == "bob_to_alice"  # FIFO would run alice_to_bob and miss it
    fixed = dl.SchedulerGame("lock_order", fixed=True)
    assert fixed.hint() is None


def _click(ui: dl.SchedulerWidget, task: str) -> None:
    [button] = [b for b in ui.buttons if b.description == f"run {task}"]
    button.click()


def test_scheduler_widget_buttons_and_hint() -> None:
    ui = dl.SchedulerWidget(picture=False)
    assert [b.description for b in ui.buttons] == ["run alice_to_bob", "run bob_to_alice"]
    _click(ui, "alice_to_bob")
    _click(ui, "bob_to_alice")
    ui.hint_button.click()
    assert "hint: run bob_to_alice" in "".join(o["text"] for o in ui.log.outputs)
    _click(ui, "bob_to_alice")
    _click(ui, "bob_to_alice")
    _click(ui, "bob_to_alice")
    assert ui.game.outcome is not None and ui.game.outcome.deadlocked
    assert ui.buttons == [] and "You forced the deadlock" in ui.status.value
    ui.reset_button.click()
    assert len(ui.buttons) == 2


@pytest.mark.slow  # renders a PNG figure per move
def test_scheduler_widget_shows_the_goal_next_lines_and_the_lock_picture() -> None:
    ui = dl.SchedulerWidget("lost_update")
    assert "goal: reach the failure" in ui.status.value
    names = ui.game.options
    assert [b.description for b in ui.buttons] == [f"run {n}" for n in names]
    assert "races.py:" in ui.lines.value and "(ready)" in ui.lines.value
    assert len(ui.picture.outputs) == 1 and "image/png" in ui.picture.outputs[0]["data"]
    first = ui.picture.outputs[0]["data"]["image/png"]
    while ui.game.outcome is None:
        before = [b.description for b in ui.buttons]
        assert before == [f"run {n}" for n in ui.game.options]  # creation order, every move
        ui.buttons[0].click()
        assert len(ui.picture.outputs) == 1  # replaced, not appended
    assert ui.picture.outputs[0]["data"]["image/png"] != first
    assert "the goal (reach the failure) was missed" in ui.status.value and ui.lines.value == ""


def test_importing_flowlab_deadlock_does_not_import_ipywidgets_or_pandas() -> None:
    code = (
        "import sys, flowlab.study.deadlock\n"
        "print([m for m in ('ipywidgets', 'pandas', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_is_exported_once_and_resolves() -> None:
    assert len(dl.__all__) == len(set(dl.__all__))
    for name in dl.__all__:
        assert getattr(dl, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        dl.Nope  # noqa: B018


def test_a_finished_game_shows_the_report_lines_under_the_verdict() -> None:
    ui = dl.SchedulerWidget(picture=False)
    for task in ["alice_to_bob", "bob_to_alice", "bob_to_alice", "bob_to_alice", "alice_to_bob"]:
        _click(ui, task)
    assert "You forced the deadlock!" in ui.status.value
    assert "task alice_to_bob: holds Lock &#x27;alice&#x27;" in ui.lines.value
    assert "Cycle: " in ui.lines.value


def test_lab_code_tab_shows_the_picked_scenarios_source() -> None:
    from flowlab.ui.lab.deadlock import Lab

    lab = Lab("governor")
    shown = "".join(o.get("text", "") for o in lab.code.outputs)
    assert shown == dl.SCENARIOS["governor"].source
    lab.scenario.value = "lost_update"
    shown = "".join(o.get("text", "") for o in lab.code.outputs)
    assert shown == dl.SCENARIOS["lost_update"].source
