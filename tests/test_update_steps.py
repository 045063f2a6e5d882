"""LangGraph-style steps: ``def node(ctx)`` / ``async def node(state: Ctx)`` get the context, and a
step may return ``fl.Update(field=value)`` instead of mutating.

The rule that tells ``(data)`` from ``(ctx)`` is the parameter's *name* (``ctx`` or ``state``), or
``fl.Step(fn, takes=...)``; never the annotation. An Update lands on the branch's context as the
assignments it stands for, so the diffs and the merge are those of the equivalent mutating step —
checked here by running both and comparing contexts, diffs and merge rows. Accumulating field rules
take the Update's value as the step's contribution. A context-only step's plain ``dict`` that
looks like an update gets a :class:`~flowlab.errors.DictReturnWarning` and is not applied.
"""

from __future__ import annotations

import operator
import pickle
import threading
import warnings
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict

import flowlab as fl
from flowlab.errors import ConfigError, DictReturnWarning, FlowlabWarning


class Ctx(BaseModel):
    n: Annotated[int, fl.merge.Sum()] = 0
    tags: Annotated[list[str], fl.merge.Union()] = []
    items: Annotated[list[str], fl.merge.Append()] = []
    log: Annotated[list[str], operator.add] = []
    msgs: Annotated[list[dict[str, Any]], fl.merge.Upsert(key="id")] = []
    counts: Annotated[dict[str, int], fl.merge.Sum()] = {}
    status: str = "new"
    scores: dict[str, float] = {}
    best: Annotated[int, fl.merge.Max()] = 0


class Doc(BaseModel):
    text: str = ""


def run(pipe: Any, ctx: BaseModel | None = None, **kw: Any) -> fl.RunResult:
    return fl.run(pipe, ctx if ctx is not None else Ctx(), clock="virtual", **kw)


# ---- the rule: (data) or (ctx) ----------------------------------------------------------------
def test_a_parameter_named_ctx_or_state_gets_the_context_any_other_gets_the_data() -> None:
    seen: dict[str, Any] = {}

    def by_ctx(ctx):  # type: ignore[no-untyped-def]
        seen["ctx"] = ctx

    async def by_state(state: Ctx) -> None:
        seen["state"] = state

    def by_data(x):  # type: ignore[no-untyped-def]
        seen["x"] = x

    def annotated_with_a_model(doc: Doc) -> None:  # the annotation does not decide
        seen["doc"] = doc

    def with_config(state, config=None):  # type: ignore[no-untyped-def]
        seen["config"] = (state, config)

    pipe = fl.Parallel(
        {"a": by_ctx, "b": by_state, "c": by_data, "d": annotated_with_a_model, "e": with_config}
    )
    doc = Doc(text="hello")
    result = run(pipe, Ctx(status="mine"), input=doc)
    assert result.status == "ok"
    assert isinstance(seen["ctx"], Ctx) and seen["ctx"].status == "mine"
    assert isinstance(seen["state"], Ctx) and seen["state"].status == "mine"
    assert seen["x"] == doc and seen["doc"] == doc
    assert isinstance(seen["config"][0], Ctx) and seen["config"][1] is None


def test_takes_overrides_the_name_both_ways() -> None:
    seen: dict[str, Any] = {}

    def s(whatever):  # type: ignore[no-untyped-def]
        seen["s"] = whatever

    def state(state):  # type: ignore[no-untyped-def]  # a data step that happens to be named so
        seen["state"] = state

    pipe = fl.Parallel({"s": fl.Step(s, takes="ctx"), "t": fl.Step(state, takes="data")})
    run(pipe, input="the data")
    assert isinstance(seen["s"], Ctx)
    assert seen["state"] == "the data"
    assert fl.Step(s, takes="ctx").takes_ctx and not fl.Step(state, takes="data").takes_ctx


