"""The Lab's model with no widget at all: fixed settings in, a recording view out, virtual time.

``ipywidgets`` cannot even be imported while these tests run: the model works without a browser.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.core.merge import STRATEGIES
from flowlab.ui.lab.model import LabModel
from flowlab.ui.lab.protocols import LabSettings, LabView


@pytest.fixture(autouse=True)
def _no_widgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` raises ImportError


class Ctx(BaseModel):
    counter: int = 10


def _adder(n: int, seconds: float) -> Any:
    async def step(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(seconds)
        ctx.counter += n

    return step


async def _forever(data: Any, ctx: Ctx) -> None:
    await asyncio.Event().wait()  # nothing sets it: ends only when cancelled


def _pipe(b: Any = None, *after: Any) -> fl.Pipeline:
    """Counter 10; branch a adds 5 in 1 s, branch b adds 3 in 2 s (virtual time)."""
    branches = {"a": _adder(5, 1.0), "b": b or _adder(3, 2.0)}
    return fl.Pipeline(fl.Parallel(branches, name="fanout"), *after, name="demo")


@dataclass
class Settings:
    """Fixed options, changed by assigning the fields (what a control would do)."""

    pipe: fl.Pipeline
    merge: str = "overwrite"
    cap: int | None = None
    repeat: int = 1
    clock: str = "virtual"

    def pipeline(self) -> fl.Pipeline:
        return self.pipe.replace({"fanout": {"merge": self.merge, "max_concurrency": self.cap}})

    def parameters(self) -> dict[str, Any]:
        return {"fanout.merge": self.merge, "fanout.max_concurrency": self.cap, "clock": self.clock}

    def caps(self) -> dict[str, int]:
        return {"fanout": 2}


@dataclass
class Recorder:
    """A view that writes down what it was told; ``on_tick`` and ``fail`` script its behaviour."""

    said: list[tuple[Any, ...]] = field(default_factory=list)
    on_tick: Callable[[int], None] | None = None
    fail: set[str] = field(default_factory=set)  # methods that raise
    watcher: Any = None  # an instrument the view adds to each run (a live view, say)

    def _say(self, *what: Any) -> None:
        self.said.append(what)
        if what[0] in self.fail:
            raise RuntimeError(f"{what[0]} broke")

    def began(self, total: int) -> None:
        self._say("began", total)

    def observers(self) -> list[Any]:
        return [self.watcher] if self.watcher is not None else []

    def ticked(self, done: int, total: int) -> None:
        self._say("ticked", done, total)
        if self.on_tick is not None:
            self.on_tick(done)

    def stopping(self) -> None:
        self._say("stopping")

    def ended(self, state: str, ok: bool) -> None:
        self._say("ended", state, ok)

    def show_result(self, run_id: int, result: fl.RunResult) -> None:
        self._say("result", run_id, result.status)

    def show_history(self) -> None:
        self._say("history")

    def show_sweep(self, key: str, comparison: fl.Comparison) -> None:
        self._say("sweep", key, len(comparison.results))

    def show_error(self, err: BaseException, *, title: str, clear: bool = True) -> None:
        self._say("error", title, f"{type(err).__name__}: {err}", clear)

    def note(self, text: str) -> None:
        self._say("note", text)


def _model(pipe: fl.Pipeline | None = None, **settings: Any) -> tuple[LabModel, Recorder, Settings]:
    s = Settings(pipe or _pipe(), **settings)
    view = Recorder()
    return LabModel(Ctx(), s, view), view, s


def test_sweep_keys_and_values_come_from_the_settings() -> None:
    settings: LabSettings = Settings(_pipe())  # the fakes fit the protocols (mypy checks)
    view: LabView = Recorder()
    model = LabModel(Ctx(), settings, view)
    keys = ["fanout.merge", "fanout.max_concurrency", "fanout.order", "fanout.on_failure"]
    assert model.sweep_keys() == keys
    assert model.sweep_values("fanout.max_concurrency") == [1, 2, None]  # caps: 1..2, then none
    assert model.sweep_values("fanout.order") == ["declared", "completion"]


def test_a_run_tells_the_view_it_began_ticked_ended_then_shows_the_result_and_history() -> None:
    model, view, _ = _model(repeat=2)
    result = model.run()  # no loop running: blocks
    assert isinstance(result, fl.RunResult) and result.context.counter == 13  # overwrite: b last
    assert view.said == [
        ("began", 4),
        ("ticked", 1, 4), ("ticked", 2, 4), ("ticked", 3, 4), ("ticked", 4, 4),
        ("ended", "ok", True),
        ("result", 2, "ok"),
        ("history",),
    ]  # fmt: skip
    h = model.history.frame()
    assert h["repeat"].tolist() == [0, 1] and h["makespan_s"].tolist() == [2.0, 2.0]
    assert h["fanout.merge"].tolist() == ["overwrite"] * 2
    assert (model.progress, model.running, model.result) == ((4, 4), False, result)


def test_options_that_are_not_valid_are_an_error_and_nothing_runs() -> None:
    model, view, _ = _model(cap=0)
    assert model.run() is None
    [(what, title, error, clear)] = view.said
    assert (what, title, clear) == ("error", "These options are not valid", True)
    assert error.startswith("ConfigError: max_concurrency=0")
    assert len(model.history) == 0


def test_a_sweep_runs_every_strategy_and_tells_the_view_of_the_comparison() -> None:
    model, view, _ = _model()
    cmp = model.sweep("fanout.merge")
    n = len(STRATEGIES)
    assert cmp is model.last_comparison and len(cmp.results) == n
    ticks = [t for t in view.said if t[0] == "ticked"]
    assert ticks == [("ticked", i, 2 * n) for i in range(1, 2 * n + 1)]
    rest = [t for t in view.said if t[0] != "ticked"]
    assert rest == [
        ("began", 2 * n), ("ended", "ok", True), ("result", n, "ok"), ("history",),
        ("sweep", "fanout.merge", n),
    ]  # fmt: skip
    h = model.history.frame()
    assert h["fanout.merge"].tolist() == list(STRATEGIES)
    assert h.set_index("fanout.merge").loc["accumulate", "ctx.counter"] == 18


def test_a_cap_sweep_records_each_cap_and_its_makespan() -> None:
    model, _, _ = _model()
    model.sweep("fanout.max_concurrency")
    h = model.history.frame()
    assert h["fanout.cap"].tolist() == ["fixed", "fixed", "unlimited"]
    assert h["makespan_s"].tolist() == [3.0, 2.0, 2.0]


def test_a_bad_sweep_key_is_shown_not_raised() -> None:
    model, view, _ = _model()
    assert model.sweep("fanout.nope") is None
    [(what, title, error, _clear)] = view.said
    assert (what, title) == ("error", "Nothing to sweep")
    assert "key='fanout.nope'" in error and "'fanout.merge'" in error


def test_stop_during_a_run_cancels_it_and_the_repeats_after_it() -> None:
    model, view, _ = _model(_pipe(_forever), repeat=3)
    view.on_tick = lambda done: model.stop() if done == 1 else None  # Stop once a finished
    result = model.run()
    assert result is not None and result.status == "cancelled"
    assert view.said == [
        ("began", 6), ("ticked", 1, 6), ("stopping",),
        ("ticked", 2, 6),  # b, cancelled, is done too; the two repeats left never start
        ("ended", "stopped", False), ("result", 1, "cancelled"), ("history",),
    ]  # fmt: skip
    h = model.history.frame()
    assert h["status"].tolist() == ["cancelled"] and h["cancelled_branches"].tolist() == [1]
    assert not model.running and not model.stopping


def test_stop_during_a_sweep_cancels_its_run_and_every_later_one() -> None:
    model, view, _ = _model(_pipe(_forever))
    view.on_tick = lambda done: model.stop() if done == 1 else None
    cmp = model.sweep("fanout.merge")
    assert cmp.frame["status"].tolist() == ["cancelled"] * len(STRATEGIES)
    n = 2 * len(STRATEGIES)
    assert view.said == [
        ("began", n), ("ticked", 1, n), ("stopping",),
        *[("ticked", i, n) for i in range(2, n + 1)],  # cancelled branches are done too
        ("ended", "stopped", False), ("result", 1, "cancelled"), ("history",),
        ("sweep", "fanout.merge", len(STRATEGIES)),
    ]  # fmt: skip
    assert model.history.frame()["status"].tolist() == ["cancelled"]  # one row says it


def test_flipping_the_merge_remerges_the_latest_run_without_running_it() -> None:
    model, view, settings = _model()
    model.run()
    view.said.clear()
    settings.merge = "accumulate"
    result = model.remerge()
    assert result is not None and result.context.counter == 18  # 10 + 5 + 3, no branch ran
    assert view.said == [("result", 2, "ok"), ("history",)]
    h = model.history.frame()
    assert h["remerged"].tolist() == [False, True]
    assert h["fanout.merge"].tolist() == ["overwrite", "accumulate"]
    view.said.clear()
    settings.cap = 1  # another option changed: that needs a real run
    assert model.remerge() is None
    settings.cap, settings.merge = None, "accumulate"  # nothing changed: nothing to do
    assert model.remerge() is None
    assert view.said == [] and len(model.history) == 2


def test_a_remerge_that_cannot_be_exact_is_a_note() -> None:
    def finalize(data: Any, ctx: Ctx) -> None:
        ctx.counter *= 2

    model, view, settings = _model(_pipe(None, finalize))
    model.run()
    view.said.clear()
    settings.merge = "accumulate"
    assert model.remerge() is None
    [(what, text)] = view.said
    assert (
        what == "note" and text.startswith("Press Run to see this merge: ") and "finalize" in text
    )
    assert len(model.history) == 1


def test_an_error_while_showing_a_result_is_shown_and_the_run_is_kept() -> None:
    model, view, _ = _model()
    view.fail = {"result"}
    result = model.run()
    assert result is not None and result.status == "ok"
    assert view.said[-3:] == [
        ("result", 1, "ok"),
        ("error", "Could not show run #1", "RuntimeError: result broke", False),
        ("history",),
    ]
    assert model.history.frame()["status"].tolist() == ["ok"]


def test_inside_a_running_loop_run_schedules_and_a_second_run_is_refused() -> None:
    async def main() -> None:
        model, view, _ = _model()
        task = model.run()
        assert isinstance(task, asyncio.Task) and model.running
        assert model.run() is task and (await model.arun()) is None
        assert view.said.count(("note", "A run is already going: wait for it, or press Stop.")) == 2
        result = await task
        assert result is not None and len(model.history) == 1
        assert view.said[-3:] == [("ended", "ok", True), ("result", 1, "ok"), ("history",)]

    asyncio.run(main())


def test_bad_model_arguments_name_the_parameter() -> None:
    s, view = Settings(_pipe()), Recorder()
    with pytest.raises(fl.ConfigError, match=r"ctx=.*BaseModel"):
        LabModel({"counter": 1}, s, view)  # type: ignore[arg-type]
    with pytest.raises(fl.ConfigError, match=r"Lab run option='clock'.*'usage'"):
        LabModel(Ctx(), s, view, clock="virtual")  # the clock is a setting


def test_each_run_gets_the_views_observers_a_live_view_for_one() -> None:
    class Counts(fl.Instrument):
        def __init__(self) -> None:
            self.runs = 0
            self.finished: list[str] = []

        def run_started(self, total_branches: int | None) -> None:
            self.runs += 1

        def branch_finished(self, record: Any) -> None:
            self.finished.append(record.branch)

    counts = Counts()
    view = Recorder(watcher=counts)
    model = LabModel(Ctx(), Settings(_pipe(), repeat=2), view)
    model.run()
    assert counts.runs == 2 and sorted(counts.finished) == ["a", "a", "b", "b"]
