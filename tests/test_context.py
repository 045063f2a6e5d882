"""Isolation and diffs of branch contexts (flowlab.core.context.isolation)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from flowlab.core.context.isolation import (
    Change,
    apply_inplace,
    check_context,
    check_include_keys,
    diff,
    isolate,
)
from flowlab.errors import ConfigError


class Inner(BaseModel):
    retries: int = 0
    labels: dict[str, str] = {}


class Ctx(BaseModel):
    n: int = 0
    scores: dict[str, Any] = {}
    tags: list[str] = []
    inner: Inner = Inner()
    status: str = "new"


class Locked(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    n: int = 0
    guard: Any = None


class Required(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    key: dict[str, int]
    n: int = 0
    items: list[int] = Field(default_factory=lambda: [7])


class WithPrivate(BaseModel):
    n: int = 0
    _cache: dict[str, int] = PrivateAttr(default_factory=dict)


def ops(changes: list[Change]) -> list[tuple[str, str, Any, Any]]:
    return [(c.dotted, c.op, c.before, c.after) for c in changes]


# --- check_context ------------------------------------------------------------------------------


def test_check_context_returns_the_model() -> None:
    ctx = Ctx()
    assert check_context(ctx) is ctx


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ({"n": 1}, ["ctx", "dict", "HINT", "Ctx(**your_dict)"]),
        (Ctx, ["ctx", "ModelMetaclass", "HINT", "ctx=Ctx()"]),
        (42, ["ctx", "int", "42", "HINT"]),
    ],
)
def test_check_context_names_param_type_and_hint(value: object, names: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        check_context(value)
    for name in names:
        assert name in str(info.value)


def test_check_context_uses_the_param_name() -> None:
    with pytest.raises(ConfigError, match=r"^context must be"):
        check_context(None, param="context")


# --- isolate ------------------------------------------------------------------------------------


def test_isolate_is_a_deep_copy() -> None:
    base = Ctx(scores={"a": {"x": [1]}}, tags=["w"], inner=Inner(labels={"k": "v"}))
    copy = isolate(base)
    assert copy == base and copy is not base
    copy.scores["a"]["x"].append(2)
    copy.tags.append("x")
    copy.inner.labels["k"] = "changed"
    copy.inner.retries = 3
    assert base == Ctx(scores={"a": {"x": [1]}}, tags=["w"], inner=Inner(labels={"k": "v"}))


def test_isolate_copies_private_attributes() -> None:
    base = WithPrivate()
    base._cache["a"] = 1
    copy = isolate(base, include_keys=["n"])
    copy._cache["b"] = 2
    assert base._cache == {"a": 1}
    assert copy._cache == {"a": 1, "b": 2}


def test_isolate_with_include_keys_gives_the_others_their_defaults() -> None:
    base = Ctx(n=5, tags=["w"], status="busy", scores={"a": 1})
    copy = isolate(base, include_keys=["n", "tags"])
    assert (copy.n, copy.tags) == (5, ["w"])
    assert (copy.status, copy.scores, copy.inner) == ("new", {}, Inner())
    copy.tags.append("x")
    assert base.tags == ["w"]


def test_isolate_with_include_keys_copies_fields_without_default() -> None:
    base = Required(key={"a": 1}, n=3, items=[1, 2])
    copy = isolate(base, include_keys=["n"])
    assert copy.key == {"a": 1} and copy.key is not base.key
    assert copy.items == [7]  # default_factory called
    assert copy.n == 3


def test_isolate_leaves_an_uncopyable_field_out_with_include_keys() -> None:
    base = Locked(n=1, guard=threading.Lock())
    copy = isolate(base, include_keys=["n"])
    assert copy.n == 1 and copy.guard is None


def test_isolate_names_the_field_that_cannot_be_copied() -> None:
    base = Locked(guard=threading.Lock())
    with pytest.raises(ConfigError) as info:
        isolate(base)
    message = str(info.value)
    assert "Locked.guard" in message and "deep-copied" in message and "include_keys" in message
    assert isinstance(info.value.__cause__, TypeError)


def test_isolate_rejects_unknown_include_keys_listing_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        isolate(Ctx(), include_keys=["n", "tagz"])
    message = str(info.value)
    assert "'tagz'" in message and "'tags'" in message and "'status'" in message
    assert "'n'," not in message.split("valid")[0]


def test_check_include_keys_rejects_a_bare_string() -> None:
    with pytest.raises(ConfigError, match=r"include_keys='tags'.*HINT: include_keys=\['tags'\]"):
        check_include_keys(Ctx, "tags")
    check_include_keys(Ctx, ["tags", "n"])


# --- diff ---------------------------------------------------------------------------------------


def test_diff_of_unchanged_context_is_empty() -> None:
    base = Ctx(scores={"a": [1, {"b": 2}]}, tags=["w"])
    assert diff(base, isolate(base)) == []


def test_diff_compares_identical_values_without_calling_eq() -> None:
    class Loud:
        calls = 0

        def __eq__(self, other: object) -> bool:
            Loud.calls += 1
            return True

        __hash__ = object.__hash__

    value = Loud()
    base = Locked(guard=value)
    branch = base.model_copy()
    assert diff(base, branch) == []
    assert Loud.calls == 0


def test_diff_scalar_change() -> None:
    base = Ctx()
    branch = isolate(base)
    branch.n = 3
    branch.status = "done"
    assert ops(diff(base, branch)) == [("n", "change", 0, 3), ("status", "change", "new", "done")]


def test_diff_dict_keys_recurse() -> None:
    base = Ctx(scores={"alice": 1, "bob": 2, "deep": {"x": 1, "y": 2}})
    branch = isolate(base)
    branch.scores["alice"] = 5
    del branch.scores["bob"]
    branch.scores["carol"] = 7
    branch.scores["deep"]["y"] = 3
    assert ops(diff(base, branch)) == [
        ("scores.alice", "change", 1, 5),
        ("scores.deep.y", "change", 2, 3),
        ("scores.bob", "remove", 2, None),
        ("scores.carol", "add", None, 7),
    ]
    change = diff(base, branch)[-1]
    assert change.path == ("scores", "carol")
    assert change.keys == ("scores", "carol")


def test_diff_dict_with_unhashable_values() -> None:
    base = Ctx(scores={"a": [1], "b": [2]})
    branch = isolate(base)
    branch.scores["b"].append(3)
    assert ops(diff(base, branch)) == [("scores.b[1]", "add", None, 3)]


def test_diff_added_keys_keep_the_branch_order() -> None:
    base = Ctx(scores={str(i): i for i in range(50)})
    branch = isolate(base)
    for key in ["z", "a", "m"]:
        branch.scores[key] = 0
    assert [c.dotted for c in diff(base, branch)] == ["scores.z", "scores.a", "scores.m"]


def test_diff_non_str_dict_keys_keep_the_real_key() -> None:
    class IntKeys(BaseModel):
        m: dict[int, int] = {}

    branch = IntKeys(m={1: 2})
    (change,) = diff(IntKeys(), branch)
    assert change.path == ("m", "[1]") and change.keys == ("m", 1)  # not the str key "1"
    assert change.dotted == "m[1]"


def test_diff_list_append_is_adds_at_branch_positions() -> None:
    base = Ctx(tags=["w"])
    branch = isolate(base)
    branch.tags += ["x", "y"]
    assert ops(diff(base, branch)) == [("tags[1]", "add", None, "x"), ("tags[2]", "add", None, "y")]


def test_diff_list_edit_in_the_middle_is_the_differing_slice() -> None:
    base = Ctx(tags=["a", "b", "c", "d"])
    branch = isolate(base)
    branch.tags[1:3] = ["X"]
    assert ops(diff(base, branch)) == [
        ("tags[1]", "remove", "b", None),
        ("tags[2]", "remove", "c", None),
        ("tags[1]", "add", None, "X"),
    ]


def test_diff_nested_model_recurses() -> None:
    base = Ctx()
    branch = isolate(base)
    branch.inner.retries = 2
    branch.inner.labels["k"] = "v"
    assert ops(diff(base, branch)) == [
        ("inner.retries", "change", 0, 2),
        ("inner.labels.k", "add", None, "v"),
    ]


def test_diff_type_change_is_a_whole_change() -> None:
    base = Ctx(scores={"a": [1]})
    branch = isolate(base)
    branch.scores["a"] = {"now": "dict"}
    assert ops(diff(base, branch)) == [("scores.a", "change", [1], {"now": "dict"})]


def test_diff_value_whose_eq_raises_counts_as_changed() -> None:
    class Weird:
        def __eq__(self, other: object) -> bool:
            raise ValueError("ambiguous truth value")

        __hash__ = object.__hash__

    base = Locked(guard=Weird())
    base.guard.v = 1
    branch = isolate(base)  # a deep copy: the same attributes, so no phantom change
    assert diff(base, branch) == []
    branch.guard.v = 2  # compared by their attributes, since == cannot answer
    assert [c.op for c in diff(base, branch)] == ["change"]


def test_diff_fields_restricts_to_those_fields() -> None:
    base = Ctx()
    branch = isolate(base)
    branch.n, branch.status = 1, "x"
    assert ops(diff(base, branch, fields=["status"])) == [("status", "change", "new", "x")]
    with pytest.raises(ConfigError, match=r"nope"):
        diff(base, branch, fields=["nope"])


def test_diff_needs_one_model() -> None:
    with pytest.raises(ConfigError, match=r"Ctx and Inner"):
        diff(Ctx(), Inner())  # type: ignore[arg-type]


def test_change_dotted() -> None:
    assert Change(("scores", "alice"), "add", None, 1).dotted == "scores.alice"
    assert Change(("a", "[3]", "b"), "add", None, 1).dotted == "a[3].b"
    assert Change(("a",), "add", None, 1).key_path == ("a",)


# --- apply_inplace ------------------------------------------------------------------------------


def test_apply_inplace_replaces_values_and_keeps_identity() -> None:
    target = WithPrivate(n=1)
    target._cache["keep"] = 1
    source = WithPrivate(n=9)
    before_id = id(target)
    apply_inplace(target, source)
    assert target.n == 9 and id(target) == before_id
    # the source's private attributes come along: a sequential step commits its working copy
    # this way, and its ``ctx._cache[...]`` writes must be kept (issue 17 #4)
    assert target._cache == {}
    source._cache["new"] = 2
    apply_inplace(target, source)
    assert target._cache == {"new": 2}
    assert target.model_fields_set == {"n"}


def test_apply_inplace_needs_the_same_model() -> None:
    with pytest.raises(ConfigError, match=r"Ctx.*Inner"):
        apply_inplace(Ctx(), Inner())


class LockedShared(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    guard: Any = None
    items: list[list[int]] = []
    same: list[list[int]] = []


def test_a_working_copy_around_an_uncopyable_field_keeps_shared_objects_shared() -> None:
    from flowlab.core.context.isolation import working_copy

    base = LockedShared(guard=threading.Lock(), items=[[1]])
    base.same = base.items
    run_copy = working_copy(base, [["items", "same"]])
    assert run_copy.guard is base.guard  # no Parallel touches it: shared, not copied
    assert run_copy.items is run_copy.same and run_copy.items is not base.items
    assert run_copy.items[0] is not base.items[0]
