"""Random runs of the newer features, and a journal of what their leaves really did.

A seeded generator (no Hypothesis: one integer seed is one program, so a failure prints as
``seed=123`` and replays with :func:`program`) of pipelines mixing ``fl.Map`` and
``fl.Parallel`` (nested once), sync and async leaves, retries (a step's own policy or its
fan-out's), per-attempt timeouts, ``branch_timeout``, fixed / ``Keyed`` / AIMD caps, per-step and
run-wide rates, priorities, ``fl.charge`` under a budget, ``handle.cancel(path)`` mid-run, leaves
that return ``fl.Update`` and ones that raise a ``BaseException``.

Every leaf attempt writes one :class:`Attempt` into the :class:`Journal` (its own start and end on
the loop's clock, what it charged, how it ended), independently of flowlab's recorder;
``audit_check`` holds the frames, plots, trace and stream up against it.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel

import flowlab as fl

__all__ = ["ACtx", "Attempt", "Journal", "LeafPlan", "Program", "program"]


class ACtx(BaseModel):
    total: Annotated[int, fl.merge.Sum()] = 0
    seen: Annotated[list[str], fl.merge.Union()] = []
    note: str = ""


class Boom(RuntimeError):
    """What a leaf told to fail raises (retried by the default policy)."""


class Abort(BaseException):
    """A ``BaseException`` that is not a cancellation: never retried, ends the run."""


@dataclass
class LeafPlan:
    """One leaf: what each of its attempts does (the last one repeats if it is tried more)."""

    id: str  # also its Map item / Parallel branch name where it is a branch by itself
    attempts: list[tuple[float, int, int, str]]  # (sleep s, cents, tokens, "ok"|"fail"|"abort")
    delta: int = 1
    sync: bool = False
    timeout: float | None = None
    retry: fl.Retry | None = None  # its own policy
    update: bool = False  # returns fl.Update instead of writing
    cancel: str | None = None  # after its first sleep: handle.cancel(this path)
    stubborn: bool = False  # catches its cancellation and returns as if done

    def plan(self, n: int) -> tuple[float, int, int, str]:
        return self.attempts[min(n, len(self.attempts)) - 1]


@dataclass
class Attempt:
    leaf: str
    n: int
    start: float
    end: float = float("nan")
    cents: int = 0  # accepted charges
    tokens: int = 0
    how: str = "running"  # ok | fail | abort | interrupt | cancelled | breach
    stubborn: bool = False  # it swallowed a cancellation
    charged: list[tuple[float, int]] = field(default_factory=list)  # (time, tokens) accepted
    error: BaseException | None = None
    output: Any = None


@dataclass
class Journal:
    attempts: list[Attempt] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    handle: Any = None
    cancels: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: Any = None  # the loop's time(), read from sync steps' threads too

    def of(self, leaf: str) -> list[Attempt]:
        return [a for a in self.attempts if a.leaf == leaf]


@dataclass
class Fan:
    """A Parallel or a Map; ``branches`` maps a branch name to a leaf or a (leaf, leaf) chain or a
    nested Fan."""

    name: str
    kind: str  # "parallel" | "map"
    branches: dict[str, Any]
    cap: Any = None  # None | int | ("keyed", {group: n}) | ("aimd", max)
    rate: float | None = None  # per second, burst 1
    retry: fl.Retry | None = None
    on_failure: str = "propagate"
    branch_timeout: float | None = None
    timeout: float | None = None  # the step's own
    order: str = "declared"
    priority: dict[str, int] = field(default_factory=dict)


@dataclass
class Program:
    seed: int
    top: list[Any]  # LeafPlan | Fan
    run_cap: int | None = None
    run_rate: float | None = None
    run_tpm: int | None = None  # the run's tokens per minute
    usage: tuple[int | None, int | None] | None = None  # (cents, tokens)
    run_timeout: float | None = None
    cancels: list[tuple[float, str]] = field(default_factory=list)  # (s, branch path; "": run)
    leaves: dict[str, LeafPlan] = field(default_factory=dict)
    owner: dict[str, list[str]] = field(
        default_factory=dict
    )  # leaf -> branch paths, outermost first
    fans: dict[str, Fan] = field(default_factory=dict)  # by path
    fan_of_branch: dict[str, str] = field(default_factory=dict)  # branch path -> fan path
    policy: dict[str, fl.Retry | None] = field(default_factory=dict)  # leaf -> policy in force
    step_path: dict[str, str] = field(default_factory=dict)  # leaf -> its step path
    base_total: int = 0

    def __repr__(self) -> str:
        return f"Program(seed={self.seed})"

    @property
    def capped(self) -> bool:
        """A run-wide cap or rate: a branch starts when its first leaf passes them."""
        return self.run_cap is not None or bool(self.run_rate) or bool(self.run_tpm)


def _group(x: Any) -> str:
    name = x if isinstance(x, str) else x.name
    return str(name).split("_")[0]


# ---------------------------------------------------------------------------------- leaves


def _act(leaf: LeafPlan, ctx: ACtx, att: Attempt) -> Any:
    _, _, _, how = att_plan = leaf.plan(att.n)
    del att_plan
    if how == "fail":
        att.how = "fail"
        err: BaseException = Boom(f"{leaf.id} attempt {att.n} failed")
        att.error = err
        raise err
    if how in ("abort", "interrupt"):
        att.how = how
        err = Abort(f"{leaf.id} aborted") if how == "abort" else KeyboardInterrupt(leaf.id)
        att.error = err
        raise err
    out: Any = f"{leaf.id}#{att.n}"
    if leaf.update:
        out = fl.Update(total=leaf.delta, seen=[leaf.id])
    else:
        ctx.total += leaf.delta
        ctx.seen.append(leaf.id)
        ctx.note = leaf.id
    att.how, att.output = "ok", out
    return out


def _charge(att: Attempt, cents: int, tokens: int, now: float) -> None:
    if not cents and not tokens:
        return
    try:
        fl.charge(cost=cents / 100, tokens=tokens)
    except fl.UsageLimitExceeded:
        att.cents += cents  # the crossing charge is counted, then raises
        att.tokens += tokens
        att.charged.append((now, tokens))
        att.how = "breach"
        raise
    att.cents += cents
    att.tokens += tokens
    att.charged.append((now, tokens))


def _open(journal: Journal, leaf: LeafPlan) -> Attempt:
    with journal.lock:
        n = journal.counts.get(leaf.id, 0) + 1
        journal.counts[leaf.id] = n
        att = Attempt(leaf.id, n, journal.clock())
        journal.attempts.append(att)
    return att


def leaf_fn(leaf: LeafPlan, journal: Journal) -> Any:
    """The callable of a Parallel's leaf (``(data, ctx)``)."""
    if leaf.sync:

        def sync_step(data: Any, ctx: ACtx) -> Any:
            att = _open(journal, leaf)
            try:
                _, cents, tokens, _ = leaf.plan(att.n)
                _charge(att, cents, tokens, journal.clock())
                return _act(leaf, ctx, att)
            finally:
                att.end = journal.clock()

        return sync_step

    async def async_step(data: Any, ctx: ACtx) -> Any:
        att = _open(journal, leaf)
        try:
            try:
                sleep, cents, tokens, _ = leaf.plan(att.n)
                half = sleep / 2
                if half:
                    await asyncio.sleep(half)
                if leaf.cancel is not None and att.n == 1:
                    journal.cancels.append((journal.clock(), leaf.cancel))
                    journal.handle.cancel(leaf.cancel)
                _charge(att, cents, tokens, journal.clock())
                if half:
                    await asyncio.sleep(half)
            except asyncio.CancelledError:
                att.how = "cancelled"
                if not leaf.stubborn:
                    raise
                att.stubborn = True  # swallowed: it writes and returns as if done
            return _act(leaf, ctx, att)
        finally:
            att.end = journal.clock()

    return async_step


