"""Recording: the instrument interface, the recorder, and :class:`RunResult` with its frames.

The engine reports what happens to *instruments* (objects with no-op hook methods, after trio's
``Instrument``). The :class:`Recorder` is the built-in one: it appends compact tuples to an event log
and fills one small record per branch and per step. Nothing is formatted while the run goes; pandas is
imported, and frames are built, only when a frame is first asked for.

An instrument that raises is disabled with a warning and the run goes on.
"""

from __future__ import annotations

import copy
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    import pandas as pd

    from flowlab.core.context.isolation import Change
    from flowlab.errors import FlowlabError

__all__ = [
    "STATUSES",
    "AttemptRecord",
    "BranchRecord",
    "Instrument",
    "Recorder",
    "RunResult",
    "StepRecord",
    "unwalkable",
]

STATUSES: tuple[str, ...] = ("ok", "failed", "cancelled", "timeout", "queued", "running")
RUN_STATUSES: tuple[str, ...] = ("ok", "failed", "cancelled", "timeout", "usage_limit_exceeded")


@dataclass(slots=True)
class BranchRecord:
    """What happened to one branch run (times in seconds from run start)."""

    step: str
    branch: str
    path: str
    parent: str
    priority: float
    queued: float
    started: float = math.nan
    finished: float = math.nan
    status: str = "queued"
    error: str = ""
    rank: int | None = None
    cost: float = 0.0
    tokens: int = 0
    worker: str = ""
    reason: str = ""


@dataclass(slots=True)
class StepRecord:
    """What happened to one step run."""

    step: str
    path: str
    kind: str
    parent: str
    started: float
    finished: float = math.nan
    queued: float = math.nan
    status: str = "running"
    error: str = ""
    merge_s: float = math.nan
    peak: int | None = None
    limit: str = ""


@dataclass(slots=True)
class AttemptRecord:
    """One attempt of a leaf step that has a retry policy (times in seconds from run start).

    ``delay`` is the backoff waited before this attempt (0 for the first); ``cost`` and
    ``tokens`` are what the attempt charged (a failed attempt's charges count too).
    """

    step: str
    path: str
    branch: str
    attempt: int
    delay: float
    started: float
    finished: float = math.nan
    status: str = "running"
    error: str = ""
    cost: float = 0.0
    tokens: int = 0


class Instrument:
    """Observer of a run. Override the hooks you need; each default does nothing.

    Hooks receive the :class:`Recorder`-style records, which are live objects: read them, do not
    mutate them. Times are seconds from the run's start on the run's clock.
    """

    def run_started(self, total_branches: int | None) -> None:
        """The run began; ``total_branches`` counts declared branches (nested ones included)."""

    def step_started(self, record: StepRecord) -> None:
        """A step (leaf, Parallel or Pipeline) started."""

    def step_finished(self, record: StepRecord) -> None:
        """A step finished (any status)."""

    def branch_queued(self, record: BranchRecord) -> None:
        """A branch is waiting for a slot."""

    def branch_started(self, record: BranchRecord) -> None:
        """A branch got its slot and started."""

    def branch_finished(self, record: BranchRecord) -> None:
        """A branch ended: ok, failed, cancelled or timeout."""

    def merge_applied(self, step: str, rows: list[dict[str, Any]], seconds: float) -> None:
        """A Parallel's merge was applied to its parent's context."""

    def limit_changed(self, step: str, limit: int, in_flight: int, time: float) -> None:
        """A limiter moved its limit."""

    def branch_result(self, record: BranchRecord, output: Any, error: BaseException | None) -> None:
        """Right after :meth:`branch_finished`: the branch's output (``ok`` branches; else
        ``None``) and the exception that ended it (failed or timed-out branches; else ``None``).
        This is what ``handle.as_completed()`` and ``fl.run(on_branch=...)`` are built on."""

    def charged(self, branch: str, cost: float, tokens: int) -> None:
        """A step charged usage."""

    def run_finished(self, status: str) -> None:
        """The run ended with ``status``."""


