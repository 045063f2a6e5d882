"""Random pipelines for the stress suite: plain-data specs, a Hypothesis strategy, and a builder.

A spec is pure data (dataclasses), so Hypothesis can shrink it and a failing example prints as a
readable tree. :func:`build` turns a spec into a real ``fl.Pipeline`` whose leaf steps sleep on the
virtual clock, charge usage, fail, write the context, and cancel branches through the run's handle,
raise a ``BaseException``, leave behind a task or thread that charges late, and log everything they really did into a :class:`Journal` that the invariants compare against.

Times are multiples of 0.25 s, so virtual timestamps are exact binary fractions and ties (a timeout
firing in the same instant a sleep ends) happen often: ties are where schedulers go wrong.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import math
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, model_validator

import flowlab as fl
from flowlab.core.merge import STRATEGIES

__all__ = [
    "FIELDS",
    "Journal",
    "LeafAbort",
    "LeafError",
    "LeafSpec",
    "ParSpec",
    "RunSpec",
    "SCtx",
    "SeqSpec",
    "build",
    "run_specs",
]

KEYS = ("k0", "k1", "k2")
FIELDS = ("total", "counts", "seen", "note", "ceiling", "docs", "emb", "junk")


def _emb() -> Any:
    return np.arange(3)


class SCtx(BaseModel):
    """The stress context: two Sum fields, a Union list, a plain field, a validated ceiling, and
    numpy values: ``docs`` (the RAG shape, a list of dicts holding arrays, upserted by id; every
    leaf that completes adds one) and ``emb`` (an array no leaf writes: never a phantom write)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    total: Annotated[int, fl.merge.Sum()] = 0
    counts: Annotated[dict[str, int], fl.merge.Sum()] = {}
    seen: Annotated[list[str], fl.merge.Union()] = []
    note: str = ""
    ceiling: int = 10**9
    docs: Annotated[list[dict[str, Any]], fl.merge.Upsert(key="id")] = []
    emb: Any = Field(default_factory=_emb)
    junk: Any = None  # where a "cyclic" leaf puts a list that holds itself

    @model_validator(mode="after")
    def _under_ceiling(self) -> SCtx:
        if self.total > self.ceiling:
            raise ValueError(f"total {self.total} is above the ceiling {self.ceiling}")
        return self


class LeafError(RuntimeError):
    """What a leaf told to fail raises."""


class LeafAbort(BaseException):
    """What a leaf told to abort raises: neither an ``Exception`` nor a cancellation (as pytest's
    ``Failed``, gevent's ``Timeout``, trio's ``Cancelled``)."""


@dataclass
class LeafSpec:
    name: str
    sleep1: float = 0.0
    sleep2: float = 0.0
    delta: int = 1
    key: str = "k0"
    fail: bool = False
    charge: tuple[int, int] | None = None  # (cost in cents, tokens), made between the two sleeps
    sync: bool = False  # a plain `def` (runs in a worker thread; no sleeps)
    timeout: float | None = None
    note: bool = False
    cancel: tuple[str | None] | None = None  # after sleep1: handle.cancel(target); None = run
    stubborn: bool = False  # catches its cancellation, writes the context and returns anyway
    cyclic: bool = False  # also writes a list that holds itself: its branch cannot be diffed
    abort: bool = False  # raises LeafAbort, a BaseException: the run is recorded, then it escapes
    # a charge from something the step leaves behind: "task" (an asyncio task charging
    # `late_after` seconds after the step began) or "thread" (charging once the run is over)
    late: str | None = None
    late_after: float = 0.0

    @property
    def duration(self) -> float:
        return 0.0 if self.sync else self.sleep1 + self.sleep2


@dataclass
class SeqSpec:
    name: str
    parts: list[Node]


@dataclass
class ParSpec:
    name: str
    branches: dict[str, Node]
    merge: str = "overwrite"
    order: str = "declared"
    cap: int | None = None
    cap_kind: str = "fixed"  # fixed | aimd | adaptive (an injected, deterministic load series)
    priority: dict[str, int] = field(default_factory=dict)
    timeout: float | None = None
    branch_timeout: float | None = None
    on_failure: str = "propagate"
    include_keys: tuple[str, ...] | None = None


Node = LeafSpec | SeqSpec | ParSpec