def map_fn(leaves: dict[str, LeafPlan], journal: Journal) -> Any:
    """The one callable of a Map: ``step(item, ctx)``, the item being the leaf's id."""
    fns = {k: leaf_fn(v, journal) for k, v in leaves.items()}
    sync = {k: v.sync for k, v in leaves.items()}

    async def mapped(item: str, ctx: ACtx) -> Any:
        fn = fns[item]
        if sync[item]:
            return fn(item, ctx)  # (0 virtual seconds: called on the loop thread)
        return await fn(item, ctx)

    return mapped


# ---------------------------------------------------------------------------------- building


def build(prog: Program, journal: Journal) -> Any:
    """The flowlab pipeline of ``prog``."""
    parts = [_node(prog, n, journal) for n in prog.top]
    return fl.Pipeline(*parts, name="audit")


def _leaf_step(leaf: LeafPlan, journal: Journal) -> Any:
    return fl.Step(leaf_fn(leaf, journal), name=leaf.id, timeout=leaf.timeout, retry=leaf.retry)


def _node(prog: Program, node: Any, journal: Journal) -> Any:
    if isinstance(node, LeafPlan):
        return _leaf_step(node, journal)
    if isinstance(node, tuple):
        return fl.Pipeline(*[_leaf_step(x, journal) for x in node], name="chain")
    fan: Fan = node
    cap: Any = fan.cap
    if isinstance(cap, tuple) and cap[0] == "keyed":
        cap = fl.limits.Keyed(key=_group, limits=cap[1])
    elif isinstance(cap, tuple) and cap[0] == "aimd":
        cap = fl.limits.AIMD(1, cap[1], latency_target_s=1.0)
    opts: dict[str, Any] = {
        "max_concurrency": cap,
        "rate": fl.limits.Rate(per_second=fan.rate) if fan.rate else None,
        "retry": fan.retry,
        "on_failure": fan.on_failure,
        "branch_timeout": fan.branch_timeout,
        "timeout": fan.timeout,
        "order": fan.order,
        "name": fan.name,
    }
    if fan.kind == "map":
        leaves = fan.branches  # every branch a LeafPlan
        step = fl.Step(
            map_fn(leaves, journal),
            name="item",
            timeout=next(iter(leaves.values())).timeout,
        )
        ids = list(leaves)
        prio = dict(fan.priority)
        return fl.Map(
            step,
            over=lambda data, ctx: list(ids),
            key=lambda item: item,
            priority=(lambda item: prio.get(item, 0)) if prio else None,
            **opts,
        )
    branches = {k: _node(prog, v, journal) for k, v in fan.branches.items()}
    return fl.Parallel(branches, priority=fan.priority or None, **opts)


