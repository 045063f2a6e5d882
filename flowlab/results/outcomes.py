"""Per-branch results: ``result.outputs`` and ``result.errors``, by branch path.

Each Parallel run hands the recorder its own ``{branch: output}`` and ``{branch: error}`` dicts
once, when it starts (:attr:`~flowlab.results.recorder.Recorder.branch_results`); the branches fill them as
they end, as they always did. Nothing is added per branch on the hot path: the mappings below are
built from those dicts when ``result.outputs`` or ``result.errors`` is first read.

Keys are branch paths as in ``result.branches["path"]`` (``"fan:a"``; nested:
``"fan:a/inner:x"``), in the order of that frame. A bare branch name works too where it is unique
in the run (``result.errors["a"]``).

* ``outputs``: every branch that returned (status ``ok``) → what it returned (a branch that is a
  Pipeline: its last step's output; a step that returned ``fl.Update``: the Update).
* ``errors``: every failed or timed-out branch → the exception object itself (``on_failure=
  "ignore"`` included, where nothing is raised), with its traceback — not only the string in
  ``result.branches["error"]``. A branch whose bookkeeping failed has its
  :class:`~flowlab.errors.BookkeepingError`. Cancelled branches raised nothing of their own and are
  not in it; their reason is in ``result.branches["reason"]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from flowlab.results.recorder import Recorder

__all__ = ["BranchMap", "branch_errors", "branch_outputs"]

V = TypeVar("V")


class BranchMap(Mapping[str, V]):
    """A read-only mapping by branch path that also takes a bare branch name when it is unique.

    Examples
    --------
    >>> m = BranchMap({"fan:a": 1, "fan:b": 2}, what="outputs")
    >>> m["fan:a"], m["b"], list(m)
    (1, 2, ['fan:a', 'fan:b'])
    >>> m["c"]
    Traceback (most recent call last):
    ...
    KeyError: "no branch 'c' in outputs; the keys are 'fan:a', 'fan:b'"
    """

    def __init__(self, items: dict[str, V], *, what: str) -> None:
        self._items = items
        self._what = what

    def __getitem__(self, key: str) -> V:
        try:
            return self._items[key]
        except KeyError:
            pass
        tail = f":{key}"
        hits = [p for p in self._items if p.endswith(tail)]
        if len(hits) == 1:
            return self._items[hits[0]]
        listed = ", ".join(repr(p) for p in list(self._items)[:20]) or "none"
        if len(self._items) > 20:
            listed += f" and {len(self._items) - 20:,} more"
        if hits:
            raise KeyError(
                f"branch {key!r} is ambiguous in {self._what}; give one of its paths: {listed}"
            )
        raise KeyError(f"no branch {key!r} in {self._what}; the keys are {listed}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"BranchMap({self._items!r})"


def branch_outputs(recorder: Recorder) -> BranchMap[Any]:
    """``{branch path: output}`` of every branch that returned, in ``result.branches`` order."""
    return BranchMap(_collect(recorder, errors=False), what="outputs")


def branch_errors(recorder: Recorder) -> BranchMap[BaseException]:
    """``{branch path: exception}`` of every failed or timed-out branch."""
    return BranchMap(_collect(recorder, errors=True), what="errors")


def _collect(recorder: Recorder, errors: bool) -> dict[str, Any]:
    # the latest run of each Parallel path (a path runs once, unless a retry runs it again)
    by_step: dict[str, dict[str, Any]] = {
        path: errs if errors else outs for path, outs, errs in recorder.branch_results
    }
    out: dict[str, Any] = {}
    for brec in recorder.branches:
        step = f"{brec.parent}/{brec.step}" if brec.parent else brec.step
        found = by_step.get(step)
        if found is not None and brec.branch in found:
            out[brec.path] = found[brec.branch]
    return out
