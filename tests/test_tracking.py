"""Write tracking: a tracked branch diffs and merges exactly like an untracked one, only cheaper."""

from __future__ import annotations

import copy
import heapq
import pickle
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

import flowlab as fl
from flowlab import merge as fm
from flowlab.core.context.isolation import diff, isolate
from flowlab.core.context.tracking import TrackedDict, TrackedList, track, untrack
from flowlab.core.merge import merge_branches, resolve
from flowlab.errors import MergeValidationError

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)

keys = st.sampled_from("abcdef")
values = st.integers(-3, 3)
dict_ops = st.one_of(
    st.tuples(st.just("set"), keys, values),
    st.tuples(st.just("add_to"), keys, values),
    st.tuples(st.just("del"), keys),
    st.tuples(st.just("pop"), keys),
    st.tuples(st.just("popitem")),
    st.tuples(st.just("setdefault"), keys, values),
    st.tuples(st.just("update"), st.dictionaries(keys, values, max_size=3)),
    st.tuples(st.just("ior"), st.dictionaries(keys, values, max_size=3)),
    st.tuples(st.just("clear")),
    # around the methods: inserting keys no other op uses, deleting the others (so never a
    # value replaced around the methods, which tracking.py says it does not cover)
    st.tuples(st.just("base_insert"), st.sampled_from("xyz"), values),
    st.tuples(st.just("base_delete"), keys),
)
list_ops = st.one_of(
    st.tuples(st.just("append"), values),
    st.tuples(st.just("extend"), st.lists(values, max_size=3)),
    st.tuples(st.just("iadd"), st.lists(values, max_size=3)),
    st.tuples(st.just("imul"), st.integers(0, 2)),
    st.tuples(st.just("insert"), st.integers(-6, 6), values),
    st.tuples(st.just("setitem"), st.integers(-6, 6), values),
    st.tuples(
        st.just("setslice"), st.integers(-6, 6), st.integers(-6, 6), st.lists(values, max_size=2)
    ),
    st.tuples(st.just("delitem"), st.integers(-6, 6)),
    st.tuples(
        st.just("delslice"), st.integers(-6, 6), st.integers(-6, 6), st.sampled_from([1, 2, -1])
    ),
    st.tuples(st.just("pop"), st.integers(-6, 6)),
    st.tuples(st.just("remove"), values),
    st.tuples(st.just("sort")),
    st.tuples(st.just("reverse")),
    st.tuples(st.just("clear")),
    st.tuples(st.just("heappush"), values),  # C code writing around the list's methods
    st.tuples(st.just("heappop")),
    st.tuples(st.just("heapify")),
    st.tuples(st.just("heapreplace"), values),
    st.tuples(st.just("base_append"), values),
    st.tuples(st.just("base_setitem"), st.integers(-6, 6), values),
)


def run_dict_op(d: dict[str, int], op: str, *args: Any) -> None:
    if op == "set":
        d[args[0]] = args[1]
    elif op == "add_to":
        if args[0] in d:
            d[args[0]] += args[1]
    elif op in ("del", "pop"):
        if args[0] in d:
            if op == "del":
                del d[args[0]]
            else:
                d.pop(args[0])
        else:
            assert d.pop(args[0], None) is None
    elif op == "popitem":
        if d:
            d.popitem()
    elif op == "setdefault":
        d.setdefault(args[0], args[1])
    elif op == "update":
        d.update(args[0])
    elif op == "ior":
        d |= args[0]
    elif op == "base_insert":
        if args[0] not in d:
            dict.__setitem__(d, args[0], args[1])
    elif op == "base_delete":
        if args[0] in d:
            dict.__delitem__(d, args[0])
    else:
        d.clear()


