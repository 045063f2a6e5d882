"""Merge strategies, field rules and the transactional three-way merge (flowlab.core.merge)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, ValidationError, field_validator

from flowlab import merge as fm
from flowlab.core.context.isolation import MISSING, diff, isolate
from flowlab.core.merge import MergeOutcome, merge_branches, resolve
from flowlab.errors import ConfigError, MergeConflict, MergeValidationError


class Ctx(BaseModel):
    counter: int = 10
    tags: list[str] = ["w"]
    nested: dict[str, Any] = {"a": {"b": 1, "c": 2}}
    status: str = "new"


def branch(base: BaseModel, edit: Callable[[Any], None]) -> Any:
    ctx = isolate(base)
    edit(ctx)
    return ctx


def merge(
    base: BaseModel, edits: dict[str, Callable[[Any], None]], how: Any = "overwrite", **kw: Any
) -> MergeOutcome:
    branches = [(name, branch(base, fn)) for name, fn in edits.items()]
    return merge_branches(base, branches, resolve(how), **kw)


def add(field: str, amount: int) -> Callable[[Any], None]:
    def edit(ctx: Any) -> None:
        setattr(ctx, field, getattr(ctx, field) + amount)

    return edit


def extend(field: str, items: list[Any]) -> Callable[[Any], None]:
    def edit(ctx: Any) -> None:
        getattr(ctx, field).extend(items)

    return edit


def put(field: str, value: Any) -> Callable[[Any], None]:
    return lambda ctx: setattr(ctx, field, value)


def nothing(ctx: Any) -> None:
    pass


# --- the acceptance examples -----------------------------------------------------------


class Counted(BaseModel):
    counter: int = 10
    total: Annotated[int, fm.Sum()] = 10


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_counter_accumulate_and_sum_add_both_deltas_in_any_order(order: tuple[str, str]) -> None:
    deltas = {"a": 5, "b": 3}
    edits = {
        n: (lambda d: lambda c: (add("counter", d)(c), add("total", d)(c)))(deltas[n])
        for n in order
    }
    assert merge(Counted(), edits, "accumulate").context.counter == 18
    assert merge(Counted(), edits, "overwrite").context.total == 18  # field rule beats strategy


@pytest.mark.parametrize(("order", "expected"), [(("a", "b"), 13), (("b", "a"), 15)])
def test_counter_overwrite_last_writer_in_order_wins(order: tuple[str, str], expected: int) -> None:
    deltas = {"a": 5, "b": 3}
    out = merge(Counted(), {n: add("counter", deltas[n]) for n in order}, "overwrite")
    assert out.context.counter == expected
    (row,) = [r for r in out.rows if r["path"] == "counter"]
    assert row["winner"] == order[-1] and row["writers"] == order


class Listy(BaseModel):
    plain: list[str] = ["w"]
    union: Annotated[list[str], fm.Union()] = ["w"]
    append: Annotated[list[str], fm.Append()] = ["w"]


def both_lists() -> dict[str, Callable[[Any], None]]:
    def a(ctx: Listy) -> None:
        for f in ("plain", "union", "append"):
            getattr(ctx, f).extend(["x", "y"])

    def b(ctx: Listy) -> None:
        for f in ("plain", "union", "append"):
            getattr(ctx, f).extend(["y", "z"])

    return {"a": a, "b": b}


@pytest.mark.parametrize(
    ("how", "plain"),
    [
        ("overwrite", ["w", "y", "z"]),
        ("keep_first", ["w", "x", "y"]),
        ("deep", ["w", "x", "y", "y", "z"]),
        ("accumulate", ["w", "x", "y", "z"]),
    ],
)
def test_list_examples(how: str, plain: list[str]) -> None:
    out = merge(Listy(), both_lists(), how).context
    assert out.plain == plain
    assert out.union == ["w", "x", "y", "z"]
    assert out.append == ["w", "x", "y", "y", "z"]


def test_union_with_key_attribute_and_function() -> None:
    class Hits(BaseModel):
        by_id: Annotated[list[dict[str, Any]], fm.Union(key="id")] = []
        by_fn: Annotated[list[str], fm.Union(key=str.lower)] = []

    def a(ctx: Hits) -> None:
        ctx.by_id += [{"id": 1, "v": "a"}, {"id": 2, "v": "a"}]
        ctx.by_fn += ["X", "y"]

    def b(ctx: Hits) -> None:
        ctx.by_id += [{"id": 2, "v": "b"}, {"id": 3, "v": "b"}]
        ctx.by_fn += ["x", "Z"]

    out = merge(Hits(), {"a": a, "b": b}, "overwrite").context
    assert out.by_id == [{"id": 1, "v": "a"}, {"id": 2, "v": "a"}, {"id": 3, "v": "b"}]
    assert out.by_fn == ["X", "y", "Z"]


def test_deep_merges_nested_dicts_key_by_key() -> None:
    def a(ctx: Ctx) -> None:
        ctx.nested["a"]["b"] = 3

    def b(ctx: Ctx) -> None:
        ctx.nested["a"]["d"] = 4

    for how in ("deep", "accumulate", "error_on_conflict"):
        out = merge(Ctx(), {"a": a, "b": b}, how)
        assert out.context.nested == {"a": {"b": 3, "c": 2, "d": 4}}, how
    rows = merge(Ctx(), {"a": a, "b": b}, "deep").rows
    assert [(r["path"], r["writers"], r["winner"], r["after"]) for r in rows] == [
        ("nested.a.b", ("a",), "a", 3),
        ("nested.a.d", ("b",), "b", 4),
    ]


@pytest.mark.parametrize("how", ["deep", "accumulate", "overwrite", "error_on_conflict"])
def test_a_decrease_inside_a_dict_survives(how: str) -> None:
    def lower(ctx: Ctx) -> None:
        ctx.nested["a"]["b"] = -7

    out = merge(Ctx(), {"a": lower, "b": nothing}, how)
    assert out.context.nested["a"]["b"] == -7


def test_accumulate_adds_deltas_inside_dicts() -> None:
    base = Ctx(nested={"hits": {"x": 10}})

    def a(ctx: Ctx) -> None:
        ctx.nested["hits"]["x"] -= 4
        ctx.nested["hits"]["new"] = 2

    def b(ctx: Ctx) -> None:
        ctx.nested["hits"]["x"] += 1
        ctx.nested["hits"]["new"] = 3

    assert merge(base, {"a": a, "b": b}, "accumulate").context.nested == {
        "hits": {"x": 7, "new": 5}
    }


class Counters(BaseModel):
    hits: Annotated[dict[str, int], fm.Sum()] = {"a": 1, "gone": 4}
    best: Annotated[float, fm.Max()] = 0.5
    low: Annotated[dict[str, float], fm.Min()] = {"x": 1.0}


def test_sum_per_key_for_dict_counters() -> None:
    def a(ctx: Counters) -> None:
        ctx.hits["a"] += 2
        ctx.hits["b"] = 1

    def b(ctx: Counters) -> None:
        ctx.hits["a"] += 1
        ctx.hits["c"] = 5
        ctx.hits["b"] = 2

    assert merge(Counters(), {"a": a, "b": b}).context.hits == {"a": 4, "gone": 4, "b": 3, "c": 5}


def test_sum_counts_a_removed_key_as_zero_and_drops_it_when_all_removed() -> None:
    def drop(ctx: Counters) -> None:
        del ctx.hits["gone"]

    def bump(ctx: Counters) -> None:
        ctx.hits["gone"] += 1

    assert merge(Counters(), {"a": drop, "b": bump}).context.hits == {"a": 1, "gone": 1}
    assert merge(Counters(), {"a": drop, "b": drop}).context.hits == {"a": 1}


def test_max_and_min_across_branches_and_base() -> None:
    out = merge(Counters(), {"a": put("best", 0.2), "b": put("best", 0.9), "c": put("best", 0.4)})
    assert out.context.best == 0.9
    (row,) = out.rows
    assert row["winner"] == "b" and row["rule"] == "max"
    lowered = merge(Counters(), {"a": put("best", 0.1)}).context.best
    assert lowered == 0.5  # the base is larger

    def low_a(ctx: Counters) -> None:
        ctx.low["x"] = 3.0
        ctx.low["y"] = 2.0

    def low_b(ctx: Counters) -> None:
        ctx.low["x"] = 0.5
        ctx.low["y"] = 4.0

    assert merge(Counters(), {"a": low_a, "b": low_b}).context.low == {"x": 0.5, "y": 2.0}


# --- conflicts ----------------------------------------------------------------------------------


def test_one_writer_is_never_a_conflict() -> None:
    out = merge(Ctx(), {"a": put("status", "done"), "b": nothing}, "error_on_conflict")
    assert out.context.status == "done"
    assert [r["conflict"] for r in out.rows] == [False]


@pytest.mark.parametrize("how", ["accumulate", "deep", "sum_numbers"])
def test_a_lone_writer_s_float_is_taken_exactly(how: str) -> None:
    """0.939 + (0.283 - 0.939) is 0.28300000000000003: one writer's value is not a delta."""

    class Money(BaseModel):
        total: float = 0.939
        by_key: dict[str, float] = {"k": 0.939}

    def edit(ctx: Any) -> None:
        ctx.total = 0.283
        ctx.by_key["k"] = 0.283

    if how == "sum_numbers":

        class Summed(BaseModel):
            total: Annotated[float, fm.Sum()] = 0.939
            by_key: Annotated[dict[str, float], fm.Sum()] = {"k": 0.939}

        base: BaseModel = Summed()
        how = "overwrite"
    else:
        base = Money()
    out = merge(base, {"a": edit, "b": nothing}, how)
    assert out.context.total == 0.283  # type: ignore[attr-defined]
    assert out.context.by_key == {"k": 0.283}  # type: ignore[attr-defined]


