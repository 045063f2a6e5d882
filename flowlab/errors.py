"""Every error flowlab raises, under one root.

::

    FlowlabError
    ├── ConfigError            bad arguments: names the parameter, the bad value, the valid choices
    ├── MergeConflict          two branches wrote one path to different values
    ├── MergeValidationError   the merged context failed the model's validation
    ├── BranchFailed           a branch raised (``on_failure="propagate"`` / ``"fail_fast"``)
    │   └── StepFailed         a step outside any branch raised
    ├── BookkeepingError       what a branch changed could not be diffed or recorded
    ├── IsolationBreach        a copy-on-write branch wrote into the data its siblings share
    ├── StepTimeout            a step, a branch or the whole run ran out of time
    ├── UsageLimitExceeded     a charge crossed the run's shared usage budget
    ├── ChargeRefused          a charge from a branch (or run) that had already ended
    ├── DeadlockDetected       a watched group of tasks can never make progress again
    ├── RunCancelled           the whole run was cancelled (handle.cancel(), an interrupt)
    └── RunNotFinished         ``RunHandle.result()`` asked of a run that is still going

Apart from the tree, because ``except Exception`` must never swallow an interrupt::

    KeyboardInterrupt
    └── RunInterrupted         a run interrupted by Ctrl-C or a kernel's stop button

Warnings::

    UserWarning
    └── FlowlabWarning
        ├── DictReturnWarning  a context-only step returned a dict that looks like an update
        ├── NotMergedWarning   branches wrote fields outside their step's include_keys
        └── CancelNotMatchedWarning  handle.cancel(name) named no branch the run queued

Backends add their own, e.g. ``flowlab.backends.WorkerLost`` (a Dask worker died mid-step).

Errors raised by a run carry the partial :class:`~flowlab.results.record.RunResult` as ``.result``
(``None`` until the run attaches it), so a failed run still yields its frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowlab.results.record import RunResult

__all__ = [
    "BookkeepingError",
    "BranchFailed",
    "CancelNotMatchedWarning",
    "ChargeRefused",
    "ConfigError",
    "DeadlockDetected",
    "DictReturnWarning",
    "FlowlabError",
    "FlowlabWarning",
    "IsolationBreach",
    "MergeConflict",
    "MergeValidationError",
    "NotMergedWarning",
    "RunCancelled",
    "RunInterrupted",
    "RunNotFinished",
    "StepFailed",
    "StepTimeout",
    "UsageLimitExceeded",
    "check_one_of",
]


class FlowlabError(Exception):
    """Root of every error flowlab raises.

    Attributes
    ----------
    result : RunResult or None
        The partial result of the run that raised, when there was a run.
    """

    result: RunResult | None

    def __init__(self, message: str, *, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class ConfigError(FlowlabError, ValueError):
    """A bad argument: the message names the parameter, the bad value and the valid choices.

    Also a :class:`ValueError`, so code that guards with ``except ValueError`` keeps working.
    """


class MergeConflict(FlowlabError):
    """Two branches changed one path to different values under ``error_on_conflict``.

    Attributes
    ----------
    path : str
        Dotted field path, e.g. ``"scores.alice"``.
    values : dict
        ``{branch: value}`` for every branch that wrote the path.
    report : list of dict
        The merge rows computed before the conflict was found (nothing was applied).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        values: dict[str, Any] | None = None,
        report: Sequence[dict[str, Any]] | None = None,
        result: RunResult | None = None,
    ) -> None:
        super().__init__(message, result=result)
        self.path = path
        self.values = dict(values or {})
        self.report = list(report or [])

    @property
    def branches(self) -> list[str]:
        """The branches that wrote the conflicting path."""
        return list(self.values)


class MergeValidationError(FlowlabError):
    """The merged context failed the context model's validation; the parent is unchanged.

    Attributes
    ----------
    report : list of dict
        The merge rows that produced the invalid context.
    """

    def __init__(
        self,
        message: str,
        *,
        report: Sequence[dict[str, Any]] | None = None,
        result: RunResult | None = None,
    ) -> None:
        super().__init__(message, result=result)
        self.report = list(report or [])


class BranchFailed(FlowlabError):
    """One or more branches raised; ``.errors`` maps branch name to its exception."""

    def __init__(
        self,
        message: str,
        *,
        step: str = "",
        errors: dict[str, BaseException] | None = None,
        result: RunResult | None = None,
    ) -> None:
        super().__init__(message, result=result)
        self.step = step
        self.errors = dict(errors or {})

    @property
    def branch(self) -> str | None:
        """The first branch that failed (in declared order), if any."""
        return next(iter(self.errors), None)


class StepFailed(BranchFailed):
    """A step outside any branch raised; ``.step`` names it, ``.errors`` maps it to the error.

    A :class:`BranchFailed` too, so ``except BranchFailed`` keeps catching every step failure.
    """


class BookkeepingError(FlowlabError):
    """What a branch changed could not be diffed or recorded; the branch failed with this.

    The branch's own work is done, but flowlab cannot say what it changed (a value that contains
    itself, one nested deeper than Python can walk, a comparison that raises), so it is not
    merged. The original exception is chained as ``__cause__``.

    Attributes
    ----------
    branch : str
        The branch's path, e.g. ``"fanout:a"``.
    path : str
        The field path whose value could not be handled (``"scores.alice"``), or ``""`` if unknown.
    stage : str
        ``"diff"`` (finding the changes) or ``"record"`` (copying them for the frames).
    """

    def __init__(
        self,
        message: str,
        *,
        branch: str = "",
        path: str = "",
        stage: str = "",
        result: RunResult | None = None,
    ) -> None:
        super().__init__(message, result=result)
        self.branch = branch
        self.path = path
        self.stage = stage


