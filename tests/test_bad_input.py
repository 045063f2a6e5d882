"""A catalog of bad input: one row per mistake, each a specific error that names the problem.

Every row expects one exact :class:`~flowlab.errors.FlowlabError` subclass and a message that names
what went wrong (the parameter, the bad value, the valid choices or a HINT). Rows that fail *during*
a run also check that nothing was half-applied: the caller's context is unchanged, the error
carries the partial ``.result``, and that result's context is the one from before the failing step.

Run ``python tests/test_bad_input.py`` to print the table with counts.
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, field_validator

import flowlab as fl
from flowlab.backends import ClusterUnavailable
from flowlab.errors import (
    BranchFailed,
    ConfigError,
    FlowlabError,
    MergeConflict,
    MergeValidationError,
    RunNotFinished,
)


class Ctx(BaseModel):
    n: Annotated[int, fl.merge.Sum()] = 0
    note: str = "new"
    tags: list[str] = []


class Capped(BaseModel):
    """A model whose validator rejects a merged total above 10."""

    total: Annotated[int, fl.merge.Sum()] = 0

    @field_validator("total")
    @classmethod
    def _at_most_ten(cls, v: int) -> int:
        if v > 10:
            raise ValueError(f"total must be <= 10, got {v}")
        return v


class WithLock(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    n: int = 0
    guard: Any = None


class SumOnStr(BaseModel):
    name: Annotated[str, fl.merge.Sum()] = ""


@dataclass
class Plain:
    n: int = 0


async def ok_step(data: Any, ctx: Ctx) -> str:
    return "ok"


async def add(data: Any, ctx: Any) -> None:
    ctx.n += 1


def prepare(data: Any, ctx: Any) -> None:
    """A first step that changes the context, so 'nothing half-applied' has something to keep."""
    if hasattr(ctx, "note"):
        ctx.note = "prepared"
    if hasattr(ctx, "total"):
        ctx.total = 2


def plus(k: int) -> Callable[..., Any]:
    async def step(data: Any, ctx: Any) -> None:
        await asyncio.sleep(0.01)
        ctx.total += k

    return step


def writes(value: str) -> Callable[..., Any]:
    async def step(data: Any, ctx: Ctx) -> None:
        await asyncio.sleep(0.01)
        ctx.note = value
        ctx.n += 1

    return step


def returns_coroutine(data: Any, ctx: Ctx) -> Any:
    return ok_step(data, ctx)  # forgot `await` (and the step is not async)


def update_unknown(state: Ctx) -> fl.Update:
    return fl.Update(note="written?", colour="red")  # no field 'colour': nothing is written


def update_sum_str(state: Ctx) -> fl.Update:
    return fl.Update(n="many")  # n's rule is Sum(): a contribution must be a number


def charges_negative(data: Any, ctx: Ctx) -> None:
    fl.charge(cost=-1.0)


def three_args(a: Any, b: Any, c: Any) -> None:
    """Three required positionals: a step is called with (data, ctx) at most."""


def keyword_ctx(data: Any, *, ctx: Any) -> None:
    """A keyword-only ctx: a step is called positionally."""


def generator_step(data: Any, ctx: Any) -> Any:
    yield data  # calling it only makes a generator: the body would never run


async def async_generator_step(data: Any, ctx: Any) -> Any:
    yield data


def reads_nothing() -> Any:
    return None  # a reader must return (cpu_fraction, memory_fraction)


class LimitOf(fl.limits.Limiter):
    """A custom limiter starting at whatever limit it is given."""

    def __init__(self, limit: Any) -> None:
        self.value = limit

    def initial(self) -> int:
        return self.value  # type: ignore[no-any-return]


def nest(depth: int) -> Any:
    node: Any = add
    for _ in range(depth):
        node = fl.Parallel({"a": node})
    return virtual(node, Ctx())


async def result_while_running() -> Any:
    handle = fl.start(fl.Pipeline(add), Ctx())  # a task on this loop: not started yet
    try:
        return handle.result()
    finally:
        await handle.wait()


def wrong(value: Any) -> Any:
    """Marks a deliberately ill-typed argument (for the type checker: anything goes here)."""
    return value


def virtual(pipe: Any, ctx: BaseModel, **kw: Any) -> fl.RunResult:
    return fl.run(pipe, ctx, clock="virtual", **kw)


@dataclass(frozen=True)
class Row:
    """One bad input.

    ``act(ctx)`` must raise exactly ``error`` with every string of ``names`` in its message.
    Rows with a ``ctx`` factory are runtime rows: ``after_ctx`` (a dump) is what the partial
    result's context must equal, i.e. the context before the failing step.
    """

    id: str
    category: str
    error: type[FlowlabError]
    act: Callable[[Any], Any]
    names: tuple[str, ...]
    ctx: Callable[[], BaseModel] | None = None
    after_ctx: dict[str, Any] | None = None
    cause: type[BaseException] | None = None
    marks: tuple[Any, ...] = field(default=())


def unreachable_dask() -> Any:
    """A scheduler address nothing listens on (port 9: discard), with a short connect timeout."""
    return fl.backends.Dask(address="tcp://127.0.0.1:9", connect_timeout_s=0.2)


def unstartable_dask() -> Any:
    """A LocalCluster that cannot start: its host is not an address (fails before any worker)."""
    return fl.backends.Dask(n_workers=1, cluster_kwargs={"host": "256.1.1.1"})


DASK_WARNINGS = (
    pytest.mark.filterwarnings("ignore::DeprecationWarning:distributed.*"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
)


def _lock_ctx() -> WithLock:
    return WithLock(guard=threading.Lock())


def _coroutine() -> Any:
    return ok_step(None, Ctx())


ROWS: list[Row] = [
    # ---- names of strategies, orders, policies, clocks -------------------------------------
    Row(
        "merge-unknown-name",
        "unknown strategy name",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, merge="merge_all"),
        ("merge=", "'merge_all'", "'overwrite'", "'accumulate'"),
    ),
    Row(
        "merge-typo-gets-hint",
        "unknown strategy name",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, merge="acumulate"),
        ("'acumulate'", "did you mean 'accumulate'"),
    ),
    Row(
        "merge-rule-class-not-instance",
        "unknown strategy name",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, merge=fl.merge.Sum),
        ("merge=Sum", "fl.merge.Sum()"),
    ),
    Row(
        "merge-wrong-type",
        "unknown strategy name",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, merge=42),
        ("merge=42", "'overwrite'"),
    ),
    Row(
        "order-unknown",
        "unknown order name",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, order="random"),
        ("order=", "'random'", "'declared'", "'completion'"),
    ),
    Row(
        "on-failure-unknown",
        "unknown on_failure name",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, on_failure="retry"),
        ("on_failure=", "'retry'", "'propagate'", "'fail_fast'", "'ignore'"),
    ),
    Row(
        "clock-unknown",
        "unknown clock name",
        ConfigError,
        lambda _: fl.run(fl.Pipeline(add), Ctx(), clock="fast"),
        ("clock=", "'fast'", "'real'", "'virtual'"),
    ),
    # ---- caps ------------------------------------------------------------------------------
    Row(
        "cap-zero",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, max_concurrency=0),
        ("max_concurrency=0", ">= 1"),
    ),
    Row(
        "cap-negative",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, max_concurrency=-3),
        ("max_concurrency=-3", ">= 1"),
    ),
    Row(
        "cap-float",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, max_concurrency=wrong(2.5)),
        ("max_concurrency=2.5", "integer"),
    ),
    Row(
        "cap-str",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, max_concurrency=wrong("4")),
        ("max_concurrency='4'", "integer"),
    ),
    Row(
        "cap-bool",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, max_concurrency=True),
        ("max_concurrency=True", "integer"),
    ),
    Row(
        "run-cap-zero",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), Ctx(), max_concurrency=0),
        ("max_concurrency=0", ">= 1"),
    ),
    Row(
        "fixed-limiter-zero",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: fl.limits.Fixed(0),
        ("max_concurrency=0", ">= 1"),
    ),
    Row(
        "aimd-min-zero",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: fl.limits.AIMD(min=0, max=4),
        ("min=0", ">= 1"),
    ),
    Row(
        "adaptive-max-below-min",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: fl.limits.Adaptive(min=4, max=2),
        ("max=2", "min=4"),
    ),
    # ---- branch names and branches --------------------------------------------------------
    Row(
        "branch-name-duplicate",
        "duplicate or empty branch name",
        ConfigError,
        lambda _: fl.Parallel([add, add]),
        ("'add'", "used twice", "HINT"),
    ),
    Row(
        "branch-name-empty",
        "duplicate or empty branch name",
        ConfigError,
        lambda _: fl.Parallel({"": add}),
        ("branch name=''", "non-empty"),
    ),
    Row(
        "branch-name-blank",
        "duplicate or empty branch name",
        ConfigError,
        lambda _: fl.Parallel({"   ": add}),
        ("branch name='   '", "non-empty"),
    ),
    Row(
        "branch-name-not-str",
        "duplicate or empty branch name",
        ConfigError,
        lambda _: fl.Parallel(wrong({3: add})),
        ("branch name=3", "string"),
    ),
    Row(
        "branches-empty",
        "duplicate or empty branch name",
        ConfigError,
        lambda _: fl.Parallel({}),
        ("branches", "at least one branch"),
    ),
    Row(
        "branch-not-callable",
        "branch not callable",
        ConfigError,
        lambda _: fl.Parallel({"a": wrong(42)}),
        ("branches['a']=42", "callable"),
    ),
    Row(
        "pipeline-step-not-callable",
        "branch not callable",
        ConfigError,
        lambda _: fl.Pipeline(add, wrong("finalize")),
        ("steps[1]='finalize'", "callable"),
    ),
    Row(
        "step-fn-not-callable",
        "branch not callable",
        ConfigError,
        lambda _: fl.Step(wrong(None)),
        ("fn=None", "callable"),
    ),
    Row(
        "branch-coroutine-object",
        "coroutine object instead of a function",
        ConfigError,
        lambda _: fl.Parallel({"a": _coroutine()}),
        ("branches['a']", "coroutine object", "HINT", "not a call"),
    ),
    Row(
        "pipeline-coroutine-object",
        "coroutine object instead of a function",
        ConfigError,
        lambda _: fl.Pipeline(_coroutine()),
        ("steps[0]", "coroutine object", "HINT"),
    ),
    Row(
        "step-coroutine-object",
        "coroutine object instead of a function",
        ConfigError,
        lambda _: fl.Step(_coroutine()),
        ("coroutine object", "HINT"),
    ),
    # ---- contexts ---------------------------------------------------------------------------
    Row(
        "ctx-dict",
        "context not a pydantic model",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), wrong({"n": 1})),
        ("ctx", "BaseModel", "dict", "HINT"),
    ),
    Row(
        "ctx-class-not-instance",
        "context not a pydantic model",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), wrong(Ctx)),
        ("ctx", "instance", "Ctx()"),
    ),
    Row(
        "ctx-dataclass",
        "context not a pydantic model",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), wrong(Plain())),
        ("ctx", "BaseModel", "Plain"),
    ),
    Row(
        "ctx-none",
        "context not a pydantic model",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), wrong(None)),
        ("ctx", "BaseModel", "NoneType"),
    ),
    Row(
        "ctx-not-deep-copyable",
        "context cannot be deep-copied",
        ConfigError,
        lambda c: virtual(fl.Pipeline(add), c),
        ("WithLock.guard", "deep-copied", "HINT"),
        ctx=_lock_ctx,
    ),
    # ---- merge rules and merges ---------------------------------------------------------------
    Row(
        "sum-on-str",
        "merge rule on a field of the wrong type",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), SumOnStr()),
        ("SumOnStr.name", "Sum()", "str", "HINT"),
    ),
    Row(
        "union-on-int-as-step-rule",
        "merge rule on a field of the wrong type",
        ConfigError,
        lambda _: virtual(fl.Pipeline(fl.Parallel({"a": add}, merge=fl.merge.Union())), Ctx()),
        ("Union()", "Ctx.", "HINT"),
    ),
    Row(
        "custom-merge-returns-dict",
        "custom merge returns the wrong type",
        MergeValidationError,
        lambda c: virtual(
            fl.Pipeline(
                prepare,
                fl.Parallel({"a": add, "b": add}, merge=lambda base, ctxs: {"n": 99}, name="fan"),
            ),
            c,
        ),
        ("step 'fan'", "merge function", "returned dict", "not a Ctx", "HINT"),
        ctx=lambda: Ctx(),
        after_ctx={"n": 0, "note": "prepared", "tags": []},
    ),
    Row(
        "custom-field-rule-returns-wrong-type",
        "custom merge returns the wrong type",
        MergeValidationError,
        lambda c: virtual(
            fl.Pipeline(
                prepare,
                fl.Parallel(
                    {"a": writes("x"), "b": writes("y")},
                    merge=fl.merge.Custom(lambda base, vals: 12345),
                    name="fan",
                ),
            ),
            c,
        ),
        ("step 'fan'", "Ctx validation", "note", "valid string", "12345"),
        ctx=lambda: Ctx(),
        after_ctx={"n": 0, "note": "prepared", "tags": []},
    ),
    Row(
        "merged-context-fails-validation",
        "merged context fails validation",
        MergeValidationError,
        lambda c: virtual(
            fl.Pipeline(prepare, fl.Parallel({"a": plus(5), "b": plus(6)}, name="fan")), c
        ),
        ("step 'fan'", "Capped validation", "total", "total must be <= 10, got 13"),
        ctx=lambda: Capped(),
        after_ctx={"total": 2},
    ),
    Row(
        "conflict-under-error-on-conflict",
        "merge conflict",
        MergeConflict,
        lambda c: virtual(
            fl.Pipeline(
                prepare,
                fl.Parallel(
                    {"a": writes("x"), "b": writes("y")}, merge="error_on_conflict", name="fan"
                ),
            ),
            c,
        ),
        ("step 'fan'", "note", "'a'", "'b'", "'x'", "'y'"),
        ctx=lambda: Ctx(),
        after_ctx={"n": 0, "note": "prepared", "tags": []},
    ),
    # ---- timeouts ---------------------------------------------------------------------------
    Row(
        "step-timeout-negative",
        "negative or NaN timeout",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, timeout=-1),
        ("timeout=-1", "> 0", "None"),
    ),
    Row(
        "branch-timeout-nan",
        "negative or NaN timeout",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, branch_timeout=math.nan),
        ("branch_timeout=nan", "> 0"),
    ),
    Row(
        "leaf-timeout-zero",
        "negative or NaN timeout",
        ConfigError,
        lambda _: fl.Step(add, timeout=0),
        ("timeout=0", "> 0"),
    ),
    Row(
        "leaf-timeout-str",
        "negative or NaN timeout",
        ConfigError,
        lambda _: fl.Step(add, timeout=wrong("5")),
        ("timeout='5'", "number"),
    ),
    Row(
        "run-timeout-negative",
        "negative or NaN timeout",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), Ctx(), timeout=-5.0),
        ("timeout=-5.0", "> 0"),
    ),
    Row(
        "run-timeout-nan",
        "negative or NaN timeout",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), Ctx(), timeout=math.nan),
        ("timeout=nan", "> 0"),
    ),
    # ---- priority, include_keys, options ------------------------------------------------------
    Row(
        "priority-unknown-branch",
        "priority for an unknown branch",
        ConfigError,
        lambda _: fl.Parallel({"a": add, "b": add}, priority={"zz": 1}),
        ("priority", "'zz'", "'a'", "'b'"),
    ),
    Row(
        "priority-not-a-number",
        "priority for an unknown branch",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, priority=wrong({"a": "high"})),
        ("priority['a']='high'", "number"),
    ),
    Row(
        "include-keys-unknown-field",
        "include_keys naming unknown fields",
        ConfigError,
        lambda _: virtual(fl.Pipeline(fl.Parallel({"a": add}, include_keys=["nope"])), Ctx()),
        ("include_keys", "'nope'", "'n'", "'note'", "'tags'"),
    ),
    Row(
        "include-keys-a-string",
        "include_keys naming unknown fields",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, include_keys="n"),
        ("include_keys='n'", "list"),
    ),
    Row(
        "replace-unknown-option",
        "unknown option",
        ConfigError,
        lambda _: fl.Parallel({"a": add}).replace(max_concurency=2),
        ("'max_concurency'", "'max_concurrency'"),
    ),
    Row(
        "pipeline-replace-unknown-step",
        "unknown option",
        ConfigError,
        lambda _: fl.Pipeline(fl.Parallel({"a": add}, name="fan")).replace(
            {"fna": {"merge": "deep"}}
        ),
        ("'fna'", "'fan'"),
    ),
    # ---- compare ------------------------------------------------------------------------------
    Row(
        "compare-grid-key-matches-no-option",
        "fl.compare grid keys",
        ConfigError,
        lambda _: fl.compare(
            fl.Pipeline(fl.Parallel({"a": add}, name="fan")),
            Ctx(),
            grid={"mrege": ["overwrite", "deep"]},
            clock="virtual",
        ),
        ("'mrege'", "merge"),
    ),
    Row(
        "compare-grid-step-option-typo",
        "fl.compare grid keys",
        ConfigError,
        lambda _: fl.compare(
            fl.Pipeline(fl.Parallel({"a": add}, name="fan")),
            Ctx(),
            grid={"fan.mrege": ["overwrite"]},
            clock="virtual",
        ),
        ("'fan.mrege'", "'merge'", "'fan'", "'run.max_concurrency'"),
    ),
    Row(
        "compare-grid-value-invalid",
        "fl.compare grid keys",
        ConfigError,
        lambda _: fl.compare(
            fl.Pipeline(fl.Parallel({"a": add}, name="fan")),
            Ctx(),
            grid={"merge": ["overwrite", "nope"]},
            clock="virtual",
        ),
        ("merge='nope'", "'overwrite'"),
    ),
    Row(
        "compare-grid-empty-values",
        "fl.compare grid keys",
        ConfigError,
        lambda _: fl.compare(
            fl.Pipeline(fl.Parallel({"a": add}, name="fan")), Ctx(), grid={"merge": []}
        ),
        ("grid['merge']=[]", "non-empty"),
    ),
    # ---- usage --------------------------------------------------------------------------------
    Row(
        "charge-outside-run",
        "fl.charge outside a run",
        ConfigError,
        lambda _: fl.charge(cost=0.01),
        ("fl.charge()", "outside", "HINT"),
    ),
    Row(
        "charge-negative-in-step",
        "bad usage budget or charge",
        ConfigError,
        lambda c: virtual(fl.Pipeline(prepare, charges_negative), c),
        ("cost=-1.0", ">= 0"),
        ctx=lambda: Ctx(),
        after_ctx={"n": 0, "note": "prepared", "tags": []},
    ),
    Row(
        "usage-not-usage-limits",
        "bad usage budget or charge",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), Ctx(), usage={"cost": 1.0}),
        ("usage=", "fl.UsageLimits"),
    ),
    Row(
        "usage-limit-negative",
        "bad usage budget or charge",
        ConfigError,
        lambda _: fl.UsageLimits(cost=-1.0),
        ("cost=-1.0", ">= 0"),
    ),
    # ---- a step that returns a coroutine ------------------------------------------------------
    Row(
        "step-returns-coroutine",
        "step returns a coroutine without awaiting",
        ConfigError,
        lambda c: virtual(fl.Pipeline(prepare, returns_coroutine), c),
        ("'returns_coroutine'", "coroutine", "HINT", "await"),
        ctx=lambda: Ctx(),
        after_ctx={"n": 0, "note": "prepared", "tags": []},
    ),
    Row(
        "branch-returns-coroutine",
        "step returns a coroutine without awaiting",
        BranchFailed,
        lambda c: virtual(
            fl.Pipeline(
                prepare,
                fl.Parallel({"a": add, "b": returns_coroutine}, merge="accumulate", name="fan"),
            ),
            c,
        ),
        ("'b'", "coroutine", "HINT"),
        ctx=lambda: Ctx(),
        after_ctx={"n": 0, "note": "prepared", "tags": []},
        cause=ConfigError,
    ),
    # ---- fl.Update (issue 21) -----------------------------------------------------------------
    Row(
        "update-unknown-field",
        "an Update naming no field",
        ConfigError,
        lambda c: virtual(fl.Pipeline(prepare, update_unknown), c),
        ("'update_unknown'", "no field 'colour'", "valid fields: 'n', 'note', 'tags'"),
        ctx=lambda: Ctx(),
        after_ctx={"n": 0, "note": "prepared", "tags": []},
    ),
    Row(
        "update-bad-contribution",
        "an Update a field rule cannot fold",
        ConfigError,
        lambda c: virtual(fl.Pipeline(prepare, update_sum_str), c),
        ("'n'", "Sum()", "'many'", "HINT"),
        ctx=lambda: Ctx(),
        after_ctx={"n": 0, "note": "prepared", "tags": []},
        cause=TypeError,
    ),
    Row(
        "step-takes-unknown",
        "unknown takes= choice",
        ConfigError,
        lambda _: fl.Step(add, takes="context"),
        ("takes=", "'context'", "'data'", "'ctx'"),
    ),
    # ---- checked at construction (issue 18) ---------------------------------------------------
    Row(
        "step-three-required-positionals",
        "step that cannot be called",
        ConfigError,
        lambda _: fl.Pipeline(three_args),
        ("'three_args'", "(a, b, c)", "(data, ctx)"),
    ),
    Row(
        "step-keyword-only-ctx",
        "step that cannot be called",
        ConfigError,
        lambda _: fl.Parallel({"a": keyword_ctx}),
        ("'keyword_ctx'", "(data, *, ctx)", "(data, ctx)"),
    ),
    Row(
        "step-generator",
        "step that cannot be called",
        ConfigError,
        lambda _: fl.Pipeline(generator_step),
        ("'generator_step'", "generator", "HINT"),
    ),
    Row(
        "step-async-generator",
        "step that cannot be called",
        ConfigError,
        lambda _: fl.Step(async_generator_step),
        ("'async_generator_step'", "async generator", "HINT"),
    ),
    Row(
        "pipeline-replace-unknown-option",
        "Pipeline.replace changes",
        ConfigError,
        lambda _: fl.Pipeline(fl.Parallel({"a": add}, name="x")).replace({"x": {"bogus": 1}}),
        ("'bogus'", "'merge'", "'max_concurrency'"),
    ),
    Row(
        "replace-not-a-mapping",
        "Pipeline.replace changes",
        ConfigError,
        lambda _: fl.Pipeline(fl.Parallel({"a": add}, name="x")).replace(wrong({"x": "deep"})),
        ("changes['x']='deep'", "dict", "HINT", "{'x': {'merge': 'deep'}}"),
    ),
    Row(
        "include-keys-twice",
        "include_keys naming unknown fields",
        ConfigError,
        lambda _: fl.Parallel({"a": add}, include_keys=["n", "n"]),
        ("include_keys", "'n'", "twice"),
    ),
    Row(
        "backend-a-string",
        "bad run option",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), Ctx(), backend="dask"),
        ("backend='dask'", "fl.backends.Dask("),
    ),
    Row(
        "instruments-a-string",
        "bad run option",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), Ctx(), instruments=wrong("abc")),
        ("instruments='abc'", "Instrument"),
    ),
    Row(
        "instruments-not-instruments",
        "bad run option",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), Ctx(), instruments=wrong([42])),
        ("instruments[0]=42", "Instrument"),
    ),
    Row(
        "record-not-a-bool",
        "bad run option",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), Ctx(), record=wrong("no")),
        ("record='no'", "True or False"),
    ),
    Row(
        "usage-tokens-fractional",
        "bad usage budget or charge",
        ConfigError,
        lambda _: fl.UsageLimits(tokens=wrong(1.5)),
        ("tokens=1.5", "whole number"),
    ),
    Row(
        "adaptive-target-cpu-bool",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: fl.limits.Adaptive(target_cpu=wrong(True)),
        ("target_cpu=True", "fraction"),
    ),
    Row(
        "adaptive-reader-returns-none",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: virtual(
            fl.Parallel({"a": add}, max_concurrency=fl.limits.Adaptive(reader=reads_nothing)),
            Ctx(),
        ),
        ("reader", "reads_nothing", "None", "(cpu_fraction, memory_fraction)"),
    ),
    Row(
        "custom-limiter-limit-zero",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: virtual(fl.Parallel({"a": add}, max_concurrency=LimitOf(0)), Ctx()),
        ("LimitOf", "limit=0", ">= 1"),
    ),
    Row(
        "custom-limiter-limit-a-string",
        "cap <= 0 or non-int",
        ConfigError,
        lambda _: virtual(fl.Parallel({"a": add}, max_concurrency=LimitOf("two")), Ctx()),
        ("LimitOf", "limit='two'", ">= 1"),
    ),
    Row(
        "handle-result-while-running",
        "handle misuse",
        RunNotFinished,
        lambda _: asyncio.run(result_while_running()),
        ("still running", "HINT", "await handle"),
    ),
    Row(
        "parallel-nested-2000-deep",
        "nested too deep",
        ConfigError,
        lambda _: nest(2000),
        ("nested", "deep", "HINT"),
    ),
    # ---- a Dask cluster that cannot be used (issue 18): an error naming it, before any step --
    Row(
        "dask-address-nothing-listens-on",
        "Dask cluster that fails to start",
        ClusterUnavailable,
        lambda _: fl.run(fl.Parallel({"a": add}), Ctx(), backend=unreachable_dask()),
        ("'tcp://127.0.0.1:9'", "connect_timeout_s=0.2", "HINT"),
        cause=OSError,
        marks=DASK_WARNINGS,
    ),
    Row(
        "dask-local-cluster-cannot-start",
        "Dask cluster that fails to start",
        ClusterUnavailable,
        lambda _: fl.run(fl.Parallel({"a": add}), Ctx(), backend=unstartable_dask()),
        ("LocalCluster(", "host='256.1.1.1'", "failed to start", "HINT"),
        cause=RuntimeError,
        marks=DASK_WARNINGS,
    ),
    # ---- pictures, reports and reducers (issue 18's catalog) ----------------------------------
    Row(
        "plot-timeline-of-none",
        "plot or report of something that is not a run",
        ConfigError,
        lambda _: fl.plot.timeline(None),  # type: ignore[arg-type]
        ("result=None", "RunResult", "fl.run"),
    ),
    Row(
        "report-into-a-missing-folder",
        "plot or report of something that is not a run",
        ConfigError,
        lambda _: virtual(fl.Pipeline(add), Ctx()).to_html("/no/such/folder/run.html"),
        ("path=", "'/no/such/folder'", "does not exist"),
    ),
    Row(
        "union-key-missing-on-an-item",
        "merge rule on a field of the wrong type",
        MergeValidationError,
        lambda _: virtual(fl.Pipeline(fl.Parallel({"a": keyless, "b": keyed_item})), Keyed()),
        ("Union(key='id')", "'items'", "writers a, b", "KeyError", "{'x': 1}"),
    ),
    Row(
        "annotated-reducer-unknown",
        "merge rule on a field of the wrong type",
        ConfigError,
        lambda _: virtual(fl.Pipeline(fl.Parallel({"a": add})), LambdaReduced()),
        ("LambdaReduced.xs", "reducer", "fl.merge.Reduce(fn)"),
    ),
]


class Keyed(BaseModel):
    items: Annotated[list[dict[str, int]], fl.merge.Union(key="id")] = []


def keyless(data: Any, ctx: Keyed) -> None:
    ctx.items.append({"x": 1})


def keyed_item(data: Any, ctx: Keyed) -> None:
    ctx.items.append({"id": 2})


class LambdaReduced(BaseModel):
    xs: Annotated[list[int], lambda a, b: a + b] = []


CATEGORIES = [
    "unknown strategy name", "unknown order name", "unknown on_failure name", "unknown clock name",
    "cap <= 0 or non-int", "duplicate or empty branch name", "branch not callable",
    "coroutine object instead of a function", "context not a pydantic model",
    "context cannot be deep-copied", "merge rule on a field of the wrong type",
    "custom merge returns the wrong type", "merged context fails validation", "merge conflict",
    "negative or NaN timeout", "priority for an unknown branch", "include_keys naming unknown fields",
    "unknown option", "fl.compare grid keys", "fl.charge outside a run", "bad usage budget or charge",
    "step returns a coroutine without awaiting", "step that cannot be called",
    "Pipeline.replace changes", "bad run option", "nested too deep", "handle misuse",
    "plot or report of something that is not a run", "Dask cluster that fails to start",
    "an Update naming no field",
    "an Update a field rule cannot fold", "unknown takes= choice",
]  # fmt: skip


def _param(row: Row) -> Any:
    return pytest.param(row, id=row.id, marks=row.marks)


@pytest.mark.parametrize("row", [_param(r) for r in ROWS])
def test_bad_input_raises_a_specific_error_naming_the_problem(row: Row) -> None:
    ctx = row.ctx() if row.ctx is not None else None
    snapshot = ctx.model_dump() if ctx is not None else None
    with pytest.raises(FlowlabError) as info:
        row.act(ctx)
    err = info.value
    assert type(err) is row.error, f"{type(err).__name__}: {err}"
    message = str(err)
    missing = [s for s in row.names if s not in message]
    assert not missing, f"message {message!r} does not name {missing}"
    if row.cause is not None:
        assert isinstance(err.__cause__, row.cause), repr(err.__cause__)
    if ctx is not None:
        # Nothing half-applied: the caller's object is untouched ...
        assert ctx.model_dump() == snapshot
    if row.after_ctx is not None:
        # ... and a run happened, so the error carries its partial result, whose context is the
        # one from before the failing step (the merge was built aside and thrown away).
        assert isinstance(err.result, fl.RunResult)
        assert err.result.status == "failed"
        assert err.result.error is err
        assert err.result.context.model_dump() == row.after_ctx
        assert (err.result.steps["status"] == "failed").any()  # frames exist for a failed run


def test_the_deep_copy_hint_works_leave_the_lock_out_with_include_keys() -> None:
    # The ctx-not-deep-copyable message says: leave the field out with include_keys=[...].
    ctx = _lock_ctx()
    pipe = fl.Pipeline(fl.Parallel({"a": add, "b": add}, merge="accumulate", include_keys=["n"]))
    result = virtual(pipe, ctx)
    assert isinstance(result.context, WithLock)
    assert result.context.n == 2
    assert result.context.guard is ctx.guard  # the live object is shared, never copied
    assert ctx.n == 0


def test_the_catalog_covers_every_kind_of_mistake_in_the_issue() -> None:
    seen = collections.Counter(r.category for r in ROWS)
    assert set(seen) == set(CATEGORIES)
    assert len({r.id for r in ROWS}) == len(ROWS)


def table() -> str:
    """The catalog as text: category, rows, expected errors."""
    by_cat: dict[str, list[Row]] = collections.defaultdict(list)
    for r in ROWS:
        by_cat[r.category].append(r)
    lines = [f"{'category':45} rows  errors"]
    for cat in CATEGORIES:
        rows = by_cat[cat]
        errors = collections.Counter(r.error.__name__ for r in rows)
        shown = ", ".join(f"{k} x{v}" for k, v in errors.items())
        lines.append(f"{cat:45} {len(rows):4}  {shown}")
    totals = collections.Counter(r.error.__name__ for r in ROWS)
    lines.append(
        f"{'total':45} {len(ROWS):4}  " + ", ".join(f"{k} x{v}" for k, v in totals.items())
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