def test_equal_writes_are_never_a_conflict() -> None:
    out = merge(
        Ctx(), {"a": put("status", "done"), "b": put("status", "done")}, "error_on_conflict"
    )
    assert out.context.status == "done"


def test_different_keys_of_one_dict_are_not_a_conflict() -> None:
    def a(ctx: Ctx) -> None:
        ctx.nested["x"] = 1

    def b(ctx: Ctx) -> None:
        ctx.nested["y"] = 2

    out = merge(Ctx(), {"a": a, "b": b}, "error_on_conflict").context
    assert out.nested == {"a": {"b": 1, "c": 2}, "x": 1, "y": 2}


def test_conflict_names_path_branches_and_values_and_applies_nothing() -> None:
    base = Ctx()
    snapshot = base.model_copy(deep=True)
    with pytest.raises(MergeConflict) as info:
        merge(
            base,
            {"a": put("status", "x"), "b": nothing, "c": put("status", "y")},
            "error_on_conflict",
        )
    err = info.value
    assert err.path == "status"
    assert err.values == {"a": "x", "c": "y"}
    assert err.branches == ["a", "c"]
    for text in ("'status'", "'a'", "'c'", "'x'", "'y'", "HINT"):
        assert text in str(err)
    assert [r for r in err.report if r["conflict"]] == [
        {
            "path": "status",
            "rule": "error_on_conflict",
            "writers": ("a", "c"),
            "winner": None,
            "before": "new",
            "after": None,
            "conflict": True,
            "dropped": (),
        }
    ]
    assert base == snapshot


