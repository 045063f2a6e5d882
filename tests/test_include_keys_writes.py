"""Writes outside a step's include_keys are not merged, and the run says so (never silently)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.errors import NotMergedWarning


class Ctx(BaseModel):
    notes: list[str] = []
    count: int = 0
    seen: list[list[int]] = [[i] for i in range(40)]  # nested: copy on write engages


def writes_outside(data: Any, ctx: Ctx) -> None:
    ctx.notes.append("kept")
    ctx.count = 7  # outside include_keys


def reads_outside(data: Any, ctx: Ctx) -> None:
    ctx.notes.append(f"read {ctx.count}")


@pytest.mark.parametrize("isolation", ["eager", "cow"])
def test_a_write_outside_include_keys_is_dropped_visibly(isolation: str) -> None:
    par = fl.Parallel(
        {"w": writes_outside, "r": reads_outside},
        include_keys=["notes"],
        merge="deep",
        isolation=isolation,
        name="p",
    )
    with pytest.warns(NotMergedWarning, match=r"'w': count") as caught:
        result = fl.run(par, Ctx(count=3), clock="virtual")
    assert len(caught) == 1 and "'r'" not in str(caught[0].message)
    assert result.context.count == 3  # not merged, as include_keys says
    assert result.context.notes == ["kept", "read 0"]  # a left-out field reads its default
    events = result.events
    rows = events[events["kind"] == "write_not_merged"]
    assert rows[["branch", "detail"]].values.tolist() == [
        ["p:w", "count (outside include_keys; not merged)"]
    ]


def test_no_warning_when_branches_keep_to_their_fields() -> None:
    par = fl.Parallel({"r": reads_outside}, include_keys=["notes"], name="p")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotMergedWarning)
        result = fl.run(par, Ctx(count=3), clock="virtual")
    assert not (result.events["kind"] == "write_not_merged").any()


def test_the_warning_made_an_error_fails_the_step_with_nothing_merged() -> None:
    par = fl.Parallel({"w": writes_outside}, include_keys=["notes"], name="p")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotMergedWarning)
        result = fl.run(par, Ctx(count=3), clock="virtual", raise_on_error=False)
    assert result.status == "failed"
    assert result.context.notes == [] and result.context.count == 3
    steps = result.steps
    row = steps[steps["step"] == "p"].iloc[0]  # its row ends too (it used to stay "running")
    assert row["status"] == "failed" and row["error"].startswith("NotMergedWarning")
