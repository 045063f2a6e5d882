"""The catalog's index: every deadlock scenario by name (:data:`SCENARIOS`, :func:`scenario`).

Each entry is a :class:`~flowlab.study.deadlock.bodies.Scenario`: its broken and fixed bodies
(in :mod:`~flowlab.study.deadlock.bodies`, :mod:`~flowlab.study.deadlock.classics` and
:mod:`~flowlab.study.deadlock.races`) and the texts that explain them. The index knows no runner:
:mod:`~flowlab.study.deadlock.scenarios` runs an entry, and the explorer looks entries up here.
"""

from __future__ import annotations

from flowlab.errors import check_one_of
from flowlab.study.deadlock import bodies as body
from flowlab.study.deadlock import classics, races
from flowlab.study.deadlock.bodies import Scenario

__all__ = ["SCENARIOS", "scenario"]

SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario(
        "governor", "The seed's executor: semaphore + completion lock + breach event",
        "Semaphore, Lock, Event",
        "branch b finished near the budget and, still holding completion_lock, waited for "
        "limit_breached to learn whether a sibling would cross the limit; the branch that "
        "could set it (a) needs completion_lock to record its charge, and c needs a "
        "concurrency slot that a and b hold.",
        "never await while holding a lock: completion_lock now guards only the bookkeeping "
        "(add the charge, mark the branch done), limit_breached is set but never awaited "
        "under it, and the budget verdict is read after the fan-out finishes.",
        body.governor),
    Scenario(
        "lock_order", "Two transfers lock two accounts in opposite orders", "Lock",
        "alice_to_bob holds alice and wants bob while bob_to_alice holds bob and wants alice.",
        "every transfer locks the accounts in one global order (sorted by name), so no task "
        "can hold the second lock while waiting for the first.",
        body.lock_order),
    Scenario(
        "nested_semaphore", "Parents hold the slots their children need", "Semaphore, Task",
        "both parents hold the two slots of a shared limiter while awaiting children that "
        "each need a slot.",
        "a parent releases its slot before waiting for its children (flowlab's rule: a "
        "branch waiting for its own children holds no slot).",
        body.nested_semaphore),
    Scenario(
        "lost_wakeup", "A pulsed event: set and cleared before anyone waits", "Event",
        "the producer set ready and cleared it at once (a pulse, like notify); the consumer "
        "began waiting afterwards, and its only setter had finished. The same happens when "
        "a waiter awaits a fresh Event that replaced the one already set.",
        "ready is level-triggered: the producer leaves it set and the consumer clears it "
        "after taking the data, so a late waiter still sees it.",
        body.lost_wakeup),
    Scenario(
        "await_cycle", "Two tasks await each other", "Task",
        "fetch_user awaits fetch_orders for an order count while fetch_orders awaits "
        "fetch_user for the user id.",
        "the dependencies form a DAG: fetch_user no longer awaits fetch_orders (the count "
        "is attached after both finish), so only fetch_orders waits.",
        body.await_cycle),
    Scenario(
        "pool_exhaustion", "Pool jobs wait for nested jobs queued behind them",
        "Queue, Event (a modelled thread pool)",
        "both workers run an outer job that submits an inner job to the same pool and blocks "
        "on its result; the inner jobs sit in work_queue behind them and no worker is free "
        "(the hold-and-wait that hangs nested tasks in a bounded thread-pool runner).",
        "nested work runs inline in the caller's worker instead of being queued to the pool "
        "the caller is blocking (a separate pool would also do).",
        body.pool_exhaustion,
        note="the thread pool is modelled with traced primitives: two worker tasks pulling "
        "from a traced Queue stand in for threads, because a thread blocked in "
        "future.result() cannot be observed from the event loop."),
    Scenario(
        "dining_philosophers", "Five philosophers take the left fork first", "Lock",
        "each philosopher holds the left fork and waits for the right one, held by the "
        "neighbour.",
        "forks are taken in one global order (lower number first): philosopher4 reaches for "
        "fork0 before fork4, which breaks the circle.",
        body.dining_philosophers,
        fixes={"footman": "a footman (Semaphore(4)) lets at most four philosophers sit at "
               "once, so at least one of them can take both forks (run with fixed='footman')."}),
    Scenario(
        "rendezvous", "Rendezvous: both wait for the other before saying they arrived",
        "Semaphore (as a signal)",
        "a waits for b_arrived before releasing a_arrived, and b waits for a_arrived before "
        "releasing b_arrived: each signal comes after a wait that needs the other's signal.",
        "each task signals its own arrival first and then waits for the other's (The Little "
        "Book of Semaphores, 3.3): the signal never depends on the wait.",
        classics.rendezvous),
    Scenario(
        "reusable_barrier", "A reusable barrier whose turnstiles let only one task through",
        "Semaphore, Lock",
        "the last worker to arrive opens turnstile once; the first worker through does not pass "
        "it on, so the other two wait at turnstile forever and the one that got through waits "
        "at turnstile2, which only the last to leave would open.",
        "every worker that passes a turnstile signals it again for the next one (wait(); "
        "signal()), so all n pass in each phase (The Little Book of Semaphores, 3.7); "
        "dl.Barrier does this for you.",
        classics.reusable_barrier),
    Scenario(
        "self_deadlock", "A task takes a semaphore it already holds", "Semaphore",
        "save holds db and calls log, which takes db again; a semaphore (or a Lock) is not "
        "re-entrant, so save waits for itself.",
        "the helper is told the caller holds db and does not take it again (or the resource "
        "is a re-entrant dl.RLock).",
        classics.self_deadlock),
    Scenario(
        "bounded_queue_cycle", "Two peers fill each other's bounded inboxes", "Queue (bounded)",
        "a and b each send three messages into the other's one-slot inbox before reading "
        "their own; both block on put to a full queue that only the other, itself blocked on "
        "put, would drain.",
        "each peer sends one message and then receives one, so an inbox never holds more than "
        "one message (or reading and writing run in separate tasks).",
        classics.bounded_queue_cycle),
    Scenario(
        "nested_pool", "Prefect #17060: pool tasks spawn child tasks into the same pool",
        "Queue, Event (a modelled thread pool)",
        "the flow submitted three initial_tasks to a two-thread pool; each called "
        "task_spawner (a plain function), which mapped child tasks into the same pool and "
        "blocked on their results. Both threads wait for children queued behind "
        "initial_task(3), and no thread is left to run them.",
        "the flow, not a pool thread, spawns the children: initial_task returns, and the flow "
        "maps dependent_task over its result, so no pool thread ever waits on the pool.",
        classics.nested_pool,
        note="https://github.com/PrefectHQ/prefect/issues/17060; threads are modelled as two "
        "worker tasks on a traced Queue (a thread blocked in future.result() is not visible "
        "from the event loop)."),
    Scenario(
        "slot_held", "Prefect #17686: a task holds its concurrency slot while waiting upstream",
        "Semaphore, Event",
        "load_a and load_b were submitted with wait_for=[extract]; each took one of the two "
        "'db' tag slots and then waited for extract, which needs a slot to run.",
        "wait for upstream tasks first, then take the slot (the order Prefect's fix, PR "
        "#17943, restored): a task that cannot run yet holds nothing.",
        classics.slot_held,
        note="https://github.com/PrefectHQ/prefect/issues/17686"),
    Scenario(
        "lost_update", "Atomicity violation: two deposits race on a read-modify-write",
        "Shared, Lock", "both deposits read the balance (100) before either wrote it back; the "
        "later write overwrote the earlier one, so one deposit was lost (not 130).",
        "the read, the await and the write form one critical section under balance_lock.",
        races.lost_update, finder="explorer"),
    Scenario(
        "order_violation", "Order violation: the handler assumes init ran first", "Event",
        "handler read the config after two round-trips, assuming init would have set it by "
        "then; under another schedule init had not run yet.",
        "the handler awaits config_ready, which init sets after filling the config: the order "
        "is enforced, not assumed.",
        races.order_violation, finder="explorer"),
    Scenario(
        "condition_if_while", "Condition variable: `if` where `while` belongs", "Condition",
        "consumer1 waited because the list was empty and was notified of an item, but before "
        "it re-took the lock consumer2 arrived, saw the item and took it; consumer1 did not "
        "re-check (if, not while) and found nothing.",
        "wait in a loop: while not items: await cond.wait() -- a wake-up is a hint to re-check "
        "the condition, not a promise that it holds (or use cond.wait_for(predicate)).",
        races.condition_if_while, finder="explorer"),
    Scenario(
        "producer_consumer", "Bounded buffer: the consumer takes the mutex too early",
        "Semaphore, Lock",
        "the consumer took the mutex and then waited for items, on an empty buffer; the "
        "producer needs the mutex to add the item that would wake it.",
        "the consumer waits for items before taking the mutex (The Little Book of "
        "Semaphores' order), so the mutex is never held across a wait.",
        body.producer_consumer),
]}  # fmt: skip


def scenario(name: str) -> Scenario:
    """The catalog entry ``name``; :class:`ConfigError` lists the valid names otherwise."""
    check_one_of("name", name, list(SCENARIOS), hint="see fl.deadlock.catalog()")
    return SCENARIOS[name]