def test_a_bad_takes_or_an_uncallable_ctx_signature_fails_at_construction() -> None:
    with pytest.raises(
        ConfigError, match=r"takes='context' is not valid; choose one of 'data', 'ctx'"
    ):
        fl.Step(lambda ctx: None, takes="context")

    def ctx_then_data(ctx, data):  # type: ignore[no-untyped-def]
        return data

    with pytest.raises(ConfigError, match=r"fn\(ctx\) when its first parameter is named ctx"):
        fl.Pipeline(ctx_then_data)
    with pytest.raises(ConfigError, match="cannot be called as a step"):
        fl.Step(lambda: None, takes="ctx")


def test_a_sync_ctx_step_runs_in_a_worker_thread() -> None:
    where: list[str] = []

    def node(state):  # type: ignore[no-untyped-def]
        where.append(threading.current_thread().name)
        return fl.Update(status="threaded")

    result = run(fl.Pipeline(node))
    assert result.context.status == "threaded"
    assert where[0].startswith("flowlab-step")


# ---- fl.Update ----------------------------------------------------------------------------------
def test_an_update_writes_fields_and_is_the_steps_output() -> None:
    async def node(ctx: Ctx) -> fl.Update:
        return fl.Update(status="done", scores={"a": 1.0})

    def after(data, ctx):  # type: ignore[no-untyped-def]
        return data

    caller = Ctx()
    result = run(fl.Pipeline(node, after), caller)
    assert result.context.status == "done" and result.context.scores == {"a": 1.0}
    assert result.output == fl.Update(status="done", scores={"a": 1.0})  # what `after` was given
    assert caller.status == "new"  # the caller's object is never mutated
    assert repr(result.output) == "Update(status='done', scores={'a': 1.0})"


def test_an_update_as_the_next_steps_data_is_copied_into_branches_and_pickles() -> None:
    def node(ctx):  # type: ignore[no-untyped-def]
        return fl.Update(status="planned", scores={"a": 1.0})

    def reads(data, ctx):  # type: ignore[no-untyped-def]
        data.fields["scores"]["a"] = 99.0  # a branch's own copy of its input
        return dict(data.fields)

    pipe = fl.Pipeline(node, fl.Parallel({"x": reads, "y": reads}, name="fan"))
    result = run(pipe)
    assert result.outputs["x"] == {"status": "planned", "scores": {"a": 99.0}}
    assert result.context.scores == {"a": 1.0}  # what the Update wrote is not what x edited
    update = fl.Update(n=1, tags=["x"])
    assert pickle.loads(pickle.dumps(update)) == update
    with pytest.raises(TypeError):
        update.fields["n"] = 2  # type: ignore[index]  # read-only


def test_any_step_may_return_an_update_not_only_ctx_steps() -> None:
    def two(data, ctx):  # type: ignore[no-untyped-def]
        return fl.Update(status=f"from {data}")

    def one(x):  # type: ignore[no-untyped-def]
        return fl.Update(n=x)

    result = run(fl.Pipeline(fl.Parallel({"a": two, "b": one}, name="fan")), input=4)
    assert result.context.status == "from 4" and result.context.n == 4


def _mutating(field: str, value: Any) -> Any:
    """The step an Update(field=value) stands for, written by hand."""

    def step(data, ctx):  # type: ignore[no-untyped-def]
        current = getattr(ctx, field)
        if field == "n":
            ctx.n = current + value
        elif field == "counts":
            ctx.counts = {**current, **{k: current.get(k, 0) + v for k, v in value.items()}}
        elif field == "tags":
            ctx.tags = current + [v for v in value if v not in current]
        elif field in ("items", "log"):
            setattr(ctx, field, current + value)
        elif field == "msgs":
            keys = [m["id"] for m in current]
            out = list(current)
            for m in value:
                if m["id"] in keys:
                    out[keys.index(m["id"])] = m
                else:
                    out.append(m)
                    keys.append(m["id"])
            ctx.msgs = out
        else:
            setattr(ctx, field, value)

    return step


