"""The merge against an independent reference model, over random edit programs (Hypothesis).

The reference (:func:`ref_merge`) is written from DESIGN.md's merge semantics alone, on plain
values: it never sees flowlab's diffs, change tree or list hunks. It takes each branch's *final*
context, finds the writers of a path by comparing values (type-aware, arrays by
``numpy.array_equal``), and decides each path by the strategy or the field's rule:

* ``overwrite`` / ``keep_first``: the last / first writer's whole value (nested models per field);
* ``deep``: dicts key by key, lists by position (below), other values: last writer;
* ``deep_keep_first``: ``deep``, other values: first writer;
* ``accumulate``: ``deep``, numbers add their deltas, lists de-duplicate the items branches added;
* ``error_on_conflict``: dicts key by key, lists by position (raise when edits collide, unless
  every writer ended equal), other values: raise unless every writer agrees;
* rules: ``Sum`` adds deltas, ``Max`` takes the largest, ``Union`` / ``Append`` merge by position,
  ``operator.add`` keeps the base's items no writer removed, then each writer's insertions.

A list merges by position over the base: each writer's list is aligned with the base (common
prefix and suffix, then a longest common subsequence), every base item any writer removed is
removed, every item any writer inserted is kept at its place (writers in merge order at one
place), an identical removal or replacement counts once.

``FLOWLAB_MERGE_EXAMPLES=10000`` runs the differential test at 10,000 examples.
"""

from __future__ import annotations

import operator
import os
from typing import Annotated, Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from flowlab import merge as fm
from flowlab.core.context.isolation import isolate
from flowlab.core.merge import merge_branches, resolve
from flowlab.errors import MergeConflict