def test_conflict_between_a_removal_and_an_edit_below_it() -> None:
    def remove(ctx: Ctx) -> None:
        del ctx.nested["a"]

    def edit(ctx: Ctx) -> None:
        ctx.nested["a"]["b"] = 9

    with pytest.raises(MergeConflict) as info:
        merge(Ctx(), {"r": remove, "e": edit}, "error_on_conflict")
    assert info.value.path == "nested.a"
    assert info.value.values["r"] is MISSING
    assert info.value.values["e"] == {"b": 9, "c": 2}


def test_error_on_conflict_merges_lists_by_position() -> None:
    # two appends do not collide: both go in, in merge order (DESIGN: lists merge by position)
    both = merge(
        Ctx(), {"a": extend("tags", ["x"]), "b": extend("tags", ["y"])}, "error_on_conflict"
    )
    assert both.context.tags == ["w", "x", "y"]

    def replace(value: str):
        def step(ctx: Ctx) -> None:
            ctx.tags[0] = value

        return step

    # two branches replacing one base item differently truly collide
    with pytest.raises(MergeConflict, match=r"'tags'"):
        merge(Ctx(), {"a": replace("p"), "b": replace("q")}, "error_on_conflict")
    same_items = merge(
        Ctx(), {"a": extend("tags", ["x"]), "b": extend("tags", ["x"])}, "error_on_conflict"
    )
    assert same_items.context.tags == ["w", "x"]


