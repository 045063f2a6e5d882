"""isolator(): a step's copy plan gives exactly what isolate() gives, copy after copy."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, PrivateAttr

from flowlab.core.context.isolation import diff, isolate
from flowlab.core.context.isolator import isolator
from flowlab.core.context.tracking import TrackedDict, TrackedList
from flowlab.errors import ConfigError

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)


class Inner(BaseModel):
    items: list[int] = []


class Rich(BaseModel):
    model_config = ConfigDict(extra="allow")

    n: int = 0
    name: str = "x"
    scores: dict[str, float] = {}
    tags: list[str] = []
    nested: dict[str, list[int]] = {}
    inner: Inner = Inner()
    anything: Any = None
    _secret: dict[str, int] = PrivateAttr(default_factory=dict)


def rich() -> Rich:
    ctx = Rich(
        n=3,
        scores={"a": 1.0},
        tags=["t"],
        nested={"k": [1, 2]},
        inner=Inner(items=[5]),
        anything={"deep": [1]},
        extra_field={"e": [1]},
    )
    ctx._secret["s"] = 1
    return ctx


def same_copy(a: BaseModel, b: BaseModel) -> None:
    assert type(a) is type(b)
    assert a.__dict__ == b.__dict__
    assert [type(v) for v in a.__dict__.values()] == [type(v) for v in b.__dict__.values()]
    assert list(a.__dict__) == list(b.__dict__)
    assert a.__pydantic_fields_set__ == b.__pydantic_fields_set__
    assert a.__pydantic_extra__ == b.__pydantic_extra__
    assert a.__pydantic_private__ == b.__pydantic_private__
    for x, y in zip(a.__dict__.values(), b.__dict__.values(), strict=True):
        if isinstance(x, (TrackedDict, TrackedList)):  # tracked alike: same origin, same marks
            assert x.origin is y.origin
            assert getattr(x, "written", None) == getattr(y, "written", None)
            assert getattr(x, "low", None) == getattr(y, "low", None)


@pytest.mark.parametrize("track", [False, True])
def test_a_planned_copy_is_what_isolate_gives(track: bool) -> None:
    base = rich()
    copy = isolator(base, track=track)
    for _ in range(3):
        same_copy(copy(), isolate(base, track=track))
    made = copy()
    assert made.nested["k"] is not base.nested["k"]
    assert made.anything["deep"] is not base.anything["deep"]
    assert (type(made.scores), type(made.tags)) == (
        (TrackedDict, TrackedList) if track else (dict, list)
    )


def test_planned_copies_are_independent_of_the_base_and_of_each_other() -> None:
    base = rich()
    copy = isolator(base, track=True)
    one, two = copy(), copy()
    one.scores["b"] = 2.0
    one.tags.append("u")
    one.nested["k"].append(3)
    one.inner.items.append(6)
    one.__pydantic_extra__["extra_field"]["e"].append(2)  # type: ignore[index]
    one._secret["s"] = 2
    one.name = "y"
    assert base == rich() and two == rich()
    assert base._secret == two._secret == {"s": 1}
    assert "name" in one.__pydantic_fields_set__
    assert "name" not in two.__pydantic_fields_set__ | base.__pydantic_fields_set__
    assert {c.dotted for c in diff(base, one)} == {
        "name",
        "scores.b",
        "tags[1]",
        "nested.k[2]",
        "inner.items[1]",
        "extra_field.e[1]",  # extras diff like fields
        "_secret",  # a private attribute: recorded whole (never merged)
    }
    assert diff(base, two) == []


def test_include_keys_copies_only_those_fields_like_isolate() -> None:
    base = rich()
    copy = isolator(base, ["n", "tags"], track=True)
    same_copy(copy(), isolate(base, ["n", "tags"], track=True))
    assert copy().scores == {}


def test_a_field_that_cannot_be_copied_names_itself_when_a_copy_is_made() -> None:
    class Holder(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        lock: Any = None

    copy = isolator(Holder(lock=threading.Lock()))
    with pytest.raises(ConfigError, match=r"Holder\.lock"):
        copy()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text("ab", max_size=2)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text("xyz", max_size=1), inner, max_size=3)
    ),
    max_leaves=8,
)


class Loose(BaseModel):
    a: Any = None
    b: Any = None
    flat: dict[str, int] = {}
    items: list[str] = []


def _mutate_everything(value: Any) -> None:
    """Change every container reachable from ``value`` in place."""
    if isinstance(value, dict):
        for child in list(value.values()):
            _mutate_everything(child)
        value["!"] = 1
    elif isinstance(value, list):
        for child in list(value):
            _mutate_everything(child)
        value.append("!")


@SETTINGS
@given(
    a=json_values,
    b=json_values,
    flat=st.dictionaries(st.text("pq", max_size=2), st.integers(), max_size=4),
    items=st.lists(st.text("rs", max_size=2), max_size=4),
    track=st.booleans(),
    share=st.sampled_from(["nothing", "b is items", "items inside a", "b is flat"]),
)
def test_planned_copies_equal_isolate_for_any_plain_context(
    a: Any, b: Any, flat: dict[str, int], items: list[str], track: bool, share: str
) -> None:
    base = Loose(a=a, b=b, flat=flat, items=items)
    if share == "b is items":  # fields sharing one object (assignment does not validate)
        base.b = base.items
    elif share == "items inside a":
        base.a = [base.items]
    elif share == "b is flat":
        base.b = base.flat
    before = base.model_dump()
    copy = isolator(base, track=track)
    first = copy()
    same_copy(first, isolate(base, track=track))
    assert _sharing(first) == _sharing(base) == _sharing(isolate(base, track=track))
    for value in first.__dict__.values():
        _mutate_everything(value)
    assert base.model_dump() == before  # deep independence from the base
    same_copy(copy(), isolate(base, track=track))  # and from the copies made before


def _sharing(ctx: Loose) -> tuple[bool, bool, bool]:
    """Which of the property's fields hold one object."""
    inside = isinstance(ctx.a, list) and bool(ctx.a) and ctx.a[0] is ctx.items
    return ctx.b is ctx.items, inside, ctx.b is ctx.flat


