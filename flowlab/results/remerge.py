"""What-if re-merge: apply a finished run's recorded branch diffs under another strategy.

:meth:`flowlab.RunResult.remerge` calls :func:`remerge`. A top-level Parallel step keeps, when it
reaches its merge, a copy of its base context, its successful branches in merge order and its
merge (see ``Recorder.add_merge_input``); each branch's diff is in the recorder already. The
merge is a function of exactly those, so merging them again under another strategy (or other
field rules) gives the context a run with that strategy would have merged, without running a
branch again.

It is exact, or it refuses (:class:`~flowlab.ConfigError`, saying why):

* a merge *function* needs the branches' whole contexts, which a run does not keep;
* a step that ran after the re-merged one worked on the old merged context: its effect cannot be
  replayed, so only a run's last step (or the step where the run stopped) can be re-merged;
* a Parallel inside a branch changed that branch's diff for its parent: not replayed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flowlab.core.context.copying import copy_value
from flowlab.core.context.isolation import isolate
from flowlab.core.merge import MergeSpec, Rule, merge_branches, resolve
from flowlab.errors import ConfigError, FlowlabError, MergeConflict, MergeValidationError

if TYPE_CHECKING:
    from flowlab.results.record import RunResult
    from flowlab.results.recorder import Recorder

__all__ = ["remerge"]


def remerge(
    result: RunResult,
    merge: Any = None,
    *,
    step: str | None = None,
    rules: Mapping[str, Rule] | None = None,
    raise_on_error: bool = True,
) -> RunResult:
    """See :meth:`flowlab.RunResult.remerge`."""
    recorder = result.recorder
    inputs = recorder.merge_inputs
    step = _pick_step(result, step)
    recorded = inputs[step]
    if merge is None:
        spec: MergeSpec = recorded.spec
    else:
        if callable(merge) and not isinstance(merge, Rule | type):
            raise ConfigError(
                f"merge={merge!r}: a merge function needs every branch's whole context, which a "
                "run does not keep; remerge replays recorded diffs. HINT: pick a strategy name "
                "or a rule, or re-run with fl.run(...)."
            )
        spec = resolve(merge)
    if spec.fn is not None:
        raise ConfigError(
            f"step {step!r} merges with a function ({spec.name}), which needs the branches' "
            "whole contexts; remerge can only replay strategies and rules."
        )
    diffs = {
        rec.branch: list(changes)
        for s, rec, changes in recorder.diffs
        if s == step and not rec.parent and rec.branch in recorded.order  # (the top level's)
    }
    # The merge builds its context from this base and shares what it does not write: a copy,
    # so a remerged context never shares objects with the record (a later remerge) or the run.
    memo: dict[int, Any] = {}
    base = isolate(recorded.base)
    if recorded.include_keys is not None:  # the fields the merge never writes: the run's own
        kept = {
            k: copy_value(v, memo)
            for k, v in result.context.__dict__.items()
            if k not in recorded.include_keys
        }
        base = base.model_copy(update=kept)
    branches = [(name, base) for name in recorded.order]
    try:
        outcome = merge_branches(
            base,
            branches,
            spec,
            diffs={name: diffs.get(name, []) for name in recorded.order},
            fields=recorded.include_keys,
            step=step,
            rules=rules,
        )
    except (MergeConflict, MergeValidationError) as err:
        rows = list(getattr(err, "report", []))
        new = _result(result, step, rows, base, "failed", err)
        err.result = new
        if raise_on_error:
            raise
        return new
    ok = result.status == "ok" or _stopped_at_merge(result, step)
    status = "ok" if ok else result.status
    error = None if ok else result.error
    return _result(result, step, outcome.rows, outcome.context, status, error)


def _pick_step(result: RunResult, step: str | None) -> str:
    inputs = result.recorder.merge_inputs
    tops = [s.path for s in result.recorder.steps if not s.parent]
    if step is None:
        if len(inputs) != 1:
            choices = ", ".join(map(repr, inputs)) or "none"
            raise ConfigError(
                f"step=None: this run has {len(inputs)} re-mergeable Parallel steps ({choices}); "
                "name one with step=..."
            )
        step = next(iter(inputs))
    if step in result.recorder.unmergeable:
        raise ConfigError(
            f"step={step!r} cannot be re-merged: {result.recorder.unmergeable[step]}."
        )
    if step not in inputs:
        nested = any(s.path.endswith(f"/{step}") or s.step == step for s in result.recorder.steps)
        why = (
            "it runs inside a branch (its merge changed that branch's diff for the parent)"
            if nested and step not in tops
            else "it never reached its merge (a branch failed, it timed out or was cancelled) "
            "or it merges with a function"
            if step in tops
            else "no such step"
        )
        choices = ", ".join(map(repr, inputs)) or "none"
        raise ConfigError(f"step={step!r} cannot be re-merged: {why}. Re-mergeable: {choices}.")
    later = tops[tops.index(step) + 1 :] if step in tops else []
    if later:
        raise ConfigError(
            f"step={step!r} cannot be re-merged exactly: step(s) {', '.join(map(repr, later))} "
            "ran after it on its merged context, and their effect cannot be replayed. HINT: "
            "re-merge the run's last step, or re-run with fl.run(...)."
        )
    return step


def _stopped_at_merge(result: RunResult, step: str) -> bool:
    """Whether the run failed at this step's merge (so a merge that now succeeds ends it ok)."""
    err = result.error
    return isinstance(err, MergeConflict | MergeValidationError) and str(err).startswith(
        f"step {step!r}"
    )


def _result(
    result: RunResult,
    step: str,
    rows: Sequence[dict[str, Any]],
    context: Any,
    status: str,
    error: FlowlabError | BaseException | None,
) -> RunResult:
    recorder: Recorder = _copy_recorder(result.recorder)
    recorder.merges = [m for m in recorder.merges if m[0] != step or m[2]]  # (top level only)
    recorder.add_merge(step, rows)
    extra = {**result.extra, "remerged": step}
    return dataclasses.replace(
        result, context=context, status=status, error=error, recorder=recorder, extra=extra
    )


def _copy_recorder(recorder: Recorder) -> Recorder:
    import copy

    new = copy.copy(recorder)
    new.merges = list(recorder.merges)
    return new
