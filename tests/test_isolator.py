"""isolator(): a step's copy plan gives exactly what isolate() gives, copy after copy."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, PrivateAttr

from flowlab.context import diff, isolate
from flowlab.errors import ConfigError
from flowlab.isolator import isolator
from flowlab.tracking import TrackedDict, TrackedList

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
)
def test_planned_copies_equal_isolate_for_any_plain_context(
    a: Any, b: Any, flat: dict[str, int], items: list[str], track: bool
) -> None:
    base = Loose(a=a, b=b, flat=flat, items=items)
    before = base.model_dump()
    copy = isolator(base, track=track)
    first = copy()
    same_copy(first, isolate(base, track=track))
    for value in first.__dict__.values():
        _mutate_everything(value)
    assert base.model_dump() == before  # deep independence from the base
    same_copy(copy(), isolate(base, track=track))  # and from the copies made before
