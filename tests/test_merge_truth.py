"""Issue 17: merges that never lose a write, each case run end to end on the virtual clock."""

from __future__ import annotations

import asyncio
import operator
from collections import Counter, OrderedDict
from typing import Annotated, Any

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, PrivateAttr

import flowlab as fl
from flowlab.errors import MergeConflict


def fan(*steps: Any, merge: Any = "deep") -> fl.Pipeline:
    return fl.Pipeline(
        fl.Parallel({chr(ord("a") + i): s for i, s in enumerate(steps)}, merge=merge, name="fan")
    )


def run(ctx: BaseModel, *steps: Any, merge: Any = "deep") -> fl.RunResult:
    return fl.run(fan(*steps, merge=merge), ctx, clock="virtual")


class Tags(BaseModel):
    tags: list[str] = []


class Appended(BaseModel):
    tags: Annotated[list[str], fl.merge.Append()] = []


@pytest.mark.parametrize("how", ["deep", "accumulate"])
def test_overlapping_removals_keep_an_appended_item(how: str) -> None:
    def a(data: Any, ctx: Tags) -> None:
        ctx.tags.remove("t0")
        ctx.tags.append("new")

    def b(data: Any, ctx: Tags) -> None:
        ctx.tags.remove("t0")

    result = run(Tags(tags=["t0"]), a, b, merge=how)
    assert result.context.tags == ["new"]
    assert not result.merges["conflict"].any()


def test_a_removed_base_item_never_comes_back() -> None:
    def a(data: Any, ctx: Tags) -> None:
        ctx.tags.remove("t1")

    def b(data: Any, ctx: Tags) -> None:
        ctx.tags.remove("t0")
        ctx.tags.append("n")

    assert run(Tags(tags=["t0", "t1"]), a, b).context.tags == ["n"]


def test_append_rule_front_insert_and_removal_keep_everything() -> None:
    def a(data: Any, ctx: Appended) -> None:
        ctx.tags.insert(0, "front")

    def b(data: Any, ctx: Appended) -> None:
        ctx.tags.remove("t0")

    assert run(Appended(tags=["t0", "t1"]), a, b).context.tags == ["front", "t1"]


def test_two_whole_list_replacements_are_a_recorded_conflict() -> None:
    def a(data: Any, ctx: Tags) -> None:
        ctx.tags = ["x"]

    def b(data: Any, ctx: Tags) -> None:
        ctx.tags = ["y"]

    result = run(Tags(tags=["t0"]), a, b)
    assert result.context.tags == ["x", "y"]  # nothing a branch added is dropped ...
    assert result.merges.set_index("path").loc["tags", "conflict"]  # ... and it is flagged
    with pytest.raises(MergeConflict, match="tags"):
        run(Tags(tags=["t0"]), a, b, merge="error_on_conflict")


