"""Merge laws over random contexts and random branch edits (Hypothesis)."""

from __future__ import annotations

import copy
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flowlab import merge as fm
from flowlab.core.context.isolation import MISSING, get_path, isolate
from flowlab.core.merge import MergeOutcome, merge_branches, resolve
from flowlab.errors import MergeConflict, MergeValidationError

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True)


class Sub(BaseModel):
    x: int = 0
    label: str = ""


class P(BaseModel):
    n: int = 0
    total: Annotated[int, fm.Sum()] = 0
    counts: Annotated[dict[str, int], fm.Sum()] = {}
    scores: dict[str, int] = {}
    tags: list[str] = []
    name: str = ""
    sub: Sub = Sub()


keys = st.sampled_from("abcd")
small = st.integers(-5, 5)
words = st.sampled_from(["x", "y", "z", "w"])

bases = st.builds(
    P,
    n=small,
    total=small,
    counts=st.dictionaries(keys, small, max_size=3),
    scores=st.dictionaries(keys, small, max_size=3),
    tags=st.lists(words, max_size=3),
    name=words,
    sub=st.builds(Sub, x=small, label=words),
)

edit_ops = st.one_of(
    st.tuples(st.just("n"), small),
    st.tuples(st.just("total"), small),
    st.tuples(st.just("count"), keys, small),
    st.tuples(st.just("score"), keys, small),
    st.tuples(st.just("del_score"), keys),
    st.tuples(st.just("tag"), words),
    st.tuples(st.just("drop_tag")),
    st.tuples(st.just("name"), words),
    st.tuples(st.just("sub_x"), small),
    st.tuples(st.just("sub_label"), words),
)
branch_edits = st.lists(st.lists(edit_ops, max_size=4), min_size=1, max_size=4)
strategies = st.sampled_from(fm.STRATEGIES)


def apply(ctx: P, ops: list[tuple[Any, ...]]) -> P:
    for op, *args in ops:
        if op == "n":
            ctx.n = args[0]
        elif op == "total":
            ctx.total += args[0]
        elif op == "count":
            ctx.counts[args[0]] = ctx.counts.get(args[0], 0) + args[1]
        elif op == "score":
            ctx.scores[args[0]] = args[1]
        elif op == "del_score":
            ctx.scores.pop(args[0], None)
        elif op == "tag":
            ctx.tags.append(args[0])
        elif op == "drop_tag":
            ctx.tags[:1] = []
        elif op == "name":
            ctx.name = args[0]
        elif op == "sub_x":
            ctx.sub.x = args[0]
        else:
            ctx.sub.label = args[0]
    return ctx


def make(base: P, edits: list[list[tuple[Any, ...]]]) -> list[tuple[str, P]]:
    return [(f"b{i}", apply(isolate(base), ops)) for i, ops in enumerate(edits)]


def outcome(base: P, branches: list[tuple[str, P]], how: str) -> MergeOutcome | MergeConflict:
    try:
        return merge_branches(base, branches, resolve(how))
    except MergeConflict as err:
        return err


@SETTINGS
@given(base=bases, edits=branch_edits)
def test_no_merge_leaves_the_base(base: P, edits: list[list[tuple[Any, ...]]]) -> None:
    assert merge_branches(base, make(base, edits), resolve("no_merge")).context == base


@SETTINGS
@given(base=bases, edits=branch_edits, how=strategies, at=st.integers(0, 4))
def test_an_unchanged_branch_changes_nothing(
    base: P, edits: list[list[tuple[Any, ...]]], how: str, at: int
) -> None:
    branches = make(base, edits)
    with_idle = [*branches]
    with_idle.insert(min(at, len(branches)), ("idle", isolate(base)))
    alone, both = outcome(base, branches, how), outcome(base, with_idle, how)
    if isinstance(alone, MergeConflict):
        assert isinstance(both, MergeConflict) and both.values == alone.values
    else:
        assert isinstance(both, MergeOutcome) and both.context == alone.context
        assert outcome(base, [("idle", isolate(base))], how).context == base  # type: ignore[union-attr]


@SETTINGS
@given(base=bases, edits=branch_edits, how=st.sampled_from(fm.STRATEGIES[1:]))
def test_sum_is_base_plus_the_sum_of_deltas(
    base: P, edits: list[list[tuple[Any, ...]]], how: str
) -> None:
    branches = make(base, edits)
    result = outcome(base, branches, how)
    if isinstance(result, MergeConflict):
        return  # conflicts are about the fields without Sum
    merged = result.context
    assert isinstance(merged, P)
    assert merged.total == base.total + sum(b.total - base.total for _, b in branches)
    counted = set(base.counts).union(*(b.counts for _, b in branches))
    assert merged.counts == {
        k: base.counts.get(k, 0)
        + sum(b.counts.get(k, 0) - base.counts.get(k, 0) for _, b in branches)
        for k in counted
    }
    reverse = outcome(base, branches[::-1], how)
    assert isinstance(reverse, MergeOutcome)
    assert isinstance(reverse.context, P)
    assert (reverse.context.total, reverse.context.counts) == (merged.total, merged.counts)


@SETTINGS
@given(base=bases, edits=branch_edits, how=strategies)
def test_the_same_input_gives_the_same_result(
    base: P, edits: list[list[tuple[Any, ...]]], how: str
) -> None:
    first = outcome(base, make(base, edits), how)
    again = outcome(base, make(base, edits), how)
    if isinstance(first, MergeConflict):
        assert isinstance(again, MergeConflict)
        assert (again.path, again.values, again.report) == (first.path, first.values, first.report)
    else:
        assert isinstance(again, MergeOutcome)
        assert (again.context, again.rows) == (first.context, first.rows)


