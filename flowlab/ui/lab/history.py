"""The Lab's record of runs: one row per run (parameters + outcomes) and the results themselves.

Outcome columns follow :attr:`flowlab.Comparison.frame` (``status``, ``makespan_s``,
``peak_concurrency``, ``utilization``, ``conflicts``, ``dropped``, ``cost``, ``tokens``, ``failed_branches``,
``error``, ``wall_s``), so a Lab history and a :func:`flowlab.compare` frame can be read, and
plotted with :func:`flowlab.ui.plot.compare`, the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowlab.results.record import RunResult
from flowlab.results.records import RUN_STATUSES
from flowlab.study.comparison import outcomes

if TYPE_CHECKING:
    import pandas as pd
    from pydantic import BaseModel

__all__ = ["History", "context_metrics", "same_value", "view_columns", "with_swept"]

LEAD = ("run", "status", "makespan_s")
"""History columns the Lab's table always shows first."""
LAST = ("error", "wall_s")
"""Outcome columns shown after the others (``error`` only when some run has one)."""


def context_metrics(ctx: BaseModel) -> dict[str, Any]:
    """``ctx.<field>`` for numeric top-level fields, ``ctx.<field>.len`` for collections.

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class C(BaseModel):
    ...     n: int = 3
    ...     tags: list[str] = ["a", "b"]
    ...     ok: bool = True
    ...     name: str = "x"
    >>> context_metrics(C())
    {'ctx.n': 3, 'ctx.tags.len': 2}
    """
    out: dict[str, Any] = {}
    for name in type(ctx).model_fields:
        value = getattr(ctx, name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[f"ctx.{name}"] = value
        elif isinstance(value, list | tuple | set | frozenset | dict):
            out[f"ctx.{name}.len"] = len(value)
    return out


def same_value(a: Any, b: Any) -> bool:
    """Whether two parameter values are the same as the history holds them (NaN, "no timeout",
    equals NaN).

    Examples
    --------
    >>> same_value(float("nan"), float("nan")), same_value(2, 2), same_value("deep", "sum")
    (True, True, False)
    """
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def with_swept(params: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``params`` with the swept option ``key`` set to ``value`` (a swept cap also sets
    ``<step>.cap``).

    Examples
    --------
    >>> with_swept({"s.cap": "aimd", "s.max_concurrency": 4}, "s.max_concurrency", None)
    {'s.cap': 'unlimited', 's.max_concurrency': None}
    """
    out = dict(params)
    step, option = key.rsplit(".", 1)
    if option == "max_concurrency":
        out[f"{step}.cap"] = "unlimited" if value is None else "fixed"
    out[key] = value
    return out


def _is_setting(column: str) -> bool:
    return column in ("clock", "repeat") or ("." in column and not column.startswith("ctx."))


def view_columns(frame: pd.DataFrame) -> tuple[list[str], dict[str, Any]]:
    """The columns a history table shows, in order, and the ones it leaves out with their value.

    Outcomes lead: ``run``, ``status``, ``makespan_s``, then the ``ctx.*`` columns, then the
    settings (``<step>.<option>``, ``clock``, ``repeat``), the other outcomes, ``error`` and
    ``wall_s``. With two rows or more, a column with one value in every row (``clock``,
    an option nobody changed, an ``error`` column with no error) is left out and returned with
    that value instead; the leading three always show.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"run": [1, 2], "s.merge": ["deep", "sum"], "clock": ["virtual"] * 2,
    ...     "status": ["ok", "ok"], "makespan_s": [2.0, 1.0], "cost": [0.5, 0.5],
    ...     "error": ["", ""], "ctx.n": [3, 4]})
    >>> view_columns(frame)
    (['run', 'status', 'makespan_s', 'ctx.n', 's.merge'], {'clock': 'virtual', 'cost': 0.5, 'error': ''})
    """
    cols = list(frame.columns)
    ctx = [c for c in cols if c.startswith("ctx.")]
    settings = [c for c in cols if _is_setting(c)]
    rest = [c for c in cols if c not in (*LEAD, *LAST, *ctx, *settings)]
    order = [c for c in (*LEAD, *ctx, *settings, *rest, *LAST) if c in cols]
    if len(frame) < 2:
        return order, {}
    constant = {
        c: frame[c].tolist()[0]
        for c in order
        if c not in LEAD and frame[c].astype("object").nunique(dropna=False) <= 1
    }
    return [c for c in order if c not in constant], constant


class History:
    """Every run of a Lab, in order: ``results[i]`` is the row with ``run == i + 1``."""

    def __init__(self) -> None:
        self.results: list[RunResult] = []
        self.rows: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.results)

    def add(
        self, result: RunResult, params: Mapping[str, Any], *, repeat: int, wall_s: float
    ) -> dict[str, Any]:
        """Record one run; return its row.

        Parameters
        ----------
        result : RunResult
        params : mapping
            The parameter columns (``"<step>.<option>"``, ``clock``, ...).
        repeat : int
            Index of the run within its batch (counts from 0, as in ``fl.compare``).
        wall_s : float
            Real seconds the run took.
        """
        self.results.append(result)
        s = result.summary()
        row: dict[str, Any] = {"run": len(self.results), **params, "repeat": repeat}
        row.update(outcomes(result, round(wall_s, 6)))  # the columns fl.compare has, in its order
        row.update(
            branches=int(s["branches"]),
            cancelled_branches=int(s.get("n_cancelled", 0)),
            remerged=False,  # True: re-merged from the previous row's run (Lab.remerge)
        )
        row.update(context_metrics(result.context))
        self.rows.append(row)
        return row

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame with explicit dtypes (caps as nullable ints, status categorical)."""
        import pandas as pd

        frame = pd.DataFrame.from_records(self.rows)
        if frame.empty:
            return pd.DataFrame({"run": pd.Series(dtype="int64")})
        for col in frame.columns:
            if col.endswith(".max_concurrency"):
                frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
            elif col.endswith(".branch_timeout"):
                frame[col] = frame[col].astype("float64")
        frame["status"] = pd.Categorical(frame["status"].tolist(), categories=list(RUN_STATUSES))
        for col in ("error", "clock"):
            if col in frame:
                frame[col] = frame[col].astype("str")
        return frame
