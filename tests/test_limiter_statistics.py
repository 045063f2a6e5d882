"""A limiter's state: typed per policy, typed statistics, and a release that refuses what was
not acquired (issue 20; anyio's ``CapacityLimiterStatistics`` and ``CapacityLimiter.release``)."""

from __future__ import annotations

import dataclasses

import pytest

import flowlab as fl
from flowlab.core.keyed import BranchInfo, KeyedQueue
from flowlab.core.limits import AIMD, Adaptive, AdaptiveState, Fixed, LimiterState


def test_a_cap_reports_a_frozen_typed_snapshot() -> None:
    state = Fixed(3).new_state()
    assert state.try_acquire(0.0) and state.try_acquire(0.0)
    state.release()
    stats = state.statistics()
    assert isinstance(stats, fl.limits.LimiterStatistics)
    assert (stats.limiter, stats.limit, stats.in_flight, stats.peak, stats.granted) == (
        "fixed", 3, 1, 2, 2,
    )  # fmt: skip
    assert (stats.waiting, stats.moves) == (0, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.in_flight = 0  # type: ignore[misc]
    assert not hasattr(stats, "__dict__")  # slotted
    state.release()
    assert stats.in_flight == 1  # a snapshot: the state moved on, the snapshot did not


def test_as_dict_has_the_fields_in_order() -> None:
    stats = AIMD(2, 8).new_state().statistics()
    assert stats.as_dict() == {
        "limiter": "aimd", "limit": 2, "in_flight": 0, "waiting": 0, "peak": 0, "granted": 0,
        "moves": 0,
    }  # fmt: skip
    assert list(stats.as_dict()) == [f.name for f in dataclasses.fields(stats)]


def test_keyed_statistics_copy_the_counts_per_key() -> None:
    state = fl.limits.Keyed(key=lambda b: b.name[:3], limits={"gpt": 2, "*": 1}).new_state()
    gpt, cla = (state.key_of(BranchInfo(n, i, "fan")) for i, n in enumerate(["gpt-1", "cla-1"]))
    assert state.try_acquire_key(gpt) and state.try_acquire_key(gpt) and state.try_acquire_key(cla)
    state.release_key(gpt)
    stats = state.statistics()
    assert isinstance(stats, fl.limits.KeyedStatistics)
    assert isinstance(stats, fl.limits.LimiterStatistics)  # the totals are there too
    assert (stats.limiter, stats.in_flight, stats.peak, stats.granted) == ("keyed", 2, 3, 3)
    assert stats.per_key == {"gpt": 1, "cla": 1}
    assert stats.caps == {"gpt": 2, "cla": 1}
    assert stats.peak_per_key == {"gpt": 2, "cla": 1}
    state.release_key(cla)
    assert stats.per_key == {"gpt": 1, "cla": 1}  # copied, not shared with the state
    as_dict = stats.as_dict()
    assert as_dict["per_key"] == {"gpt": 1, "cla": 1} and as_dict["limit"] == 2
    as_dict["per_key"]["gpt"] = 99
    assert stats.per_key["gpt"] == 1
    hash(stats)  # hashable although it holds dicts (they are left out of the hash)


def test_rate_statistics() -> None:
    state = fl.limits.Rate(per_second=10).new_state()
    state.take(0.0)
    state.note_wait(0.1)
    stats = state.statistics()
    assert isinstance(stats, fl.limits.RateStatistics)
    assert stats == fl.limits.RateStatistics(
        limiter="rate", rate="Rate(per_second=10)", granted=1, waits=1, waited_s=0.1,
        tokens_in_window=0.0,
    )  # fmt: skip
    assert stats.as_dict()["rate"] == "Rate(per_second=10)"


# ---- typed state per policy -----------------------------------------------------------------
def test_adaptive_keeps_its_readings_in_a_typed_state() -> None:
    readings = iter([(0.1, 0.2), (0.95, 0.3)])
    lim = Adaptive(1, 4, target_cpu=0.8, interval_s=1.0, reader=lambda: next(readings))
    state = lim.new_state()
    assert isinstance(state, AdaptiveState)
    assert (state.last_read_s, state.cpu, state.memory) == (None, None, None)
    assert state.try_acquire(0.0)  # reads (0.1, 0.2): well below target, the limit grows
    assert (state.last_read_s, state.cpu, state.memory, state.limit) == (0.0, 0.1, 0.2, 2)
    assert state.try_acquire(0.5)  # within interval_s: no reading
    assert (state.last_read_s, state.limit) == (0.0, 2)
    state.release()
    state.release()
    assert state.try_acquire(1.0)  # reads (0.95, 0.3): above target, the limit drops
    assert (state.last_read_s, state.cpu, state.memory, state.limit) == (1.0, 0.95, 0.3, 1)


def test_fixed_and_aimd_need_no_state_of_their_own() -> None:
    assert type(Fixed(1).new_state()) is LimiterState
    assert type(AIMD().new_state()) is LimiterState


# ---- release() refuses what was not acquired --------------------------------------------------
def test_a_keyed_release_without_an_acquire_is_refused_and_changes_nothing() -> None:
    state = fl.limits.Keyed(key=lambda b: b.name, limits={"*": 2}).new_state()
    a = state.key_of(BranchInfo("a", 0, "fan"))
    b = state.key_of(BranchInfo("b", 1, "fan"))
    assert state.try_acquire_key(a)
    with pytest.raises(fl.BookkeepingError, match=r"release_key\('b'\) without a matching"):
        state.release_key(b)  # a's slot is out, b's is not: b's count must not go negative
    with pytest.raises(fl.BookkeepingError, match=r"release_key\('c'\)"):
        state.release_key("c")  # a key never seen
    assert (state.in_flight, state.per_key) == (1, {"a": 1, "b": 0})
    state.release_key(a)
    with pytest.raises(fl.BookkeepingError, match="no slot of key 'a' is out"):
        state.release_key(a)
    assert (state.in_flight, state.per_key) == (0, {"a": 0, "b": 0})


def test_a_keyed_queue_refuses_a_release_by_a_branch_that_holds_no_slot() -> None:
    state = fl.limits.Keyed(key=lambda b: b.name[:3], limits={"*": 2}).new_state()
    queue = KeyedQueue(state, "fan", log=lambda row: None)
    for i, name in enumerate(["gpt-1", "gpt-2", "gpt-3"]):
        queue.push((0.0, i, name), state.key_of(BranchInfo(name, i, "fan")), 0.0)
    alive = {"gpt-1", "gpt-2", "gpt-3"}
    assert [queue.pop_ready(alive, 0.0), queue.pop_ready(alive, 0.0)] == ["gpt-1", "gpt-2"]
    with pytest.raises(fl.BookkeepingError, match="'gpt-3'"):
        queue.release("gpt-3")  # queued, never started: its key's count belongs to 1 and 2
    queue.release("gpt-1")
    with pytest.raises(fl.BookkeepingError, match="'gpt-1'"):
        queue.release("gpt-1")  # twice: gpt-2 still holds a slot of the key, so a count alone
    with pytest.raises(fl.BookkeepingError, match="'nobody'"):  # would not tell
        queue.release("nobody")
    assert (state.in_flight, state.per_key) == (1, {"gpt": 1})


def test_a_cap_release_without_an_acquire_names_the_limiter() -> None:
    state = AIMD(1, 4).new_state()
    with pytest.raises(fl.BookkeepingError, match="<AIMD limit=1 in_flight=0"):
        state.release()
    assert (state.in_flight, state.limit, state.moves) == (0, 1, 0)  # nor did the policy adapt