class Recorder(Instrument):
    """The built-in instrument: turns what the engine reports into an event log and records."""

    def __init__(self) -> None:
        # The event log, in the order things happened. A branch's own events (queued, started,
        # finished) are logged as its BranchRecord, which holds their times and final status:
        # no tuple per event on the hot path. event_log() spells every entry out.
        self.events: list[tuple[float, str, str, str, str] | BranchRecord] = []
        self.branches: list[BranchRecord] = []
        self.step_log: list[StepRecord] = []  # every step's record, in start order
        self.diffs: list[tuple[str, BranchRecord, list[Change]]] = []
        self.merges: list[tuple[str, list[dict[str, Any]]]] = []
        # per top-level Parallel that reached its merge: what result.remerge() replays
        self.merge_inputs: dict[str, MergeInput] = {}
        self.unmergeable: dict[str, str] = {}  # step -> why remerge cannot replay it
        # (time, step, limit, in_flight, limiter, event, key, wait_s): see frames.limits_frame
        self.limits: list[tuple[float, str, int, int, str, str, str, float]] = []
        # per Parallel run, its path and its own {branch: output} and {branch: error} dicts,
        # filled as branches end (one entry per step, nothing per branch; see result.outputs)
        self.branch_results: list[tuple[str, dict[str, Any], dict[str, BaseException]]] = []
        self.attempts: list[AttemptRecord] = []  # leaves with a retry policy, every attempt
        self.peak_leaves = 0
        self.leaf_busy_s = 0.0

    @property
    def steps(self) -> list[StepRecord]:
        """Every step record, in the order the steps started."""
        return self.step_log

    def event_log(self) -> list[tuple[float, str, str, str, str]]:
        """The event log as ``(time_s, kind, step, branch, detail)`` tuples, in order.

        A branch's first entry is its ``branch_queued``; the next, ``branch_started`` (if it
        ever started: under a run-wide cap, when its first leaf got a slot); the last,
        ``branch_finished`` with its status as the detail.
        """
        out: list[tuple[float, str, str, str, str]] = []
        seen: dict[int, int] = {}
        for entry in self.events:
            if type(entry) is tuple:
                out.append(entry)
                continue
            assert isinstance(entry, BranchRecord)
            n = seen[id(entry)] = seen.get(id(entry), 0) + 1
            path = entry.path
            step = path[: len(path) - len(entry.branch) - 1]  # the path is "<step>:<branch>"
            if n == 1:
                out.append((entry.queued, "branch_queued", step, path, ""))
            elif n == 2 and not math.isnan(entry.started):
                out.append((entry.started, "branch_started", step, path, ""))
            else:
                out.append((entry.finished, "branch_finished", step, path, entry.status))
        return out

    def add_diff(self, step: str, branch: BranchRecord, changes: list[Change]) -> None:
        """Record a branch's changes, with copies of any mutable values (see :func:`snapshot`)."""
        for c in changes:  # a plain loop: this runs for every branch that changed something
            if type(c.before) not in _ATOMIC or type(c.after) not in _ATOMIC:
                changes = [
                    replace(c, before=snapshot(c.before), after=snapshot(c.after)) for c in changes
                ]
                break
        self.diffs.append((step, branch, changes))

    def add_merge_input(
        self,
        step: str,
        base: BaseModel,
        order: list[str],
        spec: Any,
        include_keys: Sequence[str] | None,
    ) -> None:
        """Keep what a top-level Parallel's merge started from (a copy of its base context, the
        merge order and the step's merge), for :meth:`RunResult.remerge`.

        Only the fields the merge may write are copied (``include_keys``; the others are the
        final context's, as only a run's last step can be re-merged). A base that cannot be
        copied is not kept, and remerge says so.
        """
        from flowlab.core.context.isolation import isolate

        try:
            copied = isolate(base, include_keys)
        except Exception as err:  # a value that cannot be copied: no re-merge for this step
            self.merge_inputs.pop(step, None)
            self.unmergeable[step] = f"its base context could not be copied ({err})"
            return
        self.merge_inputs[step] = MergeInput(copied, list(order), spec, include_keys)

    def add_merge(self, step: str, rows: list[dict[str, Any]]) -> None:
        """Record a merge report, with copies of any mutable values (see :func:`snapshot`)."""
        copied = []
        for row in rows:
            if type(row["before"]) not in _ATOMIC or type(row["after"]) not in _ATOMIC:
                row = {**row, "before": snapshot(row["before"]), "after": snapshot(row["after"])}
            copied.append(row)
        self.merges.append((step, copied))