def run_list_op(items: list[int], op: str, *args: Any) -> None:
    n = len(items)
    if op == "append":
        items.append(args[0])
    elif op == "extend":
        items.extend(args[0])
    elif op == "iadd":
        items += args[0]
    elif op == "imul":
        items *= args[0]
    elif op == "insert":
        items.insert(args[0], args[1])
    elif op == "setitem":
        if -n <= args[0] < n:
            items[args[0]] = args[1]
    elif op == "setslice":
        items[args[0] : args[1]] = args[2]
    elif op == "delitem":
        if -n <= args[0] < n:
            del items[args[0]]
    elif op == "delslice":
        del items[args[0] : args[1] : args[2]]
    elif op == "pop":
        if -n <= args[0] < n:
            items.pop(args[0])
    elif op == "remove":
        if args[0] in items:
            items.remove(args[0])
    elif op == "sort":
        items.sort()
    elif op == "reverse":
        items.reverse()
    elif op == "heappush":
        heapq.heappush(items, args[0])
    elif op == "heappop":
        if items:
            heapq.heappop(items)
    elif op == "heapify":
        heapq.heapify(items)
    elif op == "heapreplace":
        if items:
            heapq.heapreplace(items, args[0])
    elif op == "base_append":
        list.append(items, args[0])
    elif op == "base_setitem":
        if -n <= args[0] < n:
            list.__setitem__(items, args[0], args[1])
    else:
        items.clear()


class Ctx(BaseModel):
    table: dict[str, int] = {}
    items: list[int] = []
    label: str = ""


def changes(base: Ctx, branch: Ctx) -> list[tuple[str, str, Any, Any]]:
    return sorted((c.dotted, c.op, c.before, c.after) for c in diff(base, branch))


@SETTINGS
@given(
    table=st.dictionaries(keys, values, max_size=5),
    items=st.lists(values, max_size=6),
    dops=st.lists(dict_ops, max_size=6),
    lops=st.lists(list_ops, max_size=6),
)
def test_a_tracked_branch_diffs_like_a_plain_one(
    table: dict[str, int],
    items: list[int],
    dops: list[tuple[Any, ...]],
    lops: list[tuple[Any, ...]],
) -> None:
    base = Ctx(table=table, items=items)
    tracked, plain = isolate(base, track=True), isolate(base)
    assert type(tracked.table) is TrackedDict and type(tracked.items) is TrackedList
    assert type(plain.table) is dict and type(plain.items) is list
    for ctx in (tracked, plain):
        for op in dops:
            run_dict_op(ctx.table, *op)
        for op in lops:
            run_list_op(ctx.items, *op)
    assert tracked.table == plain.table and tracked.items == plain.items
    assert changes(base, tracked) == changes(base, plain)
    # dict keys a branch added keep the branch's order (it decides the merged dict's order)
    added = [c.dotted for c in diff(base, tracked) if c.op == "add" and c.path[0] == "table"]
    assert added == [c.dotted for c in diff(base, plain) if c.op == "add" and c.path[0] == "table"]
    assert base == Ctx(table=table, items=items)  # the base is never touched


branch_ops = st.lists(
    st.tuples(st.lists(dict_ops, max_size=3), st.lists(list_ops, max_size=3)),
    min_size=1,
    max_size=4,
)


@SETTINGS
@given(
    table=st.dictionaries(keys, values, max_size=5),
    items=st.lists(values, max_size=5),
    edits=branch_ops,
    how=st.sampled_from(fm.STRATEGIES),
)
def test_tracked_branches_merge_like_plain_ones(
    table: dict[str, int],
    items: list[int],
    edits: list[tuple[list[Any], list[Any]]],
    how: str,
) -> None:
    base = Ctx(table=table, items=items)
    merged = []
    for tracking in (True, False):
        branches = []
        for i, (dops, lops) in enumerate(edits):
            ctx = isolate(base, track=tracking)
            for op in dops:
                run_dict_op(ctx.table, *op)
            for op in lops:
                run_list_op(ctx.items, *op)
            branches.append((f"b{i}", ctx))
        try:
            out = merge_branches(base, branches, resolve(how))
        except fl.MergeConflict as err:
            merged.append(("conflict", err.path))
            continue
        assert type(out.context.table) is dict and type(out.context.items) is list
        merged.append((out.context.model_dump(), list(out.context.table)))
    assert merged[0] == merged[1]