@dataclass
class RunSpec:
    top: list[LeafSpec | ParSpec]
    base_total: int = 0
    ceiling: int = 10**9
    run_cap: int | None = None
    run_timeout: float | None = None
    usage: tuple[int | None, int | None] | None = None  # (cost cents, tokens)
    cancels: list[tuple[float, str | None]] = field(default_factory=list)  # scheduled callbacks
    record: bool = True  # False: no event log and no diffs (the merge computes its own)

    def __repr__(self) -> str:
        opts = [f"base_total={self.base_total}", f"ceiling={self.ceiling}"]
        opts += [f"run_cap={self.run_cap}", f"run_timeout={self.run_timeout}"]
        opts += [f"usage={self.usage}", f"cancels={self.cancels}"]
        opts += [] if self.record else ["record=False"]
        return f"RunSpec({', '.join(opts)}; top=[{'; '.join(describe(n) for n in self.top)}])"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # Hypothesis prints examples with this, not the dataclass repr

    def base(self) -> SCtx:
        return SCtx(total=self.base_total, counts={"k0": 1}, seen=["base"], ceiling=self.ceiling)


def describe(node: Node) -> str:
    """A compact one-line rendering of a spec node (Hypothesis prints failing examples with it).

    ``L7(1+0.5s d3 k1 FAIL $12c/40t sync T2 note cancel:b3)``, ``S4[...]``,
    ``P2{merge cap=3 ...: b0=..., b1=...}``.
    """
    if isinstance(node, LeafSpec):
        bits = [f"{node.sleep1:g}+{node.sleep2:g}s", f"d{node.delta}", node.key]
        bits += ["FAIL"] if node.fail else []
        bits += [f"${node.charge[0]}c/{node.charge[1]}t"] if node.charge else []
        bits += ["sync"] if node.sync else []
        bits += [f"T{node.timeout:g}"] if node.timeout is not None else []
        bits += ["note"] if node.note else []
        bits += [f"cancel:{node.cancel[0]}"] if node.cancel else []
        bits += ["stubborn"] if node.stubborn else []
        bits += ["cyclic"] if node.cyclic else []
        bits += ["ABORT"] if node.abort else []
        bits += [f"late:{node.late}@{node.late_after:g}"] if node.late else []
        return f"{node.name}({' '.join(bits)})"
    if isinstance(node, SeqSpec):
        return f"{node.name}[{', '.join(describe(p) for p in node.parts)}]"
    opts = [node.merge, node.order, node.on_failure]
    opts += [f"cap={node.cap_kind}:{node.cap}"] if node.cap is not None else []
    opts += [f"prio={node.priority}"] if node.priority else []
    opts += [f"timeout={node.timeout:g}"] if node.timeout is not None else []
    opts += [f"branch_timeout={node.branch_timeout:g}"] if node.branch_timeout is not None else []
    opts += [f"include={list(node.include_keys)}"] if node.include_keys is not None else []
    inner = ", ".join(f"{k}={describe(b)}" for k, b in node.branches.items())
    return f"{node.name}{{{' '.join(opts)}: {inner}}}"