class Shared(BaseModel):
    a: list[int] = []
    b: list[int] = []
    table: dict[str, int] = {}
    also: dict[str, int] = {}
    nested: dict[str, list[int]] = {}


def shared(*, inside_deep: bool) -> Shared:
    """A context whose fields share objects, as user code makes them (``ctx.b = ctx.a``: no
    validation on assignment, so both fields hold the one list)."""
    base = Shared(a=[1, 2], table={"k": 1})
    base.b = base.a
    base.also = base.table
    if inside_deep:
        base.nested = {"x": base.a}
    return base


COPIERS = {
    "isolate": lambda ctx, track: isolate(ctx, track=track),
    "isolator": lambda ctx, track: isolator(ctx, track=track)(),
}


@pytest.mark.parametrize("inside_deep", [False, True])
@pytest.mark.parametrize("track", [False, True])
@pytest.mark.parametrize("how", sorted(COPIERS))
def test_fields_that_share_one_object_still_share_it_in_the_copy(
    how: str, track: bool, inside_deep: bool
) -> None:
    # As a deep copy does: the copy's fields share one new object wherever the base's fields
    # shared one, so a branch appending to ctx.a sees it in ctx.b, as sequential code would.
    base = shared(inside_deep=inside_deep)
    copy = COPIERS[how](base, track)
    assert copy.a is copy.b and copy.a is not base.a
    assert copy.also is copy.table and copy.table is not base.table
    if inside_deep:
        assert copy.nested["x"] is copy.a
    copy.a.append(3)
    copy.table["k"] = 2
    assert copy.b == [1, 2, 3] and copy.also == {"k": 2}
    assert base.a == [1, 2] and base.b is base.a and base.table == {"k": 1}
    changed = {c.dotted for c in diff(base, copy)}
    assert {"a[2]", "b[2]", "table.k", "also.k"} <= changed
