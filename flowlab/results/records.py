"""What a run records, one small object per thing: branches, steps, attempts, merge inputs.

:class:`BranchRecord`, :class:`StepRecord` and :class:`AttemptRecord` are filled by the engine as
things happen (times in seconds from the run's start, on the run's clock); :func:`snapshot` copies
a recorded value so the frames show what it was then, and :func:`unwalkable` says why a value
cannot be walked (it holds itself, or is nested too deep).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from flowlab.core.context.copying import snapshot

__all__ = [
    "RUN_STATUSES",
    "STATUSES",
    "AttemptRecord",
    "BranchRecord",
    "MergeInput",
    "StepRecord",
    "snapshot",
    "unwalkable",
]


STATUSES: tuple[str, ...] = ("ok", "failed", "cancelled", "timeout", "queued", "running")
RUN_STATUSES: tuple[str, ...] = ("ok", "failed", "cancelled", "timeout", "usage_limit_exceeded")


@dataclass(slots=True)
class BranchRecord:
    """What happened to one branch run (times in seconds from run start)."""

    step: str
    branch: str
    path: str
    parent: str
    priority: float
    queued: float
    started: float = math.nan
    finished: float = math.nan
    status: str = "queued"
    error: str = ""
    rank: int | None = None
    cost: float = 0.0
    tokens: int = 0
    worker: str = ""
    reason: str = ""


@dataclass(slots=True)
class StepRecord:
    """What happened to one step run."""

    step: str
    path: str
    kind: str
    parent: str
    started: float
    finished: float = math.nan
    queued: float = math.nan
    status: str = "running"
    error: str = ""
    merge_s: float = math.nan
    peak: int | None = None
    limit: str = ""
    isolation: str = ""  # a Parallel's: "eager" or "cow", as its branches got their contexts


@dataclass(slots=True)
class AttemptRecord:
    """One attempt of a leaf step that has a retry policy (times in seconds from run start).

    ``delay`` is the backoff waited before this attempt (0 for the first); ``cost`` and
    ``tokens`` are what the attempt charged (a failed attempt's charges count too).
    """

    step: str
    path: str
    branch: str
    attempt: int
    delay: float
    started: float
    finished: float = math.nan
    status: str = "running"
    error: str = ""
    cost: float = 0.0
    tokens: int = 0


_ATOMIC: frozenset[type] = frozenset({int, float, str, bool, type(None), bytes, complex})


@dataclass(frozen=True)
class MergeInput:
    """What one Parallel's merge started from: a copy of the base context, the successful
    branches in merge order, the step's merge (a ``MergeSpec``) and its ``include_keys``."""

    base: BaseModel
    order: list[str]
    spec: Any
    include_keys: Sequence[str] | None


def unwalkable(value: Any) -> str:
    """Why walking ``value`` recursively fails: ``"contains itself"``, ``"is nested N levels
    deep"``, or ``""`` when it does neither.

    :func:`snapshot`, the diff and ``==`` walk dicts, lists, tuples, sets and models recursively;
    a value that holds itself, or one nested about as deep as Python's recursion limit, makes
    them raise ``RecursionError``. This walk is iterative, so it can say which of the two it was.
    Only called after such an error: it costs one pass over the value.

    Examples
    --------
    >>> loop = [1]
    >>> loop.append(loop)
    >>> unwalkable(loop), unwalkable({"a": [1, {"b": 2}]})
    ('contains itself', '')
    """
    deepest = 0
    on_path: set[int] = set()  # ids of the containers between the root and the current one
    stack: list[tuple[Any, int, bool]] = [(value, 0, False)]
    budget = 1_000_000  # containers visited at most (values shared many times over are a DAG)
    while stack and budget:
        obj, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(obj))
            continue
        if isinstance(obj, dict):
            kids: Any = obj.values()
        elif isinstance(obj, list | tuple | set | frozenset):
            kids = obj
        elif isinstance(obj, BaseModel):
            kids = obj.__dict__.values()
        else:
            continue
        if id(obj) in on_path:
            return "contains itself"
        deepest = max(deepest, depth)
        budget -= 1
        on_path.add(id(obj))
        stack.append((obj, depth, True))
        stack.extend((kid, depth + 1, False) for kid in kids)
    return f"is nested {deepest + 1} levels deep" if deepest >= 100 else ""