def test_untrackable_changes_fall_back_to_a_full_comparison() -> None:
    base = Ctx(table={"a": 1, "b": 2}, items=[1, 2])
    branch = isolate(base, track=True)
    dict.__setitem__(branch.table, "a", 5)  # bypasses the tracking: not noted
    branch.table.clear()
    branch.table.update({"a": 1, "c": 3})
    assert branch.table.written is None
    assert changes(base, branch) == [("table.b", "remove", 2, None), ("table.c", "add", None, 3)]
    swapped = isolate(base, track=True)
    swapped.table = {"z": 0}  # a new plain dict: compared whole
    assert changes(base, swapped) == [
        ("table.a", "remove", 1, None),
        ("table.b", "remove", 2, None),
        ("table.z", "add", None, 0),
    ]


def test_copies_of_tracked_containers_are_plain() -> None:
    d, items = track({"a": 1}), track([1])
    for value, plain in ((d, dict), (items, list)):
        for copied in (
            copy.copy(value),
            copy.deepcopy(value),
            pickle.loads(pickle.dumps(value)),
            value.copy(),
            untrack(value),
        ):
            assert type(copied) is plain and copied == value
    assert type(d | {"b": 2}) is dict and type(TrackedDict.fromkeys("ab")) is dict
    assert type(items.__add__([2])) is list and type(items[:1]) is list


class Shape(BaseModel):
    table: dict[str, int] = {}
    anything: Any = None
    sizes: Annotated[dict[str, int], fm.Sum()] = {}


def test_a_merge_never_leaves_tracked_containers_in_the_parent() -> None:
    base = Shape(table={"a": 1}, anything={"k": 1}, sizes={"s": 1})

    async def grow(data: Any, ctx: Shape) -> None:
        ctx.table["b"] = 2
        ctx.anything["k"] = 2
        ctx.sizes["s"] += 1

    for how in ("overwrite", "keep_first", "deep", "accumulate"):
        result = fl.run(fl.Parallel({"x": grow, "y": grow}, merge=how), base)
        ctx = result.context
        assert (type(ctx.table), type(ctx.anything), type(ctx.sizes)) == (dict, dict, dict), how
        summed = how == "accumulate"  # adds both branches' deltas: b 0+2+2, k 1+1+1
        assert ctx.table == {"a": 1, "b": 4 if summed else 2}
        assert ctx.anything == {"k": 3 if summed else 2}
    assert base.table == {"a": 1}


class Strict(BaseModel):
    table: dict[str, int] = {}
    bounded: dict[str, int] = {}

    @field_validator("bounded")
    @classmethod
    def small(cls, value: dict[str, int]) -> dict[str, int]:
        if len(value) > 2:
            raise ValueError(f"at most 2 keys, got {len(value)}")
        return value


def test_only_written_keys_are_validated_and_bad_ones_are_caught() -> None:
    base = Strict(table={f"k{i}": i for i in range(100)}, bounded={"a": 1})
    branch = isolate(base, track=True)
    branch.table["k5"] = "seven"  # type: ignore[assignment]
    with pytest.raises(MergeValidationError, match=r"table\.k5") as err:
        merge_branches(base, [("b", branch)], resolve("deep"))
    assert "nothing was applied" in str(err.value)
    good = isolate(base, track=True)
    good.table["k5"] = "7"  # type: ignore[assignment]  # coerced like pydantic would
    merged = merge_branches(base, [("b", good)], resolve("deep")).context
    assert merged.table["k5"] == 7 and merged.table["k6"] == 6 and len(merged.table) == 100
    # a dict with a validator of its own is validated whole, so the validator sees every key
    grow = isolate(base, track=True)
    grow.bounded.update({"b": 2, "c": 3})
    with pytest.raises(MergeValidationError, match="at most 2 keys, got 3"):
        merge_branches(base, [("b", grow)], resolve("deep"))


SEEN: list[int] = []


def seen(value: int) -> int:
    SEEN.append(value)
    return value


class Log(BaseModel):
    items: Annotated[list[Annotated[int, AfterValidator(seen)]], fm.Append()] = []
    floats: Annotated[list[float], fm.Append()] = []
    capped: Annotated[list[int], Field(max_length=3), fm.Append()] = []


