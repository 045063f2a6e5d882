"""explain(): one line per task (holds, waits for, where) before the paragraph; awaits have lines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual

_SOURCE = Path(__file__).read_text().splitlines()


def _at(marker: str) -> str:
    """``test_explain_lines.py:N`` of the one line carrying ``# <marker>``."""
    [n] = [i + 1 for i, line in enumerate(_SOURCE) if line.endswith(f"# {marker}")]
    return f"{Path(__file__).name}:{n}"


def _parent_child() -> dl.DeadlockReport:
    sem = dl.Semaphore(1, name="slot")

    async def child() -> None:
        async with sem:  # CHILD-WAIT
            pass

    async def parent() -> None:
        async with sem:  # PARENT-HOLD
            await asyncio.create_task(child(), name="child")  # PARENT-AWAIT

    _, report = run_virtual(dl.supervise(parent()))
    return report


def test_one_line_per_task_comes_before_the_paragraph() -> None:
    text = _parent_child().explain()
    lines = text.split("\n")
    assert lines[:2] == [
        f"task parent: holds Semaphore 'slot' (acquired at {_at('PARENT-HOLD')}); "
        f"awaits task child at {_at('PARENT-AWAIT')}; stuck",
        f"task child: holds nothing; waits for Semaphore 'slot' at {_at('CHILD-WAIT')}; stuck",
    ]
    assert lines[2] == ""
    assert lines[3].startswith("Deadlock detected at t=0.000 s (virtual clock): ")
    assert len(lines) == 4  # the paragraph stays one paragraph


def test_task_awaits_task_edges_and_sentences_carry_the_source_line() -> None:
    report = _parent_child()
    [wait] = [w for w in report.waits if w.kind == "Task"]
    assert wait.where == _at("PARENT-AWAIT")
    [edge] = [e for e in report.edges if e.source == "parent" and e.kind == "waits for"]
    assert (edge.target, edge.where) == ("Task 'child'", _at("PARENT-AWAIT"))
    paragraph = report.explain().split("\n")[-1]
    assert f"task parent awaits task child (waiting at {_at('PARENT-AWAIT')} since" in paragraph


def test_gather_await_lists_every_awaited_task_with_the_gather_line() -> None:
    handles: dict[str, asyncio.Task[None]] = {}

    async def a() -> None:
        await asyncio.sleep(1)
        await handles["b"]  # A-AWAIT

    async def b() -> None:
        await asyncio.sleep(1)
        await handles["a"]  # B-AWAIT

    async def root() -> None:
        handles["a"] = asyncio.create_task(a(), name="a")
        handles["b"] = asyncio.create_task(b(), name="b")
        await asyncio.gather(handles["a"], handles["b"])  # ROOT-AWAIT

    _, report = run_virtual(dl.supervise(root()))
    lines = report.explain().split("\n")
    assert lines[:3] == [
        f"task root: holds nothing; awaits tasks a and b at {_at('ROOT-AWAIT')}; stuck",
        f"task a: holds nothing; awaits task b at {_at('A-AWAIT')}; stuck",
        f"task b: holds nothing; awaits task a at {_at('B-AWAIT')}; stuck",
    ]


def test_healthy_tasks_say_whether_they_finished_or_still_run() -> None:
    left, right = dl.Lock(name="left"), dl.Lock(name="right")

    async def one() -> None:
        async with left:  # ONE-HOLD
            await asyncio.sleep(1)
            async with right:  # ONE-WAIT
                pass

    async def two() -> None:
        async with right:  # TWO-HOLD
            await asyncio.sleep(1)
            async with left:  # TWO-WAIT
                pass

    async def quick() -> int:
        return 1

    async def slow() -> int:
        await asyncio.sleep(5)
        return 5

    results, report = run_virtual(dl.supervise(one(), two(), quick(), slow(), on_deadlock="report"))
    assert results[2:] == [1, 5]
    lines = report.explain().split("\n")
    assert lines[:5] == [
        f"task one: holds Lock 'left' (acquired at {_at('ONE-HOLD')}); "
        f"waits for Lock 'right' at {_at('ONE-WAIT')}; stuck",
        f"task two: holds Lock 'right' (acquired at {_at('TWO-HOLD')}); "
        f"waits for Lock 'left' at {_at('TWO-WAIT')}; stuck",
        "task quick: holds nothing; finished before the deadlock",
        "task slow: holds nothing; not stuck (still running at detection)",
        "",
    ]
    assert "Not stuck: quick, slow." in lines[5]


def test_a_report_without_deadlock_keeps_its_single_line() -> None:
    async def ok() -> None:
        await asyncio.sleep(1)

    _, report = run_virtual(dl.supervise(ok()))
    assert report.explain() == "No deadlock: all 1 tasks finished by t=1.000 s (virtual clock)."


def test_unnamed_child_tasks_are_named_by_their_coroutine_not_task_n() -> None:
    lock = dl.Lock(name="L")

    async def child() -> None:
        async with lock:  # CHILD-LOCK
            pass

    async def parent() -> None:
        async with lock:
            mine = asyncio.create_task(child(), name="mine")
            await asyncio.gather(child(), child(), mine)  # GATHER

    _, report = run_virtual(dl.supervise(parent()))
    assert report.tasks == ["parent", "mine", "child#1", "child#2"]
    lines = report.explain().split("\n")
    assert lines[0].startswith("task parent: holds Lock 'L' (acquired at test_explain_lines.py:")
    assert f"awaits tasks child#1, child#2 and mine at {_at('GATHER')}" in lines[0]
    assert (
        lines[2] == f"task child#1: holds nothing; waits for Lock 'L' at {_at('CHILD-LOCK')}; stuck"
    )
    assert "Task-" not in report.explain()
