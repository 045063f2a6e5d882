"""Per-task state at an instant: hold and wait intervals from a trace, one line per task.

Design
------
A trace is a list of :class:`~flowlab.study.deadlock.trace.TraceEvent`. :func:`intervals` pairs its
``wait`` / ``acquire`` / ``release`` events into hold and wait intervals (those still open at
``end`` are marked open); :class:`~flowlab.study.deadlock.report.DeadlockReport` turns them into its
timeline frame and the scheduler game into its lock-state picture. :func:`task_lines` writes the
first part of :meth:`~flowlab.study.deadlock.report.DeadlockReport.explain`: for every task of the
group, in the order it joined, what it holds (and where it acquired it), what it waits for (and
the line where it waits) and whether it is stuck, finished or still running.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowlab.study.deadlock.trace import TraceEvent

if TYPE_CHECKING:
    from flowlab.study.deadlock.report import DeadlockReport

__all__ = ["intervals", "task_lines"]


def intervals(trace: list[TraceEvent], end: float) -> list[list[Any]]:
    """Hold and wait intervals of ``trace``, open ones ending at ``end``.

    Returns
    -------
    list of list
        Rows ``[task, resource, state, start_s, end_s, duration_s, where, open]`` where
        ``state`` is ``"hold"`` or ``"wait"`` and ``where`` is the acquire or wait line.
    """
    rows: list[list[Any]] = []
    waits: dict[tuple[str, str], tuple[float, str]] = {}
    holds: dict[tuple[str, str], list[tuple[float, str, int]]] = {}  # (start, where, seq)

    def row(
        key: tuple[str, str], state: str, start: float, stop: float, where: str, still: bool
    ) -> None:
        rows.append([key[0], key[1], state, start, stop, stop - start, where, still])

    for e in trace:
        key = (e.task, e.resource)
        if e.op == "wait":
            waits[key] = (e.time, e.where)
        elif e.op in ("acquire", "wake", "cancel"):
            if key in waits:
                start, where = waits.pop(key)
                row(key, "wait", start, e.time, where, False)
            if e.op == "acquire":
                holds.setdefault(key, []).append((e.time, e.where, e.seq))
        elif e.op == "release" and holds.get(key):
            start, where, _ = holds[key].pop()
            row(key, "hold", start, e.time, where, False)
        elif e.op == "release" and (other := _oldest(holds, e.resource)) is not None:
            start, where, _ = holds[other].pop(0)  # released by a task that did not hold it
            row(other, "hold", start, e.time, where, False)
    for key, (start, where) in waits.items():
        row(key, "wait", start, end, where, True)
    for key, stack in holds.items():
        for start, where, _ in stack:
            row(key, "hold", start, end, where, True)
    return rows


def _oldest(
    holds: dict[tuple[str, str], list[tuple[float, str, int]]], resource: str
) -> tuple[str, str] | None:
    """The (task, resource) whose open hold on ``resource`` began first, or None.

    A lock or semaphore released by a task that does not hold it (asyncio allows it; a
    lightswitch does it) ends the oldest hold, as the semaphore itself counts it.
    """
    best: tuple[str, str] | None = None
    for key, stack in holds.items():
        if key[1] == resource and stack and (best is None or stack[0][2] < holds[best][0][2]):
            best = key
    return best


def _names(names: list[str]) -> str:
    if len(names) == 1:
        return f"task {names[0]}"
    return "tasks " + ", ".join(names[:-1]) + " and " + names[-1]


def _at(where: str) -> str:
    return f" at {where}" if where else ""


def task_lines(report: DeadlockReport) -> list[str]:
    """One line per task of a deadlocked ``report``: holds, waits for (where), and its state."""
    end = report.detected_at if report.detected_at is not None else report.finished_at
    rows = [r for r in intervals(report.trace, end) if r[7]]
    waits = {w.task: w for w in report.waits}
    lines: list[str] = []
    for task in report.tasks:
        held = [
            f"{r[1]} (acquired at {r[6]})" if r[6] else r[1]
            for r in rows
            if r[0] == task and r[2] == "hold"
        ]
        parts = [f"holds {', '.join(held)}" if held else "holds nothing"]
        stuck = waits.get(task)
        if stuck is not None and stuck.kind == "Task":
            parts.append(f"awaits {_names(stuck.wakers)}{_at(stuck.where)}")
        elif stuck is not None:
            parts.append(f"waits for {stuck.resource}{_at(stuck.where)}")
        else:
            parts += [
                f"waits for {r[1]} at {r[6]}" for r in rows if r[0] == task and r[2] == "wait"
            ]
        if task in report.stuck:
            if stuck is None and (report.kind != "untraced" or task in report.untraced):
                parts.append("blocked on something flowlab does not trace")
            parts.append("stuck")
        elif task in report.done_at_detection:
            parts.append("finished before the deadlock")
        else:
            parts.append("not stuck (still running at detection)")
        lines.append(f"task {task}: " + "; ".join(parts))
    return lines