def test_error_on_conflict_field_rule_under_another_strategy() -> None:
    class Guarded(BaseModel):
        owner: Annotated[str, fm.ErrorOnConflict()] = ""
        note: str = ""

    edits = {"a": put("note", "a"), "b": put("note", "b")}
    assert merge(Guarded(), edits, "overwrite").context.note == "b"
    with pytest.raises(MergeConflict, match=r"'owner'"):
        merge(Guarded(), {"a": put("owner", "a"), "b": put("owner", "b")}, "overwrite")


def test_several_conflicts_are_all_reported() -> None:
    edits = {
        "a": lambda c: (put("status", "x")(c), put("counter", 1)(c)),
        "b": lambda c: (put("status", "y")(c), put("counter", 2)(c)),
    }
    with pytest.raises(MergeConflict) as info:
        merge(Ctx(), edits, "error_on_conflict")
    assert info.value.path == "counter"
    assert "Also conflicting: 'status'" in str(info.value)
    assert sum(r["conflict"] for r in info.value.report) == 2


# --- field rules, nested models -----------------------------------------------------------------


class Settings(BaseModel):
    retries: Annotated[int, fm.Sum()] = 0
    mode: str = "fast"
    seen: Annotated[list[str], fm.Union()] = []


class Outer(BaseModel):
    settings: Settings = Settings()
    frozen: Annotated[str, fm.Ignore()] = "base"
    first: Annotated[str, fm.KeepFirst()] = ""
    last: Annotated[str, fm.Overwrite()] = ""


def test_a_rule_on_a_nested_models_field_applies_there() -> None:
    def a(ctx: Outer) -> None:
        ctx.settings.retries += 2
        ctx.settings.mode = "slow"
        ctx.settings.seen += ["x"]

    def b(ctx: Outer) -> None:
        ctx.settings.retries += 3
        ctx.settings.seen += ["x", "y"]

    for how in ("overwrite", "deep", "keep_first"):
        out = merge(Outer(), {"a": a, "b": b}, how).context
        assert out.settings.retries == 5, how
        assert out.settings.mode == "slow", how  # only a wrote it
        assert out.settings.seen == ["x", "y"], how
    rules = {r["path"]: r["rule"] for r in merge(Outer(), {"a": a, "b": b}).rows}
    assert rules == {
        "settings.retries": "sum",
        "settings.mode": "overwrite",
        "settings.seen": "union",
    }


def test_ignore_keep_first_and_overwrite_rules() -> None:
    edits = {
        "a": lambda c: (put("frozen", "a")(c), put("first", "a")(c), put("last", "a")(c)),
        "b": lambda c: (put("frozen", "b")(c), put("first", "b")(c), put("last", "b")(c)),
    }
    out = merge(Outer(), edits, "keep_first").context
    assert (out.frozen, out.first, out.last) == ("base", "a", "b")