class IsolationBreach(FlowlabError):
    """A branch of an ``isolation="cow"`` step wrote into the data its siblings share.

    Copy-on-write branches share the step's context until they write, and every write through
    Python reaches the branch's own copy. Code that reads a list's storage directly can still
    hand out a shared item (``heapq.heappop``, ``numpy.array(list_of_dicts)``, pydantic validating
    a ``list[Any]`` or models already built); mutating *that* item writes into the shared context.
    The step checks its context when its branches end: if it changed, the step fails with this
    error, nothing is merged, and the context is put back as it was before the step. Siblings may
    have read the changed data, so their results are not merged either. ``isolation="eager"``
    (the default) gives every branch a full copy instead.

    Attributes
    ----------
    step : str
        The step whose shared context changed.
    fields : list of str
        The context fields that changed.
    """

    def __init__(
        self,
        message: str,
        *,
        step: str = "",
        fields: Sequence[str] = (),
        result: RunResult | None = None,
    ) -> None:
        super().__init__(message, result=result)
        self.step = step
        self.fields = list(fields)


class StepTimeout(FlowlabError, TimeoutError):
    """A step, branch or run exceeded its timeout (seconds, on the run's clock)."""

    def __init__(
        self,
        message: str,
        *,
        step: str = "",
        timeout: float | None = None,
        result: RunResult | None = None,
    ) -> None:
        super().__init__(message, result=result)
        self.step = step
        self.timeout = timeout


class UsageLimitExceeded(FlowlabError):
    """A charge crossed the run's shared :class:`~flowlab.core.usage.UsageLimits`.

    Attributes
    ----------
    branch : str or None
        The branch whose charge crossed the limit.
    limit : str
        ``"cost"`` or ``"tokens"``.
    totals : dict
        Exact totals after the crossing charge (``{"cost": ..., "tokens": ...}``).
    """

    def __init__(
        self,
        message: str,
        *,
        branch: str | None = None,
        limit: str = "",
        totals: dict[str, float] | None = None,
        result: RunResult | None = None,
    ) -> None:
        super().__init__(message, result=result)
        self.branch = branch
        self.limit = limit
        self.totals = dict(totals or {})


class ChargeRefused(FlowlabError):
    """``fl.charge`` was called for a branch, or a run, that had already ended.

    A sync step cancelled while in its thread, or a task a step spawned and forgot, may go on
    after its branch ended; its charges are refused (in that thread or task), so a run's totals
    always equal the sum of its branch rows.
    """


class DeadlockDetected(FlowlabError):
    """A watched group of tasks can never make progress; ``.report`` explains the cycle."""

    def __init__(self, message: str, *, report: Any = None, result: RunResult | None = None):
        super().__init__(message, result=result)
        self.report = report


class RunCancelled(FlowlabError):
    """The whole run was cancelled (``handle.cancel()``, or an interrupted notebook cell)."""


class RunInterrupted(KeyboardInterrupt):
    """A run interrupted by Ctrl-C or a kernel's stop button (or a step that raised
    ``KeyboardInterrupt``): every branch was cancelled, the partial result is kept.

    A :class:`KeyboardInterrupt` (``except KeyboardInterrupt`` catches it), never a
    :class:`FlowlabError`. IPython shows it as its one line, without the frames of
    nest-asyncio2, asyncio and selectors the interrupt passed through (``_render_traceback_``).
    In async code (``await fl.arun``, ``await handle``) the interrupt cancelled a task, so what
    propagates is the :class:`asyncio.CancelledError` asyncio's timeouts and task groups need,
    with this error as its ``__cause__`` and shown as the same line.

    Attributes
    ----------
    result : RunResult or None
        The partial result, also ``fl.last_result()``.
    """

    result: RunResult | None

    def __init__(self, message: str, *, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.result = result

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class FlowlabWarning(UserWarning):
    """Root of the warnings flowlab gives (filter them all with
    ``warnings.simplefilter("ignore", fl.FlowlabWarning)``)."""


class DictReturnWarning(FlowlabWarning):
    """A step that gets the context alone returned a plain ``dict`` that looks like an update
    (every key names a context field, and the context does not hold those values): the dict is
    the step's output and is not applied. Return :class:`flowlab.Update` to write fields."""


class NotMergedWarning(FlowlabWarning):
    """Branches of a Parallel wrote fields outside its ``include_keys``: those writes were not
    merged (each is an event ``write_not_merged`` in ``result.events``)."""


class CancelNotMatchedWarning(FlowlabWarning):
    """A run ended ok, yet ``handle.cancel(name)`` asked for a branch that was never queued (a
    mistyped name, a Map item that does not exist): nothing was cancelled. Each such name is
    also an event ``cancel_unmatched`` in ``result.events``."""


class RunNotFinished(FlowlabError, RuntimeError):
    """``RunHandle.result()`` was called while the run (a task on the caller's loop) is still
    going. Also a :class:`RuntimeError`, which it used to be."""


def check_one_of(param: str, value: Any, choices: Iterable[Any], *, hint: str = "") -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``.

    Examples
    --------
    >>> check_one_of("order", "declared", ["declared", "completion"])
    >>> check_one_of("order", "random", ["declared", "completion"])
    Traceback (most recent call last):
    ...
    flowlab.errors.ConfigError: order='random' is not valid; choose one of 'declared', 'completion'.
    """
    options = list(choices)
    if value in options:
        return
    listed = ", ".join(repr(c) for c in options)
    message = f"{param}={value!r} is not valid; choose one of {listed}."
    if hint:
        message += f" HINT: {hint}"
    raise ConfigError(message)