EXAMPLES = int(os.environ.get("FLOWLAB_MERGE_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

GONE = object()  # the reference's "no value here"


class Sub(BaseModel):
    x: int = 0
    y: str = ""


class Ctx(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    n: int = 0
    s: str = ""
    d: dict[str, Any] = {}
    tags: list[str] = []
    arr: Any = None
    sub: Sub = Sub()
    total: Annotated[int, fm.Sum()] = 0
    top: Annotated[int, fm.Max()] = 0
    u: Annotated[list[str], fm.Union()] = []
    ap: Annotated[list[str], fm.Append()] = []
    log: Annotated[list[str], operator.add] = []


RULES = {"total": "sum", "top": "max", "u": "union", "ap": "append", "log": "add"}


# ---- the reference -----------------------------------------------------------------------------
def eq(a: Any, b: Any) -> bool:
    """Type-aware value equality; arrays by numpy.array_equal."""
    if a is GONE or b is GONE:
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):  # (branches hold dict / list subclasses
        return a.keys() == b.keys() and all(eq(a[k], b[k]) for k in a)  # that track writes)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and bool(np.array_equal(a, b))
    if isinstance(a, BaseModel):
        return all(eq(getattr(a, f), getattr(b, f)) for f in type(a).model_fields)
    return bool(a == b)


def is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class Conflict(Exception):
    pass


def align(base: list[Any], new: list[Any]) -> list[tuple[int, int, list[Any]]]:
    """Hunks (start, end, inserted): base[start:end] removed, inserted put there."""
    lo = 0
    while lo < len(base) and lo < len(new) and eq(base[lo], new[lo]):
        lo += 1
    hi_b, hi_n = len(base), len(new)
    if len(new) >= len(base) and lo == len(base):  # pure append
        return [(lo, lo, new[lo:])] if len(new) > lo else []
    while hi_b > lo and hi_n > lo and eq(base[hi_b - 1], new[hi_n - 1]):
        hi_b -= 1
        hi_n -= 1
    old, mid = base[lo:hi_b], new[lo:hi_n]
    if not old or not mid:
        return [(lo, hi_b, mid)]
    # longest common subsequence, walked from the front: a match when it keeps the LCS length,
    # otherwise a removal when that keeps it, otherwise an insertion
    memo: dict[tuple[int, int], int] = {}

    def lcs(i: int, j: int) -> int:
        if i == len(old) or j == len(mid):
            return 0
        if (i, j) not in memo:
            memo[i, j] = (
                lcs(i + 1, j + 1) + 1 if eq(old[i], mid[j]) else max(lcs(i + 1, j), lcs(i, j + 1))
            )
        return memo[i, j]

    hunks: list[tuple[int, int, list[Any]]] = []
    i = j = 0
    cur: list[Any] | None = None
    start = 0
    while i < len(old) or j < len(mid):
        if (
            i < len(old)
            and j < len(mid)
            and eq(old[i], mid[j])
            and lcs(i, j) == lcs(i + 1, j + 1) + 1
        ):
            if cur is not None:
                hunks.append((lo + start, lo + i, cur))
                cur = None
            i, j = i + 1, j + 1
            continue
        if cur is None:
            cur, start = [], i
        if i < len(old) and (j == len(mid) or lcs(i + 1, j) >= lcs(i, j + 1)):
            i += 1
        else:
            cur.append(mid[j])
            j += 1
    if cur is not None:
        hunks.append((lo + start, lo + i, cur))
    return hunks


def merge_list(base: list[Any], values: list[list[Any]], dedupe: bool) -> tuple[list[Any], bool]:
    """Positional merge of the writers' lists; (merged, collided)."""
    n = len(base)
    removed = [False] * n
    at: list[list[Any]] = [[] for _ in range(n + 1)]
    applied: list[tuple[int, int, list[Any]]] = []
    replacements: list[tuple[int, int, int]] = []
    wholes: list[int] = []
    inserters: list[int] = []
    collided = False
    for w, value in enumerate(values):
        hunks = align(base, value)
        if any(h[2] for h in hunks):
            inserters.append(w)
        if n and len(hunks) == 1 and hunks[0][:2] == (0, n) and hunks[0][2]:
            wholes.append(w)
        for start, end, items in hunks:
            if start < end:
                if any(h[:2] == (start, end) and eq(h[2], items) for h in applied):
                    continue
                applied.append((start, end, items))
                if items:
                    if any(o != w and s < end and start < e for s, e, o in replacements):
                        collided = True
                    replacements.append((start, end, w))
                for k in range(start, end):
                    removed[k] = True
            at[start].extend(items)
    if wholes and any(w not in wholes for w in inserters):
        collided = True
    out: list[Any] = []
    kept: list[Any] = [base[k] for k in range(n) if not removed[k]]
    for gap in range(n + 1):
        for item in at[gap]:
            if dedupe and any(eq(item, o) for o in [*kept, *out]):
                continue
            out.append(item)
        if gap < n and not removed[gap]:
            out.append(base[gap])
    return out, collided


def ref_value(how: str, base: Any, values: list[Any]) -> Any:
    """The merged value of one path whose writers (in merge order) ended with ``values``."""
    if not values:
        return base
    if how in ("overwrite", "keep_first"):
        if isinstance(base, BaseModel):
            return ref_model(how, base, values)
        return values[-1] if how == "overwrite" else values[0]
    if how == "sum" or (
        how == "accumulate" and (is_num(base) or base is GONE) and all(map(is_num, values))
    ):  # a number new in several branches adds up from 0 (a counter key first seen)
        start = 0 if base is GONE else base
        return start + sum(v - start for v in values)
    if how == "max":
        return max([base, *values])
    if how == "add":  # a reducer: the base without removed items, then each writer's insertions
        hunks = [align(base, v) for v in values]
        gone = {k for hs in hunks for start, end, _ in hs for k in range(start, end)}
        kept = [item for k, item in enumerate(base) if k not in gone]
        return kept + [item for hs in hunks for _, _, items in hs for item in items]
    if isinstance(base, BaseModel):
        return ref_model(how, base, values)
    if all(isinstance(v, dict) for v in values) and (base is GONE or isinstance(base, dict)):
        if how == "error_on_conflict" and len(values) == 1:
            return values[0]
        b = {} if base is GONE else base
        out = dict(b)
        for key in dict.fromkeys([k for v in [b, *values] for k in v]):
            old = b.get(key, GONE)
            writers = [v.get(key, GONE) for v in values if not eq(v.get(key, GONE), old)]
            merged = ref_value(how, old, writers)
            if merged is GONE:
                out.pop(key, None)
            else:
                out[key] = merged
        return out
    if (base is GONE or isinstance(base, list)) and all(isinstance(v, list) for v in values):
        base = [] if base is GONE else base  # a list new in the writers merges over []
        if how == "error_on_conflict" and all(eq(values[0], v) for v in values[1:]):
            return values[-1]
        if how not in ("error_on_conflict", "union", "accumulate") and len(values) == 1:
            return values[0]
        merged, collided = merge_list(base, values, dedupe=how in ("union", "accumulate"))
        if collided and how == "error_on_conflict":
            raise Conflict
        return merged
    if how == "error_on_conflict" and not all(eq(values[0], v) for v in values[1:]):
        raise Conflict
    return values[0] if how == "deep_keep_first" else values[-1]


def ref_model(how: str, base: BaseModel, branches: list[BaseModel]) -> BaseModel:
    data = {}
    for name in type(base).model_fields:
        old = getattr(base, name)
        writers = [getattr(b, name) for b in branches if not eq(getattr(b, name), old)]
        rule = RULES.get(name, how) if type(base) is Ctx else how
        data[name] = ref_value(rule, old, writers)
    return type(base).model_construct(**data)


def ref_merge(how: str, base: Ctx, branches: list[Ctx]) -> Ctx | type[Conflict]:
    if how == "no_merge":
        return base
    try:
        return ref_model(how, base, branches)  # type: ignore[return-value]
    except Conflict:
        return Conflict


# ---- random contexts and edit programs ------------------------------------------------------------
words = st.sampled_from(["a", "b", "c", "d"])
small = st.integers(-3, 3)
keys = st.sampled_from(["k", "m", "p"])
leaf = st.one_of(small, words, st.booleans(), st.lists(words, max_size=3))
dvalue = st.one_of(leaf, st.dictionaries(st.sampled_from(["x", "y"]), small, max_size=2))
wordlists = st.lists(words, max_size=5)

bases = st.builds(
    Ctx,
    n=small,
    s=words,
    d=st.dictionaries(keys, dvalue, max_size=3),
    tags=wordlists,
    arr=st.one_of(st.none(), st.builds(np.arange, st.integers(1, 3))),
    sub=st.builds(Sub, x=small, y=words),
    total=small,
    top=small,
    u=wordlists,
    ap=wordlists,
    log=wordlists,
)

list_targets = st.sampled_from(["tags", "u", "ap", "log", "d"])
pos = st.integers(0, 5)
list_ops = st.one_of(
    st.tuples(st.just("append"), words),
    st.tuples(st.just("insert"), pos, words),
    st.tuples(st.just("remove_at"), pos),
    st.tuples(st.just("replace"), pos, words),
    st.tuples(st.just("sort")),
    st.tuples(st.just("whole"), wordlists),
)
list_edits = st.tuples(st.just("list"), list_targets, keys, list_ops)
ops = st.one_of(
    list_edits,  # weighted: most interesting merges are several branches editing one list
    list_edits,
    list_edits,
    st.tuples(st.just("n"), small),
    st.tuples(st.just("s"), words),
    st.tuples(st.just("total"), small),
    st.tuples(st.just("top"), small),
    st.tuples(st.just("arr"), st.integers(0, 2)),
    st.tuples(st.just("sub_x"), small),
    st.tuples(st.just("d_set"), keys, dvalue),
    st.tuples(st.just("d_del"), keys),
    st.tuples(st.just("d_inner"), keys, st.sampled_from(["x", "y"]), small),
    st.tuples(st.just("whole_d"), st.dictionaries(keys, dvalue, max_size=2)),
    # the branch's own (tracked) list stored under a key new to the base: merged as the plain
    # list it is (with a sibling's stash there, item by item)
    st.tuples(st.just("stash"), st.sampled_from(["tags", "u", "ap", "log"])),
)
programs = st.lists(st.lists(ops, min_size=1, max_size=4), min_size=1, max_size=4)


def edit_list(items: list[Any], op: tuple[Any, ...]) -> None:
    kind, *args = op
    if kind == "append":
        items.append(args[0])
    elif kind == "insert":
        items.insert(min(args[0], len(items)), args[1])
    elif kind == "remove_at" and items:
        del items[args[0] % len(items)]
    elif kind == "replace" and items:
        items[args[0] % len(items)] = args[1]
    elif kind == "sort" and all(isinstance(i, str) for i in items):
        items.sort()
    elif kind == "whole":
        items[:] = list(args[0])


def apply(ctx: Ctx, program: list[tuple[Any, ...]]) -> Ctx:
    for kind, *args in program:
        if kind in ("n", "s", "top"):
            setattr(ctx, kind, args[0])
        elif kind == "total":
            ctx.total += args[0]
        elif kind == "arr" and ctx.arr is not None:
            ctx.arr = ctx.arr + args[0]
        elif kind == "sub_x":
            ctx.sub.x = args[0]
        elif kind == "d_set":
            ctx.d[args[0]] = (
                args[1] if not isinstance(args[1], list | dict) else type(args[1])(args[1])
            )
        elif kind == "d_del":
            ctx.d.pop(args[0], None)
        elif kind == "d_inner" and isinstance(ctx.d.get(args[0]), dict):
            ctx.d[args[0]][args[1]] = args[2]
        elif kind == "list":
            target, key, op = args
            if target == "d":
                if isinstance(ctx.d.get(key), list):
                    edit_list(ctx.d[key], op)
            else:
                items = getattr(ctx, target)
                if op[0] == "whole":  # a new list object, as `ctx.tags = [...]` does
                    setattr(ctx, target, list(op[1]))
                else:
                    edit_list(items, op)
        elif kind == "stash":
            ctx.d["new"] = getattr(ctx, args[0])
        elif kind == "whole_d":
            ctx.d = {
                k: (type(v)(v) if isinstance(v, list | dict) else v) for k, v in args[0].items()
            }
    return ctx


def flowlab_merge(how: str, base: Ctx, branches: list[tuple[str, Ctx]]) -> Ctx | type[Conflict]:
    try:
        return merge_branches(base, branches, resolve(how)).context  # type: ignore[return-value]
    except MergeConflict:
        return Conflict


def same_ctx(a: Any, b: Any) -> bool:
    if a is Conflict or b is Conflict:
        return a is b
    return eq(a, b)


@SETTINGS
@given(base=bases, programs=programs, how=st.sampled_from(fm.STRATEGIES), reverse=st.booleans())
def test_the_merge_matches_the_reference_model(
    base: Ctx, programs: list[list[tuple[Any, ...]]], how: str, reverse: bool
) -> None:
    branches = [(f"b{i}", apply(isolate(base, track=True), p)) for i, p in enumerate(programs)]
    if reverse:  # the other merge order
        branches.reverse()
    snapshot = base.model_copy(deep=True)
    got = flowlab_merge(how, base, branches)
    expected = ref_merge(how, snapshot, [ctx for _, ctx in branches])
    assert same_ctx(got, expected), f"{how}: flowlab {got!r}\n   reference {expected!r}"
    assert eq(base, snapshot)  # the base is never mutated


@pytest.mark.parametrize(
    ("base", "values", "merged"),
    [
        (["t0"], [["new"], []], ["new"]),  # a removal never takes a sibling's insertion with it
        (["t0", "t1"], [["t0"], ["t1", "n"]], ["n"]),  # a removed base item never comes back
        (["t0", "t1"], [["front", "t0", "t1"], ["t0"]], ["front", "t0"]),
        (["a", "b"], [["a", "b", "x"], ["a", "b", "y"]], ["a", "b", "x", "y"]),
    ],
)
def test_the_reference_list_merge_on_the_issue_cases(
    base: list[str], values: list[list[str]], merged: list[str]
) -> None:
    # the reference itself, checked on hand-worked cases before it checks anything else
    assert merge_list(base, values, dedupe=False) == (merged, False)
