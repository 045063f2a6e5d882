"""A run as a Chrome trace-event file (open it in https://ui.perfetto.dev or chrome://tracing).

One track (thread) per branch: its time in the queue, then its run, color-coded by status (a
branch cancelled before it started has only its queue time, with its status and reason), with
the branch's own steps nested in its run (category ``step``); track 0 holds the top-level steps, and instant events for every limit move and the budget breach.
Times are microseconds from the run's start.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowlab.results.recorder import Recorder

__all__ = ["chrome_trace"]


def chrome_trace(recorder: Recorder, name: str, path: str | Path | None = None) -> dict[str, Any]:
    """The trace-event JSON of a recorded run called ``name``; written to ``path`` when given.

    Examples
    --------
    >>> import asyncio, flowlab as fl
    >>> from pydantic import BaseModel
    >>> class Ctx(BaseModel):
    ...     n: int = 0
    >>> async def work(data, ctx):
    ...     await asyncio.sleep(1)
    >>> pipe = fl.Pipeline(fl.Parallel({"a": work, "b": work}, name="fan"), name="demo")
    >>> result = fl.run(pipe, Ctx(), clock="virtual")
    >>> trace = chrome_trace(result.recorder, "demo")
    >>> [(e["name"], e["tid"], e["dur"]) for e in trace["traceEvents"] if e["ph"] == "X"]
    [('a', 1, 1000000.0), ('b', 2, 1000000.0), ('fan', 0, 1000000.0), ('work', 1, 1000000.0), ('work', 2, 1000000.0)]
    """
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": name}}
    ]
    for tid, b in enumerate(recorder.branches, start=1):
        events.append(
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": b.path}}
        )
        if not math.isnan(b.started) and b.started > b.queued:
            events.append(_x(f"{b.branch} (queued)", "queue", b.queued, b.started, tid, {}))
        if not math.isnan(b.started) and not math.isnan(b.finished):
            args = {"status": b.status, "step": b.step, "error": b.error, "rank": b.rank}
            events.append(_x(b.branch, b.status, b.started, b.finished, tid, args))
        elif math.isnan(b.started) and not math.isnan(b.finished):  # never started
            args = {"status": b.status, "step": b.step, "reason": b.reason}
            events.append(_x(f"{b.branch} (queued)", "queue", b.queued, b.finished, tid, args))
    track = {b.path: tid for tid, b in enumerate(recorder.branches, start=1)}
    for s in recorder.steps:
        if math.isnan(s.finished) or math.isnan(s.started):
            continue
        if s.parent == "":
            events.append(_x(s.step, s.kind, s.started, s.finished, 0, {"status": s.status}))
        elif s.parent in track:  # a step of a branch: nested in its run, on its track
            args = {"status": s.status, "kind": s.kind, "error": s.error}
            events.append(_x(s.step, "step", s.started, s.finished, track[s.parent], args))
    for t, step, limit, in_flight, kind, event, key, wait_s in recorder.limits:
        if event == "move":
            args = {"limit": limit, "in_flight": in_flight}
            events.append(_instant(f"limit {step} -> {limit}", "limit", t, args))
        elif event == "wait":  # starts held back by a rate, a full cap or a full key
            held: dict[str, Any] = {"limiter": kind, "key": key, "wait_s": wait_s}
            events.append(
                _instant(f"{kind} {step} holds starts back {wait_s:g}s", "limit", t, held)
            )
    for entry in recorder.events:
        if type(entry) is tuple and entry[1] == "usage_breach":
            t, _, step, branch, detail = entry
            args = {"branch": branch, "step": step, "detail": detail}
            events.append(_instant("usage limit exceeded", "usage", t, args))
    trace = {"traceEvents": events, "displayTimeUnit": "ms"}
    if path is not None:
        Path(path).write_text(json.dumps(trace, default=str), encoding="utf-8")
    return trace


def _instant(name: str, cat: str, at: float, args: dict[str, Any]) -> dict[str, Any]:
    """An instant event on track 0, drawn across the whole process (``"s": "p"``)."""
    ts = round(at * 1e6, 3)
    return {
        "name": name,
        "cat": cat,
        "ph": "i",
        "s": "p",
        "ts": ts,
        "pid": 1,
        "tid": 0,
        "args": args,
    }


def _x(
    name: str, cat: str, start: float, end: float, tid: int, args: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "cat": cat,
        "ph": "X",
        "ts": round(start * 1e6, 3),
        "dur": round(max(0.0, end - start) * 1e6, 3),
        "pid": 1,
        "tid": tid,
        "args": args,
    }
