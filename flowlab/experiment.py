"""Comparing choices: run one pipeline over a grid of options, one frame row per run.

:func:`compare` runs the cross product of the grid, each combination ``repeat`` times, with
``raise_on_error=False`` so a failed run is a row like any other. The result is a
:class:`Comparison`: ``.frame`` (tidy, one row per run), ``.results`` (the :class:`RunResult` of
each row, same order), ``.plot()``, ``.summary()``, ``.to_html()`` and a rich notebook display.

Grid keys
---------
* ``"merge"``, ``"max_concurrency"``, ... — a plain :class:`~flowlab.pipeline.Parallel` option
  applies to **every** Parallel of the pipeline, nested ones included;
* ``"fanout.max_concurrency"`` — ``"<step>.<option>"`` applies to the Parallel(s) named ``fanout``;
* ``"run.max_concurrency"``, ``"run.timeout"``, ``"run.usage"`` — a keyword of :func:`flowlab.run`
  for the whole run (the run-wide leaf cap, the run timeout, the shared budget). A Parallel
  named ``run`` takes precedence over this prefix.

Every combination is built (and so validated) before the first run starts.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowlab.errors import ConfigError, MergeConflict, check_one_of
from flowlab.pipeline import Parallel, Pipeline, as_node
from flowlab.record import RUN_STATUSES, RunResult

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["RUN_OPTIONS", "Comparison", "compare"]

RUN_OPTIONS: tuple[str, ...] = ("max_concurrency", "timeout", "usage")
"""Grid keys ``run.<option>``: keywords of :func:`flowlab.run` that vary per run."""

_RUN_KWARGS = ("input", "usage", "max_concurrency", "timeout", "instruments", "record", "backend")
_PROGRESS = (True, False, "auto")
OUTCOMES: tuple[str, ...] = (
    "status", "makespan_s", "peak_concurrency", "utilisation", "conflicts", "cost", "tokens",
    "failed_branches", "error", "wall_s",
)  # fmt: skip
"""Outcome columns of :attr:`Comparison.frame`, after the grid keys and ``repeat``."""


@dataclass(frozen=True)
class _Target:
    key: str
    scope: str  # "all" | "step" | "run"
    step: str
    option: str


def _targets(grid: Mapping[str, Any], step_names: Sequence[str]) -> list[_Target]:
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError(
            f"grid={grid!r} is not valid; give a non-empty dict {{key: [values, ...]}}, "
            "e.g. {'merge': ['overwrite', 'deep'], 'max_concurrency': [1, 2, 4]}."
        )
    known = set(step_names)
    out: list[_Target] = []
    for key, values in grid.items():
        target = _target(key, known, step_names)
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ConfigError(
                f"grid[{key!r}]={values!r} is not valid; give a non-empty list of values, "
                f"e.g. grid={{{key!r}: [...]}}."
            )
        out.append(target)
    return out


def _target(key: Any, known: set[str], step_names: Sequence[str]) -> _Target:
    options = Parallel.OPTIONS
    if isinstance(key, str):
        step, dot, option = key.rpartition(".")
        if not dot and key in options:
            return _Target(key, "all", "*", key)
        if dot and step in known and option in options:
            return _Target(key, "step", step, option)
        if dot and step == "run" and option in RUN_OPTIONS:
            return _Target(key, "run", "", option)
    listed = ", ".join(repr(o) for o in options)
    steps = ", ".join(repr(s) for s in step_names) or "(none: the pipeline has no Parallel)"
    runs = ", ".join(repr(f"run.{o}") for o in RUN_OPTIONS)
    raise ConfigError(
        f"grid key {key!r} is not valid; choose one of {listed} (every Parallel), "
        f"'<step>.<option>' with <step> one of {steps} (one Parallel), or {runs} (the whole run)."
    )


def _context_fields(ctx: BaseModel, fields: Sequence[str] | None) -> list[str]:
    names = list(type(ctx).model_fields)
    if fields is None:
        return [n for n in names if isinstance(getattr(ctx, n), bool | int | float | str)]
    if isinstance(fields, str):
        fields = [fields]
    for f in fields:
        if not isinstance(f, str):
            raise ConfigError(f"fields={fields!r} is not valid; give context field names (str).")
        check_one_of("fields", f.split(".", 1)[0], names, hint="a dotted path reaches dict keys.")
    return list(fields)


def _get(ctx: Any, path: str) -> Any:
    value = ctx
    for part in path.split("."):
        if isinstance(value, BaseModel):
            value = getattr(value, part, None)
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value


def _label(value: Any) -> Any:
    """What a grid value looks like in the frame: scalars as they are, objects as their repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _show_progress(progress: bool | str) -> bool:
    check_one_of("progress", progress, _PROGRESS)
    if progress != "auto":
        return bool(progress)
    return "ipykernel" in sys.modules or sys.stderr.isatty()