def test_step_rule_applies_to_fields_without_their_own_rule() -> None:
    class Tally(BaseModel):
        a: int = 1
        b: float = 0.0
        keep: Annotated[int, fm.KeepFirst()] = 0

    edits = {
        "x": lambda c: (add("a", 2)(c), add("b", 0.5)(c), put("keep", 1)(c)),
        "y": lambda c: (add("a", 3)(c), add("b", 0.25)(c), put("keep", 2)(c)),
    }
    out = merge(Tally(), edits, fm.Sum())
    assert (out.context.a, out.context.b, out.context.keep) == (6, 0.75, 1)
    assert {r["rule"] for r in out.rows} == {"sum", "keep_first"}


def test_custom_field_rule_gets_base_and_writers() -> None:
    seen: list[Any] = []

    def longest(base: str, values: dict[str, str]) -> str:
        seen.append((base, values))
        return max(values.values(), key=len)

    class Notes(BaseModel):
        text: Annotated[str, fm.Custom(longest)] = "base"

    out = merge(Notes(), {"a": put("text", "hello"), "b": nothing, "c": put("text", "hi")})
    assert out.context.text == "hello"
    assert seen == [("base", {"a": "hello", "c": "hi"})]
    assert (
        out.rows[0]["rule"]
        == "custom:test_custom_field_rule_gets_base_and_writers.<locals>.longest"
    )


def test_deep_list_merge_applies_removals_and_appends() -> None:
    base = Ctx(tags=["a", "b", "c"])

    def drop_b(ctx: Ctx) -> None:
        ctx.tags.remove("b")

    assert merge(base, {"x": drop_b, "y": extend("tags", ["d"])}, "deep").context.tags == [
        "a",
        "c",
        "d",
    ]
    assert merge(base, {"x": drop_b, "y": drop_b}, "deep").context.tags == ["a", "c"]


def test_deep_merges_sets_and_dicts_added_by_several_branches() -> None:
    class Bag(BaseModel):
        ids: set[int] = {1, 2}
        groups: dict[str, Any] = {}

    def a(ctx: Bag) -> None:
        ctx.ids |= {3}
        ctx.ids.discard(1)
        ctx.groups["g"] = {"x": 1, "l": [1]}

    def b(ctx: Bag) -> None:
        ctx.ids |= {4}
        ctx.groups["g"] = {"y": 2, "l": [2]}

    out = merge(Bag(), {"a": a, "b": b}, "deep").context
    assert out.ids == {2, 3, 4}
    assert out.groups == {"g": {"x": 1, "y": 2, "l": [1, 2]}}


def test_deep_when_one_branch_removes_what_another_edits_the_later_wins() -> None:
    def remove(ctx: Ctx) -> None:
        del ctx.nested["a"]

    def edit(ctx: Ctx) -> None:
        ctx.nested["a"]["b"] = 9

    assert merge(Ctx(), {"r": remove, "e": edit}, "deep").context.nested == {"a": {"b": 9, "c": 2}}
    assert merge(Ctx(), {"e": edit, "r": remove}, "deep").context.nested == {}


# --- strategies in general ----------------------------------------------------------------------


def test_no_merge_returns_the_base_and_reports_what_was_dropped() -> None:
    base = Counted()
    out = merge(base, {"a": add("counter", 5), "b": add("total", 3)}, "no_merge")
    assert out.context == base and out.context is not base
    assert [(r["path"], r["rule"], r["after"]) for r in out.rows] == [
        ("counter", "no_merge", 10),
        ("total", "no_merge", 10),
    ]


@pytest.mark.parametrize("how", fm.STRATEGIES)
def test_an_unchanged_branch_changes_nothing(how: str) -> None:
    base = Ctx()
    alone = merge(base, {"a": put("status", "done")}, how)
    with_idle = merge(base, {"a": put("status", "done"), "b": nothing}, how)
    assert alone.context == with_idle.context
    assert merge(base, {"b": nothing}, how).context == base
    assert merge(base, {"b": nothing}, how).rows == []


