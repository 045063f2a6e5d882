"""A copy-on-write branch that writes into the data its siblings share is caught, never merged.

Copy-on-write branches share the step's context until they write. C code that reads a list's
storage directly can hand a branch a *shared* item — ``heapq.heappop``, pydantic validating a
``list[Any]`` or models already built — and mutating that item once mutated the context every
sibling reads, and the caller's result, silently. Now the step compares its context with a copy
kept when its branches started: a changed context fails the step with ``IsolationBreach`` naming
the fields, nothing is merged, and the context is put back as it was before the step.
"""

from __future__ import annotations

import heapq
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.core.context.cow import copy_on_write_pays


class Job(BaseModel):
    n: int = 0


class Ctx(BaseModel):
    heap: list[list[int]] = [[i] for i in range(70)]
    jobs: list[Job] = [Job(n=i) for i in range(70)]
    total: int = 0


class Out(BaseModel):
    jobs: list[Job]
    anything: list[Any]


def through_heappop(data: Any, ctx: Ctx) -> None:
    item = heapq.heappop(ctx.heap)  # the shared [0], not the branch's copy of it
    item.append(99)


def through_validation(data: Any, ctx: Ctx) -> None:
    out = Out(jobs=ctx.jobs, anything=ctx.heap)  # models already built pass as they are
    out.jobs[0].n = 99


def honest(data: Any, ctx: Ctx) -> None:
    ctx.heap[0].append(1)
    ctx.jobs[0].n += 1
    ctx.total += 1


def pipe(step: Any, isolation: str = "cow") -> Any:
    return fl.Pipeline(fl.Parallel({"a": step, "b": honest}, isolation=isolation, name="fan"))


def test_the_context_is_big_enough_for_copy_on_write() -> None:
    assert copy_on_write_pays(Ctx())


@pytest.mark.parametrize(
    ("step", "field"), [(through_heappop, "heap"), (through_validation, "jobs")]
)
def test_a_write_into_shared_data_fails_the_step_and_puts_the_context_back(
    step: Any, field: str
) -> None:
    caller = Ctx()
    with pytest.raises(fl.IsolationBreach, match=f"field '{field}'") as info:
        fl.run(pipe(step), caller, clock="virtual")
    err = info.value
    assert err.step == "fan" and err.fields == [field]
    result = err.result
    assert result is not None and result.status == "failed"
    assert result.context == Ctx()  # as before the step: nothing merged, the breach undone
    assert caller == Ctx()
    events = result.events
    assert list(events[events.kind == "isolation_breach"].detail) == [repr(field)]
    assert "IsolationBreach" in result.steps.set_index("step").loc["fan", "error"]


@pytest.mark.parametrize("step", [through_heappop, through_validation])
def test_eager_isolation_runs_the_same_steps_cleanly(step: Any) -> None:
    result = fl.run(pipe(step, isolation="eager"), Ctx(), clock="virtual")
    assert result.status == "ok"
    assert result.context.total == 1 and result.context.jobs[0].n in (1, 99)


def test_honest_copy_on_write_branches_pass_the_check() -> None:
    result = fl.run(pipe(honest), Ctx(), clock="virtual")  # overwrite: b's context wins
    assert result.status == "ok" and result.context.total == 1
    assert result.context.heap[0] == [0, 1] and result.context.jobs[0].n == 1
    assert "isolation_breach" not in set(result.events.kind)


class Plain:
    """No __eq__: a copy of it is equal to it only by its attributes."""

    def __init__(self, n: int) -> None:
        self.n = n


class Objects(BaseModel):
    items: list[Any] = [[Plain(i)] for i in range(70)]
    total: int = 0


def test_values_without_equality_are_no_false_alarm() -> None:
    def count(data: Any, ctx: Objects) -> None:
        ctx.total += len(ctx.items[0])

    par = fl.Parallel({"a": count, "b": count}, isolation="cow", merge="accumulate", name="fan")
    result = fl.run(fl.Pipeline(par), Objects(), clock="virtual")
    assert result.status == "ok" and result.context.total == 2