_ATOMIC: frozenset[type] = frozenset({int, float, str, bool, type(None), bytes, complex})


@dataclass(frozen=True)
class MergeInput:
    """What one Parallel's merge started from: a copy of the base context, the successful
    branches in merge order, the step's merge (a ``MergeSpec``) and its ``include_keys``."""

    base: BaseModel
    order: list[str]
    spec: Any
    include_keys: Sequence[str] | None


def snapshot(value: Any) -> Any:
    """``value`` as it is now: plain data copied, everything else as it is.

    Recorded values must not follow the objects they came from: a later step (or the user) may
    mutate the merged context in place, and the frames should still show what the merge wrote.
    Dicts, lists, tuples, sets and pydantic models are copied structurally, all the way down.
    Other objects are kept as they are, never deep-copied: a deep copy would run their own
    ``__reduce__``, and recording a run must not execute code that its values carry.
    """
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if isinstance(value, dict):
        if _ATOMIC.issuperset(map(type, value.values())):  # flat: one C-level copy
            return dict(value)
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        if _ATOMIC.issuperset(map(type, value)):
            return list(value)
        return [snapshot(v) for v in value]
    if kind is tuple:
        return tuple(snapshot(v) for v in value)
    if kind is set or kind is frozenset:
        return kind(snapshot(v) for v in value)
    if isinstance(value, BaseModel):
        new = copy.copy(value)  # pydantic's own shallow copy: no __reduce__
        object.__setattr__(new, "__dict__", {k: snapshot(v) for k, v in value.__dict__.items()})
        return new
    return value


def unwalkable(value: Any) -> str:
    """Why walking ``value`` recursively fails: ``"contains itself"``, ``"is nested N levels
    deep"``, or ``""`` when it does neither.

    :func:`snapshot`, the diff and ``==`` walk dicts, lists, tuples, sets and models recursively;
    a value that holds itself, or one nested about as deep as Python's recursion limit, makes
    them raise ``RecursionError``. This walk is iterative, so it can say which of the two it was.
    Only called after such an error: it costs one pass over the value.

    Examples
    --------
    >>> loop = [1]
    >>> loop.append(loop)
    >>> unwalkable(loop), unwalkable({"a": [1, {"b": 2}]})
    ('contains itself', '')
    """
    deepest = 0
    on_path: set[int] = set()  # ids of the containers between the root and the current one
    stack: list[tuple[Any, int, bool]] = [(value, 0, False)]
    budget = 1_000_000  # containers visited at most (values shared many times over are a DAG)
    while stack and budget:
        obj, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(obj))
            continue
        if isinstance(obj, dict):
            kids: Any = obj.values()
        elif isinstance(obj, list | tuple | set | frozenset):
            kids = obj
        elif isinstance(obj, BaseModel):
            kids = obj.__dict__.values()
        else:
            continue
        if id(obj) in on_path:
            return "contains itself"
        deepest = max(deepest, depth)
        budget -= 1
        on_path.add(id(obj))
        stack.append((obj, depth, True))
        stack.extend((kid, depth + 1, False) for kid in kids)
    return f"is nested {deepest + 1} levels deep" if deepest >= 100 else ""