def test_branches_restricted_to_fields() -> None:
    base = Ctx()
    edits = {"a": lambda c: (put("status", "x")(c), add("counter", 1)(c))}
    out = merge(base, edits, "overwrite", fields=["status"])
    assert (out.context.status, out.context.counter) == ("x", 10)
    with pytest.raises(ConfigError, match=r"'nope'"):
        merge(base, edits, fields=["nope"])


def test_precomputed_diffs_are_used_not_recomputed() -> None:
    base = Ctx()
    a = branch(base, put("status", "a"))
    assert merge_branches(base, [("a", a)], resolve("deep")).context.status == "a"
    # the given diff, not the branch's context, decides: a diff that says otherwise wins
    other = {"a": diff(base, branch(base, put("status", "z")))}
    assert merge_branches(base, [("a", a)], resolve("deep"), diffs=other).context.status == "z"
    assert merge_branches(base, [("a", a)], resolve("deep"), diffs={"a": []}).context == base


def test_merge_keeps_fields_set_and_private_state() -> None:
    class P(BaseModel):
        n: int = 0
        m: int = 0

    base = P(m=1)
    out = merge(base, {"a": put("n", 2)}).context
    assert out.model_fields_set == {"m", "n"}


def test_the_result_is_new_and_the_base_is_never_mutated() -> None:
    base = Ctx()
    snapshot = base.model_copy(deep=True)
    for how in fm.STRATEGIES:
        out = merge(base, {"a": extend("tags", ["x"]), "b": put("status", "y")}, how)
        assert out.context is not base
    assert base == snapshot


# --- validation, custom whole-context merges ----------------------------------------------------


class Capped(BaseModel):
    total: Annotated[int, fm.Sum(), Field(le=20)] = 10
    name: str = ""

    @field_validator("name")
    @classmethod
    def _no_spaces(cls, v: str) -> str:
        if " " in v:
            raise ValueError("no spaces")
        return v


def test_merged_context_is_validated_and_nothing_applied_on_failure() -> None:
    base = Capped()
    snapshot = copy.deepcopy(base)
    with pytest.raises(MergeValidationError) as info:
        merge(base, {"a": add("total", 6), "b": add("total", 5)}, step="fan")
    err = info.value
    assert isinstance(err.__cause__, ValidationError)
    assert str(err).startswith("step 'fan': the merged context failed Capped validation")
    assert "less than or equal to 20" in str(err)
    assert err.report == [
        {
            "path": "total",
            "rule": "sum",
            "writers": ("a", "b"),
            "winner": None,
            "before": 10,
            "after": 21,
            "conflict": False,
            "dropped": (),
        }
    ]
    assert base == snapshot


def test_nested_model_merge_is_validated_too() -> None:
    class Inner(BaseModel):
        total: Annotated[int, fm.Sum(), Field(le=5)] = 0

    class Wrap(BaseModel):
        inner: Inner = Inner()

    def bump(ctx: Wrap) -> None:
        ctx.inner.total += 3

    with pytest.raises(MergeValidationError, match=r"at 'inner'"):
        merge(Wrap(), {"a": bump, "b": bump})


def test_custom_merge_function() -> None:
    def pick_longest(base: Ctx, ctxs: dict[str, Ctx]) -> Ctx:
        base.status = max((c.status for c in ctxs.values()), key=len)
        base.tags.append("merged")  # mutating the given base must not touch the real base
        return base

    base = Ctx()
    out = merge(base, {"a": put("status", "short"), "b": put("status", "longest")}, pick_longest)
    assert out.context.status == "longest"
    assert out.context.tags == ["w", "merged"]
    assert base == Ctx()
    assert [(r["path"], r["writers"]) for r in out.rows] == [("tags", ()), ("status", ("a", "b"))]
    assert out.rows[0]["rule"] == "custom:test_custom_merge_function.<locals>.pick_longest"


