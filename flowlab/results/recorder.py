"""The instrument interface and the recorder, the built-in instrument.

The engine reports what happens to *instruments* (objects with no-op hook methods, after trio's
``Instrument``; each hears only the hooks it overrides, see :mod:`flowlab.engine.instruments`).
The :class:`Recorder` is the built-in one: it appends compact tuples to an event log and fills one
small record per branch and per step. Nothing is formatted while the run goes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowlab.core.merge.report import MergeReport
from flowlab.results.records import (
    _ATOMIC,
    AttemptRecord,
    BranchRecord,
    MergeInput,
    StepRecord,
    snapshot,
)

if TYPE_CHECKING:
    from flowlab.core.context.isolation import Change

__all__ = ["Instrument", "Recorder"]


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

    def merge_applied(self, step: str, rows: Sequence[dict[str, Any]], seconds: float) -> None:
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
        # (Parallel name, report rows, its parent branch's path: "" at the top level)
        self.merges: list[tuple[str, Sequence[dict[str, Any]], str]] = []
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
                memo: dict[int, Any] = {}  # one for the branch: what two changes share, stays so
                changes = [
                    replace(c, before=snapshot(c.before, memo), after=snapshot(c.after, memo))
                    for c in changes
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
        copied: BaseModel | None = None,
    ) -> None:
        """Keep what a top-level Parallel's merge started from (a copy of its base context, the
        merge order and the step's merge), for :meth:`RunResult.remerge`.

        Only the fields the merge may write are copied (``include_keys``; the others are the
        final context's, as only a run's last step can be re-merged). A base that cannot be
        copied is not kept, and remerge says so. ``copied``: such a copy, made already (a
        copy-on-write step keeps one to check its shared context) and nobody else's.
        """
        from flowlab.core.context.isolation import isolate

        try:
            copied = isolate(base, include_keys) if copied is None else copied
        except Exception as err:  # a value that cannot be copied: no re-merge for this step
            self.merge_inputs.pop(step, None)
            self.unmergeable[step] = f"its base context could not be copied ({err})"
            return
        self.merge_inputs[step] = MergeInput(copied, list(order), spec, include_keys)

    def add_merge(self, step: str, rows: Sequence[dict[str, Any]], parent: str = "") -> None:
        """Record a merge report of Parallel ``step`` run in branch ``parent`` (``""``: at the
        top level), with copies of any mutable values (see :func:`snapshot`).

        A :class:`~flowlab.core.merge.report.MergeReport` stays compact: its values are copied
        now, its rows are made dicts when ``result.merges`` is read."""
        if isinstance(rows, MergeReport):
            self.merges.append((step, rows.snapshot(), parent))
            return
        copied = []
        memo: dict[int, Any] = {}  # one for the report: a value's after holds its before's items
        for row in rows:
            if type(row["before"]) not in _ATOMIC or type(row["after"]) not in _ATOMIC:
                before, after = snapshot(row["before"], memo), snapshot(row["after"], memo)
                row = {**row, "before": before, "after": after}
            copied.append(row)
        self.merges.append((step, copied, parent))
