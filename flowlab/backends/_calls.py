"""The record of every submission a backend made in one run, and what it tells the branch rows.

One :class:`CallRecord` per submitted leaf step (a retry is a new record, ``attempt`` + 1). When the
run ends, :func:`finalize` puts worker times on the driver's clock (:class:`ClockSync`) and gives
each branch row the times its steps really ran on the cluster; :func:`calls_frame` makes the tidy
frame found in ``result.extra["backend_calls"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowlab.backends._clocks import ClockSync
from flowlab.results.recorder import Instrument

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from flowlab.engine.coordinator import Run
    from flowlab.results.records import BranchRecord

__all__ = [
    "CALL_COLUMNS", "CALL_STATUSES", "AttachCalls", "CallRecord", "calls_frame", "finalize",
]  # fmt: skip

CALL_STATUSES: tuple[str, ...] = ("running", "ok", "failed", "lost", "cancelled")
CALL_COLUMNS: list[str] = [
    "step", "branch", "attempt", "key", "priority", "worker", "address", "submitted_s",
    "started_s", "finished_s", "received_s", "worker_started", "worker_finished", "offset_s",
    "offset_err_s", "status", "error",
]  # fmt: skip


@dataclass(slots=True, eq=False)
class CallRecord:
    """One submission of one leaf step. Driver times are run seconds; ``worker_*`` are the
    worker's wall clock; ``started``/``finished`` are those put on the run clock by
    :func:`finalize`."""

    step: str
    branch: str
    attempt: int
    key: str
    priority: float
    submitted: float
    brec: BranchRecord | None = None
    received: float = math.nan
    worker: str = ""
    address: str = ""
    worker_started: float = math.nan
    worker_finished: float = math.nan
    started: float = math.nan
    finished: float = math.nan
    offset: float = math.nan
    offset_err: float = math.nan
    status: str = "running"
    error: str = ""

    @property
    def ran(self) -> bool:
        """Whether a worker ran the step and reported its times."""
        return not math.isnan(self.worker_started)


def finalize(
    calls: Sequence[CallRecord], sync: ClockSync, branches: Sequence[BranchRecord]
) -> None:
    """Convert worker times to run times; give branch rows the times their steps ran.

    A branch whose own steps ran on workers gets, as ``started``, the (converted) start of its
    first such step and, as ``finished``, the stop of its last step if that one ran (else the
    driver's time stays) — widened to cover its nested branches, which are done first. Branches
    without steps of their own keep the driver's times, which bracket everything inside them. The
    driver's own times (submitted, received) stay in the calls frame. Called once, when the run
    ends, so every conversion uses the tightest clock bounds.
    """
    first: dict[int, CallRecord] = {}
    last: dict[int, CallRecord] = {}
    for c in calls:
        if c.ran:
            c.offset, c.offset_err = sync.offset(c.address)
            c.started, c.finished = sync.to_run_time(
                c.address, c.worker_started, c.worker_finished, c.submitted, c.received
            )
            if c.brec is not None:
                first.setdefault(id(c.brec), c)
        if c.brec is not None:
            last[id(c.brec)] = c
    if not first:
        return
    inside: dict[str, tuple[float, float]] = {}  # branch path -> span of its nested branches
    for brec in sorted(branches, key=lambda b: b.path.count("/"), reverse=True):
        own = first.get(id(brec))
        if own is not None and brec.status not in ("queued", "running"):
            end = last[id(brec)]
            start, stop = own.started, end.finished if end.ran else brec.finished
            if brec.path in inside:
                start = min(start, inside[brec.path][0])
                stop = max(stop, inside[brec.path][1])
            brec.started, brec.finished = start, stop
        if brec.parent and not (math.isnan(brec.started) or math.isnan(brec.finished)):
            lo, hi = inside.get(brec.parent, (math.inf, -math.inf))
            inside[brec.parent] = (min(lo, brec.started), max(hi, brec.finished))


def calls_frame(calls: Sequence[CallRecord]) -> pd.DataFrame:
    """One row per submission (see :data:`CALL_COLUMNS`); seconds as float, status categorical."""
    import pandas as pd

    def col(name: str) -> list[object]:
        return [getattr(c, name) for c in calls]

    return pd.DataFrame(
        {
            "step": pd.Series(col("step"), dtype="str"),
            "branch": pd.Series(col("branch"), dtype="str"),
            "attempt": pd.Series(col("attempt"), dtype="int64"),
            "key": pd.Series(col("key"), dtype="str"),
            "priority": pd.Series(col("priority"), dtype="float64"),
            "worker": pd.Series(col("worker"), dtype="str"),
            "address": pd.Series(col("address"), dtype="str"),
            "submitted_s": pd.Series(col("submitted"), dtype="float64"),
            "started_s": pd.Series(col("started"), dtype="float64"),
            "finished_s": pd.Series(col("finished"), dtype="float64"),
            "received_s": pd.Series(col("received"), dtype="float64"),
            "worker_started": pd.Series(col("worker_started"), dtype="float64"),
            "worker_finished": pd.Series(col("worker_finished"), dtype="float64"),
            "offset_s": pd.Series(col("offset"), dtype="float64"),
            "offset_err_s": pd.Series(col("offset_err"), dtype="float64"),
            "status": pd.Categorical(col("status"), categories=list(CALL_STATUSES)),
            "error": pd.Series(col("error"), dtype="str"),
        },
        columns=CALL_COLUMNS,
    )


class AttachCalls(Instrument):
    """Puts the calls frame on the result (``extra["backend_calls"]``) once the run has made it."""

    def __init__(self, run: Run, calls: list[CallRecord]) -> None:
        self.run, self.calls = run, calls

    def run_finished(self, status: str) -> None:
        if self.run.result is not None:
            self.run.result.extra["backend_calls"] = calls_frame(self.calls)
