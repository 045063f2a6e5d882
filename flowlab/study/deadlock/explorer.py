"""Systematic interleaving search: ``explore(fn)`` runs many schedules, ``replay`` repeats one.

Design
------
Every schedule runs ``fn()`` on a fresh :class:`~flowlab.study.deadlock.scheduler.ExplorerLoop`; the
strategy decides each choice point:

``"dpor"`` / ``"exhaustive"``
    Stateless depth-first search over choice points (:mod:`flowlab.study.deadlock.search`), bounded by
    ``preemption_bound`` and/or ``delay_bound``. After each run the deepest choice point with an
    untried, in-bound alternative is changed and the run repeated (the runs are deterministic, so
    the shared prefix is reproduced exactly). ``"exhaustive"`` tries every alternative.
    ``"dpor"`` adds partial-order reduction: an alternative is tried only where two steps of
    different tasks conflict -- on a traced resource, or because one of them touched nothing
    traced and so may have used untraced shared state (a plain ``int``). Keep shared state in
    :class:`~flowlab.study.deadlock.shared.Shared` variables to make the reduction effective, and say
    so with ``assume_traced=True``. A finished reduced search reports what it assumed
    (:attr:`Exploration.assumptions`) and never claims to have exhausted the space.
``"pct"``
    Probabilistic concurrency testing: random task priorities plus ``depth - 1`` change points
    at random choice points, seeded; finds a depth-d bug with probability >= 1/(n k^(d-1)) per run.
``"random"``
    A seeded uniform choice at every choice point.

A run ends ``ok``, ``deadlock`` (the detector fired, or every task blocked), ``failed`` (an
exception) or ``step_limit``. The first failing schedule is kept as a short string;
:meth:`Exploration.replay` (or :func:`replay`) runs exactly that interleaving again, and
:meth:`Exploration.shrink` (or :func:`minimize`) finds the same failure with the fewest
preemptions (:mod:`flowlab.study.deadlock.shrink`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowlab.errors import ConfigError, check_one_of
from flowlab.study.deadlock.choosers import forced, pct_chooser, random_chooser
from flowlab.study.deadlock.registry import scenario
from flowlab.study.deadlock.runner import Outcome, resolve, run_schedule
from flowlab.study.deadlock.scheduler import Chooser, decode
from flowlab.study.deadlock.search import Search
from flowlab.study.deadlock.shrink import fewest_preemptions

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SEARCH_STRATEGIES", "Exploration", "explore", "minimize", "replay"]

SEARCH_STRATEGIES = ("dpor", "exhaustive", "pct", "random")
Target = str | Callable[[], Coroutine[Any, Any, Any]]


@dataclass
class Exploration:
    """What :func:`explore` found.

    Attributes
    ----------
    schedules : int
        Schedules run.
    deadlocks, failures, step_limits : int
        Runs that deadlocked, raised, or hit ``max_steps``.
    exhausted : bool
        True when a search strategy ran out of schedules to try within its bounds (for
        ``"dpor"`` that is a reduced space: see ``assumptions``).
    stopped : str
        What ended a search before it ran out of schedules: ``"max_schedules=N"``,
        ``"time_budget_s=S"`` or ``"stop_on_first"`` (``""``: it was not cut short). The
        summary says so: schedules not run may still fail.
    assumptions : list of str
        What a reduced search took for granted; empty for ``"exhaustive"``.
    bounds : str
        The bounds the search ran within, e.g. ``"preemption bound 2"`` (``""``: none).
    first_failure : Outcome or None
        The first run that deadlocked or failed, with its schedule and report.
    hint : str
        For a catalog scenario: whether its bug is a deadlock (``dl.run`` shows the
        detector's report) or a race that only the explorer finds.
    """

    target: str
    strategy: str
    schedules: int = 0
    deadlocks: int = 0
    failures: int = 0
    step_limits: int = 0
    exhausted: bool = False
    stopped: str = ""
    assumptions: list[str] = field(default_factory=list)
    bounds: str = ""
    elapsed_s: float = 0.0
    first_failure: Outcome | None = None
    hint: str = ""
    runs: list[tuple[str, str, int]] = field(default_factory=list, repr=False)
    _fn: Callable[[], Coroutine[Any, Any, Any]] | None = field(default=None, repr=False)
    _max_steps: int = field(default=20_000, repr=False)

    @property
    def first_failing_schedule(self) -> str | None:
        """The saved string of the first failing schedule (``""`` means plain FIFO)."""
        return None if self.first_failure is None else self.first_failure.schedule

    @property
    def schedules_per_s(self) -> float:
        return self.schedules / self.elapsed_s if self.elapsed_s > 0 else float("inf")

    def replay(self, schedule: str | None = None) -> Outcome:
        """Run ``schedule`` (default: the first failing one) again, exactly."""
        if schedule is None:
            if self.first_failure is None:
                raise ConfigError("schedule=None is not valid: nothing failed; pass a schedule.")
            schedule = self.first_failure.schedule
        fn = self._fn
        if fn is None:
            raise ConfigError("this Exploration has no target to replay.")
        choices = decode(schedule)
        outcome: Outcome = _in_thread(
            lambda: run_schedule(fn, forced(choices), max_steps=self._max_steps, lines=True)
        )
        return outcome

    def shrink(self, *, max_schedules: int = 10_000) -> Outcome:
        """The first failure again, under the schedule with the fewest preemptions, then steps.

        Iterative preemption bounding (see :mod:`flowlab.study.deadlock.shrink`): no schedule with
        fewer preemptions fails the same way (same status, same exception type) unless
        ``max_schedules`` ran out first. The result's ``schedule`` replays it exactly.
        """
        failing, fn = self.first_failure, self._fn
        if failing is None or fn is None:
            raise ConfigError("nothing failed, so there is nothing to shrink.")
        outcome: Outcome = _in_thread(
            lambda: fewest_preemptions(
                fn, failing, max_schedules=max_schedules, max_steps=self._max_steps
            )
        )
        return outcome

    @property
    def frame(self) -> pd.DataFrame:
        """One row per schedule run: run, schedule, status, steps."""
        import pandas as pd

        frame = pd.DataFrame(self.runs, columns=["schedule", "status", "steps"])
        frame.insert(0, "run", range(len(frame)))
        frame["status"] = pd.Categorical(
            frame["status"], categories=["ok", "deadlock", "failed", "step_limit"]
        )
        return frame

    def summary(self) -> str:
        found = self.first_failing_schedule
        text = (
            f"{self.strategy}: {self.schedules} schedules of {self.target} in "
            f"{self.elapsed_s:.2f} s ({self.schedules_per_s:.0f}/s): {self.deadlocks} "
            f"deadlocked, {self.failures} failed, {self.step_limits} hit the step limit"
            + self._coverage()
        )
        if found is not None:
            text += f". First failing schedule: {found!r} (replay(schedule) repeats it)"
        return text + "." + (f" {self.hint}" if self.hint else "")

    def _coverage(self) -> str:
        within = f" within {self.bounds}" if self.bounds else ""
        if self.strategy in ("pct", "random"):
            return (
                f"; a sample of {self.schedules} {self.strategy} schedules, not every interleaving"
            )
        if not self.exhausted:
            if self.stopped == "stop_on_first" or not self.stopped:
                return "; stopped at the first failure" if self.stopped else ""
            return (
                f"; stopped by {self.stopped} before the search finished{within}: "
                "schedules not run may still fail"
            )
        if self.assumptions:
            return f"; reduced search finished{within}, which assumed " + "; ".join(
                self.assumptions
            )
        return f"; search space exhausted{within}"

    def __repr__(self) -> str:
        return f"<Exploration {self.summary()}>"

    def _repr_html_(self) -> str:
        import html

        return f"<div class='flowlab-explore'>{html.escape(self.summary())}</div>"


def _in_thread(work: Callable[[], Any]) -> Any:
    """Run ``work`` here, or in a worker thread when an event loop is running in this thread."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()
    box: list[Any] = []
    errors: list[BaseException] = []

    def main() -> None:
        try:
            box.append(work())
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=main, name="flowlab-explore", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


def replay(
    target: Target, schedule: str, *, fixed: bool | str = False, max_steps: int = 20_000
) -> Outcome:
    """Run ``target`` under ``schedule`` (a string from :func:`explore`) exactly once."""
    fn, _ = resolve(target, fixed)
    choices = decode(schedule)
    return _in_thread(  # type: ignore[no-any-return]
        lambda: run_schedule(fn, forced(choices), max_steps=max_steps, lines=True)
    )


def minimize(
    target: Target,
    schedule: str,
    *,
    fixed: bool | str = False,
    max_schedules: int = 10_000,
    max_steps: int = 20_000,
) -> Outcome:
    """Shrink a failing ``schedule`` of ``target``: the same failure, fewest preemptions.

    Examples
    --------
    >>> import flowlab.study.deadlock as dl
    >>> found = dl.explore(dl.transfers, strategy="random", seed=0, stop_on_first=True)
    >>> found.first_failure.preemptions
    3
    >>> small = dl.minimize(dl.transfers, found.first_failing_schedule)
    >>> small.status, small.preemptions, dl.replay(dl.transfers, small.schedule).status
    ('deadlock', 1, 'deadlock')
    """
    fn, _ = resolve(target, fixed)
    choices = decode(schedule)

    def work() -> Outcome:
        failing = run_schedule(fn, forced(choices), max_steps=max_steps)
        return fewest_preemptions(fn, failing, max_schedules=max_schedules, max_steps=max_steps)

    outcome: Outcome = _in_thread(work)
    return outcome


def explore(
    target: Target,
    *,
    strategy: str = "dpor",
    max_schedules: int = 10_000,
    preemption_bound: int | None = 2,
    delay_bound: int | None = None,
    seed: int = 0,
    depth: int = 3,
    max_steps: int = 20_000,
    stop_on_first: bool = False,
    fixed: bool | str = False,
    time_budget_s: float | None = None,
    assume_traced: bool = False,
) -> Exploration:
    """Run ``target`` under many schedules and count the ones that deadlock or fail.

    Parameters
    ----------
    target : str or callable
        A catalog scenario name, or a zero-argument async function.
    strategy : {"dpor", "exhaustive", "pct", "random"}
        See the module docstring.
    max_schedules : int
        Stop after this many runs.
    preemption_bound : int or None
        Search strategies: most CHESS preemptions per schedule. Continuing the task that ran the
        previous step is free; switching away from it while it is still ready costs one. Most
        bugs need one or two. ``None``: no preemption bound.
    delay_bound : int or None
        Search strategies: most delays per schedule, a delay being any choice other than the
        task asyncio's FIFO queue would run next (``delay_bound=0`` runs asyncio's own schedule
        only). ``None`` (default): no delay bound. Both bounds apply when both are given.
    seed : int
        For ``"pct"`` and ``"random"``.
    depth : int
        PCT bug depth ``d`` (``d - 1`` priority change points).
    max_steps : int
        Task steps per run before it counts as ``step_limit`` (a livelock guard).
    stop_on_first : bool
        Stop at the first deadlock or failure.
    fixed : bool or str
        For a scenario name: explore its fixed variant (a string names another fix).
    time_budget_s : float, optional
        Wall-clock budget in seconds.
    assume_traced : bool
        ``"dpor"`` only: promise that every piece of state the tasks share is a traced primitive
        or a :class:`~flowlab.study.deadlock.shared.Shared`, so steps that touch nothing traced
        commute. Without it such steps conflict with every other step (safe, but slower).
    """
    check_one_of("strategy", strategy, SEARCH_STRATEGIES)
    for pname, value in (
        ("max_schedules", max_schedules),
        ("max_steps", max_steps),
        ("depth", depth),
    ):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{pname}={value!r} is not valid; give a positive int.")
    for pname, bound in (("preemption_bound", preemption_bound), ("delay_bound", delay_bound)):
        if bound is not None and (not isinstance(bound, int) or bound < 0):
            raise ConfigError(f"{pname}={bound!r} is not valid; give an int >= 0 or None.")
    fn, label = resolve(target, fixed)
    result = Exploration(label, strategy, _fn=fn, _max_steps=max_steps, hint=_hint(target))
    search = (
        Search(
            reduce=strategy == "dpor",
            preemption_bound=preemption_bound,
            delay_bound=delay_bound,
            assume_traced=assume_traced,
        )
        if strategy in ("dpor", "exhaustive")
        else None
    )
    if search is not None:
        result.assumptions = search.assumptions()
        named = [f"preemption bound {preemption_bound}"] if preemption_bound is not None else []
        named += [f"delay bound {delay_bound}"] if delay_bound is not None else []
        result.bounds = " and ".join(named)
    rng = random.Random(seed)

    def work() -> Exploration:
        start = time.perf_counter()
        estimate = 0
        result.stopped = f"max_schedules={max_schedules}"  # unless something else ends it
        for run_no in range(max_schedules):
            chooser: Chooser
            if search is not None:
                chooser = search.choose
            elif strategy == "random":
                chooser = random_chooser(rng)
            else:
                chooser = pct_chooser(rng, depth, max(estimate, 1))
            outcome = run_schedule(fn, chooser, max_steps=max_steps)
            estimate = max(estimate, len(outcome.choices))
            result.schedules = run_no + 1
            result.runs.append((outcome.schedule, outcome.status, outcome.steps))
            if outcome.status != "ok":
                result.deadlocks += outcome.status == "deadlock"
                result.failures += outcome.status == "failed"
                result.step_limits += outcome.status == "step_limit"
                if result.first_failure is None:
                    result.first_failure = outcome
                    if stop_on_first:
                        result.stopped = "stop_on_first"
                        break
            if search is not None and not search.advance(outcome):
                result.exhausted, result.stopped = True, ""
                break
            if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
                result.stopped = f"time_budget_s={time_budget_s}"
                break
        result.elapsed_s = time.perf_counter() - start
        return result

    return _in_thread(work)  # type: ignore[no-any-return]


def _hint(target: Target) -> str:
    if not isinstance(target, str):
        return ""
    if scenario(target).finder == "explorer":
        return (
            f"{target} is a race, not a deadlock: the detector cannot see it and asyncio's own "
            f"schedule passes; dl.run({target!r}) explores, shrinks and narrates it."
        )
    return f"{target} hangs: dl.run({target!r}) shows the detector's report of the deadlock."