class Arrays(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    arr: Any = None
    d: dict[str, Any] = {}
    n: int = 0


def bump(data: Any, ctx: Arrays) -> None:
    ctx.arr = ctx.arr + 1


def idle(data: Any, ctx: Arrays) -> None:
    ctx.n += 0


@pytest.mark.parametrize("how", ["deep", "overwrite", "error_on_conflict", "accumulate"])
def test_an_idle_branch_never_writes_an_array_back(how: str) -> None:
    result = run(Arrays(arr=np.arange(3)), bump, idle, merge=how)
    assert np.array_equal(result.context.arr, [1, 2, 3])
    assert result.diffs["branch"].tolist() == ["a"]  # no phantom writer


def test_a_dict_holding_arrays_merges() -> None:
    def bump_key(data: Any, ctx: Arrays) -> None:
        ctx.d["x"] = ctx.d["x"] + 1

    result = run(Arrays(d={"x": np.arange(3), "y": np.zeros(2)}), bump_key, idle)
    assert np.array_equal(result.context.d["x"], [1, 2, 3])
    assert np.array_equal(result.context.d["y"], [0, 0])


class Loose(BaseModel):
    nd: dict[str, Any] = {}


@pytest.mark.parametrize(
    ("left", "right", "merged"),
    [({"x": 1}, {"y": 2}, {"x": 1, "y": 2}), ({}, {"a": 0}, {"a": 0})],
)
def test_error_on_conflict_compares_new_dicts_key_by_key(
    left: dict[str, int], right: dict[str, int], merged: dict[str, int]
) -> None:
    def a(data: Any, ctx: Loose) -> None:
        ctx.nd["k"] = dict(left)

    def b(data: Any, ctx: Loose) -> None:
        ctx.nd["k"] = dict(right)

    assert run(Loose(), a, b, merge="error_on_conflict").context.nd == {"k": merged}


@pytest.mark.parametrize(
    ("left", "right", "merged"),
    [([], ["a"], ["a"]), (["a"], ["b"], ["a", "b"]), (["a"], ["a"], ["a"])],
)
def test_error_on_conflict_merges_new_lists_by_position(
    left: list[str], right: list[str], merged: list[str]
) -> None:
    # as deep does, and as an existing list's edits are: both insert into [], nothing collides
    def a(data: Any, ctx: Loose) -> None:
        ctx.nd["k"] = list(left)

    def b(data: Any, ctx: Loose) -> None:
        ctx.nd["k"] = list(right)

    result = run(Loose(), a, b, merge="error_on_conflict")
    assert result.context.nd == {"k": merged}
    assert not result.merges["conflict"].any()


def test_new_lists_have_no_base_item_to_collide_on() -> None:
    def a(data: Any, ctx: Loose) -> None:
        ctx.nd["k"] = ["x", "y"]

    def b(data: Any, ctx: Loose) -> None:
        ctx.nd["k"] = ["x", "z"]

    deep = run(Loose(), a, b, merge="deep").context.nd["k"]
    assert deep == ["x", "y", "x", "z"]  # two insertions at one place: both kept, in order
    assert run(Loose(), a, b, merge="error_on_conflict").context.nd["k"] == deep


def test_true_and_one_are_different_values() -> None:
    def a(data: Any, ctx: Loose) -> None:
        ctx.nd["k"] = True

    def b(data: Any, ctx: Loose) -> None:
        ctx.nd["k"] = 1

    with pytest.raises(MergeConflict, match=r"nd\.k"):
        run(Loose(), a, b, merge="error_on_conflict")


class Counters(BaseModel):
    c: Annotated[Counter[str], fl.merge.Sum()] = Counter()
    o: Annotated[OrderedDict[str, int], fl.merge.Sum()] = OrderedDict()


def test_mapping_counters_sum_per_key_and_keep_their_type() -> None:
    def a(data: Any, ctx: Counters) -> None:
        ctx.c["a"] += 2
        ctx.o["a"] = ctx.o.get("a", 0) + 2

    def b(data: Any, ctx: Counters) -> None:
        ctx.c["a"] += 1
        ctx.c["z"] += 1
        ctx.o["a"] = ctx.o.get("a", 0) + 1

    result = run(Counters(c=Counter(a=1), o=OrderedDict(a=1)), a, b)
    assert result.context.c == Counter(a=4, z=1)
    assert type(result.context.c) is Counter
    assert result.context.o == OrderedDict(a=4)
    assert type(result.context.o) is OrderedDict


class Ints(BaseModel):
    x: list[int] = []


@pytest.mark.parametrize("how", ["accumulate", fl.merge.Union()])
def test_deduplication_leaves_the_base_items_alone(how: Any) -> None:
    def a(data: Any, ctx: Ints) -> None:
        ctx.x.append(3)
        ctx.x.append(2)  # already in the base: a repeat the merge drops

    assert run(Ints(x=[1, 1, 2]), a, merge=how).context.x == [1, 1, 2, 3]


class Status(BaseModel):
    status: str = "new"
    n: int = 0


def test_dropped_writes_are_counted_in_frames_summary_and_compare() -> None:
    def a(data: Any, ctx: Status) -> None:
        ctx.status = "a"

    def b(data: Any, ctx: Status) -> None:
        ctx.status = "b"

    result = run(Status(), a, b, merge="overwrite")
    row = result.merges.set_index("path").loc["status"]
    assert (row["winner"], row["dropped"], bool(row["conflict"])) == ("b", ("a",), False)
    assert result.summary()["dropped_writes"] == 1
    cmp = fl.compare(fan(a, b), Status(), grid={"fan.merge": ["overwrite", "accumulate"]},
                     clock="virtual")  # fmt: skip
    assert cmp.frame.set_index("fan.merge")["dropped"].to_dict() == {
        "overwrite": 1,
        "accumulate": 1,
    }


def test_a_custom_rule_that_mutates_its_base_never_reaches_the_parent() -> None:
    def grabby(base: list[int], values: dict[str, list[int]]) -> list[int]:
        base.append(99)  # mutates what it was given
        return base

    class Ctx(BaseModel):
        items: Annotated[list[int], fl.merge.Custom(grabby)] = []
        total: Annotated[int, fl.merge.Custom(lambda base, values: 1 // 0)] = 0

    def a(data: Any, ctx: Ctx) -> None:
        ctx.items.append(1)
        ctx.total += 1

    parent = Ctx(items=[0])
    result = fl.run(fan(a), parent, clock="virtual", raise_on_error=False)
    assert result.status == "failed"
    assert parent.items == [0]  # the caller's object: untouched
    assert result.context.items == [0]  # the run's context: the merge applied nothing
    row = result.merges.set_index("path").loc["items"]
    assert row["before"] == [0]  # the report shows the base as it was
    assert row["after"] == [0, 99]


def test_a_custom_rule_that_raises_names_path_writers_and_rule_and_keeps_rows() -> None:
    class Ctx(BaseModel):
        a_first: int = 0
        total: Annotated[int, fl.merge.Custom(lambda base, values: 1 // 0)] = 0

    def a(data: Any, ctx: Ctx) -> None:
        ctx.a_first = 5
        ctx.total += 1

    def b(data: Any, ctx: Ctx) -> None:
        ctx.total += 2

    result = fl.run(fan(a, b), Ctx(), clock="virtual", raise_on_error=False)
    message = str(result.error)
    for text in ("'total'", "a, b", "Custom(", "ZeroDivisionError"):
        assert text in message
    assert result.merges["path"].tolist() == ["a_first"]  # the rows decided before it


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    bar: int = 0


def test_extras_merge_like_fields() -> None:
    def a(data: Any, ctx: Open) -> None:
        ctx.foo = 1  # type: ignore[attr-defined]
        ctx.bar = 2

    def b(data: Any, ctx: Open) -> None:
        ctx.baz = "x"  # type: ignore[attr-defined]

    result = run(Open(), a, b)
    assert result.context.model_dump() == {"bar": 2, "foo": 1, "baz": "x"}
    assert set(result.diffs["path"]) == {"foo", "bar", "baz"}


class Cached(BaseModel):
    n: int = 0
    _cache: dict[str, int] = PrivateAttr(default_factory=dict)


def test_private_writes_of_sequential_steps_are_kept_and_of_branches_shown_dropped() -> None:
    def warm(data: Any, ctx: Cached) -> None:
        ctx._cache["x"] = 1

    def read(data: Any, ctx: Cached) -> dict[str, int]:
        return dict(ctx._cache)

    def branch(data: Any, ctx: Cached) -> None:
        ctx._cache["b"] = 2
        ctx.n += 1

    assert fl.run(fl.Pipeline(warm, read), Cached(), clock="virtual").output == {"x": 1}
    result = fl.run(
        fl.Pipeline(warm, fl.Parallel({"a": branch}, name="fan")), Cached(), clock="virtual"
    )
    assert result.context._cache == {"x": 1}  # a branch's private write is not merged ...
    row = result.merges.set_index("path").loc["_cache"]
    assert (row["rule"], row["dropped"]) == ("private (not merged)", ("a",))  # ... and says so


class Reduced(BaseModel):
    log: Annotated[list[str], operator.add] = []
    n: Annotated[int, operator.add] = 0
    s: Annotated[str, operator.add] = ""
    longest: Annotated[str, fl.merge.Reduce(lambda acc, part: max(acc, part, key=len))] = ""


def test_operator_add_and_reduce_fold_each_branch_contribution() -> None:
    def a(data: Any, ctx: Reduced) -> None:
        ctx.log.append("a")
        ctx.n += 2
        ctx.s += "A"
        ctx.longest = "abc"

    def b(data: Any, ctx: Reduced) -> None:
        ctx.log.remove("x")
        ctx.log += ["b1", "b2"]
        ctx.n += 3
        ctx.s += "BB"
        ctx.longest = "z"

    result = run(Reduced(log=["x", "y"], n=1, s="s"), a, b)
    assert result.context.log == ["y", "a", "b1", "b2"]
    assert (result.context.n, result.context.s, result.context.longest) == (6, "sABB", "abc")
    assert set(result.merges["rule"]) == {"reduce:add", "reduce:<lambda>"}


def test_an_unknown_reducer_in_annotated_is_refused() -> None:
    class Bad(BaseModel):
        x: Annotated[list[int], lambda a, b: a + b] = []

    with pytest.raises(fl.ConfigError, match=r"Bad\.x.*Reduce\(fn\)"):
        run(Bad(), lambda data, ctx: None)


class Chat(BaseModel):
    msgs: Annotated[list[dict[str, Any]], fl.merge.Upsert(key="id")] = []


def test_upsert_replaces_in_place_appends_new_keys_and_deletes() -> None:
    def a(data: Any, ctx: Chat) -> None:
        ctx.msgs[0] = {"id": 1, "t": "edited"}
        ctx.msgs.append({"id": 3, "t": "from a"})

    def b(data: Any, ctx: Chat) -> None:
        del ctx.msgs[1]
        ctx.msgs.append({"id": 4, "t": "from b"})

    base = Chat(msgs=[{"id": 1, "t": "hi"}, {"id": 2, "t": "yo"}])
    result = run(base, a, b)
    assert result.context.msgs == [
        {"id": 1, "t": "edited"},
        {"id": 3, "t": "from a"},
        {"id": 4, "t": "from b"},
    ]
    assert not result.merges["conflict"].any()

    def c(data: Any, ctx: Chat) -> None:
        ctx.msgs[0] = {"id": 1, "t": "other edit"}

    clash = run(base, a, c)
    row = clash.merges.set_index("path").loc["msgs"]
    assert clash.context.msgs[0] == {"id": 1, "t": "other edit"}  # the last in merge order
    assert (bool(row["conflict"]), row["dropped"]) == (True, ("a",))


class Owned(BaseModel):
    owner: Annotated[str, fl.merge.Single()] = ""


def test_single_takes_one_writer_and_refuses_two_even_if_equal() -> None:
    def mine(data: Any, ctx: Owned) -> None:
        ctx.owner = "me"

    assert run(Owned(), mine).context.owner == "me"
    with pytest.raises(MergeConflict, match=r"fl\.merge\.Single"):
        run(Owned(), mine, mine)


def test_deep_keep_first_merges_dicts_key_by_key_first_writer_per_key() -> None:
    class Scores(BaseModel):
        d: dict[str, int] = {}

    def a(data: Any, ctx: Scores) -> None:
        ctx.d.update(x=1, y=1)

    def b(data: Any, ctx: Scores) -> None:
        ctx.d.update(y=2, z=2)

    assert run(Scores(), a, b, merge="deep_keep_first").context.d == {"x": 1, "y": 1, "z": 2}


def test_a_branchs_data_is_its_own_even_when_a_step_returned_a_context_object() -> None:
    # issue 17 #11: step 1 returns ctx.tags; branches mutate their data; nobody else sees it
    def first(data: Any, ctx: Tags) -> list[str]:
        return ctx.tags

    seen: dict[str, list[str]] = {}

    def make(name: str) -> Any:
        async def branch(data: list[str], ctx: Tags) -> None:
            data.append(name)
            data.sort(reverse=True)
            await asyncio.sleep(1.0)  # siblings run meanwhile
            seen[name] = list(data)

        return branch

    pipe = fl.Pipeline(first, fl.Parallel({"a": make("a"), "b": make("b")}, name="fan"))
    result = fl.run(pipe, Tags(tags=["t1", "t0"]), clock="virtual")
    assert seen == {"a": ["t1", "t0", "a"], "b": ["t1", "t0", "b"]}
    assert result.context.tags == ["t1", "t0"]  # data edits are not context edits
    assert len(result.diffs) == 0


def test_upsert_collisions_raise_under_error_on_conflict() -> None:
    def a(data: Any, ctx: Chat) -> None:
        ctx.msgs[0] = {"id": 1, "t": "from a"}

    def c(data: Any, ctx: Chat) -> None:
        ctx.msgs[0] = {"id": 1, "t": "from c"}

    base = Chat(msgs=[{"id": 1, "t": "hi"}])
    with pytest.raises(MergeConflict, match="msgs"):
        run(base, a, c, merge="error_on_conflict")
    assert run(base, a, c, merge="deep").context.msgs == [{"id": 1, "t": "from c"}]


class Mixed(BaseModel):
    xs: Annotated[list[Any], fl.merge.Union()] = [1]
    ys: list[Any] = [1]


def test_union_and_accumulate_keep_values_that_only_equal_a_kept_one() -> None:
    # True, 1.0 and Decimal("1.00") are == 1 but not the same value (the merge's own notion):
    # de-duplicating them away would drop a write with no dropped mark
    from decimal import Decimal

    def a(data: Any, ctx: Mixed) -> None:
        ctx.xs.extend([True, 1.0])
        ctx.ys.extend([True, 1.0])

    def b(data: Any, ctx: Mixed) -> None:
        ctx.xs.extend([Decimal("1.00"), 1, True])
        ctx.ys.extend([Decimal("1.00"), 1, True])

    result = run(Mixed(), a, b, merge="accumulate")
    assert result.context.xs == result.context.ys == [1, True, 1.0, Decimal("1.00")]
    assert [type(x) for x in result.context.xs] == [int, bool, float, Decimal]
