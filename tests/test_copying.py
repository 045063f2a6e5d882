"""The one copy policy (flowlab.core.context.copying) against copy.deepcopy, its reference."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from flowlab.core.context.copying import ATOMIC, copy_value, snapshot


class Leaf(BaseModel):
    name: str = ""
    items: list[Any] = []


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")
    n: int = 0


class Opaque:
    """Not plain data: copied by its own rules (deepcopy) or kept (snapshot)."""

    def __init__(self, items: list[int]) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.items == self.items

    __hash__ = None  # type: ignore[assignment]


scalars = st.one_of(
    st.integers(),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.just(datetime.date(2026, 12, 7)),
)


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=2), children, max_size=4),
        st.tuples(children, children),
        st.builds(Leaf, name=st.text(max_size=2), items=st.lists(children, max_size=3)),
        st.builds(Opaque, st.lists(st.integers(), max_size=2)),
        st.frozensets(scalars, max_size=3),
    )


values = st.recursive(scalars, containers, max_leaves=20)


@st.composite
def aliased(draw: st.DrawFn) -> Any:
    """A list of values where some positions hold the very same object."""
    pool = draw(st.lists(values, min_size=1, max_size=4))
    picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=6))
    return [pool[i] for i in picks]


def shape(value: Any, seen: dict[int, int] | None = None) -> Any:
    """The value as a tree of types and scalars, objects met again named by first-seen order."""
    seen = {} if seen is None else seen
    if type(value) in ATOMIC:
        return value
    if id(value) in seen:
        return ("again", seen[id(value)])
    seen[id(value)] = len(seen)
    if isinstance(value, dict):
        return ("dict", [(k, shape(v, seen)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [shape(v, seen) for v in value])
    if isinstance(value, frozenset | set):
        return (type(value).__name__, sorted(map(repr, value)))
    if isinstance(value, BaseModel):
        return (type(value).__name__, shape(value.__dict__, seen), shape(value.model_extra, seen))
    return (type(value).__name__, shape(value.__dict__, seen))


def mutable_ids(value: Any, out: set[int] | None = None) -> set[int]:
    out = set() if out is None else out
    if type(value) in ATOMIC or id(value) in out:
        return out
    if isinstance(value, dict | list | BaseModel | Opaque | set):
        out.add(id(value))
    inner = (
        value.values()
        if isinstance(value, dict)
        else value.__dict__.values()
        if isinstance(value, BaseModel | Opaque)
        else value
        if isinstance(value, list | tuple)
        else ()
    )
    for item in inner:
        mutable_ids(item, out)
    return out


@settings(max_examples=300, deadline=None)
@given(aliased())
def test_a_copy_is_what_a_deep_copy_is(value: Any) -> None:
    mine, reference = copy_value(value), copy.deepcopy(value)
    assert mine == reference == value
    assert shape(mine) == shape(reference)  # same types, same sharing between positions
    assert not mutable_ids(mine) & mutable_ids(value)  # nothing mutable shared with the original


@settings(max_examples=300, deadline=None)
@given(aliased())
def test_a_snapshot_copies_plain_data_and_keeps_other_objects(value: Any) -> None:
    shown = snapshot(value)
    assert shown == value
    assert shape(shown) == shape(value)
    opaque = {id(v) for v in _walk(value) if isinstance(v, Opaque)}
    assert {id(v) for v in _walk(shown) if isinstance(v, Opaque)} == opaque  # kept as they are
    plain = mutable_ids(value) - opaque - {i for v in _walk(value) if isinstance(v, Opaque)
                                            for i in mutable_ids(v.__dict__)}  # fmt: skip
    assert not mutable_ids(shown) & plain


def _walk(value: Any) -> list[Any]:
    out: list[Any] = []
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if type(item) in ATOMIC or id(item) in seen:
            continue
        seen.add(id(item))
        out.append(item)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, BaseModel):
            stack.extend(item.__dict__.values())
    return out


def test_cycles_copy_like_deepcopy_and_refuse_a_snapshot() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    copied = copy_value(loop)
    assert copied[1] is copied and copied is not loop
    with pytest.raises(RecursionError, match="contains itself"):
        snapshot(loop)


def test_model_extras_private_and_fields_set_are_copied() -> None:
    class Private(BaseModel):
        n: int = 0
        _cache: dict[str, list[int]] = {}

    loose = Loose(n=1, bag=[1, 2])
    copied = copy_value(loose)
    assert copied == loose and copied.model_extra == {"bag": [1, 2]}
    assert copied.model_extra is not None and loose.model_extra is not None
    assert copied.model_extra["bag"] is not loose.model_extra["bag"]
    assert copied.model_fields_set == loose.model_fields_set
    private = Private(n=2)
    private._cache["k"] = [1]
    twin = copy_value(private)
    assert twin._cache == {"k": [1]} and twin._cache["k"] is not private._cache["k"]


def test_a_message_held_twice_stays_one_object() -> None:
    # Held by the list alone, twice (no other name): the copy's fast path must still see it.
    history = [{"role": "user", "content": "hi"}] * 2 + [{"role": "ai", "content": "yo"}]
    copied = copy_value(history)
    assert copied[0] is copied[1] and copied[0] is not history[0] and copied == history
    assert copied[2] is not history[2]
