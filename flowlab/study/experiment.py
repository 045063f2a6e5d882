"""Comparing choices: run one pipeline over a grid of options, one frame row per run.

:func:`compare` runs the cross product of the grid, each combination ``repeat`` times, with
``raise_on_error=False`` so a failed run is a row like any other. The result is a
:class:`Comparison`: ``.frame`` (tidy, one row per run), ``.results`` (the :class:`RunResult` of
each row, same order), ``.plot()``, ``.summary()``, ``.to_html()`` and a rich notebook display.

Grid keys
---------
* ``"merge"``, ``"max_concurrency"``, ... — a plain :class:`~flowlab.core.pipeline.Parallel` option
  applies to **every** Parallel of the pipeline, nested ones included;
* ``"fanout.max_concurrency"`` — ``"<step>.<option>"`` applies to the Parallel(s) named ``fanout``;
* ``"run.max_concurrency"``, ``"run.rate"``, ``"run.timeout"``, ``"run.usage"`` — a keyword of
  :func:`flowlab.run` for the whole run (the run-wide leaf cap, its rate, the run timeout, the
  shared budget). A Parallel
  named ``run`` takes precedence over this prefix.

Every combination is built (and so validated) before the first run starts.
"""

from __future__ import annotations

import ast
import itertools
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowlab.core.context.paths import split
from flowlab.core.numbers import is_int
from flowlab.core.pipeline import Parallel, Pipeline, as_node
from flowlab.errors import ConfigError, check_one_of
from flowlab.results.record import RunResult
from flowlab.study.comparison import Comparison, frame_of, label, outcomes

if TYPE_CHECKING:
    pass

__all__ = ["RUN_OPTIONS", "Comparison", "compare"]

RUN_OPTIONS: tuple[str, ...] = ("max_concurrency", "rate", "timeout", "usage")
"""Grid keys ``run.<option>``: keywords of :func:`flowlab.run` that vary per run."""

_RUN_KWARGS = (
    "input", "usage", "max_concurrency", "rate", "timeout", "instruments", "record", "backend",
)  # fmt: skip
_PROGRESS = (True, False, "auto")


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
        check_one_of("fields", split(f)[0], names, hint="a dotted path reaches dict keys.")
    return list(fields)


def _get(ctx: Any, path: str) -> Any:
    """The value at ``path``, written as the frames write paths (``scores.alice``,
    ``files["data.csv"]``, ``by_id[1]``, ``tags[0]``); None where there is none."""
    value = ctx
    for part in split(path):
        key: Any = part
        if part.startswith("["):
            try:
                key = ast.literal_eval(part[1:-1])
            except (ValueError, SyntaxError):
                return None
        if isinstance(value, BaseModel) and type(key) is str:
            value = getattr(value, key, None)
        elif isinstance(value, Mapping):
            value = value.get(key)
        elif (
            isinstance(value, (list, tuple))
            and type(key) is int
            and -len(value) <= key < len(value)
        ):
            value = value[key]
        else:
            return None
    return value


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
    from flowlab.engine.entry import run
    from flowlab.engine.options import RunOptions

    pipeline = pipe if isinstance(pipe, Pipeline) else Pipeline(as_node(pipe, param="pipe"))
    step_names = list(dict.fromkeys(p.name for p in pipeline.parallels()))
    targets = _targets(grid, step_names)
    if not is_int(repeat) or repeat < 1:
        raise ConfigError(f"repeat={repeat!r} is not valid; give an integer >= 1.")
    for name in run_kwargs:
        if name == "raise_on_error":
            raise ConfigError(
                "raise_on_error is not a compare() option: failed runs always become rows "
                "(raise_on_error=False). HINT: filter cmp.frame by its status column."
            )
        check_one_of("run keyword", name, _RUN_KWARGS)
    RunOptions.of({**run_kwargs, "clock": clock}, where="fl.compare")  # each value checked once
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
                    bar.set_postfix_str(", ".join(f"{k}={label(v)}" for k, v in params.items()))
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    grid_values = {t.key: list(grid[t.key]) for t in targets}
    return Comparison(frame_of(rows, grid_values, columns), results, grid_values, clock=clock)


def _row(
    params: dict[str, Any], rep: int, result: RunResult, fields: list[str], wall_s: float
) -> dict[str, Any]:
    row: dict[str, Any] = {k: label(v) for k, v in params.items()}
    row.update(repeat=rep, **outcomes(result, wall_s))
    for f in fields:
        row[f"ctx.{f}"] = _get(result.context, f)
    return row
