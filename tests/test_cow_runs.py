"""Whole runs with ``isolation="cow"`` against the same runs with eager copies (Hypothesis).

``test_cow_properties`` checks a copy-on-write branch against a deep copy at the isolator's level.
This runs the same random contexts and edit programs through ``fl.run`` — the engine's copy of
the caller's context, the guard that checks the shared context when the branches end, the diffs,
the merge, the record — once with ``isolation="eager"`` and once with ``isolation="cow"``, and
asks for the same merged context, the same diffs frame and the same merges frame, and for no
``IsolationBreach`` (these programs write only through Python). Copy on write is made to engage
on every context, small ones too (whether it pays is a speed question, not a semantic one).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowlab as fl
import flowlab.engine.isolating as isolating
from flowlab.core.merge import STRATEGIES
from tests.test_cow_properties import Ctx, contexts, plain, python_programs, run_op

EXAMPLES = int(os.environ.get("FLOWLAB_COW_EXAMPLES", "150"))


@pytest.fixture(autouse=True)
def _cow_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolating, "copy_on_write_pays", lambda ctx: True)


def _branch(program: list[Any]) -> Any:
    def branch(data: Any, ctx: Ctx) -> None:
        saved: list[Any] = []
        for op in program:
            run_op(ctx, op, saved)

    return branch


def _run(base: Ctx, programs: list[list[Any]], how: str, isolation: str) -> Any:
    branches = {f"b{i}": _branch(p) for i, p in enumerate(programs)}
    par = fl.Parallel(branches, merge=how, isolation=isolation, name="fan")
    try:
        return fl.run(fl.Pipeline(par), copy.deepcopy(base), clock="virtual")
    except fl.FlowlabError as err:  # a merge conflict or validation error: both must agree
        return err


def _frame(result: Any, name: str) -> Any:
    frame = getattr(result, name)
    return [tuple(map(repr, row)) for row in frame.drop(columns=["step"]).itertuples(index=False)]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 1000,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # the fixture only patches a module attribute
    ],
)
@given(
    base=contexts(),
    programs=st.lists(python_programs, min_size=1, max_size=3),
    how=st.sampled_from(STRATEGIES),
)
def test_a_cow_run_is_an_eager_run(base: Ctx, programs: list[list[Any]], how: str) -> None:
    eager = _run(base, programs, how, "eager")
    cow = _run(base, programs, how, "cow")
    assert not isinstance(cow, fl.IsolationBreach), cow
    if isinstance(eager, Exception):
        assert type(cow) is type(eager), (eager, cow)
        eager, cow = eager.result, cow.result
    assert list(cow.steps.isolation[cow.steps.kind == "parallel"]) == ["cow"]
    assert list(eager.steps.isolation[eager.steps.kind == "parallel"]) == ["eager"]
    assert cow.status == eager.status
    assert plain(cow.context) == plain(eager.context)
    assert _frame(cow, "diffs") == _frame(eager, "diffs")
    assert _frame(cow, "merges") == _frame(eager, "merges")