def compare(
    pipe: Any,
    ctx: BaseModel,
    grid: Mapping[str, Sequence[Any]],
    *,
    repeat: int = 1,
    clock: str = "virtual",
    fields: Sequence[str] | None = None,
    progress: bool | str = "auto",
    **run_kwargs: Any,
) -> Comparison:
    """Run ``pipe`` once per combination of ``grid`` (times ``repeat``) and tabulate the outcomes.

    Parameters
    ----------
    pipe : Pipeline, Parallel, Step or callable
    ctx : pydantic.BaseModel
        Starting context of every run (copied each time, never mutated).
    grid : dict
        ``{key: [values]}``. A plain Parallel option (``"merge"``, ``"max_concurrency"``, ...)
        applies to every Parallel; ``"<step>.<option>"`` to the Parallel named ``<step>``;
        ``"run.max_concurrency"`` / ``"run.timeout"`` / ``"run.usage"`` to :func:`flowlab.run`.
    repeat : int, default 1
        Runs per combination (the ``repeat`` column counts from 0).
    clock : {"virtual", "real"}, default "virtual"
        Virtual time makes every timing exact and a sweep take milliseconds.
    fields : list of str, optional
        Context fields to tabulate as ``ctx.<field>`` columns (dotted paths reach dict keys).
        Default: every top-level field holding a number, bool or string. ``[]``: none.
    progress : bool or "auto", default "auto"
        A tqdm.auto progress bar over the runs; ``"auto"`` shows it in a notebook or a terminal.
    **run_kwargs
        Passed to every :func:`flowlab.run` call: ``input``, ``usage``, ``max_concurrency``,
        ``timeout``, ``instruments``, ``record``, ``backend``. Runs never raise
        (``raise_on_error=False``): a failed run becomes a row with its ``status`` and ``error``.

    Returns
    -------
    Comparison

    Raises
    ------
    ConfigError
        An unknown grid key (the message lists the valid ones), an empty value list, a value a
        Parallel rejects, or an unknown keyword.

    Examples
    --------
    >>> cmp = fl.compare(pipe, Ctx(), grid={"merge": ["overwrite", "accumulate"],  # doctest: +SKIP
    ...                                     "max_concurrency": [1, 2, 4]}, repeat=2)
    >>> cmp.frame.groupby(["merge", "max_concurrency"])["makespan_s"].mean()  # doctest: +SKIP
    """
    from flowlab.notebook import run

    pipeline = pipe if isinstance(pipe, Pipeline) else Pipeline(as_node(pipe, param="pipe"))
    step_names = list(dict.fromkeys(p.name for p in pipeline.parallels()))
    targets = _targets(grid, step_names)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ConfigError(f"repeat={repeat!r} is not valid; give an integer >= 1.")
    for name in run_kwargs:
        if name == "raise_on_error":
            raise ConfigError(
                "raise_on_error is not a compare() option: failed runs always become rows "
                "(raise_on_error=False). HINT: filter cmp.frame by its status column."
            )
        check_one_of("run keyword", name, _RUN_KWARGS)
    for t in targets:
        if t.scope == "run" and t.option in run_kwargs:
            raise ConfigError(
                f"{t.option}= is given both as a keyword and as grid key {t.key!r}; give it once."
            )
    if any(t.scope != "run" for t in targets) and not step_names:
        raise ConfigError(
            f"grid key {next(t.key for t in targets if t.scope != 'run')!r} is not valid: the "
            "pipeline has no Parallel step; choose one of "
            + ", ".join(repr(f"run.{o}") for o in RUN_OPTIONS)
            + "."
        )
    columns = _context_fields(ctx, fields)

    plans: list[tuple[dict[str, Any], Pipeline, dict[str, Any]]] = []
    for combo in itertools.product(*(list(grid[t.key]) for t in targets)):
        params = {t.key: v for t, v in zip(targets, combo, strict=True)}
        changes: dict[str, dict[str, Any]] = {}
        run_opts: dict[str, Any] = {}
        for t, v in zip(targets, combo, strict=True):
            if t.scope == "run":
                run_opts[t.option] = v
            else:
                changes.setdefault(t.step, {})[t.option] = v
        try:
            configured = pipeline.replace(changes) if changes else pipeline
        except ConfigError as err:
            raise ConfigError(f"grid combination {params!r}: {err}") from err
        plans.append((params, configured, run_opts))

    total = len(plans) * repeat
    bar: Any = None
    if _show_progress(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="compare", unit="run", leave=False)
    rows: list[dict[str, Any]] = []
    results: list[RunResult] = []
    try:
        for params, configured, run_opts in plans:
            for r in range(repeat):
                t0 = time.perf_counter()
                result = run(configured, ctx, clock=clock, raise_on_error=False,
                             **{**run_kwargs, **run_opts})  # fmt: skip
                wall_s = time.perf_counter() - t0
                results.append(result)
                rows.append(_row(params, r, result, columns, wall_s))
                if bar is not None:
                    bar.set_postfix_str(", ".join(f"{k}={_label(v)}" for k, v in params.items()))
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    grid_values = {t.key: list(grid[t.key]) for t in targets}
    return Comparison(_frame(rows, grid_values, columns), results, grid_values, clock=clock)


