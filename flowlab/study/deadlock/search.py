"""Bounded depth-first search over choice points, with optional partial-order reduction.

Design
------
:class:`Search` keeps a stack of choice points (one :class:`Node` each): the ready tasks, the
index chosen, the alternatives still to try. After every run it absorbs the new choice points,
then changes the deepest one that has an untried alternative within the bounds; the next run
replays the shared prefix exactly (runs are deterministic) and continues with the default choice.

**Bounds** (both optional, both may apply):

* ``preemption_bound`` -- CHESS preemption bounding. At a choice point the task that ran the
  previous step may still be ready: continuing it is free, switching away from it costs one
  preemption. When it blocked or finished, every choice is free. The default choice beyond the
  prefix is the free one, so the first run preempts nothing. A lost update that needs one
  preemption is found with ``preemption_bound=1``.
* ``delay_bound`` -- delay bounding against asyncio's FIFO order: choosing index 0 (what asyncio
  would run) is free, any other index costs one delay.

**Reduction** (``reduce=True``, the ``"dpor"`` strategy) in the style of Flanagan-Godefroid: an
alternative is added at a choice point only when a later step of another task *conflicts* with
the step scheduled there and the two may be reordered (vector clocks: it does not already happen
before). Two steps of different tasks conflict when they touch the same traced resource and not
both only read it (``Shared.get``). A step may also have used untraced shared state (a plain
``int``, a dict) -- unless ``assume_traced`` is set, any step that did not begin with a traced
primitive's wake-up (a task's first step, one after ``sleep``, I/O, a plain future or another
task) or that touched nothing traced conflicts with every step of every other task, so the
search degrades toward exhaustive instead of missing the bug. What the reduction still assumes
is listed by :meth:`Search.assumptions`; ``tests/deadlock/test_dpor_vs_exhaustive.py`` checks
that it reaches every end state exhaustive search reaches.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from flowlab.study.deadlock.runner import Outcome
from flowlab.study.deadlock.scheduler import Step, preempts

__all__ = ["Node", "Search", "free_choice"]


@dataclass(slots=True)
class Node:
    """One choice point on the search stack."""

    options: list[int]
    chosen: int
    prev: int | None
    todo: list[int]
    done: list[int]


def free_choice(options: list[int], prev: int | None) -> int:
    """The choice that costs no preemption: continue ``prev`` if ready, else asyncio's FIFO pick."""
    return options.index(prev) if prev is not None and prev in options else 0