def _updating(field: str, value: Any) -> Any:
    def node(state):  # type: ignore[no-untyped-def]
        return fl.Update(**{field: value})

    return node


BASE = Ctx(
    n=1,
    tags=["w"],
    items=["w"],
    log=["w"],
    msgs=[{"id": 1, "text": "hi"}, {"id": 2, "text": "yo"}],
    counts={"a": 1},
    status="new",
)
WRITES = {  # field -> (branch a's contribution, branch b's), as a LangGraph node would return them
    "n": (2, 3),
    "counts": ({"a": 2, "b": 1}, {"b": 5}),
    "tags": (["x", "y"], ["y", "z"]),
    "items": (["x", "y"], ["y", "z"]),
    "log": (["x"], ["y", "z"]),
    "msgs": ([{"id": 2, "text": "edited"}, {"id": 3, "text": "new"}], [{"id": 4, "text": "b"}]),
    "status": ("a", "b"),
    "best": (5, 3),
}
EXPECTED = {
    "n": 6,  # Sum: 1 + 2 + 3
    "counts": {"a": 3, "b": 6},
    "tags": ["w", "x", "y", "z"],  # Union: de-duplicated
    "items": ["w", "x", "y", "y", "z"],  # Append: every item kept
    "log": ["w", "x", "y", "z"],  # operator.add
    "msgs": [
        {"id": 1, "text": "hi"},
        {"id": 2, "text": "edited"},
        {"id": 3, "text": "new"},
        {"id": 4, "text": "b"},
    ],  # Upsert: replaced in place, new keys appended
    "status": "b",  # no rule: overwrite, last in declared order
    "best": 5,  # Max: assigned in each branch, the largest wins the merge
}


@pytest.mark.parametrize("field", list(WRITES))
def test_field_rules_see_an_update_exactly_as_the_mutation_it_stands_for(field: str) -> None:
    first, second = WRITES[field]

    def fan(make: Any) -> fl.Pipeline:
        return fl.Pipeline(
            fl.Parallel({"a": make(field, first), "b": make(field, second)}, name="fan")
        )

    by_update = run(fan(_updating), BASE)
    by_hand = run(fan(_mutating), BASE)
    assert getattr(by_update.context, field) == EXPECTED[field]
    assert by_update.context == by_hand.context
    columns = ["branch", "path", "op", "before", "after"]
    assert by_update.diffs[columns].equals(by_hand.diffs[columns])
    assert by_update.merges.drop(columns="step").equals(by_hand.merges.drop(columns="step"))


def test_outside_any_parallel_an_update_folds_each_contribution_into_the_context() -> None:
    def node(state):  # type: ignore[no-untyped-def]
        return fl.Update(
            n=2,
            counts={"b": 1},
            tags=["x", "w", "x"],  # Union: only what is not there yet
            items=["w"],  # Append: every item
            log=["x"],
            msgs=[{"id": 1, "text": "edited"}],
            best=-1,  # Max: assigned (the merge of a Parallel takes the largest)
        )

    ctx = run(fl.Pipeline(node), BASE).context
    assert (ctx.n, ctx.counts, ctx.tags, ctx.items, ctx.log) == (
        3,
        {"a": 1, "b": 1},
        ["w", "x"],
        ["w", "w"],
        ["w", "x"],
    )
    assert ctx.msgs == [{"id": 1, "text": "edited"}, {"id": 2, "text": "yo"}]
    assert ctx.best == -1


def test_an_update_inside_a_branch_pipeline_feeds_the_next_step() -> None:
    def first(state):  # type: ignore[no-untyped-def]
        return fl.Update(n=5, log=["first"])

    def second(ctx):  # type: ignore[no-untyped-def]
        return fl.Update(status=f"saw n={ctx.n}", log=["second"])

    pipe = fl.Pipeline(fl.Parallel({"a": fl.Pipeline(first, second), "b": first}, name="fan"))
    result = run(pipe, Ctx())
    assert result.context.status == "saw n=5"
    assert result.context.n == 10  # Sum: 5 from each branch
    assert result.context.log == ["first", "second", "first"]


