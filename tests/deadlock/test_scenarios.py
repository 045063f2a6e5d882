"""The catalog: every broken variant deadlocks with the right cycle, every fix completes."""

from __future__ import annotations

import asyncio
import statistics

import pytest

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual
from flowlab.errors import ConfigError

# The tasks and resources each broken variant's cycle must name (order-free: a cycle can be
# reported from any of its members).
EXPECTED = {
    "governor": ({"a", "b"}, {"Lock 'completion_lock'", "Event 'limit_breached'"}),
    "lock_order": ({"alice_to_bob", "bob_to_alice"}, {"Lock 'alice'", "Lock 'bob'"}),
    "nested_semaphore": ({"parent1", "parent1.child1"},
                         {"Task 'parent1.child1, parent1.child2'", "Semaphore 'slots'"}),
    "lost_wakeup": ({"consumer"}, {"Event 'ready'"}),
    "await_cycle": ({"fetch_user", "fetch_orders"}, {"Task 'fetch_user'", "Task 'fetch_orders'"}),
    "pool_exhaustion": ({"pool-worker-1", "pool-worker-2"},
                        {"Event 'inner-1 result'", "Event 'inner-2 result'"}),
    "dining_philosophers": ({f"philosopher{i}" for i in range(5)},
                            {f"Lock 'fork{i}'" for i in range(5)}),
    "producer_consumer": ({"producer", "consumer"}, {"Lock 'mutex'", "Semaphore 'items'"}),
}  # fmt: skip


def test_catalog_lists_every_scenario_with_texts() -> None:
    frame = dl.catalog()
    assert list(frame.columns)[:5] == ["name", "title", "primitives", "problem", "fix"]
    assert set(EXPECTED) <= set(frame["name"])
    assert (frame["fix"].str.len() > 40).all() and (frame["problem"].str.len() > 40).all()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_broken_variant_is_detected_with_the_right_cycle(name: str) -> None:
    report = dl.run(name)
    assert isinstance(report, dl.DeadlockReport)
    tasks, resources = EXPECTED[name]
    assert report.deadlocked
    assert set(report.cycle[0::2]) == tasks
    assert set(report.cycle[1::2]) == resources
    assert report.leaked == [] and report.cancelled
    text = report.explain()
    assert dl.SCENARIOS[name].fix in text and "What went wrong" in text
    assert report.clock == "virtual" and report.detected_at is not None
    assert report.detected_at <= 1.0


@pytest.mark.parametrize("name", list(EXPECTED))
def test_fixed_variant_completes_and_says_what_changed(name: str) -> None:
    report = dl.run(name, fixed=True)
    assert not report.deadlocked and report.cycle == []
    assert report.explain().startswith("No deadlock")
    assert dl.SCENARIOS[name].fix in report.explain()


def test_governor_explains_the_seed_pattern() -> None:
    text = dl.run("governor").explain()
    assert (
        "task a waits for Lock 'completion_lock' held by task b (acquired at bodies.py:" in text
    )
    assert "task b waits for Event 'limit_breached', which only tasks a, b and c set" in text
    assert "task c waits for Semaphore 'concurrency' held by tasks a" in text


def test_pool_exhaustion_says_how_the_pool_is_modelled() -> None:
    assert "modelled with traced primitives" in dl.run("pool_exhaustion").explain()


def test_unknown_name_and_clock_raise_config_error_listing_choices() -> None:
    with pytest.raises(ConfigError, match="name='nope' is not valid; choose one of 'governor'"):
        dl.run("nope")
    with pytest.raises(ConfigError, match="clock='wall'"):
        dl.run("governor", clock="wall")


def test_arun_on_a_running_loop_leaves_no_tasks_and_the_loop_usable() -> None:
    async def main() -> tuple[bool, bool, int, int]:
        broken = await dl.arun("dining_philosophers")
        fixed = await dl.arun("dining_philosophers", fixed=True)
        leftover = len(asyncio.all_tasks()) - 1
        return broken.deadlocked, fixed.deadlocked, leftover, await asyncio.sleep(0, 7)

    assert run_virtual(main()) == (True, False, 0, 7)


def test_run_from_inside_a_running_loop_uses_its_own_loop() -> None:
    async def cell() -> bool:
        return dl.run("lock_order").deadlocked  # as in a notebook cell

    assert asyncio.run(cell()) is True


def test_detection_latency_probe_on_the_real_clock() -> None:
    samples = dl.measure_detection_latency(5)
    assert len(samples) == 5 and all(s > 0 for s in samples)
    assert statistics.median(samples) < 0.1  # generous: the check is event-driven
