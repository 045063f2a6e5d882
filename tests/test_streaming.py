"""Streaming: handle.as_completed(), fl.run(on_branch=...), live=True — on virtual time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.engine.clock import run_virtual
from flowlab.engine.streaming import Outcome
from flowlab.ui.live import LiveView


class Ctx(BaseModel):
    n: int = 0


class Boom(ValueError):
    pass


def nap(seconds: float, fail: bool = False) -> Any:
    async def step(data: object, ctx: Ctx) -> float:
        await asyncio.sleep(seconds)
        if fail:
            raise Boom(f"failed after {seconds:g}s")
        return seconds

    return step


def fanout(on_failure: str = "ignore") -> fl.Parallel:
    return fl.Parallel({"slow": nap(3), "fast": nap(1), "bad": nap(2, fail=True)},
                       name="fan", on_failure=on_failure)  # fmt: skip


def seen(outcomes: list[Outcome]) -> list[tuple[str, str, Any, float]]:
    return [(o.path, o.status, o.output, o.finished_s) for o in outcomes]


# ---- as_completed -------------------------------------------------------------------------
def test_as_completed_yields_outcomes_in_completion_order_with_outputs_and_errors() -> None:
    async def main() -> list[Outcome]:
        return [o async for o in fl.start(fanout(), Ctx(), clock="virtual").as_completed()]

    outcomes = run_virtual(main())
    assert seen(outcomes) == [
        ("fan:fast", "ok", 1, 1.0),
        ("fan:bad", "failed", None, 2.0),
        ("fan:slow", "ok", 3, 3.0),
    ]
    bad = outcomes[1]
    assert isinstance(bad.error, Boom) and str(bad.error) == "failed after 2s"
    assert (bad.branch, bad.step) == ("bad", "fan")
    assert outcomes[0].error is None


def test_as_completed_is_usable_while_the_run_goes_on() -> None:
    async def main() -> list[tuple[str, float, bool]]:
        loop = asyncio.get_running_loop()
        handle = fl.start(fanout(), Ctx(), clock="virtual")
        return [(o.branch, loop.time(), handle.done()) async for o in handle.as_completed()]

    # each outcome arrives at the virtual instant its branch ends, before the run is done
    assert run_virtual(main()) == [("fast", 1.0, False), ("bad", 2.0, False), ("slow", 3.0, False)]


def test_nested_branches_stream_too() -> None:
    inner = fl.Parallel({"x": nap(1), "y": nap(2)}, name="inner")
    pipe = fl.Parallel({"a": nap(0.5), "b": inner}, name="outer")

    async def main() -> list[str]:
        return [o.path async for o in fl.start(pipe, Ctx(), clock="virtual").as_completed()]

    assert run_virtual(main()) == ["outer:a", "outer:b/inner:x", "outer:b/inner:y", "outer:b"]


def test_as_completed_ends_when_the_run_fails() -> None:
    async def main() -> tuple[list[str], str]:
        handle = fl.start(fanout("fail_fast"), Ctx(), clock="virtual")
        paths = [f"{o.branch}:{o.status}" async for o in handle.as_completed()]
        return paths, (await handle.wait()).status

    paths, status = run_virtual(main())
    assert paths == ["fast:ok", "bad:failed", "slow:cancelled"]
    assert status == "failed"


def test_as_completed_ends_when_the_run_is_cancelled() -> None:
    async def main() -> tuple[list[str], str]:
        handle = fl.start(fanout(), Ctx(), clock="virtual")
        got = []
        async for o in handle.as_completed():
            got.append(o.branch)
            handle.cancel()  # the whole run, after the first outcome
        return got, (await handle.wait()).status

    got, status = run_virtual(main())
    assert got[0] == "fast" and set(got[1:]) == {"bad", "slow"}
    assert status == "cancelled"


def test_a_late_reader_and_a_second_reader_get_every_outcome() -> None:
    async def main() -> tuple[list[str], list[str]]:
        handle = fl.start(fanout(), Ctx(), clock="virtual")
        await handle.wait()  # the run is over before anyone reads
        first = [o.branch async for o in handle.as_completed()]
        second = [o.branch async for o in handle.as_completed()]
        return first, second

    assert run_virtual(main()) == (["fast", "bad", "slow"], ["fast", "bad", "slow"])


def test_as_completed_from_another_loop_than_the_runs() -> None:
    # no loop running: start() runs the virtual-time run in a helper thread; read it from a
    # real-time loop here
    handle = fl.start(fanout(), Ctx(), clock="virtual")

    async def read() -> list[str]:
        return [o.branch async for o in handle.as_completed()]

    assert asyncio.run(read()) == ["fast", "bad", "slow"]
    assert handle.result(timeout=5).status == "ok"


# ---- on_branch ----------------------------------------------------------------------------
def test_on_branch_is_called_as_each_branch_ends() -> None:
    got: list[Outcome] = []
    result = fl.run(fanout(), Ctx(), clock="virtual", on_branch=got.append)
    assert seen(got) == [
        ("fan:fast", "ok", 1, 1.0),
        ("fan:bad", "failed", None, 2.0),
        ("fan:slow", "ok", 3, 3.0),
    ]
    assert isinstance(got[1].error, Boom)
    assert result.status == "ok"


def test_on_branch_on_arun_and_start() -> None:
    got: list[str] = []

    async def main() -> None:
        await fl.arun(fanout(), Ctx(), clock="virtual", on_branch=lambda o: got.append(o.branch))
        await fl.start(fanout(), Ctx(), clock="virtual",
                       on_branch=lambda o: got.append(o.branch.upper()))  # fmt: skip

    run_virtual(main())
    assert got == ["fast", "bad", "slow", "FAST", "BAD", "SLOW"]


def test_an_on_branch_that_raises_is_reported_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def callback(outcome: Outcome) -> None:
        calls.append(outcome.branch)
        raise RuntimeError("callback bug")

    with caplog.at_level("WARNING", logger="flowlab"):  # logged, not warned (filterwarnings=error)
        result = fl.run(fanout(), Ctx(), clock="virtual", on_branch=callback)
    assert any(
        "on_branch 'test_an_on_branch" in rec.getMessage()
        and "RuntimeError: callback bug" in rec.getMessage()
        for rec in caplog.records
    )
    assert result.status == "ok" and result.makespan_s == 3.0
    assert calls == ["fast"]  # disabled after it raised
    events = result.events.loc[result.events["kind"] == "instrument_disabled"]
    assert len(events) == 1 and "RuntimeError: callback bug" in events["detail"].iloc[0]


def test_bad_on_branch_is_a_config_error() -> None:
    async def cb(outcome: Outcome) -> None:
        return None

    with pytest.raises(fl.ConfigError, match=r"is an async function.*HINT: .*as_completed"):
        fl.run(fanout(), Ctx(), clock="virtual", on_branch=cb)
    with pytest.raises(fl.ConfigError, match=r"on_branch=3 is not valid; give a callable"):
        fl.run(fanout(), Ctx(), clock="virtual", on_branch=3)  # type: ignore[arg-type]


# ---- live ---------------------------------------------------------------------------------
class RecordingView(LiveView):
    """A widget-mode view that keeps every value it drew."""

    def __init__(self) -> None:
        super().__init__(notebook=True, display=False, min_interval_s=0.0)
        self.frames: list[str] = []

    def _maybe_draw(self, force: bool = False) -> None:
        before = self.redraws
        super()._maybe_draw(force)
        if self.redraws > before:
            self.frames.append(self.widget.value)


def test_live_widget_grows_as_branches_finish() -> None:
    view = RecordingView()
    fl.run(fanout(), Ctx(), clock="virtual", instruments=[view])
    counts = [f.split("</b>")[0].split("<b>")[1] for f in view.frames]
    # the run's start and three starts at 0 (0 done), then one more done at 1, 2 and 3 s, then
    # the run's end
    assert counts == ["0 / 3 branches done"] * 4 + [
        "1 / 3 branches done", "2 / 3 branches done", "3 / 3 branches done",
        "3 / 3 branches done",
    ]  # fmt: skip
    assert view.frames[-1].count("<rect") == 3 and "run ok" in view.frames[-1]
    assert view.counts == {"done": 3, "running": 0, "ok": 2, "failed": 1, "cancelled": 0,
                           "timeout": 0}  # fmt: skip


def test_live_in_a_terminal_is_a_tqdm_bar(capsys: pytest.CaptureFixture[str]) -> None:
    result = fl.run(fanout(), Ctx(), clock="virtual", live=True)
    assert result.status == "ok"
    err = capsys.readouterr().err
    assert "branches" in err and "3/3" in err


def test_live_must_be_a_bool() -> None:
    with pytest.raises(fl.ConfigError, match=r"live='yes' is not valid; give True or False"):
        fl.run(fanout(), Ctx(), clock="virtual", live="yes")  # type: ignore[arg-type]