def test_custom_merge_returning_the_wrong_type() -> None:
    with pytest.raises(MergeValidationError) as info:
        merge(Ctx(), {"a": nothing}, lambda base, ctxs: {"status": "x"}, step="fan")
    message = str(info.value)
    for text in ("step 'fan'", "returned dict", "{'status': 'x'}", "not a Ctx", "HINT"):
        assert text in message


def test_custom_merge_result_is_validated() -> None:
    def bad(base: Capped, ctxs: dict[str, Capped]) -> Capped:
        base.name = "has space"  # no validate_assignment on the model
        return base

    with pytest.raises(MergeValidationError, match=r"no spaces") as info:
        merge(Capped(), {"a": nothing}, bad)
    assert isinstance(info.value.__cause__, ValidationError)


def test_branch_context_of_another_model_is_rejected() -> None:
    with pytest.raises(MergeValidationError, match=r"branch 'a' ended with a Capped"):
        merge_branches(Ctx(), [("a", Capped())], resolve("deep"))  # type: ignore[list-item]


# --- resolve / check_model / rules --------------------------------------------------------------


def test_resolve_names() -> None:
    assert [resolve(s).name for s in fm.STRATEGIES] == list(fm.STRATEGIES)
    assert resolve("no_merge").rule is None
    assert resolve(fm.Union(key="id")).name == "union"

    def combine(base: BaseModel, ctxs: dict[str, BaseModel]) -> BaseModel:
        return base

    spec = resolve(combine)
    assert spec.name.startswith("custom:") and spec.name.endswith("combine") and spec.fn is combine
    assert resolve(spec) is spec


