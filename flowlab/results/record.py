"""What a run gives back: :class:`RunResult`, its context, status, summary and frames.

The frames (``branches``, ``steps``, ``diffs``, ``merges``, ``events``, ``limits``, ``attempts``)
are built from the :class:`~flowlab.results.recorder.Recorder` only when first asked for: pandas is
imported then, never while the run goes. The HTML view (``_repr_html_``, ``to_html``) is drawn by
:mod:`flowlab.ui.report`, imported on call: the one lazy edge from results to the UI.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    import pandas as pd

    from flowlab.errors import FlowlabError

from flowlab.results.recorder import Recorder

__all__ = ["RunResult"]


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
        """One row per step run (inside branches too), with ``merge_s`` for Parallels (and their
        ``peak_concurrency``, counted as :meth:`summary` counts it: in the order the run handled
        one instant's starts and ends) and
        ``isolation``: how their branches got their contexts (``"cow"``: copy on write, which
        ``isolation="cow"`` uses where the context has nested data worth sharing; else
        ``"eager"``)."""
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

        ``peak_concurrency`` is the most leaf steps that ever ran at once, counted in the order
        the run handled their starts and ends: a step that starts in the same instant another ends
        (on virtual time, a rate or a freed slot at t = 1 and a sleep that ends at t = 1) counts
        as running with it when its start was handled first, though the rows' times, [0, 1) and
        [1, 2), do not show the overlap. ``utilization`` is the
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