def test_a_list_the_merge_appended_to_is_validated_past_the_bases_items() -> None:
    base = Log(items=list(range(100)), floats=[0.5], capped=[1, 2])
    a, b = isolate(base, track=True), isolate(base, track=True)
    a.items.append(100)
    b.items.append("101")  # type: ignore[arg-type]  # coerced like pydantic would
    a.floats.append(1)  # type: ignore[arg-type]
    SEEN.clear()
    merged = merge_branches(base, [("a", a), ("b", b)], resolve("overwrite")).context
    assert SEEN == [100, 101]  # only the appended items met the item validator
    reference = Log.model_validate(  # what validating the whole merged lists gives
        {"items": [*range(100), 100, "101"], "floats": [0.5, 1], "capped": [1, 2]}
    )
    assert merged == reference and type(merged.floats[1]) is float
    bad = isolate(base, track=True)
    bad.items.append("x")  # type: ignore[arg-type]
    with pytest.raises(MergeValidationError, match=r"items\.100"):  # the index in the whole list
        merge_branches(base, [("bad", bad)], resolve("overwrite"))
    over = isolate(base, track=True)
    over.capped.extend([3, 4])  # a constraint on the whole list: validated whole
    with pytest.raises(MergeValidationError, match="at most 3 items"):
        merge_branches(base, [("over", over)], resolve("overwrite"))


class Checked(BaseModel):
    low: int = 0
    high: int = 10

    @model_validator(mode="after")
    def ordered(self) -> Checked:
        if self.low > self.high:
            raise ValueError(f"low={self.low} > high={self.high}")
        return self


def test_a_model_validator_sees_the_whole_merged_context() -> None:
    base = Checked()
    a, b = isolate(base, track=True), isolate(base, track=True)
    a.low = 8
    b.high = 5  # each valid alone; together low > high
    with pytest.raises(MergeValidationError, match="low=8 > high=5"):
        merge_branches(base, [("a", a), ("b", b)], resolve("overwrite"))
    assert base == Checked()


class Guarded(BaseModel):
    table: dict[str, int] = {}
    nested: dict[str, dict[str, int]] = {}
    label: str = "ok"

    @field_validator("label")
    @classmethod
    def not_bad(cls, value: str) -> str:
        if value == "bad":
            raise ValueError("label may not be 'bad'")
        return value


guarded_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, values),
        st.tuples(st.just("add_to"), keys, values),
        st.tuples(st.just("del"), keys),
        st.tuples(st.just("nest"), keys, keys, values),
        st.tuples(st.just("label"), st.sampled_from(["ok", "fine", "bad"])),
    ),
    max_size=4,
)


def run_guarded(ctx: Guarded, ops: list[tuple[Any, ...]]) -> None:
    for op, *args in ops:
        if op == "nest":
            inner = dict(ctx.nested.get(args[0], {}))
            inner[args[1]] = args[2]
            ctx.nested[args[0]] = inner
        elif op == "label":
            ctx.label = args[0]
        else:
            run_dict_op(ctx.table, op, *args)


@SETTINGS
@given(
    table=st.dictionaries(keys, values, max_size=5),
    nested=st.dictionaries(keys, st.dictionaries(keys, values, max_size=2), max_size=3),
    edits=st.lists(guarded_ops, min_size=1, max_size=4),
    how=st.sampled_from(fm.STRATEGIES),
)
def test_a_merge_that_reuses_the_base_equals_one_that_copies_and_undoes_on_failure(
    table: dict[str, int],
    nested: dict[str, dict[str, int]],
    edits: list[list[tuple[Any, ...]]],
    how: str,
) -> None:
    outcomes = []
    for reuse in (False, True):
        base = Guarded(table=dict(table), nested={k: dict(v) for k, v in nested.items()})
        snapshot = (
            list(base.table.items()),
            [(k, list(v.items())) for k, v in base.nested.items()],
        )
        branches = []
        for i, ops in enumerate(edits):
            ctx = isolate(base, track=True)
            run_guarded(ctx, ops)
            branches.append((f"b{i}", ctx))
        try:
            merged = merge_branches(base, branches, resolve(how), reuse_base=reuse).context
        except (fl.MergeConflict, MergeValidationError) as err:
            # nothing applied: the base is exactly as it was, key order included
            after = (
                list(base.table.items()),
                [(k, list(v.items())) for k, v in base.nested.items()],
            )
            assert after == snapshot
            outcomes.append(type(err).__name__)
            continue
        outcomes.append((list(merged.table.items()), merged.nested, merged.label))
    assert outcomes[0] == outcomes[1]