# ---------------------------------------------------------------------------------- generating


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.prog = Program(seed=seed, top=[])

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def leaf(self, *, group: str, top: bool = False, timeout: float | None = None) -> LeafPlan:
        r = self.rng
        k = r.choice([1, 1, 1, 2, 3])
        atts = []
        for i in range(k):
            how = "ok" if i == k - 1 else "fail"
            if r.random() < 0.12:
                how = "fail"
            if not top and r.random() < 0.015:
                how = "abort" if r.random() < 0.7 else "interrupt"
            charge = (r.randrange(0, 20), r.randrange(0, 300)) if r.random() < 0.6 else (0, 0)
            atts.append((r.randrange(0, 13) / 4, *charge, how))
        leaf = LeafPlan(
            id=f"{group}_{self.name('L')}",
            attempts=atts,
            delta=r.randrange(1, 6),
            sync=not top and r.random() < 0.15,
            update=r.random() < 0.3,
        )
        leaf.stubborn = not top and not leaf.sync and r.random() < 0.05
        if leaf.sync:
            leaf.attempts = [(0.0, c, t, h) for _, c, t, h in atts]
        leaf.timeout = (
            timeout
            if timeout is not None
            else (r.randrange(2, 12) / 4 if r.random() < 0.15 and not leaf.sync else None)
        )
        if r.random() < 0.2:
            leaf.retry = fl.Retry(attempts=r.randrange(1, 4), backoff=r.randrange(0, 5) / 4,
                                  jitter=0.0)  # fmt: skip
        return leaf

    def fan(self, depth: int, parent: str) -> Fan:
        r = self.rng
        kind = r.choice(["parallel", "map"])
        name = self.name("M" if kind == "map" else "P")
        width = r.randrange(1, 9 if depth == 0 else 5)
        groups = ["g0", "g1", "g2"]
        fan = Fan(name=name, kind=kind, branches={})
        map_timeout = r.randrange(2, 12) / 4 if kind == "map" and r.random() < 0.15 else None
        for _ in range(width):
            g = r.choice(groups)
            if kind == "map":
                leaf = self.leaf(group=g, timeout=map_timeout)
                leaf.sync = False if map_timeout is not None else leaf.sync
                leaf.retry = None  # the Map's one step: its policy is the Map's
                fan.branches[leaf.id] = leaf
                if r.random() < 0.15:  # an item named like a path under another (file paths)
                    twin = self.leaf(group=g, timeout=map_timeout)
                    twin.id, twin.retry = f"{leaf.id}/{twin.id}", None
                    twin.sync = False if map_timeout is not None else twin.sync
                    fan.branches[twin.id] = twin
                continue
            roll = r.random()
            bname = f"{g}_{self.name('b')}"
            if roll < 0.6 or depth > 0:
                fan.branches[bname] = self.leaf(group=g)
            elif roll < 0.8:
                fan.branches[bname] = (self.leaf(group=g), self.leaf(group=g))
            else:
                fan.branches[bname] = self.fan(depth + 1, "")
        if r.random() < 0.6:
            cap_roll = r.random()
            if cap_roll < 0.5:
                fan.cap = r.randrange(1, 4)
            elif cap_roll < 0.8:
                fan.cap = ("keyed", {g: r.randrange(1, 3) for g in groups[: r.randrange(1, 4)]})
                if len(fan.cap[1]) < len(groups):
                    fan.cap[1]["*"] = r.randrange(1, 3)  # the other keys, each
            else:
                fan.cap = ("aimd", r.randrange(1, 4))
        if r.random() < 0.25:
            fan.rate = r.choice([1.0, 2.0, 4.0, 0.5])
        if r.random() < 0.4:
            fan.retry = fl.Retry(attempts=r.randrange(1, 4), backoff=r.randrange(0, 5) / 4,
                                 factor=r.choice([1.0, 2.0]), jitter=0.0)  # fmt: skip
        fan.on_failure = r.choice(["propagate", "fail_fast", "ignore", "ignore"])
        fan.order = r.choice(["declared", "completion"])
        if r.random() < 0.08:
            fan.timeout = r.randrange(4, 40) / 4
        if r.random() < 0.15:
            fan.branch_timeout = r.randrange(2, 20) / 4
        names = list(fan.branches)
        for _ in range(r.randrange(0, 3)):
            fan.priority[r.choice(names)] = r.randrange(-2, 3)
        return fan


