"""flowlab's deadlock verdicts against an independent model: the same programs on plain asyncio.

Random programs (:mod:`random_programs`: locks, a semaphore or bounded semaphore of 1-2 permits,
events with ``clear``, a condition with ``notify(n)`` / ``notify_all`` / bare ``wait``, a signal
semaphore, ``wait_for`` and ``asyncio.timeout`` deadlines, cancellation while queued on a lock,
spawned tasks, nested ``gather`` and ``TaskGroup``) run twice: on flowlab's traced primitives and
on asyncio's own, on a loop of our own with virtual time and a hang check that needs no clock
(:mod:`asyncio_model`: nothing ready and no timer left).

* On asyncio's FIFO schedule, ``supervise`` must call a deadlock exactly when the model hangs,
  and otherwise end with the same log; a reported cycle must name the tasks and locks that the
  program's own bookkeeping says wait for and hold each other, and every task it calls stuck
  must be blocked for good in the model.
* Over every interleaving, ``explore`` (``"exhaustive"`` and ``"dpor"``, no bound, ``watch``
  inside) must reach exactly the model's end states -- each finished log, a hang, an exception
  type -- and the detector must prove every hang the explorer reaches.

``FLOWLAB_DEADLOCK_MODEL_EXAMPLES`` sets how many programs the FIFO check runs (default 300; the
interleavings check runs a thirtieth of that, at least 10): e.g. ``=3000`` for a long run.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncio_model
import pytest
import random_programs as rp

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual

EXAMPLES = int(os.environ.get("FLOWLAB_DEADLOCK_MODEL_EXAMPLES", "300"))
SMALL = max(EXAMPLES // 30, 10)


def _plain(spec: rp.Spec, box: dict[str, Any]) -> asyncio_model.Program:
    async def main() -> tuple[str, ...]:
        coros, names, p = rp.build(spec, traced=False)
        box["p"] = p
        tasks = [asyncio.create_task(c, name=n) for c, n in zip(coros, names, strict=True)]
        await asyncio.gather(*tasks)
        return tuple(p.log)

    return main


def _model_fifo(spec: rp.Spec) -> tuple[asyncio_model.End, dict[str, Any]]:
    box: dict[str, Any] = {}

    def at_hang(blocked: list[str], cancelled: list[str]) -> None:
        p = box["p"]
        box.update(blocked=blocked, cancelled=cancelled, holder=dict(p.holder))
        box["waiting"] = dict(p.waiting)
        box["sem"] = list(p.sem_holders)

    return asyncio_model.outcome(_plain(spec, box), on_hang=at_hang), box


def _traced_fifo(spec: rp.Spec) -> tuple[dl.DeadlockReport | None, Any]:
    async def main() -> tuple[dl.DeadlockReport | None, Any]:
        coros, names, p = rp.build(spec, traced=True)
        try:
            _, report = await dl.supervise(*coros, names=names)
        except Exception as err:  # a task raised: supervise raises it, as gather would
            return None, f"failed:{type(err).__name__}"
        return report, ("ok", tuple(p.log))

    return run_virtual(main())


def _check_cycle(report: dl.DeadlockReport, state: dict[str, Any]) -> None:
    """Each task -> lock -> task step of the cycle, against the program's own bookkeeping."""
    cycle = report.cycle
    for i in range(0, len(cycle) - 2, 2):
        task, resource, nxt = cycle[i], cycle[i + 1], cycle[i + 2]
        if resource.startswith("Lock 'L"):
            lock = resource[len("Lock '") : -1]
            assert state["waiting"].get(task) == lock, (task, resource, state)
            assert state["holder"].get(lock) == nxt, (resource, nxt, state)
        elif resource == "Semaphore 'S'" and not report.waits[0].known:
            assert nxt in state["sem"] or nxt in state["blocked"], (resource, nxt, state)
        elif resource == "Semaphore 'S'":
            assert nxt in state["sem"], (resource, nxt, state)


@pytest.mark.parametrize("seed", range(EXAMPLES))
def test_on_asyncios_schedule_flowlab_calls_a_deadlock_exactly_when_asyncio_hangs(
    seed: int,
) -> None:
    spec = rp.program(seed)
    model, state = _model_fifo(spec)
    report, end = _traced_fifo(spec)
    if model == "hang":
        assert report is not None and report.deadlocked, (spec, end)
        # stuck for good in the model, or cancelled by a task that was still running: a task
        # waiting on a resource that will never be free is stuck unless someone cancels it
        assert set(report.stuck) <= {*state["blocked"], *state["cancelled"]}, report.explain()
        _check_cycle(report, state)
    else:
        assert report is None or not report.deadlocked, (spec, report.explain())
        assert end == model, spec


def _traced_ends(spec: rp.Spec, strategy: str, limit: int) -> tuple[set[Any] | None, Any]:
    ends: list[Any] = []

    async def main() -> None:
        coros, names, p = rp.build(spec, traced=True)
        try:
            await dl.watch(*coros, names=names)
        except dl.DeadlockDetected:
            ends.append("hang")
            raise
        except Exception as err:
            ends.append(f"failed:{type(err).__name__}")
            raise
        ends.append(("ok", tuple(p.log)))

    found = dl.explore(main, strategy=strategy, preemption_bound=None, max_schedules=limit)
    if not found.exhausted:
        return None, found
    assert found.deadlocks == ends.count("hang"), "a global hang the detector did not prove"
    assert found.step_limits == 0
    return set(ends), found


def test_over_every_interleaving_flowlab_reaches_exactly_what_asyncio_reaches() -> None:
    compared, seed = 0, 10_000
    while compared < SMALL:
        seed += 1
        assert seed < 10_000 + 20 * SMALL, f"only {compared} programs small enough"
        spec = rp.program(seed, most=2)
        model, _ = asyncio_model.all_outcomes(_plain(spec, {}), limit=150)
        if model is None:
            continue  # too many interleavings for the fast lane: the next seed
        full, found = _traced_ends(spec, "exhaustive", 2_000)
        if full is None:
            continue
        assert full == model, (seed, spec, found.summary())
        reduced, found = _traced_ends(spec, "dpor", 2_000)
        assert reduced == model, (seed, spec, found.summary())
        compared += 1