@SETTINGS
@given(
    base=bases,
    edits=branch_edits,
    how=st.sampled_from(["overwrite", "keep_first", "deep", "error_on_conflict"]),
)
def test_a_single_branch_is_taken_as_it_is(
    base: P, edits: list[list[tuple[Any, ...]]], how: str
) -> None:
    (only,) = make(base, edits[:1])
    assert merge_branches(base, [only], resolve(how)).context == only[1]


@SETTINGS
@given(base=bases, edits=branch_edits, how=strategies)
def test_a_merge_never_mutates_the_base(
    base: P, edits: list[list[tuple[Any, ...]]], how: str
) -> None:
    snapshot = copy.deepcopy(base)
    outcome(base, make(base, edits), how)
    assert base == snapshot


@SETTINGS
@given(base=bases, edits=branch_edits)
def test_a_conflict_is_two_writers_with_different_values_and_applies_nothing(
    base: P, edits: list[list[tuple[Any, ...]]]
) -> None:
    snapshot = copy.deepcopy(base)
    branches = make(base, edits)
    result = outcome(base, branches, "error_on_conflict")
    assert base == snapshot
    if isinstance(result, MergeConflict):
        values = list(result.values.values())
        assert len(values) >= 2
        assert any(v != values[0] for v in values[1:])
        assert result.path in {r["path"] for r in result.report if r["conflict"]}
    else:
        for row in result.rows:  # every writer of a path agrees with what was merged
            # lists merge by position (tests/test_merge_reference.py checks them against a model)
            if row["rule"] == "error_on_conflict" and not isinstance(row["after"], list):
                for name, ctx in branches:
                    if name in row["writers"]:
                        value = get_path(ctx, row["path"].split("."))
                        assert (None if value is MISSING else value) == row["after"]


@pytest.mark.parametrize("how", fm.STRATEGIES)
def test_failed_validation_leaves_the_base(how: str) -> None:
    from pydantic import Field

    class Tight(BaseModel):
        total: Annotated[int, fm.Sum(), Field(le=3)] = 2

    base = Tight()
    snapshot = copy.deepcopy(base)
    branches = [(n, isolate(base)) for n in "ab"]
    for _, ctx in branches:
        ctx.total = 3
    if how == "no_merge":
        assert merge_branches(base, branches, resolve(how)).context == base
    else:
        with pytest.raises(MergeValidationError):  # Sum: 2 + 1 + 1 = 4 > 3
            merge_branches(base, branches, resolve(how))
    assert base == snapshot


replacements = st.lists(
    st.one_of(
        st.tuples(st.just("scores"), st.dictionaries(keys, small, max_size=3)),
        st.tuples(st.just("tags"), st.lists(words, max_size=3)),
        st.tuples(st.just("sub"), st.builds(Sub, x=small, label=words)),
    ),
    max_size=2,
)


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    """``value`` at ``path``, or MISSING where a key is absent."""
    for key in path:
        if isinstance(value, BaseModel):
            value = value.__dict__[key]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return MISSING
    return value


@SETTINGS
@given(base=bases, edits=branch_edits, whole=st.lists(replacements, max_size=4))
def test_each_branch_value_is_rebuilt_from_its_changes_at_every_path(
    base: P, edits: list[list[tuple[Any, ...]]], whole: list[list[tuple[str, Any]]]
) -> None:
    # What the merge reads instead of a branch's context: its value at any path of the change
    # tree, from the base's value there and the changes it filed below.
    from flowlab.core.context.changes import same
    from flowlab.core.context.isolation import diff
    from flowlab.core.merge.nodes import ChangeNode, branch_value, branch_values

    branches = make(base, edits)
    for (_, ctx), fields in zip(branches, whole, strict=False):
        for name, value in fields:  # whole containers replaced, as well as edited inside
            setattr(ctx, name, copy.deepcopy(value))
    root = ChangeNode()
    for i, (_, ctx) in enumerate(branches):
        for change in diff(base, ctx):
            root.insert(i, change.key_path, change)

    def check(node: ChangeNode, path: tuple[Any, ...]) -> int:
        together = branch_values(node, node.writers, _at(base, path))
        assert list(together) == node.writers  # in writer order
        for i in node.writers:
            rebuilt = branch_value(node, i, _at(base, path))
            assert same(rebuilt, _at(branches[i][1], path)), (path, i)
            assert same(together[i], rebuilt), (path, i)
        return 1 + sum(check(child, (*path, key)) for key, child in node.children.items())

    check(root, ())


class _Opt(BaseModel):
    meta: dict[str, int] | None = {}


def test_branch_values_come_in_writer_order_when_some_wrote_whole_and_some_below() -> None:
    from flowlab.core.context.isolation import diff
    from flowlab.core.merge.nodes import ChangeNode, branch_values

    base = _Opt(meta={"x": 0})
    below, whole, also_below = isolate(base), isolate(base), isolate(base)
    below.meta["a"] = 1  # type: ignore[index]
    whole.meta = None
    also_below.meta["b"] = 2  # type: ignore[index]
    root = ChangeNode()
    for i, ctx in enumerate((below, whole, also_below)):
        for change in diff(base, ctx):
            root.insert(i, change.key_path, change)
    node = root.children["meta"]
    assert node.writers == [0, 1, 2]
    assert branch_values(node, node.writers, base.meta) == {
        0: {"x": 0, "a": 1},
        1: None,
        2: {"x": 0, "b": 2},
    }
    assert list(branch_values(node, node.writers, base.meta)) == [0, 1, 2]
