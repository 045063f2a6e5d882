"""Per-branch results: ``result.outputs`` and ``result.errors`` by branch path.

``outputs`` holds what every branch that returned gave back; ``errors`` the exception objects of
failed and timed-out branches (with their tracebacks), whether the run raised (``propagate``) or
not (``on_failure="ignore"``). Keys are the paths of ``result.branches``; a unique bare branch
name works too. Interrupted and cancelled runs keep what had finished.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.errors import BranchFailed, StepTimeout


class Ctx(BaseModel):
    n: int = 0


def returns(value: Any, after_s: float = 0.0) -> Any:
    async def step(data: Any, ctx: Ctx) -> Any:
        await asyncio.sleep(after_s)
        return value

    return step


def fails(message: str, after_s: float = 0.0) -> Any:
    async def step(data: Any, ctx: Ctx) -> Any:
        await asyncio.sleep(after_s)
        raise ValueError(message)

    return step


def run(pipe: Any, **kw: Any) -> fl.RunResult:
    return fl.run(pipe, Ctx(), clock="virtual", **kw)


def test_outputs_by_path_in_branch_order_nested_branches_included() -> None:
    inner = fl.Parallel({"x": returns("X"), "y": returns("Y", 1.0)}, name="inner")
    pipe = fl.Pipeline(
        fl.Parallel(
            {"slow": returns("S", 2.0), "fast": returns("F"), "nest": fl.Pipeline(inner)},
            name="fan",
        )
    )
    result = run(pipe)
    assert dict(result.outputs) == {
        "fan:slow": "S",
        "fan:fast": "F",
        "fan:nest": {"x": "X", "y": "Y"},  # a branch's output: its last step's
        "fan:nest/inner:x": "X",
        "fan:nest/inner:y": "Y",
    }
    assert list(result.outputs) == result.branches["path"].tolist()
    assert result.outputs["fast"] == "F" and result.outputs["y"] == "Y"  # unique bare names
    assert result.errors == {}


def test_errors_are_the_exception_objects_when_the_run_raises() -> None:
    pipe = fl.Parallel({"ok": returns(1), "bad": fails("boom", 1.0)}, name="fan")
    with pytest.raises(BranchFailed) as caught:
        run(pipe)
    result = caught.value.result
    assert result is not None
    err = result.errors["fan:bad"]
    assert type(err) is ValueError and str(err) == "boom"
    assert err is caught.value.errors["bad"]  # the very object the run's error holds
    assert "in step" in "".join(traceback.format_exception(err))  # with its traceback
    assert dict(result.outputs) == {"fan:ok": 1}
    assert result.branches.set_index("path").loc["fan:bad", "error"] == "ValueError: boom"


def test_ignored_failures_and_timeouts_keep_their_exceptions_cancelled_ones_have_none() -> None:
    pipe = fl.Parallel(
        {
            "ok": returns("fine"),
            "bad": fails("ignored but kept"),
            "slow": returns("never", 10.0),
        },
        name="fan",
        on_failure="ignore",
        branch_timeout=5.0,
    )
    result = run(pipe)
    assert result.status == "ok"  # nothing raised
    assert set(result.errors) == {"fan:bad", "fan:slow"}
    assert isinstance(result.errors["bad"], ValueError)
    assert str(result.errors["bad"]) == "ignored but kept"
    assert isinstance(result.errors["slow"], StepTimeout)
    assert dict(result.outputs) == {"fan:ok": "fine"}

    handle_cancelled = fl.Parallel({"a": returns("A"), "b": returns("B", 5.0)}, name="fan")

    async def cancel_b() -> fl.RunResult:
        handle = fl.start(handle_cancelled, Ctx(), clock="virtual")
        handle.cancel("b")
        return await handle

    with_cancel = asyncio.run(cancel_b())
    assert dict(with_cancel.outputs) == {"fan:a": "A"}
    assert with_cancel.errors == {}  # a cancelled branch raised nothing of its own
    assert with_cancel.branches.set_index("branch").loc["b", "status"] == "cancelled"


def test_a_run_cancelled_mid_way_keeps_the_outputs_of_the_branches_that_finished() -> None:
    pipe = fl.Parallel({"quick": returns("Q", 1.0), "long": returns("L", 100.0)}, name="fan")
    result = run(pipe, timeout=10.0, raise_on_error=False)
    assert result.status == "timeout"
    assert dict(result.outputs) == {"fan:quick": "Q"}


def test_unknown_or_ambiguous_keys_say_which_keys_there_are() -> None:
    inner = fl.Parallel({"a": returns(1)}, name="inner")
    result = run(fl.Parallel({"a": returns(0), "b": fl.Pipeline(inner)}, name="fan"))
    with pytest.raises(KeyError, match=r"no branch 'zz' in outputs; the keys are 'fan:a', 'fan:b'"):
        result.outputs["zz"]
    with pytest.raises(
        KeyError, match=r"branch 'a' is ambiguous in outputs; give one of its paths"
    ):
        result.outputs["a"]
    assert result.outputs["fan:a"] == 0 and result.outputs["fan:b/inner:a"] == 1
    with pytest.raises(KeyError, match="no branch 'a' in errors; the keys are none"):
        result.errors["a"]


def test_a_step_returning_an_update_has_the_update_as_its_output() -> None:
    def node(state):  # type: ignore[no-untyped-def]
        return fl.Update(n=1)

    result = run(fl.Parallel({"a": node}, name="fan"))
    assert result.outputs["fan:a"] == fl.Update(n=1)
    assert result.context.n == 1