@dataclass
class RunResult:
    """Everything one run produced. Frames are built on first access and cached.

    Attributes
    ----------
    output : Any
        The last step's output (a Parallel's output is ``{branch: output}`` in declared order).
    context : BaseModel
        The merged context (a copy; the caller's object is never mutated).
    status : str
        ``"ok" | "failed" | "cancelled" | "timeout" | "usage_limit_exceeded"``.
    error : FlowlabError or None
    makespan_s : float
        Seconds from run start to run end on the run's clock.
    outputs, errors : Mapping
        Per branch path: what each branch returned, and the exception of each failed or
        timed-out branch (see :mod:`flowlab.results.outcomes`).
    """

    output: Any
    context: BaseModel
    status: str
    error: FlowlabError | BaseException | None
    makespan_s: float
    clock: str
    recorder: Recorder
    cost: float = 0.0
    tokens: int = 0
    pipeline_name: str = "pipeline"
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- frames -------------------------------------------------------------------------------
    @cached_property
    def branches(self) -> pd.DataFrame:
        """One row per branch run."""
        from flowlab.results import frames

        return frames.branches_frame(self.recorder.branches)

    @cached_property
    def steps(self) -> pd.DataFrame:
        """One row per step run (inside branches too), with ``merge_s`` for Parallels."""
        from flowlab.results import frames

        return frames.steps_frame(self.recorder.steps)

    @cached_property
    def diffs(self) -> pd.DataFrame:
        """One row per changed path per branch (failed and cancelled branches included)."""
        from flowlab.results import frames

        return frames.diffs_frame(self.recorder.diffs)

    @cached_property
    def merges(self) -> pd.DataFrame:
        """One row per merged path per Parallel step: rule, writers, winner, before, after."""
        from flowlab.results import frames

        return frames.merges_frame(self.recorder.merges)

    @cached_property
    def events(self) -> pd.DataFrame:
        """The raw event log."""
        from flowlab.results import frames

        return frames.events_frame(self.recorder.event_log())

    @cached_property
    def limits(self) -> pd.DataFrame:
        """Limiter starts, moves and waits: time_s, step (path, or ``"run"``), limit,
        in_flight, limiter, event (start / move / wait), key, wait_s (see
        :func:`flowlab.results.frames.limits_frame`)."""
        from flowlab.results import frames

        return frames.limits_frame(self.recorder.limits)

    # ---- per-branch results -------------------------------------------------------------------
    @cached_property
    def outputs(self) -> Mapping[str, Any]:
        """``{branch path: output}`` of every branch that returned, in ``branches`` order (nested
        branches included; a unique bare branch name works as a key too).

        Examples
        --------
        >>> import flowlab as fl
        >>> from pydantic import BaseModel
        >>> class C(BaseModel):
        ...     n: int = 0
        >>> def ok(data):
        ...     return "fine"
        >>> def bad(data):
        ...     raise ValueError("no")
        >>> r = fl.run(fl.Parallel({"a": ok, "b": bad}, name="fan", on_failure="ignore"), C())
        >>> dict(r.outputs), r.errors["b"]
        ({'fan:a': 'fine'}, ValueError('no'))
        """
        from flowlab.results.outcomes import branch_outputs

        return branch_outputs(self.recorder)

    @cached_property
    def errors(self) -> Mapping[str, BaseException]:
        """``{branch path: exception}`` of every failed or timed-out branch — the exception
        objects themselves, ``on_failure="ignore"`` included (see :attr:`outputs`)."""
        from flowlab.results.outcomes import branch_errors

        return branch_errors(self.recorder)

    @cached_property
    def attempts(self) -> pd.DataFrame:
        """One row per attempt of every leaf step that has a retry policy (``fl.Retry``):
        step, path, branch, attempt, delay_s, started_s, finished_s, status, error, cost,
        tokens. Steps without a policy have no rows (their one attempt is their ``steps`` row).
        """
        from flowlab.results import frames

        return frames.attempts_frame(self.recorder.attempts)

    # ---- summaries ----------------------------------------------------------------------------
    def remerge(
        self,
        merge: Any = None,
        *,
        step: str | None = None,
        rules: dict[str, Any] | None = None,
        raise_on_error: bool = True,
    ) -> RunResult:
        """Merge this run's recorded branch diffs again under another strategy or field rules,
        without running any branch: a new :class:`RunResult` (frames included) in milliseconds.

        Parameters
        ----------
        merge : str or Rule, optional
            The strategy (``"accumulate"``, ...) or rule for the step; default: the step's own.
        step : str, optional
            The top-level Parallel step to re-merge; default: the run's only one.
        rules : dict, optional
            ``{field: rule}`` overriding the model's field rules for this merge.
        raise_on_error : bool, default True
            Raise a merge conflict (as :func:`flowlab.run` does); False returns a failed result.

        Raises
        ------
        ConfigError
            Where a re-merge cannot be exact: a merge function (it needs whole contexts), a step
            that later steps ran after, a Parallel inside a branch, or a step that never merged.

        Examples
        --------
        >>> from pydantic import BaseModel
        >>> import flowlab as fl
        >>> class C(BaseModel):
        ...     n: int = 0
        >>> def add(k):
        ...     def step(data, ctx):
        ...         ctx.n += k
        ...     return step
        >>> r = fl.run(fl.Pipeline(fl.Parallel({"a": add(1), "b": add(2)}, name="fan")), C(),
        ...            clock="virtual")
        >>> r.context.n, r.remerge(merge="accumulate").context.n
        (2, 3)
        """
        from flowlab.results.remerge import remerge

        return remerge(self, merge, step=step, rules=rules, raise_on_error=raise_on_error)

    def summary(self) -> dict[str, Any]:
        """Makespan, peak concurrency, utilization, branch counts by status, merge conflicts
        and dropped writes (``dropped_writes``: writes that lost under overwrite/keep-first), usage.

        ``peak_concurrency`` is the most leaf steps that ever ran at once; ``utilization`` is the
        busy leaf-step time divided by ``makespan_s × peak_concurrency``.
        """
        rec = self.recorder
        counts: dict[str, int] = {}
        for b in rec.branches:
            counts[b.status] = counts.get(b.status, 0) + 1
        peak = rec.peak_leaves
        merges = self.merges
        denom = self.makespan_s * peak
        return {
            "status": self.status,
            "makespan_s": round(self.makespan_s, 9),
            "peak_concurrency": peak,
            "utilization": round(rec.leaf_busy_s / denom, 6) if denom > 0 else 0.0,
            "branches": len(rec.branches),
            "conflicts": int(merges["conflict"].sum()) if len(merges) else 0,
            "dropped_writes": int(merges["dropped"].map(len).sum()) if len(merges) else 0,
            **{f"n_{k}": v for k, v in sorted(counts.items())},
            "cost": self.cost,
            "tokens": self.tokens,
            "clock": self.clock,
        }

    def to_chrome_trace(self, path: str | Path | None = None) -> dict[str, Any]:
        """Write (and return) a Chrome trace-event JSON: one track per branch, "X" events.

        Open it in https://ui.perfetto.dev or chrome://tracing. Times are microseconds.
        """
        from flowlab.results import trace

        return trace.chrome_trace(self.recorder, self.pipeline_name, path)

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML report (plots embedded); written to ``path`` when given."""
        from flowlab.ui import report

        html_text: str = report.result_html(self, path)
        return html_text

    def _repr_html_(self) -> str:
        s = self.summary()
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td>{html.escape(str(v))}</td></tr>"
            for k, v in s.items()
        )
        err = (
            f"<p><b>error:</b> {html.escape(type(self.error).__name__)}: {html.escape(str(self.error))}</p>"
            if self.error is not None
            else ""
        )
        img = ""
        try:
            from flowlab.ui import report

            img = report.timeline_img_tag(self)
        except Exception:
            img = ""
        return (
            f"<div><b>RunResult</b> {html.escape(self.pipeline_name)}"
            f"<table>{rows}</table>{err}{img}</div>"
        )

    def __repr__(self) -> str:
        # O(1), not summary(): asyncio reprs the run's task, result included, whenever
        # asyncio.run() ends (3.11's signal.getsignal formats its SIGINT handler), so every
        # fl.run pays for this repr twice.
        rec = self.recorder
        return (
            f"<RunResult status={self.status!r} makespan_s={round(self.makespan_s, 9):g} "
            f"branches={len(rec.branches)} peak_concurrency={rec.peak_leaves} "
            f"clock={self.clock!r}>"
        )