@pytest.mark.parametrize(
    ("value", "texts"),
    [
        (
            "overwirte",
            ["merge='overwirte'", "'no_merge'", "'error_on_conflict'", "did you mean 'overwrite'"],
        ),
        ("Deep", ["merge='Deep'", "did you mean 'deep'"]),
        (fm.Sum, ["rule class", "HINT: merge=fl.merge.Sum()"]),
        (42, ["merge=42", "int", "'overwrite'", "fl.merge.Sum()"]),
        (lambda base: base, ["merge=", "two arguments"]),
        (Ctx, ["merge=", "ModelMetaclass"]),
    ],
)
def test_resolve_rejects_bad_merges(value: Any, texts: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(value)
    for text in texts:
        assert text in str(info.value)


def test_rule_names_and_reprs() -> None:
    def f(base: Any, values: dict[str, Any]) -> Any:
        return base

    expected = {
        fm.Overwrite(): ("overwrite", "Overwrite()"),
        fm.KeepFirst(): ("keep_first", "KeepFirst()"),
        fm.DeepMerge(): ("deep", "DeepMerge()"),
        fm.Append(): ("append", "Append()"),
        fm.Union(): ("union", "Union()"),
        fm.Union(key="id"): ("union", "Union(key='id')"),
        fm.Union(key=str.lower): ("union", "Union(key=str.lower)"),
        fm.Sum(): ("sum", "Sum()"),
        fm.Max(): ("max", "Max()"),
        fm.Min(): ("min", "Min()"),
        fm.ErrorOnConflict(): ("error_on_conflict", "ErrorOnConflict()"),
        fm.Custom(f): (
            "custom:test_rule_names_and_reprs.<locals>.f",
            "Custom(test_rule_names_and_reprs.<locals>.f)",
        ),
        fm.Ignore(): ("ignore", "Ignore()"),
    }
    for rule, (name, text) in expected.items():
        assert (rule.name, repr(rule)) == (name, text)
    assert fm.Sum() == fm.Sum() and fm.Union(key="a") != fm.Union(key="b")


def test_custom_rule_needs_a_two_argument_function() -> None:
    with pytest.raises(ConfigError, match=r"fn=.*two arguments"):
        fm.Custom(lambda x: x)
    with pytest.raises(ConfigError, match=r"not callable"):
        fm.Custom(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("annotation", "rule", "ok"),
    [
        (int, fm.Sum(), True),
        (float, fm.Sum(), True),
        (dict[str, int], fm.Sum(), True),
        (dict[str, dict[str, float]], fm.Sum(), True),
        (str, fm.Sum(), False),
        (bool, fm.Sum(), False),
        (int | None, fm.Sum(), False),
        (dict[str, str], fm.Sum(), False),
        (list[int], fm.Sum(), False),
        (str, fm.Max(), True),
        (list[int], fm.Min(), False),
        (list[str], fm.Append(), True),
        (set[str], fm.Append(), False),
        (set[str], fm.Union(), True),
        (int, fm.Union(), False),
        (Any, fm.Sum(), True),
        (str, fm.Overwrite(), True),
        (str, fm.DeepMerge(), True),
        (Settings, fm.Sum(), False),
    ],
)
def test_check_model_fits_rules_to_types(annotation: Any, rule: fm.Rule, ok: bool) -> None:
    model = type("Model", (BaseModel,), {"__annotations__": {"x": Annotated[annotation, rule]}})
    if ok:
        fm.check_model(model)
    else:
        with pytest.raises(ConfigError) as info:
            fm.check_model(model)
        for text in ("Model.x", repr(rule), "does not fit", "HINT"):
            assert text in str(info.value)


def test_check_model_names_model_field_rule_and_type() -> None:
    class SumOnStr(BaseModel):
        name: Annotated[str, fm.Sum()] = ""

    with pytest.raises(ConfigError) as info:
        fm.check_model(SumOnStr)
    assert str(info.value).startswith(
        "SumOnStr.name: rule Sum() does not fit type str: sum needs numbers (or a dict of numbers)."
    )


def test_check_model_checks_nested_models() -> None:
    class Deep(BaseModel):
        bad: Annotated[list[str], fm.Sum()] = []

    class Top(BaseModel):
        deep: Deep | None = None

    with pytest.raises(ConfigError, match=r"Deep.bad"):
        fm.check_model(Top)


def test_check_model_rejects_two_rules_and_rule_classes() -> None:
    class Two(BaseModel):
        x: Annotated[int, fm.Sum(), fm.Max()] = 0

    class Klass(BaseModel):
        x: Annotated[int, fm.Sum] = 0

    with pytest.raises(ConfigError, match=r"Two.x has 2 merge rules \(Sum\(\), Max\(\)\)"):
        fm.check_model(Two)
    with pytest.raises(ConfigError, match=r"HINT: Annotated\[..., fl.merge.Sum\(\)\]"):
        fm.check_model(Klass)


def test_check_model_with_a_step_rule() -> None:
    with pytest.raises(ConfigError) as info:
        fm.check_model(Ctx, merge=fm.Union())
    assert "merge=Union()" in str(info.value) and "Ctx.counter is int" in str(info.value)
    fm.check_model(Counted, merge="deep")
    fm.check_model(Counted, merge=fm.Sum())


def test_merge_checks_the_step_rule_against_the_model() -> None:
    with pytest.raises(ConfigError, match=r"Ctx.tags is list"):
        merge(Ctx(), {"a": nothing}, fm.Sum())


def test_overwrite_shows_every_dropped_write() -> None:
    # issue 17 #10: the default keeps last-writer-wins, but the loser's write is never invisible
    out = merge(Ctx(), {"a": put("status", "x"), "b": put("status", "y")}, "overwrite")
    (row,) = out.rows
    assert (row["winner"], row["dropped"], row["conflict"]) == ("b", ("a",), False)
    equal = merge(Ctx(), {"a": put("status", "x"), "b": put("status", "x")}, "overwrite")
    assert equal.rows[0]["dropped"] == ()  # an equal value lost nothing
    first = merge(Ctx(), {"a": put("status", "x"), "b": put("status", "y")}, "keep_first")
    assert (first.rows[0]["winner"], first.rows[0]["dropped"]) == ("a", ("b",))
