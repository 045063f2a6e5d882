"""The default explorer does not miss bugs in untraced state, and says what it assumed (issue 19)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import flowlab.deadlock as dl
from flowlab.study.deadlock.explorer import explore


async def simple_counter() -> int:
    """SCTBench's simpleCounter: a plain int incremented across an await (lost update).

    The second task starts one round later, so asyncio's FIFO order never shows the bug: it needs
    the second task to read before the first one writes back (one preemption).
    """
    count = 0

    async def add(late: int) -> None:
        nonlocal count
        for _ in range(late):
            await asyncio.sleep(0)
        seen = count
        await asyncio.sleep(0)
        count = seen + 1

    await asyncio.gather(add(0), add(1))
    assert count == 2, f"lost update: {count}"
    return count


async def order_violation() -> str:
    """A consumer reads a field the producer has not written yet (CHESS order violation)."""
    box: dict[str, str] = {}

    async def producer() -> None:
        await asyncio.sleep(0)
        box["item"] = "made"

    async def consumer() -> str:
        await asyncio.sleep(0)
        return box["item"]  # KeyError when it runs first

    results = await asyncio.gather(producer(), consumer())
    return str(results[1])


async def confused_counter() -> int:
    """Two tasks increment through a local copy, one of them twice (lost update of a list slot)."""
    cell = [0]

    async def bump(times: int, late: int) -> None:
        for _ in range(late):
            await asyncio.sleep(0)
        for _ in range(times):
            tmp = cell[0]
            await asyncio.sleep(0)
            cell[0] = tmp + 1

    await asyncio.gather(bump(2, 0), bump(1, 2))
    assert cell[0] == 3, f"lost update: {cell[0]}"
    return cell[0]


def _plain(fn: Any) -> Any:
    """The independent model: asyncio's own loop runs the FIFO schedule, which passes."""
    return asyncio.run(fn())


@pytest.mark.parametrize("fn", [simple_counter, order_violation, confused_counter])
def test_the_default_explorer_finds_bugs_in_untraced_state(fn: Any) -> None:
    assert _plain(fn) is not None  # plain asyncio never shows the bug
    found = explore(fn)
    assert found.strategy == "dpor"
    assert found.failures > 0, found.summary()
    failing = found.replay()
    assert failing.status == "failed"
    assert isinstance(failing.error, AssertionError | KeyError)


def test_a_reduced_search_never_claims_to_be_exhaustive() -> None:
    found = explore(simple_counter, stop_on_first=False)
    text = found.summary()
    assert "exhausted" not in text
    assert "assumed" in text and "untraced" in text
    assert found.assumptions and "traced primitive" in found.assumptions[0]
    full = explore(simple_counter, strategy="exhaustive")
    assert "search space exhausted" in full.summary() and full.assumptions == []


async def shared_counter() -> int:
    count = dl.Shared(0, name="count")

    async def add(late: int) -> None:
        for _ in range(late):
            await asyncio.sleep(0)
        seen = count.get()
        await asyncio.sleep(0)
        count.set(seen + 1)

    await asyncio.gather(add(0), add(1))
    assert count.value == 2, f"lost update: {count.value}"
    return count.value


def test_shared_state_is_traced_and_its_lost_update_found() -> None:
    assert _plain(shared_counter) == 2
    found = explore(shared_counter, assume_traced=True)
    assert found.failures > 0
    again = found.replay()
    assert again.status == "failed" and "lost update: 1" in str(again.error)
    ops = [e.op for e in again.events if e.resource == "Shared 'count'"]
    assert ops[:4] == ["read", "read", "write", "write"]  # both read before either wrote back


def test_shared_value_property_and_repr() -> None:
    box = dl.Shared([1], name="box")
    assert box.value == [1] and box.get() == [1]
    box.value = [2]
    box.set([3])
    assert box.get() == [3]
    assert repr(box) == "<Shared 'box' value=[3]>"


def test_reads_of_shared_state_commute_but_writes_do_not() -> None:
    async def readers() -> None:
        flag = dl.Shared(1, name="flag")

        async def look() -> None:
            for _ in range(2):
                assert flag.get() == 1
                await asyncio.sleep(0)

        await asyncio.gather(look(), look())

    async def writers() -> None:
        flag = dl.Shared(1, name="flag")

        async def poke(value: int) -> None:
            for _ in range(2):
                flag.set(value)
                await asyncio.sleep(0)

        await asyncio.gather(poke(1), poke(2))

    read_only = explore(readers, assume_traced=True)
    written = explore(writers, assume_traced=True)
    full = explore(readers, strategy="exhaustive")
    assert read_only.schedules == 1 < written.schedules <= full.schedules
    assert "all shared state is traced" in read_only.summary()