class Search:
    """Bounded DFS over choice points; with ``reduce``, alternatives only where steps conflict."""

    def __init__(
        self,
        *,
        reduce: bool,
        preemption_bound: int | None = None,
        delay_bound: int | None = None,
        assume_traced: bool = False,
    ) -> None:
        self.reduce = reduce
        self.preemption_bound = preemption_bound
        self.delay_bound = delay_bound
        self.assume_traced = assume_traced
        self.stack: list[Node] = []

    @property
    def prefix(self) -> list[int]:
        return [n.chosen for n in self.stack]

    def default(self, options: list[int], prev: int | None) -> int:
        """The choice beyond the prefix: free under preemption bounding, else FIFO."""
        return free_choice(options, prev) if self.preemption_bound is not None else 0

    def choose(self, point: int, options: list[int], prev: int | None) -> int:
        """A chooser for :func:`~flowlab.study.deadlock.runner.run_schedule`: prefix, then default."""
        stack = self.stack
        return stack[point].chosen if point < len(stack) else self.default(options, prev)

    def assumptions(self) -> list[str]:
        """What a finished reduced search took for granted (empty for a plain bounded search)."""
        if not self.reduce:
            return []
        if self.assume_traced:
            return [
                "all shared state is traced (assume_traced=True): steps that touch no traced "
                "primitive or Shared variable were taken to commute"
            ]
        return [
            "a step that a traced primitive woke and that uses a traced primitive touches no "
            "untraced shared state (every other step -- a task's first, one after sleep, I/O, "
            "a plain future or another task, one touching nothing traced -- was treated as "
            "conflicting with every step of every other task)"
        ]

    # ------------------------------------------------------------------ costs
    def _within(self, node: Node, index: int) -> bool:
        preemptions = delays = 0
        for n in self.stack:
            i = index if n is node else n.chosen
            preemptions += preempts(n.options, n.prev, i)
            delays += i != 0
            if n is node:
                break
        if self.preemption_bound is not None and preemptions > self.preemption_bound:
            return False
        return self.delay_bound is None or delays <= self.delay_bound

    # ------------------------------------------------------------------ search
    def advance(self, outcome: Outcome) -> bool:
        """Absorb a finished run; set up the next prefix; False when the space is exhausted."""
        for point in outcome.points[len(self.stack) :]:
            every = list(range(len(point.options)))
            todo = [point.chosen] if self.reduce else every
            self.stack.append(Node(point.options, point.chosen, point.prev, todo, [point.chosen]))
        if self.reduce:
            self._races(outcome.trace)
        while self.stack:
            node = self.stack[-1]
            for i in node.todo:
                if i not in node.done and self._within(node, i):
                    node.done.append(i)
                    node.chosen = i
                    return True
            self.stack.pop()
        return False

    def _races(self, trace: list[Step]) -> None:
        """Add a backtrack point for every pair of conflicting steps that may be reordered.

        Vector clocks track happens-before (program order plus conflicts): a conflicting earlier
        step that already happens before the task's current step cannot be reordered with it
        (Flanagan-Godefroid), so it adds nothing.
        """
        clocks: list[dict[int, int]] = []
        positions: dict[int, list[int]] = {}  # task -> indices of its steps so far
        after: dict[int, dict[int, int]] = {}  # task -> clock after its last step
        writer: dict[str, int] = {}  # resource -> last step that wrote it
        readers: dict[str, dict[int, int]] = {}  # resource -> {task: last read since that write}
        last: dict[int, int] = {}  # task -> its last step
        blind: dict[int, int] = {}  # task -> its last step that may touch untraced state
        for i, step in enumerate(trace):
            task = step.task
            untraced = not (step.resources and step.traced_wake) and not self.assume_traced
            deps = [j for t, j in (last if untraced else blind).items() if t != task]
            for resource in step.resources:
                w = writer.get(resource)
                if w is not None and trace[w].task != task:
                    deps.append(w)
                if resource not in step.reads:
                    deps += [j for t, j in readers.get(resource, {}).items() if t != task]
            mine = after.get(task, {})
            clock = dict(mine)
            for j in deps:
                for t, v in clocks[j].items():
                    if clock.get(t, 0) < v:
                        clock[t] = v
            clock[task] = mine.get(task, 0) + 1

            def leads(other: int, j: int, clock: dict[int, int] = clock) -> bool:
                """Some step of ``other`` after step j happens before this step."""
                steps = positions.get(other, [])
                n = bisect.bisect_right(steps, j)
                return n < len(steps) and clocks[steps[n]][other] <= clock.get(other, 0)

            for j in deps:
                other = trace[j].task
                if mine.get(other, 0) < clocks[j][other]:  # j does not happen before us
                    self._backtrack(trace, j, task, leads)
            clocks.append(clock)
            after[task] = clock
            positions.setdefault(task, []).append(i)
            for resource in step.resources:
                if resource in step.reads:
                    readers.setdefault(resource, {})[task] = i
                else:
                    readers.pop(resource, None)
                    writer[resource] = i
            last[task] = i
            if untraced:
                blind[task] = i

    def _backtrack(
        self, trace: list[Step], j: int, task: int, leads: Callable[[int, int], bool]
    ) -> None:
        """Try ``task`` at the choice point that scheduled step j (or the closest one before).

        When ``task`` was not ready there, try one ready task that has a step after j leading
        (happens-before) to the racing step -- running it first is how ``task`` gets there
        sooner -- or, if none does, every ready task (Flanagan-Godefroid).
        """
        for k in range(j, -1, -1):
            point = trace[k].point
            if point is None or point >= len(self.stack):
                continue
            node = self.stack[point]
            if task in node.options:
                wanted = [node.options.index(task)]
            else:
                first = [n for n, q in enumerate(node.options) if k == j and leads(q, j)][:1]
                wanted = first or list(range(len(node.options)))
            for i in wanted:
                if i not in node.todo:
                    node.todo.append(i)
            self._free_backtrack(point, task)
            return

    def _free_backtrack(self, point: int, task: int) -> None:
        """Bounded DPOR (Coons et al. 2013): the switch at ``point`` may be out of the preemption
        bound, so also try ``task`` at the latest earlier point where running it is free."""
        if self.preemption_bound is None:
            return
        for node in reversed(self.stack[:point]):
            if task in node.options and not preempts(node.options, node.prev, 0):
                index = node.options.index(task)
                if index not in node.todo:
                    node.todo.append(index)
                return
