"""Tidy pandas frames built from a :class:`~flowlab.results.recorder.Recorder` (imported lazily).

One row per thing, explicit dtypes: seconds as float64, status as categorical, counts as Int64.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from flowlab.core.usage import tidy_cost
from flowlab.results.records import STATUSES, AttemptRecord, BranchRecord, StepRecord

if TYPE_CHECKING:
    from flowlab.core.context.isolation import Change

__all__ = [
    "attempts_frame",
    "branches_frame",
    "diffs_frame",
    "events_frame",
    "limits_frame",
    "merges_frame",
    "steps_frame",
]

BRANCH_COLUMNS = [
    "step", "branch", "path", "parent", "priority", "queued_s", "started_s", "finished_s", "wait_s",
    "duration_s", "status", "error", "completion_rank", "cost", "tokens", "worker", "reason",
]  # fmt: skip


def _status(values: Sequence[str]) -> Any:
    return pd.Categorical(list(values), categories=list(STATUSES))


def branches_frame(records: Sequence[BranchRecord]) -> pd.DataFrame:
    """One row per branch run."""
    queued = [r.queued for r in records]
    started = [r.started for r in records]
    finished = [r.finished for r in records]
    frame = pd.DataFrame(
        {
            "step": pd.Series([r.step for r in records], dtype="str"),
            "branch": pd.Series([r.branch for r in records], dtype="str"),
            "path": pd.Series([r.path for r in records], dtype="str"),
            "parent": pd.Series([r.parent for r in records], dtype="str"),
            "priority": pd.Series([r.priority for r in records], dtype="float64"),
            "queued_s": pd.Series(queued, dtype="float64"),
            "started_s": pd.Series(started, dtype="float64"),
            "finished_s": pd.Series(finished, dtype="float64"),
            "wait_s": pd.Series(
                [
                    s - q if not math.isnan(s) else f - q
                    for q, s, f in zip(queued, started, finished, strict=True)
                ],
                dtype="float64",
            ),
            "duration_s": pd.Series(
                [f - s for s, f in zip(started, finished, strict=True)], dtype="float64"
            ),
            "status": _status([r.status for r in records]),
            "error": pd.Series([r.error for r in records], dtype="str"),
            "completion_rank": pd.Series([r.rank for r in records], dtype="Int64"),
            "cost": pd.Series([tidy_cost(r.cost) for r in records], dtype="float64"),
            "tokens": pd.Series([r.tokens for r in records], dtype="int64"),
            "worker": pd.Series([r.worker for r in records], dtype="str"),
            "reason": pd.Series([r.reason for r in records], dtype="str"),
        },
        columns=BRANCH_COLUMNS,
    )
    return frame


def steps_frame(records: Sequence[StepRecord]) -> pd.DataFrame:
    """One row per step run."""
    return pd.DataFrame(
        {
            "step": pd.Series([r.step for r in records], dtype="str"),
            "path": pd.Series([r.path for r in records], dtype="str"),
            "kind": pd.Categorical(
                [r.kind for r in records], categories=["step", "parallel", "pipeline"]
            ),
            "parent": pd.Series([r.parent for r in records], dtype="str"),
            "queued_s": pd.Series(
                [r.started if math.isnan(r.queued) else r.queued for r in records], dtype="float64"
            ),
            "started_s": pd.Series([r.started for r in records], dtype="float64"),
            "finished_s": pd.Series([r.finished for r in records], dtype="float64"),
            "duration_s": pd.Series([r.finished - r.started for r in records], dtype="float64"),
            "status": _status([r.status for r in records]),
            "error": pd.Series([r.error for r in records], dtype="str"),
            "merge_s": pd.Series([r.merge_s for r in records], dtype="float64"),
            "peak_concurrency": pd.Series([r.peak for r in records], dtype="Int64"),
            "limit": pd.Series([r.limit for r in records], dtype="str"),
            "isolation": pd.Series([r.isolation for r in records], dtype="str"),
        }
    )


def diffs_frame(diffs: Sequence[tuple[str, BranchRecord, list[Change]]]) -> pd.DataFrame:
    """One row per changed path per branch; ``parent`` is the path of the branch its Parallel
    ran in (``""`` at the top level; ``(parent, step, branch)`` names one branch run)."""
    cols = ["step", "branch", "branch_status", "path", "op", "before", "after", "parent"]
    rows = list(iter_changes(diffs))
    frame = pd.DataFrame(rows, columns=cols, dtype=object)
    for c in ("step", "branch", "path", "parent"):
        frame[c] = frame[c].astype("str")
    frame["branch_status"] = _status(frame["branch_status"].tolist())
    frame["op"] = pd.Categorical(frame["op"].tolist(), categories=["add", "change", "remove"])
    return frame


def merges_frame(merges: Sequence[tuple[str, Sequence[dict[str, Any]], str]]) -> pd.DataFrame:
    """One row per merged path per Parallel step.

    ``dropped`` lists the writers whose write lost (a different value than the one kept, under
    overwrite / keep_first / last-writer-wins leaves): nothing a branch wrote vanishes unseen.
    ``parent`` is the path of the branch the Parallel ran in (``""`` at the top level): a
    Parallel nested in a Map runs once per item, and ``(parent, step)`` tells those runs apart.
    """
    cols = ["step", "path", "rule", "writers", "winner", "before", "after", "conflict", "dropped"]
    cols.append("parent")
    rows = [
        (
            step,
            r.get("path", ""),
            r.get("rule", ""),
            tuple(r.get("writers", ())),
            r.get("winner"),
            r.get("before"),
            r.get("after"),
            bool(r.get("conflict", False)),
            tuple(r.get("dropped", ())),
            parent,
        )
        for step, rs, parent in merges
        for r in rs
    ]
    frame = pd.DataFrame(rows, columns=cols, dtype=object)
    for c in ("step", "path", "rule", "parent"):
        frame[c] = frame[c].astype("str")
    frame["conflict"] = frame["conflict"].astype("bool")
    return frame


def events_frame(events: Sequence[tuple[float, str, str, str, str]]) -> pd.DataFrame:
    """The raw event log: time_s, kind, step, branch, detail."""
    frame = pd.DataFrame(list(events), columns=["time_s", "kind", "step", "branch", "detail"])
    frame["time_s"] = frame["time_s"].astype("float64")
    for c in ("kind", "step", "branch", "detail"):
        frame[c] = frame[c].astype("str")
    return frame


LIMIT_COLUMNS = ["time_s", "step", "limit", "in_flight", "limiter", "event", "key", "wait_s"]


def limits_frame(limits: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    """How limiters started, moved and held starts back, one row each, in time order.

    Columns: ``time_s`` (seconds from the run start, named like every other frame's times);
    ``step`` (the Parallel's path, or ``"run"``); ``limiter`` (``fixed``, ``adaptive``,
    ``aimd``, ``keyed``, ``rate``); ``event``: ``start`` (a limiter's state was made; for a
    Keyed cap, a key was first seen), ``move`` (an adaptive limit changed) or ``wait`` (starts
    were held back from ``time_s`` for ``wait_s`` seconds: by a rate, one row per held start; by
    a full key, one row per held start of that key; by a full cap, fixed or adaptive, one row
    per spell during which branches, or the run's leaves, queued behind it); ``limit``
    (the cap; for a rate, its burst, or its tokens per minute for a token-only rate); ``in_flight``
    (running then: the step's branches, the key's, or the run's leaf steps for ``"run"``);
    ``key`` (a Keyed cap's key, as text; else ``""``); ``wait_s``; and ``time`` (fifth), the same seconds
    as ``time_s`` under the name DESIGN.md's contract gives them.
    """
    rows = sorted(limits, key=lambda r: r[0])  # waits of a key are logged when they end
    frame = pd.DataFrame([r[:8] for r in rows], columns=LIMIT_COLUMNS)
    frame["time_s"] = frame["time_s"].astype("float64")
    for c in ("step", "limiter", "event", "key"):
        frame[c] = frame[c].astype("str")
    frame["limit"] = frame["limit"].astype("int64")
    frame["in_flight"] = frame["in_flight"].astype("int64")
    frame["wait_s"] = frame["wait_s"].astype("float64")
    frame.insert(4, "time", frame["time_s"])  # (the old five columns first, as they were)
    return frame


def iter_changes(
    diffs: Iterable[tuple[str, BranchRecord, list[Change]]],
) -> Iterable[tuple[Any, ...]]:
    """Flatten recorded diffs into (step, branch, branch_status, path, op, before, after,
    parent) rows."""
    for step, rec, changes in diffs:
        for c in changes:
            yield (step, rec.branch, rec.status, c.dotted, c.op, c.before, c.after, rec.parent)


ATTEMPT_COLUMNS = [
    "step", "path", "branch", "attempt", "delay_s", "started_s", "finished_s", "duration_s",
    "status", "error", "cost", "tokens",
]  # fmt: skip


def attempts_frame(records: Sequence[AttemptRecord]) -> pd.DataFrame:
    """One row per attempt of a leaf step with a retry policy (see :class:`AttemptRecord`)."""
    started = [r.started for r in records]
    finished = [r.finished for r in records]
    return pd.DataFrame(
        {
            "step": pd.Series([r.step for r in records], dtype="str"),
            "path": pd.Series([r.path for r in records], dtype="str"),
            "branch": pd.Series([r.branch for r in records], dtype="str"),
            "attempt": pd.Series([r.attempt for r in records], dtype="int64"),
            "delay_s": pd.Series([r.delay for r in records], dtype="float64"),
            "started_s": pd.Series(started, dtype="float64"),
            "finished_s": pd.Series(finished, dtype="float64"),
            "duration_s": pd.Series(
                [f - s for s, f in zip(started, finished, strict=True)], dtype="float64"
            ),
            "status": _status([r.status for r in records]),
            "error": pd.Series([r.error for r in records], dtype="str"),
            "cost": pd.Series([tidy_cost(r.cost) for r in records], dtype="float64"),
            "tokens": pd.Series([r.tokens for r in records], dtype="int64"),
        },
        columns=ATTEMPT_COLUMNS,
    )