def _row(
    params: dict[str, Any], rep: int, result: RunResult, fields: list[str], wall_s: float
) -> dict[str, Any]:
    s = result.summary()
    conflicts = int(result.merges["conflict"].sum())
    if conflicts == 0 and isinstance(result.error, MergeConflict):
        conflicts = 1  # defensive: a raised conflict always counts, even without report rows
    row: dict[str, Any] = {k: _label(v) for k, v in params.items()}
    row.update(
        repeat=rep,
        status=result.status,
        makespan_s=float(s["makespan_s"]),
        peak_concurrency=int(s["peak_concurrency"]),
        utilisation=float(s["utilisation"]),
        conflicts=conflicts,
        cost=float(result.cost),
        tokens=int(result.tokens),
        failed_branches=int(
            sum(1 for b in result.recorder.branches if b.status in ("failed", "timeout"))
        ),
        error="" if result.error is None else f"{type(result.error).__name__}: {result.error}",
        wall_s=wall_s,
    )
    for f in fields:
        row[f"ctx.{f}"] = _get(result.context, f)
    return row


def _frame(
    rows: list[dict[str, Any]], grid: dict[str, list[Any]], fields: list[str]
) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=[*grid, "repeat", *OUTCOMES, *(f"ctx.{f}" for f in fields)])
    for key, values in grid.items():
        labels = [_label(v) for v in values]
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
    for c in ("makespan_s", "utilisation", "cost", "wall_s"):
        frame[c] = frame[c].astype("float64")
    for c in ("peak_concurrency", "conflicts", "tokens", "failed_branches"):
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
        ``utilisation``, ``conflicts`` (conflicting paths found by the merges), ``cost``,
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
            if row["repeat"] == repeat and all(_same(row[k], _label(v)) for k, v in wanted.items()):
                return self.results[i]
        raise ConfigError(
            f"no run with {wanted!r} and repeat={repeat!r}; the grid is {self.grid!r} "
            f"and repeat runs from 0 to {int(self.frame['repeat'].max())}."
        )

    def summary(self) -> pd.DataFrame:
        """One row per grid combination: mean and std of the makespan over repeats, and more.

        Columns: the grid keys, ``runs``, ``ok`` (runs with status ok), ``makespan_s`` (mean),
        ``makespan_std``, ``peak_concurrency`` (max), ``conflicts`` (total), ``cost`` (mean),
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
        self, x: str | None = None, y: str = "makespan_s", hue: str | None = None, ax: Axes | None = None,
        **kwargs: Any,
    ) -> Axes:  # fmt: skip
        """:func:`flowlab.plot.compare` of this comparison (``y`` against ``x`` per ``hue``)."""
        from flowlab import plot

        return plot.compare(self, x=x, y=y, hue=hue, ax=ax, **kwargs)

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML report (plot embedded, frame as a table); written to ``path``."""
        from flowlab import report

        return report.comparison_html(self, path)

    def _repr_html_(self) -> str:
        from flowlab import report

        return f"<div>{report.comparison_fragment(self, heading='Comparison', level=3)}</div>"

    def __repr__(self) -> str:
        statuses = self.frame["status"].astype(str).value_counts().to_dict()
        return (
            f"<Comparison runs={len(self)} grid={ {k: [_label(v) for v in vs] for k, vs in self.grid.items()} } "
            f"clock={self.clock!r} status={statuses}>"
        )


def _same(a: Any, b: Any) -> bool:
    a_missing = a is None or (isinstance(a, float) and math.isnan(a)) or str(a) == "<NA>"
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    return bool(a == b)