@dataclass
class Journal:
    """What the leaves really did, in order, with the virtual time of each act."""

    completed: list[str] = field(default_factory=list)
    charges: list[tuple[float, str, int, int]] = field(default_factory=list)
    cancels: list[tuple[float, str | None]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # stubborn leaves that swallowed a cancel
    aborted: list[BaseException] = field(default_factory=list)  # every LeafAbort really raised
    # late charges: (time, leaf, "task" | "thread", what happened: "accepted" or the error's
    # type name); accepted ones are in `charges` too
    late: list[tuple[float, str, str, str]] = field(default_factory=list)
    forgotten: list[asyncio.Task[None]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    run_over: threading.Event = field(default_factory=threading.Event)
    busy: int = 0  # sync steps in their threads right now (drive waits for 0 before checking)
    lock: threading.Condition = field(default_factory=threading.Condition)
    handle: Any = None


# ---------------------------------------------------------------------------------- walking


def walk(node: Node) -> Any:
    """Every spec node under (and including) ``node``, depth first."""
    yield node
    if isinstance(node, SeqSpec):
        for p in node.parts:
            yield from walk(p)
    elif isinstance(node, ParSpec):
        for b in node.branches.values():
            yield from walk(b)


def run_specs(spec: RunSpec) -> list[Node]:
    return [n for top in spec.top for n in walk(top)]


# ---------------------------------------------------------------------------------- building


def _charge(journal: Journal, name: str, cents: int, tokens: int, now: float, late: str) -> None:
    """``fl.charge`` and journal it: in ``charges`` once accepted (a crossing charge is accepted
    too, then raises), and in ``late`` for a charge from something the step left behind."""
    try:
        fl.charge(cost=cents / 100, tokens=tokens)
    except fl.ChargeRefused:
        if late:
            journal.late.append((now, name, late, "ChargeRefused"))
        if not late:
            raise
        return
    except BaseException as err:
        if isinstance(err, fl.UsageLimitExceeded):
            journal.charges.append((now, name, cents, tokens))
        if late:
            journal.late.append((now, name, late, type(err).__name__))
        if not late:
            raise
        return
    journal.charges.append((now, name, cents, tokens))
    if late:
        journal.late.append((now, name, late, "accepted"))


def _leave_behind(leaf: LeafSpec, journal: Journal) -> None:
    """Start what the step forgets: a task that charges ``late_after`` seconds from now, or a
    thread (in the step's context) that charges once the run is over."""
    cents, tokens = leaf.charge or (5, 5)
    if leaf.late == "task":
        loop = asyncio.get_running_loop()

        async def later() -> None:
            await asyncio.sleep(leaf.late_after)
            _charge(journal, leaf.name, cents, tokens, loop.time(), "task")

        journal.forgotten.append(asyncio.ensure_future(later()))
    elif leaf.late == "thread":

        def after_the_run() -> None:
            journal.run_over.wait(30)
            _charge(journal, leaf.name, cents, tokens, math.inf, "thread")

        runner = contextvars.copy_context().run
        thread = threading.Thread(target=runner, args=(after_the_run,), daemon=True)
        thread.start()
        journal.threads.append(thread)  # (started first: drive joins every thread listed)


def _leaf_fn(leaf: LeafSpec, journal: Journal) -> Any:
    def act(ctx: SCtx) -> str:
        if leaf.fail:
            raise LeafError(f"{leaf.name} failed on purpose")
        if leaf.abort:
            err = LeafAbort(f"{leaf.name} aborted on purpose")
            journal.aborted.append(err)
            raise err
        ctx.total += leaf.delta
        ctx.counts[leaf.key] = ctx.counts.get(leaf.key, 0) + leaf.delta
        ctx.seen.append(leaf.name)
        ctx.docs.append({"id": leaf.name, "emb": np.full(2, leaf.delta)})
        if leaf.note:
            ctx.note = leaf.name
        if leaf.cyclic:
            loop: list[Any] = [leaf.name]
            loop.append(loop)
            ctx.junk = loop
        journal.completed.append(leaf.name)
        return leaf.name

    def charge() -> None:
        if leaf.charge is not None:
            cents, tokens = leaf.charge
            now = asyncio.get_event_loop().time() if not leaf.sync else -1.0
            _charge(journal, leaf.name, cents, tokens, now, "")

    if leaf.sync:

        def sync_step(data: Any, ctx: SCtx) -> str:
            with journal.lock:
                journal.busy += 1
            try:
                _leave_behind(leaf, journal)
                charge()
                return act(ctx)
            finally:
                with journal.lock:
                    journal.busy -= 1
                    journal.lock.notify_all()

        return sync_step

    async def async_step(data: Any, ctx: SCtx) -> str:
        loop = asyncio.get_running_loop()
        _leave_behind(leaf, journal)
        try:
            if leaf.sleep1:
                await asyncio.sleep(leaf.sleep1)
            if leaf.cancel is not None:
                (target,) = leaf.cancel
                journal.cancels.append((loop.time(), target))
                journal.handle.cancel(target)
            charge()
            if leaf.sleep2:
                await asyncio.sleep(leaf.sleep2)
        except asyncio.CancelledError:
            if not leaf.stubborn:
                raise
            journal.ignored.append(leaf.name)  # swallowed: it writes and returns as if done
        return act(ctx)

    return async_step


def build(node: Node, journal: Journal) -> Any:
    """The flowlab object for a spec node."""
    if isinstance(node, LeafSpec):
        return fl.Step(_leaf_fn(node, journal), name=node.name, timeout=node.timeout)
    if isinstance(node, SeqSpec):
        return fl.Pipeline(*[build(p, journal) for p in node.parts], name=node.name)
    cap: Any = node.cap
    if node.cap is not None and node.cap_kind == "aimd":
        cap = fl.limits.AIMD(1, node.cap, latency_target_s=1.0)
    elif node.cap is not None and node.cap_kind == "adaptive":
        loads = itertools.cycle([(0.2, 0.3), (0.95, 0.3), (0.5, 0.3), (0.1, 0.95)])
        cap = fl.limits.Adaptive(1, node.cap, 0.8, interval_s=0.25, reader=lambda: next(loads))
    merge: Any = node.merge
    if merge.startswith("rule:"):
        merge = getattr(fl.merge, merge.removeprefix("rule:"))()
    return fl.Parallel(
        {name: build(b, journal) for name, b in node.branches.items()},
        merge=merge,
        order=node.order,
        max_concurrency=cap,
        priority=node.priority or None,
        timeout=node.timeout,
        branch_timeout=node.branch_timeout,
        on_failure=node.on_failure,
        include_keys=list(node.include_keys) if node.include_keys is not None else None,
        name=node.name,
    )


# ---------------------------------------------------------------------------------- strategies

LEAF_BITS = st.integers(0, 2**70 - 1)  # every bit decode_leaf takes, with room
WIDTH = st.integers(1, 50)
SMALL = st.integers(0, 9)
CAP = st.none() | st.integers(1, 8)
SECONDS = st.integers(1, 24).map(lambda q: q / 4)  # 0.25 .. 6 s
PRIORITY = st.integers(-3, 3)
MERGES = st.sampled_from(
    [
        *STRATEGIES,
        *("overwrite", "accumulate", "deep"),  # the common ones a little more often
        *("rule:Overwrite", "rule:KeepFirst", "rule:DeepMerge", "rule:ErrorOnConflict"),
    ]
)
BOOLS = st.booleans()
INDEX = st.integers(0, 10**6)


@dataclass
class Budget:
    """Caps the size of one example (leaves in total) and hands out unique names."""

    leaves: int
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"


def decode_leaf(name: str, v: int, *, top: bool, faults: bool) -> LeafSpec:
    """A leaf from one integer, bit field by bit field: 0 is the simplest leaf, so Hypothesis
    shrinks leaves by shrinking one number (and one draw per leaf keeps generation fast)."""

    def take(bits: int) -> int:
        nonlocal v
        out = v & ((1 << bits) - 1)
        v >>= bits
        return out

    sleep1 = take(4) % 13 / 4
    sleep2 = take(4) % 13 / 4
    delta = 1 + take(3) % 5
    key = KEYS[take(2) % len(KEYS)]
    fail = faults and take(4) == 15
    has_charge = take(2) != 0
    cents, tokens = take(5) % 31, take(9) % 501
    sync = not top and take(3) == 7
    timed = faults and take(3) == 7
    timeout = (1 + take(5) % 24) / 4 if timed else None
    note = take(1) == 1
    stubborn = faults and not top and not sync and take(3) == 5
    cyclic = faults and not top and take(4) == 9
    abort = faults and not sync and take(8) == 77  # rare: it ends the whole run
    late_kind = take(4) if faults and not top else 0  # only in a branch: a branch to outlive
    late = "thread" if late_kind == 14 else "task" if late_kind == 15 and not sync else None
    late_after = take(4) % 13 / 4
    return LeafSpec(
        name=name,
        sleep1=sleep1,
        sleep2=sleep2,
        delta=delta,
        key=key,
        fail=fail,
        charge=(cents, tokens) if has_charge else None,
        sync=sync,
        timeout=timeout,
        note=note,
        stubborn=stubborn,
        cyclic=cyclic,
        abort=abort,
        late=late,
        late_after=late_after,
    )


# Plain functions taking ``draw`` (not nested composite strategies): building a fresh strategy
# object per node made generation ten times slower than running the pipeline.


def _pick(draw: Any, items: list[Any]) -> Any:
    return items[draw(INDEX) % len(items)]


def _leaf(draw: Any, budget: Budget, *, top: bool = False, faults: bool = True) -> LeafSpec:
    budget.leaves -= 1
    return decode_leaf(budget.name("L"), draw(LEAF_BITS), top=top, faults=faults)


def _maybe(draw: Any, strategy: Any, one_in: int, faults: bool = True) -> Any:
    return draw(strategy) if faults and draw(SMALL) % one_in == 0 else None


def _branch(draw: Any, budget: Budget, depth: int, faults: bool) -> Node:
    kind = draw(SMALL)  # 0-4 leaf, 5-6 sequence, 7 nested Parallel, 8-9 sequence with one
    nest = depth < 3 and budget.leaves > 6
    if kind <= 4 or budget.leaves <= 2 or (kind >= 7 and not nest):
        return _leaf(draw, budget, faults=faults)
    if kind == 7:
        return _par(draw, budget, depth + 1, faults)
    parts: list[Node] = [_leaf(draw, budget, faults=faults)]
    if kind >= 8:
        parts.append(_par(draw, budget, depth + 1, faults))
    if draw(BOOLS) and budget.leaves > 0:
        parts.append(_leaf(draw, budget, faults=faults))
    return SeqSpec(budget.name("S"), parts)


def _par(draw: Any, budget: Budget, depth: int, faults: bool) -> ParSpec:
    width = max(1, min(draw(WIDTH), budget.leaves))
    names = [budget.name("b") for _ in range(width)]
    branches = {n: _branch(draw, budget, depth, faults) for n in names}
    priority = {_pick(draw, names): draw(PRIORITY) for _ in range(draw(SMALL) % 4)}
    include_keys = None
    if draw(SMALL) % 5 == 0:
        picked = [f for f in FIELDS if draw(BOOLS)]
        include_keys = tuple(picked or ["total"])
    merge = draw(MERGES)
    return ParSpec(
        name=budget.name("P"),
        branches=branches,
        merge=merge if faults or "onflict" not in merge else "deep",
        order="completion" if draw(BOOLS) else "declared",
        cap=draw(CAP),
        cap_kind=("fixed", "fixed", "fixed", "aimd", "adaptive")[draw(SMALL) % 5],
        priority=priority,
        timeout=_maybe(draw, SECONDS, 5, faults),
        branch_timeout=_maybe(draw, SECONDS, 5, faults),
        on_failure=("propagate", "fail_fast", "ignore")[draw(SMALL) % 3],
        include_keys=include_keys,
    )


@st.composite
def run_spec(draw: Any, *, max_leaves: int = 120, faults: bool = True) -> RunSpec:
    """A random run: 1-3 top-level steps (the first a Parallel), options, cancellations."""
    budget = Budget(leaves=max_leaves)
    top: list[LeafSpec | ParSpec] = []
    for i in range(1 + draw(SMALL) % 3):
        if (i == 0 or draw(BOOLS)) and budget.leaves > 0:
            top.append(_par(draw, budget, 1, faults))
        else:
            top.append(_leaf(draw, budget, top=True, faults=faults))
    spec = RunSpec(top=top, base_total=draw(SMALL))
    spec.run_cap = draw(CAP)
    spec.record = draw(SMALL) != 0
    if not faults:
        return spec
    nodes = run_specs(spec)
    branch_names = [b for n in nodes if isinstance(n, ParSpec) for b in n.branches]
    if draw(SMALL) % 6 == 0:
        spec.ceiling = spec.base_total + draw(st.integers(0, 60))
    if draw(SMALL) % 8 == 0:
        spec.run_timeout = draw(SECONDS) * 2
    if draw(SMALL) % 3 == 0:
        spec.usage = (
            draw(st.none() | st.integers(0, 300)),
            draw(st.none() | st.integers(0, 5000)),
        )
    for _ in range((0, 0, 1, 1, 2, 3)[draw(SMALL) % 6]):
        target = _pick(draw, branch_names) if draw(SMALL) else None
        spec.cancels.append((draw(st.integers(0, 40)) / 4, target))
    leaves = [n for n in nodes if isinstance(n, LeafSpec) and not n.sync]
    if leaves and draw(SMALL) % 5 == 0:
        _pick(draw, leaves).cancel = (_pick(draw, branch_names),)
    return spec