def program(seed: int) -> Program:
    """The random program of ``seed`` (with its bookkeeping: owners, paths, policies)."""
    g = _Gen(seed)
    r = g.rng
    prog = g.prog
    if r.random() < 0.3:
        prog.top.append(g.leaf(group="top", top=True))
    prog.top.append(g.fan(0, ""))
    if r.random() < 0.3:
        prog.top.append(g.fan(0, "") if r.random() < 0.5 else g.leaf(group="top", top=True))
    if r.random() < 0.3:
        prog.run_cap = r.randrange(1, 4)
    if r.random() < 0.2:
        prog.run_rate = r.choice([1.0, 2.0])
    if r.random() < 0.12:
        prog.run_tpm = r.choice([400, 1000, 2500])
    if r.random() < 0.3:
        prog.usage = (
            r.choice([None, r.randrange(10, 120)]),
            r.choice([None, r.randrange(200, 2000)]),
        )
    prog.base_total = r.randrange(0, 5)
    _index(prog)
    branch_paths = list(prog.fan_of_branch)
    for _ in range(r.choice([0, 0, 0, 1, 2])):
        target = r.choice(branch_paths) if r.random() < 0.9 else ""  # "": the whole run
        prog.cancels.append((r.randrange(0, 24) / 4, target))
    if r.random() < 0.08:
        prog.run_timeout = r.randrange(2, 40) / 4
    asyncs = [x for x in prog.leaves.values() if not x.sync and prog.owner[x.id]]
    if asyncs and r.random() < 0.15:
        r.choice(asyncs).cancel = r.choice(branch_paths)
    return prog


def _index(prog: Program) -> None:
    def leaf(x: LeafPlan, owners: list[str], step_parent: str, policy: fl.Retry | None) -> None:
        prog.leaves[x.id] = x
        prog.owner[x.id] = owners
        prog.policy[x.id] = x.retry if x.retry is not None else policy
        prog.step_path[x.id] = f"{step_parent}/{x.id}" if step_parent else x.id

    def fan(f: Fan, prefix: str, owners: list[str], policy: fl.Retry | None) -> None:
        path = f"{prefix}/{f.name}" if prefix else f.name
        prog.fans[path] = f
        pol = f.retry if f.retry is not None else policy
        for bname, b in f.branches.items():
            bpath = f"{prefix}/{f.name}:{bname}" if prefix else f"{f.name}:{bname}"
            prog.fan_of_branch[bpath] = path
            own = [*owners, bpath]
            if isinstance(b, LeafPlan):
                leaf(b, own, bpath, pol)
                if f.kind == "map":
                    prog.step_path[b.id] = f"{bpath}/item"
            elif isinstance(b, tuple):
                for x in b:
                    leaf(x, own, bpath, pol)
            else:
                fan(b, bpath, own, pol)

    for node in prog.top:
        if isinstance(node, LeafPlan):
            leaf(node, [], "", None)
        else:
            fan(node, "", [], None)
