"""`DeadlockReport`: what hung, why, and how to read it -- text, frames, HTML and plots.

Design
------
A report is a plain snapshot taken at the instant of detection (before anything is cancelled):
the stuck waits from :mod:`flowlab.study.deadlock.graph`, the wait-for edges, and the trace events of the
group. Everything a person reads is derived from those lists on demand:

* :meth:`DeadlockReport.explain` -- one line per task (what it holds, what it waits for, where;
  written by :mod:`flowlab.study.deadlock.states`), then a PostgreSQL-style paragraph: each task, what
  it waits for, who holds it and the line where they acquired it, then the cycle and (for
  catalog scenarios) what the fix changes;
* :attr:`~DeadlockReport.graph`, :attr:`~DeadlockReport.timeline`, :attr:`~DeadlockReport.events`
  -- tidy pandas frames, pandas imported only when asked for;
* :meth:`~DeadlockReport.plot` (wait-for graph, cycle in red) and
  :meth:`~DeadlockReport.plot_timeline` (hold/wait Gantt) -- matplotlib, drawn in
  :mod:`flowlab.ui.plot._deadlock`;
* ``_repr_html_`` for notebooks, every name passed through :func:`html.escape`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowlab.study.deadlock.graph import Analysis, Edge, StuckWait
from flowlab.study.deadlock.states import intervals, task_lines
from flowlab.study.deadlock.trace import Registry, TraceEvent

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["DeadlockReport", "report_from"]

_VERBS = {
    "set by": ("sets", "set"),
    "notified by": ("notifies", "notify"),
    "fed by": ("puts to", "put to"),
    "drained by": ("takes from", "take from"),
    "released by": ("releases", "release"),
    "woken by": ("wakes", "wake"),
    "signalled by": ("signals", "signal"),
    "completed by": ("arrives at", "arrive at"),
}


_UNDECLARED = ("Task", "Barrier")  # kinds whose wakers cannot be declared: no HINT to do so


def _names(names: list[str]) -> str:
    quoted = [f"task {n}" if len(names) == 1 else n for n in names]
    if len(quoted) <= 1:
        return "".join(quoted)
    return "tasks " + ", ".join(quoted[:-1]) + " and " + quoted[-1]


@dataclass
class DeadlockReport:
    """What a watched group did: whether it deadlocked, the cycle, and how to read it.

    Attributes
    ----------
    deadlocked : bool
        True when some tasks could never run again.
    cycle : list of str
        Alternating task -> resource -> holder ... back to the first task (``kind="cycle"``), or
        a chain ending at a resource nobody alive can release (``kind="no_waker"``).
    kind : str
        ``"cycle"``, ``"no_waker"`` or ``"none"``.
    stuck : list of str
        Every task that could never run again (the cycle and those queued behind it).
    waits : list of StuckWait
        For each stuck task: resource, operation, source line, since when, and its wakers.
    tasks : list of str
        Every task of the group, in the order they joined it.
    detected_at : float or None
        Loop time of detection (exact on virtual time).
    clock : str
        ``"virtual"`` or ``"real"``.
    healthy : list of str
        Tasks of the group that were not stuck at detection (they may have run on).
    near_misses : list of str
        Information, not a deadlock: moments when tasks waited in a way that would have
        deadlocked without the deadline (``asyncio.timeout``) that ended their wait.
    warnings : list of str
        Declarations contradicted by what the tasks did (e.g. an undeclared setter).
    done_at_detection : list of str
        Tasks of the group that had already finished when the deadlock was detected.
    untraced : list of str
        For ``kind="untraced"`` (the explorer's loop had nothing left to run, but no proof):
        the tasks blocked on something flowlab does not trace (a plain asyncio primitive or a
        bare future); the others wait on traced primitives or tasks.
    """

    deadlocked: bool
    cycle: list[str]
    kind: str
    stuck: list[str]
    waits: list[StuckWait]
    edges: list[Edge]
    trace: list[TraceEvent]
    tasks: list[str]
    started_at: float
    detected_at: float | None
    finished_at: float
    clock: str
    cancelled: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)
    scenario: str | None = None
    fixed: bool | str | None = None
    problem: str = ""
    fix: str = ""
    note: str = ""
    healthy: list[str] = field(default_factory=list)
    near_misses: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    done_at_detection: list[str] = field(default_factory=list)
    untraced: list[str] = field(default_factory=list)

    # ---------------------------------------------------------------- text
    def explain(self) -> str:
        """One line per task, a blank line, then a paragraph: the cycle, holders, source lines.

        Each task's line says what it holds (and where it acquired it), what it waits for or
        awaits (and the line where it waits) and whether it is stuck, finished or still running.
        A report without a deadlock is the single line "No deadlock: ...".
        """
        if not self.deadlocked:
            text = (
                f"No deadlock: all {len(self.tasks)} tasks finished by "
                f"t={self.finished_at:.3f} s ({self.clock} clock)."
            )
            if self.scenario is not None and self.fixed:
                text += f" The fix: {self.fix}"
            return text + (f" Note: {self.note}" if self.note else "") + self._info()
        at = self._t(self.detected_at if self.detected_at is not None else self.finished_at)
        parts = [self._sentence(w) for w in self.waits]
        text = f"Deadlock detected at t={at:.3f} s ({self.clock} clock): " + "; ".join(parts) + "."
        if self.kind == "untraced":
            who = _names(self.untraced) or "some task"
            verb = "await" if len(self.untraced) > 1 else "awaits"
            text = (
                f"Deadlock at t={at:.3f} s ({self.clock} clock): every task is blocked "
                f"({', '.join(self.stuck)}), and {who} {verb} something "
                "flowlab does not trace (plain asyncio primitives or futures), so who could "
                "wake it is unknown; use fl.deadlock's Lock, Semaphore, Event, Condition and "
                "Queue to see the cycle."
            )
        elif self.kind == "cycle":
            text += " Cycle: " + " → ".join(self.cycle) + "."
        else:
            text += (
                " Nothing alive can wake "
                + " → ".join(self.cycle)
                + ": every task that could is finished or blocked."
            )
        if self.cancelled:
            text += (
                f" flowlab cancelled {len(self.cancelled)} task(s): {', '.join(self.cancelled)}."
            )
        if self.leaked:
            text += f" Still running after cancellation: {', '.join(self.leaked)}."
        if self.problem:
            text += f" What went wrong: {self.problem}"
        if self.fix:
            text += f" What fixes it (run with fixed=True): {self.fix}"
        if self.note:
            text += f" Note: {self.note}"
        return "\n".join([*task_lines(self), "", text + self._info()])

    def _info(self) -> str:
        text = ""
        if self.deadlocked and self.healthy:
            text += f" Not stuck: {', '.join(self.healthy)}."
        unknown = [w.resource for w in self.waits if not w.known and w.kind not in _UNDECLARED]
        if self.deadlocked and unknown:
            text += (
                f" HINT: any task could have woken {', '.join(dict.fromkeys(unknown))}, so this "
                "was called only once every other task of the group had finished or blocked; "
                "declare who wakes it (setters=, notifiers=, producers=, releasers=) to catch "
                "it while the others still run."
            )
        for near in self.near_misses:
            text += f" Information: {near}."
        for warning in self.warnings:
            text += f" Warning: {warning}."
        return text

    def _t(self, when: float) -> float:
        """Times in text: loop time on virtual clocks, seconds since the group began on real."""
        return when - self.started_at if self.clock == "real" else when

    def _sentence(self, w: StuckWait) -> str:
        where = f" at {w.where}" if w.where else ""
        head = f"task {w.task} waits for {w.resource}"
        if w.kind == "Task":
            head = f"task {w.task} awaits {_names(w.wakers)}"
            return head + f" (waiting{where} since t={self._t(w.since):.3f} s)"
        if w.relation == "held by" and w.holders:
            holding = list(zip(w.wakers, w.waker_where, w.waker_states, strict=True))[: w.holders]
            held = [f"{n} (acquired at {loc})" if loc else n for n, loc, _ in holding]
            body = f" held by {_names(held)}"
            gone = [n for n, _, st in holding if st == "finished"]
            if gone:
                body += f" ({', '.join(gone)} finished without releasing it)"
            body += self._released(w)
        elif w.wakers and w.relation != "held by":
            singular, plural = _VERBS.get(w.relation, ("wakes", "wake"))
            verb = singular if len(w.wakers) == 1 else plural
            body = f", which only {_names(w.wakers)} {verb}"
            finished = [n for n, s in zip(w.wakers, w.waker_states, strict=True) if s == "finished"]
            if finished:
                body += f" ({', '.join(finished)} already finished)"
        else:
            verb = "release" if w.relation == "held by" else _VERBS.get(w.relation, ("", "wake"))[1]
            blocked = [n for n in self.stuck if n != w.task]
            body = (
                f", which no task of the group that can still run is left to {verb} "
                f"({', '.join(blocked)} blocked, the rest finished)"
                if blocked
                else f", which no live task of the group is left to {verb}"
            )
            if w.learned:
                body += f" (in earlier runs: {', '.join(w.learned)})"
            body += self._released(w)
        return (
            head + body + self._history(w) + f" (waiting{where} since t={self._t(w.since):.3f} s)"
        )

    @staticmethod
    def _released(w: StuckWait) -> str:
        """Tasks seen releasing a lock or semaphore that they do not hold (not holders)."""
        others = w.wakers[w.holders :] if w.relation == "held by" else []
        return f"; released before by {_names(others)}" if others else ""

    def _history(self, w: StuckWait) -> str:
        if w.kind not in ("Event", "Condition"):
            return ""
        past = [
            e for e in self.trace if e.resource == w.resource and e.op in ("set", "clear", "notify")
        ]
        if not past:
            return ""
        past_tense = {"set": "set", "clear": "cleared", "notify": "notified"}
        done = [f"{past_tense[e.op]} by {e.task} at t={self._t(e.time):.3f} s" for e in past[-3:]]
        return "; earlier it was " + ", ".join(done) + ", before this wait began"

    def __repr__(self) -> str:
        if not self.deadlocked:
            return f"<DeadlockReport deadlocked=False tasks={len(self.tasks)}>"
        return f"<DeadlockReport deadlocked=True kind={self.kind} cycle={' → '.join(self.cycle)}>"

    # -------------------------------------------------------------- frames
    @property
    def graph(self) -> pd.DataFrame:
        """Wait-for edges: source, target, kind (``waits for`` / ``held by`` ...), where, in_cycle."""
        import pandas as pd

        rows = [
            {
                "source": e.source,
                "target": e.target,
                "kind": e.kind,
                "where": e.where,
                "in_cycle": e.in_cycle,
            }
            for e in self.edges
        ]
        frame = pd.DataFrame(rows, columns=["source", "target", "kind", "where", "in_cycle"])
        return frame.astype({"in_cycle": bool})

    @property
    def events(self) -> pd.DataFrame:
        """Every trace event of the group: seq, time, task, op, resource, kind, where."""
        import pandas as pd

        cols = ["seq", "time", "task", "op", "resource", "kind", "where"]
        frame = pd.DataFrame([[getattr(e, c) for c in cols] for e in self.trace], columns=cols)
        return frame.astype({"time": float, "seq": int})

    @property
    def timeline(self) -> pd.DataFrame:
        """Holds and waits per task over time: task, resource, state, start_s, end_s, duration_s.

        Intervals still open at detection end there and have ``open=True``.
        """
        import pandas as pd

        cols = ["task", "resource", "state", "start_s", "end_s", "duration_s", "where", "open"]
        frame = pd.DataFrame(intervals(self.trace, self._end()), columns=cols)
        frame = frame.astype({"start_s": float, "end_s": float, "duration_s": float, "open": bool})
        frame["state"] = pd.Categorical(frame["state"], categories=["hold", "wait"])
        return frame.sort_values(["start_s", "task"], kind="stable").reset_index(drop=True)

    def _end(self) -> float:
        return self.detected_at if self.detected_at is not None else self.finished_at

    # ---------------------------------------------------------------- plots
    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Draw the wait-for graph (tasks round, resources square, cycle in red); return the Axes."""
        from flowlab.ui.plot._deadlock import plot_graph

        return plot_graph(self, ax=ax, **kwargs)

    def plot_timeline(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Gantt of holds (solid) and waits (hatched) per task; detection as a red line."""
        from flowlab.ui.plot._deadlock import plot_timeline

        return plot_timeline(self, ax=ax, **kwargs)

    # ----------------------------------------------------------------- html
    def _repr_html_(self) -> str:
        esc = html.escape
        title = "Deadlock" if self.deadlocked else "No deadlock"
        if self.scenario:
            title += f" — scenario {self.scenario} ({'fixed' if self.fixed else 'broken'})"
        rows = "".join(
            f"<tr><td>{esc(e.source)}</td><td>{esc(e.kind)}</td><td>{esc(e.target)}</td>"
            f"<td>{esc(e.where)}</td><td>{'●' if e.in_cycle else ''}</td></tr>"
            for e in self.edges
        )
        table = (
            (
                "<table><tr><th>from</th><th>edge</th><th>to</th><th>where</th>"
                f"<th>cycle</th></tr>{rows}</table>"
            )
            if rows
            else ""
        )
        return (
            f"<div class='flowlab-deadlock'><b>{esc(title)}</b>"
            f"<p>{esc(self.explain())}</p>{table}</div>"
        )


def report_from(
    analysis: Analysis | None, tasks: list[str], reg: Registry, first_event: int, *, started: float
) -> DeadlockReport:
    """Snapshot a group's state into a :class:`DeadlockReport` (``analysis=None``: no deadlock)."""
    from flowlab.engine.clock import VirtualTimeLoop

    now = reg.loop.time()
    clock = "virtual" if isinstance(reg.loop, VirtualTimeLoop) else "real"
    trace = list(reg.events[first_event:])
    if analysis is None or not analysis.deadlocked:
        return DeadlockReport(
            False,
            [],
            "none",
            [],
            [],
            [],
            trace,
            tasks,
            started,
            None,
            now,
            clock,
            warnings=list(analysis.warnings) if analysis is not None else [],
        )
    report = DeadlockReport(
        True,
        analysis.cycle,
        analysis.kind,
        analysis.stuck,
        analysis.waits,
        analysis.edges,
        trace,
        tasks,
        started,
        now,
        now,
        clock,
        warnings=list(analysis.warnings),
    )
    report.healthy = [t for t in tasks if t not in analysis.stuck]
    return report