def test_an_unknown_field_is_an_error_naming_it_and_the_valid_fields_and_writes_nothing() -> None:
    def node(ctx):  # type: ignore[no-untyped-def]
        return fl.Update(status="written?", colour="red")

    with pytest.raises(ConfigError) as caught:
        run(fl.Pipeline(node))
    message = str(caught.value)
    assert "step 'node' returned Update(status='written?', colour='red')" in message
    assert "Ctx has no field 'colour'; valid fields: 'n', 'tags', 'items', 'log'" in message
    assert caught.value.result is not None
    assert caught.value.result.context.status == "new"  # nothing half-applied

    # in a branch: that branch fails with the same error; its sibling is merged
    def fine(ctx):  # type: ignore[no-untyped-def]
        return fl.Update(status="fine")

    result = run(fl.Parallel({"bad": node, "ok": fine}, name="fan", on_failure="ignore"))
    assert result.context.status == "fine"
    assert isinstance(result.errors["fan:bad"], ConfigError)
    assert result.branches.set_index("branch").loc["bad", "status"] == "failed"


def test_a_value_an_accumulating_rule_cannot_take_is_an_error_with_a_hint() -> None:
    def node(ctx):  # type: ignore[no-untyped-def]
        return fl.Update(items="x")  # a string, not a list of items

    with pytest.raises(ConfigError) as caught:
        run(fl.Pipeline(node))
    message = str(caught.value)
    assert "field 'items' has the merge rule Append()" in message
    assert "HINT: assign ctx.items = ..." in message
    assert isinstance(caught.value.__cause__, TypeError)


def test_model_extras_take_updates_when_the_model_allows_them() -> None:
    class Loose(BaseModel):
        model_config = ConfigDict(extra="allow")
        n: int = 0

    class Strict(BaseModel):
        n: int = 0

    def node(ctx):  # type: ignore[no-untyped-def]
        return fl.Update(note="extra")

    assert run(fl.Pipeline(node), Loose()).context.note == "extra"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="Strict has no field 'note'; valid fields: 'n'"):
        run(fl.Pipeline(node), Strict())


# ---- a plain dict that looks like an update ---------------------------------------------------
def test_a_dict_of_fields_from_a_ctx_step_warns_pointing_to_update_and_is_not_applied() -> None:
    def node(state):  # type: ignore[no-untyped-def]
        return {"status": "done", "n": 3}

    with pytest.warns(DictReturnWarning) as caught:
        result = run(fl.Pipeline(node))
    assert issubclass(DictReturnWarning, FlowlabWarning)
    message = str(caught[0].message)
    assert (
        "step 'node' returned a dict whose keys all name fields of Ctx ('status', 'n')" in message
    )
    assert "HINT: return fl.Update(status=..., n=...)" in message
    assert caught[0].filename == __file__  # points at the step, not at flowlab
    assert caught[0].lineno == node.__code__.co_firstlineno
    assert result.context.status == "new" and result.context.n == 0  # never applied silently
    assert result.output == {"status": "done", "n": 3}  # it stays the step's output


def test_no_warning_when_the_dict_is_plainly_an_output() -> None:
    def wrote_them_too(ctx):  # type: ignore[no-untyped-def]
        ctx.status = "done"
        return {"status": "done"}

    def other_keys(ctx):  # type: ignore[no-untyped-def]
        return {"status": "done", "verdict": "fine"}

    def data_step(x):  # type: ignore[no-untyped-def]  # never given the context
        return {"status": "done"}

    def data_and_ctx(data, ctx):  # type: ignore[no-untyped-def]
        return {"status": ctx.status}

    pipe = fl.Parallel(
        {"a": wrote_them_too, "b": other_keys, "c": data_step, "d": data_and_ctx}, name="fan"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run(pipe)
    assert result.context.status == "done"  # branch a's own write
    assert result.outputs["fan:c"] == {"status": "done"}
