"""The merge report kept compact (``MergeReport``) and spelled out as dicts only when read.

A row read later must be the row of the merge: ``result.merges`` shows the values as they were at
merge time, whatever happens to the run's context (or the rows handed to an instrument) after.
The fast paths the merge takes for the common cases are checked against the general code.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import flowlab as fl
from flowlab.core.context.changes import MISSING
from flowlab.core.context.equality import repeat_key
from flowlab.core.merge import lists, merge_branches, resolve
from flowlab.core.merge.combine import plain_total, total
from flowlab.core.merge.report import COLUMNS, MergeReport
from flowlab.errors import MergeConflict


class Ctx(BaseModel):
    n: int = 0
    tags: list[str] = []
    docs: dict[str, dict[str, int]] = {}
    total: Annotated[int, fl.merge.Sum()] = 0


def _writer(i: int) -> Any:
    def step(data: Any, ctx: Ctx) -> None:
        ctx.n += i
        ctx.tags.append(f"t{i}")
        ctx.docs.setdefault("d", {})[f"k{i}"] = i
        ctx.total += i

    return step


def _fan(merge: str = "accumulate", n: int = 3) -> fl.Pipeline:
    branches = {f"b{i}": _writer(i) for i in range(1, n + 1)}
    return fl.Pipeline(fl.Parallel(branches, merge=merge, name="fan"))


def _rows(frame: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in frame[list(COLUMNS)].itertuples(index=False)]


# ---- the report as a sequence of dicts ---------------------------------------------------------
def test_a_report_reads_as_the_list_of_dicts_it_stands_for() -> None:
    base = Ctx(tags=["seed"])
    branches = []
    for i in (1, 2):
        ctx = base.model_copy(deep=True)
        _writer(i)(None, ctx)
        branches.append((f"b{i}", ctx))
    rows = merge_branches(base, branches, resolve("accumulate")).rows
    assert isinstance(rows, MergeReport)
    spelled = list(rows)
    assert [r["path"] for r in spelled] == ["n", "tags", "docs.d.k1", "docs.d.k2", "total"]
    assert all(list(r) == list(COLUMNS) for r in spelled)
    assert rows == spelled and spelled == list(rows)  # equal to the list, both ways
    assert rows[1] == spelled[1] and rows[-1] == spelled[-1] and rows[1:3] == spelled[1:3]
    assert len(rows) == 5 and repr(rows) == repr(spelled)
    tags = rows[1]
    assert (tags["writers"], tags["winner"], tags["before"], tags["after"]) == (
        ("b1", "b2"),
        None,
        ["seed"],
        ["seed", "t1", "t2"],
    )
    assert rows[2]["before"] is None and rows[2]["winner"] == "b1"  # a new key: None before
    assert rows != spelled[:-1] and rows != "not a report"


def test_a_report_row_is_a_fresh_dict_each_time_it_is_read() -> None:
    report = MergeReport(["a"])
    report.add(("x",), "overwrite", [0], 0, 1, 2)
    first = report[0]
    first["after"] = "scribbled"
    assert report[0]["after"] == 2


def test_snapshot_copies_mutable_values_once_per_report() -> None:
    shared = ["x"]
    after = [shared, shared]
    report = MergeReport(["a", "b"])
    report.add(("tags",), "deep", [0, 1], None, [], after)
    report.add(("n",), "sum", [0, 1], None, MISSING, 3)
    frozen = report.snapshot()
    after[0].append("later")
    (tags, n) = list(frozen)
    assert tags["after"] == [["x"], ["x"]] and tags["after"][0] is tags["after"][1]
    assert n == {**report[1]} and n["before"] is None


# ---- truth: the frame shows merge-time values ---------------------------------------------------
@pytest.mark.parametrize("merge", ["accumulate", "deep", "overwrite"])
def test_merges_read_after_the_context_changed_show_merge_time_values(merge: str) -> None:
    result = fl.run(_fan(merge), Ctx(tags=["seed"], docs={"d": {"k0": 0}}), clock="virtual")
    expected = _rows(result.merges)  # (a first read, right after the run)
    again = fl.run(_fan(merge), Ctx(tags=["seed"], docs={"d": {"k0": 0}}), clock="virtual")
    again.context.tags.append("after the run")
    again.context.docs["d"]["k1"] = -1
    again.context.docs.clear()
    again.context.n = 99
    assert _rows(again.merges) == expected  # read only now: still the merge's values
    assert again.context.tags[-1] == "after the run"


@pytest.mark.parametrize("merge", ["accumulate", "deep", "overwrite"])
def test_a_later_step_that_mutates_the_merged_values_leaves_the_report_as_merged(
    merge: str,
) -> None:
    def later(data: Any, ctx: Ctx) -> None:  # runs on the merged context, in place
        ctx.tags.append("later")
        ctx.tags[0] = "changed"
        ctx.docs["d"]["k1"] = -1
        ctx.docs["d"].clear()

    base = Ctx(tags=["seed"], docs={"d": {"k0": 0}})
    merged_only = _rows(fl.run(_fan(merge), base, clock="virtual").merges)
    pipe = fl.Pipeline(*_fan(merge).steps, later)
    result = fl.run(pipe, base, clock="virtual")
    assert result.context.tags[-1] == "later" and result.context.docs == {"d": {}}
    assert _rows(result.merges) == merged_only


class Bag(BaseModel):
    bag: dict[str, Any] = {}  # validation passes Any values through: the merged list itself


def test_a_merged_list_the_context_holds_is_shown_as_it_was_merged() -> None:
    def adder(item: str) -> Any:
        def step(data: Any, ctx: Bag) -> None:
            ctx.bag["items"].append(item)

        return step

    def later(data: Any, ctx: Bag) -> None:
        ctx.bag["items"].append("later")  # the very list the merge made

    fan = fl.Parallel({"a": adder("x"), "b": adder("y")}, merge="accumulate", name="fan")
    result = fl.run(fl.Pipeline(fan, later), Bag(bag={"items": ["seed"]}), clock="virtual")
    assert result.context.bag["items"] == ["seed", "x", "y", "later"]
    row = result.merges.set_index("path").loc["bag.items"]
    assert row["before"] == ["seed"] and row["after"] == ["seed", "x", "y"]


def test_the_rows_an_instrument_gets_cannot_change_the_recorded_report() -> None:
    seen: list[dict[str, Any]] = []

    class Scribbler(fl.Instrument):
        def merge_applied(self, step: str, rows: Any, seconds: float) -> None:
            for row in rows:
                seen.append(row)
                row["after"] = "scribbled"
                if isinstance(row.get("before"), list):
                    row["before"].append("scribbled")

    result = fl.run(_fan(), Ctx(tags=["seed"]), clock="virtual", instruments=[Scribbler()])
    assert len(seen) == len(result.merges) > 0
    assert "scribbled" not in result.merges["after"].tolist()
    tags = result.merges.set_index("path").loc["tags"]
    assert tags["before"] == ["seed"] and tags["after"] == ["seed", "t1", "t2", "t3"]


def test_a_conflict_report_is_dicts_and_the_frame_keeps_merge_time_values() -> None:
    class Pick(BaseModel):
        tags: list[str] = []
        owner: str = ""

    def writer(name: str) -> Any:
        def step(data: Any, ctx: Pick) -> None:
            ctx.tags.append(name)
            ctx.owner = name

        return step

    pipe = fl.Pipeline(
        fl.Parallel({"a": writer("a"), "b": writer("b")}, merge="error_on_conflict", name="f")
    )
    with pytest.raises(MergeConflict) as info:
        fl.run(pipe, Pick(tags=["t"]), clock="virtual")
    report = info.value.report
    assert isinstance(report, list) and all(type(r) is dict for r in report)
    assert [(r["path"], r["conflict"]) for r in report] == [("tags", False), ("owner", True)]
    result = info.value.result
    assert result is not None
    frame_before = _rows(result.merges)
    result.context.tags.append("later")
    report[0]["after"].append("later")  # the error's own rows are the caller's to change
    assert _rows(result.merges) == frame_before
    assert result.merges.set_index("path").loc["tags", "after"] == ["t", "a", "b"]


def test_a_remerge_reports_its_own_merge_time_values() -> None:
    result = fl.run(_fan("deep"), Ctx(tags=["seed"]), clock="virtual")
    again = result.remerge(merge="accumulate")
    shown = _rows(again.merges)
    again.context.tags.append("later")
    assert _rows(again.merges) == shown
    assert again.merges.set_index("path").loc["n", "after"] == 6  # 1 + 2 + 3 added


# ---- the fast paths against the general code -----------------------------------------------------
items = st.lists(
    st.one_of(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([0, 1, 2, 1.0, True, False, math.nan]),
        st.lists(st.integers(0, 2), max_size=2),  # unhashable: compared by value
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data())
def test_dedupe_by_hash_matches_the_general_loop(data: st.DataObject) -> None:
    values = data.draw(items)
    flags = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    appended = sorted(flags)  # the shape of every writer appending: base first, then inserted
    for inserted in (flags, appended, None):
        fast = lists.dedupe(values, None, inserted)
        general = lists.dedupe(values, repeat_key, inserted)  # a key: no fast path
        assert fast == general or _same_nan(fast, general)
        assert [type(x) for x in fast] == [type(x) for x in general]


def _same_nan(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        x is y or x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b, strict=True)
    )


numbers = st.one_of(
    st.integers(-(10**20), 10**20), st.floats(allow_nan=False, allow_infinity=True, width=64)
)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(before=st.one_of(st.just(MISSING), numbers), values=st.lists(numbers, max_size=6))
def test_plain_total_adds_exactly_as_total_does(before: Any, values: list[Any]) -> None:
    fast = plain_total(before, values)
    if not values:
        assert fast is None
        return
    slow = total(before, values)
    assert type(fast) is type(slow) and repr(fast) == repr(slow)


def test_plain_total_leaves_other_values_to_the_general_code() -> None:
    assert plain_total(1, [True]) is None  # bool is not a number that adds
    assert plain_total(MISSING, [MISSING]) is None
    assert plain_total("a", [1]) is None
