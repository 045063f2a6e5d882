"""The outcome of :func:`flowlab.compare`: :class:`Comparison`, a frame with one row per run, and
the runs themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flowlab.errors import ConfigError, MergeConflict, check_one_of
from flowlab.results.record import RunResult
from flowlab.results.records import RUN_STATUSES

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["OUTCOMES", "Comparison", "frame_of", "label"]

OUTCOMES: tuple[str, ...] = (
    "status", "makespan_s", "peak_concurrency", "utilization", "conflicts", "dropped", "cost",
    "tokens", "failed_branches", "error", "wall_s",
)  # fmt: skip
"""Outcome columns of :attr:`Comparison.frame`, after the grid keys and ``repeat``."""


def outcomes(result: RunResult, wall_s: float) -> dict[str, Any]:
    """One run's :data:`OUTCOMES`: the row fields ``fl.compare`` and the Lab's history share."""
    s = result.summary()
    conflicts = int(result.merges["conflict"].sum()) if len(result.merges) else 0
    if conflicts == 0 and isinstance(result.error, MergeConflict):
        conflicts = 1  # a raised conflict always counts, even without report rows
    failed = sum(1 for b in result.recorder.branches if b.status in ("failed", "timeout"))
    return {
        "status": result.status,
        "makespan_s": float(s["makespan_s"]),
        "peak_concurrency": int(s["peak_concurrency"]),
        "utilization": float(s["utilization"]),
        "conflicts": conflicts,
        "dropped": int(s.get("dropped_writes", 0)),
        "cost": float(result.cost),
        "tokens": int(result.tokens),
        "failed_branches": failed,
        "error": "" if result.error is None else f"{type(result.error).__name__}: {result.error}",
        "wall_s": wall_s,
    }


def label(value: Any) -> Any:
    """What a grid value looks like in the frame: scalars as they are, objects as their repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def frame_of(
    rows: list[dict[str, Any]], grid: dict[str, list[Any]], fields: list[str]
) -> pd.DataFrame:
    """:attr:`Comparison.frame` from one row dict per run, with a dtype per column: grid keys
    of strings as categoricals (in grid order), caps as nullable ints, other numbers as floats,
    anything else as objects."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=[*grid, "repeat", *OUTCOMES, *(f"ctx.{f}" for f in fields)])
    for key, values in grid.items():
        labels = [label(v) for v in values]
        column = [r[key] for r in rows]  # as given: pandas would turn None into NaN
        if all(isinstance(v, str) for v in labels):
            frame[key] = pd.Categorical(column, categories=list(dict.fromkeys(labels)))
        elif all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in labels):
            frame[key] = pd.array(column, dtype="Int64")
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels):
            frame[key] = pd.Series(column, dtype="float64")
        else:
            frame[key] = pd.Series(column, dtype="object")
    frame["repeat"] = frame["repeat"].astype("int64")
    frame["status"] = pd.Categorical(frame["status"].tolist(), categories=list(RUN_STATUSES))
    for c in ("makespan_s", "utilization", "cost", "wall_s"):
        frame[c] = frame[c].astype("float64")
    for c in ("peak_concurrency", "conflicts", "dropped", "tokens", "failed_branches"):
        frame[c] = frame[c].astype("int64")
    frame["error"] = frame["error"].astype("str")
    return frame


class Comparison:
    """The outcome of :func:`compare`: a frame with one row per run, and the runs themselves.

    Attributes
    ----------
    frame : pandas.DataFrame
        A column per grid key (named as the key; strategy names as categoricals, caps as
        nullable ints with ``<NA>`` for no cap, objects such as limiters as their repr), then
        ``repeat`` and the outcomes: ``status``, ``makespan_s``, ``peak_concurrency``,
        ``utilization``, ``conflicts`` (conflicting paths found by the merges), ``dropped``
        (writes that lost under overwrite / keep-first: ``result.merges.dropped``), ``cost``,
        ``tokens``, ``failed_branches``, ``error``, ``wall_s`` (real seconds the run took), then
        one ``ctx.<field>`` column per tabulated context field.
    results : list of RunResult
        ``results[i]`` is the run of ``frame.iloc[i]``.
    grid : dict
        The grid, ``{key: [values]}``.
    clock : str
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        results: list[RunResult],
        grid: dict[str, list[Any]],
        *,
        clock: str,
    ) -> None:
        self.frame = frame
        self.results = results
        self.grid = grid
        self.clock = clock

    def __len__(self) -> int:
        return len(self.results)

    def result(
        self, where: Mapping[str, Any] | None = None, /, *, repeat: int = 0, **params: Any
    ) -> RunResult:
        """The run with these grid values (``cmp.result(merge="deep", max_concurrency=2)``).

        Keys with a dot go in a dict: ``cmp.result({"fanout.merge": "deep"})``. Keys left out
        match any value (the first matching run is returned).
        """
        wanted = {**(where or {}), **params}
        for key in wanted:
            check_one_of("grid key", key, list(self.grid))
        for i, row in enumerate(self.frame.to_dict("records")):
            if row["repeat"] == repeat and all(_same(row[k], label(v)) for k, v in wanted.items()):
                return self.results[i]
        raise ConfigError(
            f"no run with {wanted!r} and repeat={repeat!r}; the grid is {self.grid!r} "
            f"and repeat runs from 0 to {int(self.frame['repeat'].max())}."
        )

    def summary(self) -> pd.DataFrame:
        """One row per grid combination: mean and std of the makespan over repeats, and more.

        Columns: the grid keys, ``runs``, ``ok`` (runs with status ok), ``makespan_s`` (mean),
        ``makespan_std``, ``peak_concurrency`` (max), ``conflicts`` and ``dropped`` (totals),
        ``cost`` (mean),
        and the mean of every numeric ``ctx.`` column (others: the first run's value).
        """
        keys = list(self.grid)
        frame = self.frame
        groups = frame.groupby(keys, sort=False, dropna=False, observed=True)
        out = groups.agg(
            runs=("repeat", "size"),
            ok=("status", lambda s: int((s.astype(str) == "ok").sum())),
            makespan_s=("makespan_s", "mean"),
            makespan_std=("makespan_s", lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0),
            peak_concurrency=("peak_concurrency", "max"),
            conflicts=("conflicts", "sum"),
            dropped=("dropped", "sum"),
            cost=("cost", "mean"),
        )
        import pandas as pd

        for col in (c for c in frame.columns if str(c).startswith("ctx.")):
            if pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(
                frame[col]
            ):
                out[col] = groups[col].mean()
            else:
                out[col] = groups[col].first()
        return out.reset_index()

    def plot(
        self, x: str | None = None, y: str = "makespan_s", hue: str | Literal[False] | None = None,
        ax: Axes | None = None,
        **kwargs: Any,
    ) -> Axes:  # fmt: skip
        """:func:`flowlab.ui.plot.compare` of this comparison (``y`` against ``x`` per ``hue``;
        ``hue=False`` for one line over every run)."""
        from flowlab.ui import plot

        return plot.compare(self, x=x, y=y, hue=hue, ax=ax, **kwargs)

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML report (plot embedded, frame as a table); written to ``path``."""
        from flowlab.ui import report

        return report.comparison_html(self, path)

    def _repr_html_(self) -> str:
        from flowlab.ui import report

        return f"<div>{report.comparison_fragment(self, heading='Comparison', level=3)}</div>"

    def __repr__(self) -> str:
        statuses = self.frame["status"].astype(str).value_counts().to_dict()
        return (
            f"<Comparison runs={len(self)} grid={ {k: [label(v) for v in vs] for k, vs in self.grid.items()} } "
            f"clock={self.clock!r} status={statuses}>"
        )


def _same(a: Any, b: Any) -> bool:
    a_missing = a is None or (isinstance(a, float) and math.isnan(a)) or str(a) == "<NA>"
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    return bool(a == b)
