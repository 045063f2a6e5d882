"""The engine: runs a pipeline on one event loop, one coordinator per run.

Design (why it cannot deadlock)
-------------------------------
One :class:`Run` object owns all coordination state, and only the event-loop thread touches it.
There are no locks: a branch waits for a slot in a :class:`~flowlab.core.limits.LimiterState` (a priority
queue of futures), and that is the only thing it ever waits for before it runs. Cancellation —
by the handle, by ``fail_fast``, by a timeout, by a usage breach — is a direct, synchronous
``task.cancel()`` issued by the coordinator with a recorded *reason*; the cancelled branch records
its status and swallows exactly that one cancellation (``Task.uncancel``), so cancelling a branch
never cancels its step. Slots are released in ``finally`` blocks, and the run-wide cap is held only by
leaf steps, never by a parent waiting for its children, so no wait can close a cycle.

Structured concurrency: every branch task lives inside its Parallel's
:class:`~flowlab.engine.group.BranchGroup` (a TaskGroup without a done callback per task), so no task
outlives its step, and no step outlives its run.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

import flowlab.core.context.isolation as ctx_mod
import flowlab.core.merge as merge_mod
from flowlab.core.limits import LimiterState
from flowlab.core.map import Map
from flowlab.core.pipeline import Node, Parallel, Pipeline, Step, as_node
from flowlab.core.rate import RateState
from flowlab.core.rate_gate import RateGate
from flowlab.core.retry import Retry
from flowlab.core.usage import UsageAccount
from flowlab.engine import lifecycle
from flowlab.engine.attempts import run_leaf
from flowlab.engine.current import charge, current_run, last_result
from flowlab.engine.instruments import Hooks, check_instruments
from flowlab.engine.options import RunOptions
from flowlab.engine.parallel import run_parallel
from flowlab.engine.thread_call import HeldThreads
from flowlab.errors import (
    ConfigError,
    RunCancelled,
)
from flowlab.results.record import RunResult
from flowlab.results.recorder import Instrument, Recorder
from flowlab.results.records import BranchRecord

__all__ = ["Run", "RunCancelled", "charge", "current_run", "last_result"]


@dataclass(eq=False, slots=True)
class _Live:
    """A running or queued branch the coordinator may cancel."""

    task: asyncio.Task[Any] | None  # None while queued: no task exists until a slot is free
    record: BranchRecord
    group: int
    status: str = ""
    reason: str = ""
    key: int = -1
    entered: bool = False  # its task ran its first line (so its own ``finally`` closes it)
    on_cancel: Callable[[_Live], None] | None = None  # how to cancel it while it has no task
    on_never_ran: Callable[[_Live], None] | None = None  # how to close it if cancelled unentered


class Run:
    """One execution of a pipeline: the coordinator that owns every piece of run state."""

    def __init__(
        self,
        pipeline: Any,
        ctx: BaseModel,
        options: RunOptions | None = None,
        *,
        instruments: Sequence[Instrument] | None = None,
    ) -> None:
        """``options`` are checked already (:class:`~flowlab.engine.options.RunOptions`);
        ``instruments`` replaces ``options.instruments`` (the entry points add theirs)."""
        options = RunOptions() if options is None else options
        self.options = options
        self.pipeline = (
            pipeline
            if isinstance(pipeline, Pipeline)
            else Pipeline(as_node(pipeline, param="pipeline"))
        )
        self.base = ctx_mod.check_context(ctx)
        merge_mod.check_model(type(self.base))
        parallels = list(self.pipeline.parallels())
        for par in parallels:
            merge_mod.check_model(type(self.base), merge=par.merge)
            if par.include_keys is not None:
                ctx_mod.check_include_keys(type(self.base), par.include_keys)
            if isinstance(par, Map):
                par.check_context(type(self.base))
        self.run_limiter_cfg = options.limiter
        self.rate_cfg = options.rate
        self.rate_gate: RateGate | None = None  # made by execute(): it needs the run's clock
        self.timeout = options.timeout
        self.clock = options.clock
        self.wake: asyncio.TimerHandle | None = None  # see lifecycle.wake_up
        self.timeout_handle: asyncio.TimerHandle | None = None  # the run's own timeout
        self.input = options.input
        self.account = UsageAccount(options.usage)
        self.recorder = Recorder()
        self.record = options.record
        given = options.instruments if instruments is None else check_instruments(instruments)
        self.hooks = Hooks(given, self._instrument_disabled)
        self.instruments = self.hooks.instruments  # the list, in the order given
        self.backend = options.backend
        self.detect_deadlocks = options.detect_deadlocks
        self.live: dict[int, _Live] = {}
        self.pending_cancels: list[str | None] = []  # asked for before execute() began
        self.control_lock = threading.Lock()  # orders those asks against execute()'s start
        self.precancel: set[str] = set()
        self._breach_done = False  # the crossing charge's siblings were cancelled
        self._breach_record: BranchRecord | None = None
        self._names: frozenset[str] | None = None  # every branch name and path (see check_branch)
        self._ids = itertools.count()
        self._groups = itertools.count()
        self.leaves_in_flight = 0
        # Cancelled sync steps whose thread still runs: in flight, holding their run-wide slot,
        # until it returns (see flowlab.thread_call); closed by _finish if it never does.
        self.held = HeldThreads()
        self.failed_step: tuple[str, BaseException | None] = ("", None)  # see leaf.run_step
        # Under a run-wide cap (see flowlab.engine.leaf.run_step): each branch's place in the tree,
        # ((-priority, declared index), ...) from the top, by path; and the branches that have
        # a task but no leaf running yet (a branch starts when its first leaf gets a slot).
        self.ranks: dict[str, tuple[tuple[float, int], ...]] = {}
        self.unstarted: dict[str, BranchRecord] = {}
        self.on_start: dict[str, Callable[[], None]] = {}  # path -> its branch_timeout's arming
        # Parallel steps with a rate of their own, by path: their retried leaves take its tokens
        self.step_rates: dict[str, Any] = {}
        self.status = "running"
        self.result: RunResult | None = None
        self.run_reason = ""
        self.executor: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.main_task: asyncio.Task[Any] | None = None
        self.t0 = 0.0
        self.run_limiter: LimiterState | None = None  # made by lifecycle.open_run
        self.time: Callable[[], float] = time.monotonic  # the loop's clock, set by execute()
        self.context = ctx_mod.working_copy(self.base, [p.include_keys for p in parallels])
        # declared branches; unknown (None) when a Map makes its branches as it runs
        self.total_branches: int | None = (
            None
            if any(isinstance(p, Map) for p in parallels)
            else sum(len(p.branches) for p in parallels)
        )
        self.token_windows: list[tuple[str, RateState]] = []  # (scope, state), fed by charge()
        self.cap_since: float | None = None  # the run-wide cap holds leaves back since (leaf.py)
        self.cap_at: tuple[int, int] = (0, 0)  # (limit, in flight) when that spell began

    # ---- time and reporting -------------------------------------------------------------------
    def now(self) -> float:
        """Seconds since the run started, on the run's clock (virtual or real)."""
        return self.time() - self.t0

    def event(
        self, kind: str, step: str, branch: str, detail: str = "", t: float | None = None
    ) -> None:
        if self.record:
            self.recorder.events.append(
                (self.now() if t is None else t, kind, step, branch, detail)
            )

    def emit(self, hook: str, *args: Any) -> None:
        self.hooks.emit(hook, *args)

    def _instrument_disabled(self, inst: Any, hook: str, err: BaseException) -> None:
        """An instrument raised: it is gone for the rest of the run, and ``result.events`` says so."""
        detail = f"{inst!r} raised {type(err).__name__}: {err} in {hook}(); disabled"
        self.event("instrument_disabled", "", "", detail)

    # ---- control (event-loop thread) ----------------------------------------------------------
    def cancel(self, branch: str | None = None, reason: str = "cancelled by handle") -> int:
        """Cancel one branch (by name or path) or, with no name, the whole run. Returns how many.

        Raises
        ------
        ConfigError
            When no step of the pipeline declares a branch of that name or path.
        """
        if branch is None:
            if self.main_task is not None and not self.main_task.done():
                self.run_reason = self.run_reason or "cancelled"
                self.main_task.cancel()
                return 1
            return 0
        self.check_branch(branch)
        hits = [lv for lv in self.live.values() if branch in (lv.record.branch, lv.record.path)]
        for lv in hits:
            self.cancel_live(lv, "cancelled", reason)
        if not hits and self.status == "running":
            self.precancel.add(branch)  # not queued yet: cancel it when it is
        return len(hits)

    def check_branch(self, branch: str) -> None:
        """Raise :class:`ConfigError` unless some Parallel declares ``branch`` (name or path)."""
        if self._names is None:
            self._names = frozenset(_branch_names(self.pipeline, ""))
        if branch in self._names:
            return
        if any(n.endswith(":*") for n in self._names):
            # a Map's item, by name or path: its names are known only when it runs, and may
            # hold ':' and '/' themselves (URLs); one that never comes is flagged when the run
            # ends (lifecycle: CancelNotMatchedWarning)
            return
        names = sorted(n for n in self._names if ":" not in n)
        close = difflib.get_close_matches(str(branch), sorted(self._names), n=1)
        hint = f" HINT: did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        raise ConfigError(
            f"branch={branch!r} is not valid: no step declares a branch of that name; choose one "
            f"of {listed or 'none (the pipeline has no Parallel)'} (or a path such as "
            f"'step:branch').{hint}"
        )

    def precancelled(self, name: str, path: str) -> bool:
        """Whether a handle asked to cancel this branch before it was queued (consumes the ask)."""
        for key in (path, name):
            if key in self.precancel:
                self.precancel.discard(key)
                return True
        return False

    def cancel_live(self, live: _Live, status: str, reason: str) -> None:
        if live.reason or (live.task is not None and live.task.done()):
            return
        live.status, live.reason = status, reason
        if live.task is not None:
            if not live.entered and live.on_never_ran is not None:
                # Cancelled before its first line, the task never runs its body (nor its
                # ``finally``): close the branch once the task is done.
                live.task.add_done_callback(functools.partial(_never_ran, live))
            live.task.cancel()
        elif live.on_cancel is not None:
            live.on_cancel(live)

    def charge(self, cost: float, tokens: int, brec: BranchRecord | None) -> None:
        """Charge the run's account and ``brec``'s row at once (see :func:`flowlab.charge`)."""
        crossed = self.account.charge(cost, tokens, brec.path if brec else None, brec)
        if crossed:
            self._breach_record = brec
            assert self.loop is not None
            try:
                running = asyncio.get_running_loop() is self.loop
            except RuntimeError:
                running = False
            if running:
                self._on_breach(brec)
            else:
                self.loop.call_soon_threadsafe(self._on_breach, brec)
        if tokens and self.token_windows:
            path, t = (brec.path if brec else ""), self.now()
            for scope, state in self.token_windows:
                if not scope or path.startswith(scope + ":"):
                    state.add_tokens(t, tokens)
        self.emit("charged", brec.path if brec else "", cost, tokens)
        if self.account.breached is not None:
            raise self.account.breached

    def settle_breach(self) -> None:
        """Cancel the crossing charge's siblings now if that is still to happen (a charge from a
        worker thread schedules it on the loop): a step that sees the breach first must see its
        consequences too, or a sibling's step would end failed by an error not its own."""
        if self.account.breached is not None and not self._breach_done:
            self._on_breach(self._breach_record)

    def _on_breach(self, brec: BranchRecord | None) -> None:
        if self._breach_done:
            return
        self._breach_done = True
        path = brec.path if brec else ""
        self.event("usage_breach", brec.step if brec else "", path, str(self.account.breached))
        # the breaching branch and its ancestors end by the error itself: found by their own
        # parents, not by the path's text (a Map's "m:dir" is no ancestor of "m:dir/a")
        parent_of = {lv.record.path: lv.record.parent for lv in self.live.values()}
        spared = {path}
        up = brec.parent if brec else ""
        while up and up not in spared:
            spared.add(up)
            up = parent_of.get(up, "")
        for lv in list(self.live.values()):
            if lv.record.path in spared:
                continue
            self.cancel_live(lv, "cancelled", f"usage limit exceeded by branch {path!r}")

    # ---- execution ----------------------------------------------------------------------------

    # ---- the run's life (flowlab.engine.lifecycle) ----------------------------------------------
    async def execute(self) -> RunResult:
        """Run the pipeline; always returns a :class:`RunResult` (never raises for run errors)."""
        return await lifecycle.execute(self)

    def finish(self, status: str, error: BaseException | None, output: Any) -> RunResult:
        return lifecycle.finish(self, status, error, output)

    async def node(
        self, node: Node, data: Any, ctx: BaseModel, parent: str, retry: Retry | None = None
    ) -> Any:
        """Run ``node``; ``retry`` is the enclosing Parallel's or Map's policy, if any."""
        if isinstance(node, Step):
            return await run_leaf(self, node, data, ctx, parent, retry)
        if isinstance(node, Parallel):
            plan = None
            if isinstance(node, Map):  # its branches: one per item, made now
                plan = node.expand(data, ctx, f"{parent}/{node.name}" if parent else node.name)
            return await run_parallel(self, node, data, ctx, parent, retry=retry, plan=plan)
        task = asyncio.current_task()
        for i, step in enumerate(node.steps):
            if i and task is not None and task.cancelling():
                # a step caught the cancellation meant for this pipeline and returned: the
                # next step does not start (the caller records the cancellation as ignored)
                raise asyncio.CancelledError("a step ignored its cancellation")
            data = await self.node(step, data, ctx, parent, retry)
        return data

    def began(self, path: str, t: float) -> None:
        """A leaf of branch ``path`` got its run-wide slot at ``t``: that branch, and every
        enclosing branch not started yet, starts now (a branch runs when a leaf of it runs)."""
        unstarted = self.unstarted
        # up the branch's own parents (a name may hold "/": a Map keyed by file path or URL, so
        # "m:dir" is no parent of "m:dir/a"); a branch that started has started parents too
        while (brec := unstarted.pop(path, None)) is not None:
            brec.started = t
            arm = self.on_start.pop(path, None)
            if arm is not None:  # its branch_timeout counts from now
                arm()
            if self.record:
                self.recorder.events.append(brec)  # its start (see Recorder.event_log)
            if self.instruments:
                self.emit("branch_started", brec)
            path = brec.parent

    # used by flowlab.engine.parallel
    def new_live(
        self,
        record: BranchRecord,
        group: int,
        on_cancel: Callable[[_Live], None] | None = None,
        on_never_ran: Callable[[_Live], None] | None = None,
    ) -> _Live:
        """Register a queued branch (no task yet) that the coordinator may cancel."""
        key = next(self._ids)
        lv = self.live[key] = _Live(
            None, record, group, "", "", key, False, on_cancel, on_never_ran
        )
        return lv

    def new_group(self) -> int:
        return next(self._groups)


def _branch_names(node: Node, parent: str) -> Iterator[str]:
    """Every branch name and path a pipeline declares (paths as the records spell them)."""
    if isinstance(node, Map):  # branches named at run time: any name, any path under it
        path = f"{parent}/{node.name}" if parent else node.name
        yield f"{path}:*"
    elif isinstance(node, Parallel):
        path = f"{parent}/{node.name}" if parent else node.name
        for name, branch in node.branches.items():
            yield name
            yield f"{path}:{name}"
            yield from _branch_names(branch, f"{path}:{name}")
    elif isinstance(node, Pipeline):
        for step in node.steps:
            yield from _branch_names(step, parent)


def _never_ran(live: _Live, _task: object) -> None:
    if live.on_never_ran is not None and not live.entered:
        live.on_never_ran(live)
