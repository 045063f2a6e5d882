"""The Dask backend (issue 10): branches' leaf steps on a real 2-process LocalCluster.

The cluster tests share one module-scoped ``LocalCluster(n_workers=2, processes=True)`` on
127.0.0.1 that this file starts and closes. The fast tests at the bottom use a fake client that
runs the worker function in a thread of this process (no cluster).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import cloudpickle
import pytest
from pydantic import BaseModel

import flowlab as fl
from flowlab.backends._calls import CallRecord, finalize
from flowlab.backends._clocks import ClockSync, same_host
from flowlab.backends._worker import WorkerAccount
from flowlab.results.records import BranchRecord

# The workers need not import anything from tests/: this module's steps and models travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

# distributed logs through `logging`; the few *warnings* it raises while workers start, die and
# restart are not ours to fix (filterwarnings=error would turn them into test errors).
DIST_WARNINGS = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:distributed.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:distributed.*"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning:distributed.*"),
]
on_cluster = [pytest.mark.dask, pytest.mark.slow, *DIST_WARNINGS]


def marks(*extra: pytest.MarkDecorator) -> Any:
    def apply(fn: Any) -> Any:
        for m in [*on_cluster, *extra]:
            fn = m(fn)
        return fn

    return apply


# --- the cluster ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        c = fl.backends.start_local_cluster(n_workers=2, threads_per_worker=1)
    try:
        yield c
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c.close()


@pytest.fixture
def admin(cluster: Any) -> Iterator[Any]:
    """A plain client on the test cluster, once both workers are up (a killed one restarts)."""
    from distributed import Client

    client = Client(cluster)
    client.wait_for_workers(2, timeout=30)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def dask(admin: Any, cluster: Any) -> fl.backends.Dask:
    return fl.backends.Dask(address=cluster.scheduler_address)


# --- the merge acceptance examples, local and on Dask -------------------------------------------
class Counter(BaseModel):
    counter: int = 10


class Summed(BaseModel):
    counter: Annotated[int, fl.merge.Sum()] = 10


def plus5(data: Any, ctx: Any) -> str:
    ctx.counter += 5
    return "a"


async def plus3(data: Any, ctx: Any) -> str:
    await asyncio.sleep(0)
    ctx.counter += 3
    return "b"


class UnionTags(BaseModel):
    tags: Annotated[list[str], fl.merge.Union()] = ["w"]


class AppendTags(BaseModel):
    tags: Annotated[list[str], fl.merge.Append()] = ["w"]


class PlainTags(BaseModel):
    tags: list[str] = ["w"]


def add_xy(data: Any, ctx: Any) -> None:
    ctx.tags += ["x", "y"]


def add_yz(data: Any, ctx: Any) -> None:
    ctx.tags += ["y", "z"]


class Nested(BaseModel):
    state: dict[str, dict[str, int]] = {"a": {"b": 1, "c": 2}}
    scores: dict[str, float] = {"x": 5.0}


def set_b(data: Any, ctx: Any) -> None:
    ctx.state["a"]["b"] = 3
    ctx.scores["x"] = 2.0  # a decrease inside a dict survives (no max)


def add_d(data: Any, ctx: Any) -> None:
    ctx.state["a"]["d"] = 4


def set_status(value: str) -> Any:
    def step(data: Any, ctx: Any) -> None:
        ctx.status = value

    return step


class Status(BaseModel):
    status: str = "new"
    n: int = 0


BACKENDS = [pytest.param("local", id="local"), pytest.param("dask", id="dask", marks=on_cluster)]


def run_on(where: str, request: pytest.FixtureRequest, pipe: Any, ctx: Any, **kw: Any) -> Any:
    backend = request.getfixturevalue("dask") if where == "dask" else None
    return fl.run(pipe, ctx, backend=backend, **kw)


@pytest.mark.parametrize("where", BACKENDS)
def test_counter_accumulates_to_18_and_overwrite_is_13(
    where: str, request: pytest.FixtureRequest
) -> None:
    fan = {"a": plus5, "b": plus3}
    acc = run_on(where, request, fl.Parallel(fan, merge="accumulate"), Counter())
    rule = run_on(where, request, fl.Parallel(fan, merge="overwrite"), Summed())
    over = run_on(where, request, fl.Parallel(fan, merge="overwrite"), Counter())
    assert (acc.context.counter, rule.context.counter, over.context.counter) == (18, 18, 13)
    assert acc.output == {"a": "a", "b": "b"}
    assert acc.merges.loc[0, ["path", "writers", "after"]].tolist() == ["counter", ("a", "b"), 18]


@pytest.mark.parametrize("where", BACKENDS)
def test_completion_order_last_finisher_wins(where: str, request: pytest.FixtureRequest) -> None:
    pipe = fl.Parallel({"a": plus5, "b": plus3}, merge="overwrite", order="completion")
    r = run_on(where, request, pipe, Counter())
    last = r.branches.sort_values("completion_rank")["branch"].iloc[-1]
    assert r.context.counter == {"a": 15, "b": 13}[last]


@pytest.mark.parametrize("where", BACKENDS)
@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (UnionTags, ["w", "x", "y", "z"]),
        (AppendTags, ["w", "x", "y", "y", "z"]),
        (PlainTags, ["w", "y", "z"]),  # overwrite: b's list
    ],
)
def test_list_rules(
    where: str, model: Any, expected: list[str], request: pytest.FixtureRequest
) -> None:
    r = run_on(where, request, fl.Parallel({"a": add_xy, "b": add_yz}), model())
    assert r.context.tags == expected


@pytest.mark.parametrize("where", BACKENDS)
def test_deep_dict_merge(where: str, request: pytest.FixtureRequest) -> None:
    r = run_on(where, request, fl.Parallel({"a": set_b, "b": add_d}, merge="deep"), Nested())
    assert r.context.state == {"a": {"b": 3, "c": 2, "d": 4}}
    assert r.context.scores == {"x": 2.0}
    assert sorted(r.diffs["path"].tolist()) == ["scores.x", "state.a.b", "state.a.d"]


@pytest.mark.parametrize("where", BACKENDS)
def test_conflicts_only_for_two_different_writes(
    where: str, request: pytest.FixtureRequest
) -> None:
    one = {"a": set_status("done"), "b": plus_n}
    equal = {"a": set_status("done"), "b": set_status("done")}
    r1 = run_on(where, request, fl.Parallel(one, merge="error_on_conflict"), Status())
    r2 = run_on(where, request, fl.Parallel(equal, merge="error_on_conflict"), Status())
    assert (r1.context.status, r1.context.n, r2.context.status) == ("done", 1, "done")
    clash = {"a": set_status("x"), "b": set_status("y")}
    with pytest.raises(fl.MergeConflict) as info:
        run_on(where, request, fl.Parallel(clash, merge="error_on_conflict"), Status())
    assert info.value.path == "status"
    assert info.value.values == {"a": "x", "b": "y"}
    assert info.value.result is not None and info.value.result.context.status == "new"


def plus_n(data: Any, ctx: Any) -> None:
    ctx.n += 1


@marks()
def test_frames_match_local_except_where_it_ran(dask: fl.backends.Dask) -> None:
    pipe = fl.Pipeline(
        fl.Parallel({"a": set_b, "b": add_d, "c": plus_n_nested}, merge="deep", name="fan")
    )
    local = fl.run(pipe, Nested())
    remote = fl.run(pipe, Nested(), backend=dask)
    assert remote.context == local.context
    cols = ["path", "rule", "writers", "after"]
    assert remote.merges[cols].to_dict("records") == local.merges[cols].to_dict("records")

    def rows(frame: Any) -> list[dict[str, Any]]:  # recorded as branches finish: sort
        return sorted(frame.to_dict("records"), key=lambda r: (r["branch"], r["path"]))

    assert rows(remote.diffs) == rows(local.diffs)
    assert set(remote.branches["worker"]) <= {"0", "1"}
    assert (local.branches["worker"] == "").all()


@marks()
def test_a_plain_sync_client_is_used_for_its_scheduler_address(admin: Any) -> None:
    backend = fl.backends.Dask(admin)
    r = fl.run(
        fl.Parallel({"a": plus5, "b": plus3}, merge="accumulate"), Counter(), backend=backend
    )
    assert r.context.counter == 18 and set(r.branches["worker"]) <= {"0", "1"}
    assert admin.status == "running"  # not ours to close


def plus_n_nested(data: Any, ctx: Any) -> None:
    ctx.state.setdefault("z", {})["n"] = 1


# --- speed: 200 CPU-bound branches ---------------------------------------------------------------
def burn(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i % 7
    return x


def calibrate(seconds: float) -> int:
    n = 100_000
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        burn(n)
        best = min(best, time.perf_counter() - t)
    return max(1, int(n * seconds / best))


@marks()
def test_200_cpu_bound_branches_spread_over_two_worker_processes(dask: fl.backends.Dask) -> None:
    # The speed claim (Dask beats the GIL) is a benchmark, not a unit test: `python -m bench
    # --only dask` (figure 11) measures threads / Dask on an idle machine.
    n = calibrate(0.05)
    pipe = fl.Parallel({f"b{i}": burn for i in range(200)}, merge="no_merge", name="cpu")
    local = fl.run(pipe, Counter(), input=n)
    remote = fl.run(pipe, Counter(), input=n, backend=dask)
    assert (remote.branches["status"] == "ok").all()
    assert remote.output == local.output
    assert sorted(set(remote.branches["worker"])) == ["0", "1"]
    busy = remote.branches.groupby("worker")["duration_s"].sum()
    assert (busy > 0.25 * busy.sum()).all()  # both lanes really worked


# --- recording: worker times on the driver clock -------------------------------------------------
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@marks()
def test_branch_times_are_the_workers_inside_the_round_trip(dask: fl.backends.Dask) -> None:
    pipe = fl.Parallel({"a": nap, "b": nap, "c": nap}, max_concurrency=1, name="naps")
    r = fl.run(pipe, Counter(), input=0.2, backend=dask)
    calls = r.extra["backend_calls"]
    assert len(calls) == 3 and (calls["status"] == "ok").all()
    assert (calls["offset_s"] == 0.0).all()  # same host: one clock, nothing estimated
    assert (calls["submitted_s"] <= calls["started_s"]).all()
    assert (calls["finished_s"] <= calls["received_s"]).all()
    # ~0.2 s sleeps; a few ms either way from converting worker times onto the driver clock
    assert ((calls["finished_s"] - calls["started_s"]).between(0.18, 0.4)).all()
    b = r.branches.set_index("branch")
    c = calls.set_index("branch")
    for name in "abc":
        row = b.loc[f"{name}"]
        assert row["started_s"] == c.loc[f"naps:{name}", "started_s"]
        assert row["finished_s"] == c.loc[f"naps:{name}", "finished_s"]
    spans = sorted(zip(calls["worker_started"], calls["worker_finished"], strict=True))
    assert all(s2 >= f1 for (_, f1), (s2, _) in itertools.pairwise(spans))  # cap held
    kinds = r.events["kind"].tolist()
    assert kinds.count("backend_submitted") == kinds.count("backend_received") == 3


# --- failures ------------------------------------------------------------------------------------
def die(data: Any) -> None:
    os._exit(1)


def die_once(marker: str, ctx: Any) -> int:
    path = Path(marker)
    if not path.exists():
        path.touch()
        os._exit(1)
    ctx.n += 1
    return os.getpid()


@marks(pytest.mark.timeout(120))
def test_killed_worker_fails_its_branch_and_the_run_ends(dask: fl.backends.Dask) -> None:
    pipe = fl.Parallel({"doomed": die, "fine": nap}, on_failure="ignore", name="fan")
    t = time.perf_counter()
    r = fl.run(pipe, Status(), input=0.3, backend=dask)
    assert time.perf_counter() - t < 30
    status = dict(zip(r.branches["branch"], r.branches["status"], strict=True))
    assert status == {"doomed": "failed", "fine": "ok"}
    assert r.status == "ok" and r.output == {"fine": 0.3}
    err = r.branches.set_index("branch").loc["doomed", "error"]
    assert err.startswith("WorkerLost: step 'die' of branch 'fan:doomed' was lost")
    assert "KilledWorker" in err
    calls = r.extra["backend_calls"].set_index("step")
    assert calls.loc["die", "status"] == "lost"
    with pytest.raises(fl.BranchFailed) as info:
        fl.run(fl.Parallel({"doomed": die}, name="fan"), Status(), backend=dask)
    lost = info.value.errors["doomed"]
    assert isinstance(lost, fl.backends.WorkerLost) and lost.attempts == 1
    from distributed import KilledWorker

    assert isinstance(lost.__cause__, KilledWorker)
    assert info.value.result is not None and len(info.value.result.branches) == 1


@marks(pytest.mark.timeout(120))
def test_killed_worker_is_retried(admin: Any, cluster: Any, tmp_path: Path) -> None:
    backend = fl.backends.Dask(address=cluster.scheduler_address, retries=1)
    pipe = fl.Parallel({"flaky": die_once}, merge="accumulate", name="fan")
    r = fl.run(pipe, Status(), input=str(tmp_path / "died"), backend=backend)
    assert r.status == "ok" and r.context.n == 1
    calls = r.extra["backend_calls"]
    assert calls["status"].tolist() == ["lost", "ok"]
    assert calls["attempt"].tolist() == [1, 2]
    assert r.branches.loc[0, "status"] == "ok"
    assert r.output["flaky"] != os.getpid()


# --- cancellation and usage ----------------------------------------------------------------------
async def long_nap(data: Any) -> str:
    await asyncio.sleep(30)
    return "woke"


def spend(data: Any, ctx: Any) -> None:
    fl.charge(cost=0.25, tokens=10)
    fl.charge(cost=0.5)
    ctx.n += 1  # never reached when the budget is 0.5


def scheduler_keys(dask_scheduler: Any) -> list[str]:
    return [str(k) for k in dask_scheduler.tasks]


def quick(data: Any) -> float:
    return time.time()


@marks(pytest.mark.timeout(120))
def test_usage_breach_cancels_cluster_futures_and_frees_workers(
    dask: fl.backends.Dask, admin: Any
) -> None:
    pipe = fl.Parallel(
        {"spender": spend, "s1": long_nap, "s2": long_nap}, priority={"spender": 1}, name="fan"
    )
    t = time.perf_counter()
    r = fl.run(pipe, Status(), backend=dask, usage=fl.UsageLimits(cost=0.5), raise_on_error=False)
    assert time.perf_counter() - t < 20
    assert r.status == "usage_limit_exceeded"
    assert (r.cost, r.tokens) == (0.75, 10)  # the crossing charge counts: its work was done
    status = dict(zip(r.branches["branch"], r.branches["status"], strict=True))
    assert status == {"spender": "failed", "s1": "cancelled", "s2": "cancelled"}
    assert r.branches.set_index("branch").loc["spender", "cost"] == 0.75
    calls = r.extra["backend_calls"].set_index("step")
    assert calls.loc["long_nap", "status"].tolist() == ["cancelled", "cancelled"]
    keys = set(calls["key"])
    deadline = time.monotonic() + 5
    while keys & set(admin.run_on_scheduler(scheduler_keys)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not keys & set(admin.run_on_scheduler(scheduler_keys))
    # the async naps were really stopped on the workers: both take new work at once
    t = time.perf_counter()
    done = [
        admin.submit(quick, i, workers=[w], pure=False)
        for i, w in enumerate(admin.scheduler_info()["workers"])
    ]
    admin.gather(done)
    assert time.perf_counter() - t < 5


@marks(pytest.mark.timeout(120))
def test_handle_cancel_of_one_branch_cancels_its_future(dask: fl.backends.Dask) -> None:
    async def main() -> Any:
        handle = fl.start(
            fl.Parallel({"slow": long_nap, "ok": nap}, name="fan"),
            Status(),
            input=0.5,
            backend=dask,
        )
        while not any(c.status == "running" and c.step == "long_nap" for c in _calls(dask)):
            await asyncio.sleep(0.02)
        handle.cancel("slow")
        return await handle

    r = asyncio.run(main())
    status = dict(zip(r.branches["branch"], r.branches["status"], strict=True))
    assert status == {"slow": "cancelled", "ok": "ok"}
    calls = r.extra["backend_calls"].set_index("step")
    assert calls.loc["long_nap", "status"] == "cancelled"


def _calls(backend: fl.backends.Dask) -> list[CallRecord]:
    return [c for st in list(backend._states.values()) for c in st.calls]


# --- fast: no cluster ----------------------------------------------------------------------------
class FakeFuture:
    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.cancelled = False

    def __await__(self) -> Any:
        return asyncio.shield(self.task).__await__()

    def cancel(self, reason: str | None = None) -> None:
        self.cancelled = True
        self.task.cancel()


class FakeClient:
    """Runs the worker function in a thread of this process; scripted errors first."""

    asynchronous = True
    scheduler = SimpleNamespace(address="fake://scheduler")

    def __init__(self, errors: list[BaseException] | None = None, *, hang: bool = False) -> None:
        self.errors = list(errors or [])
        self.hang = hang
        self.submitted: list[dict[str, Any]] = []
        self.futures: list[FakeFuture] = []

    @property
    def loop(self) -> Any:
        return SimpleNamespace(asyncio_loop=asyncio.get_running_loop())

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> FakeFuture:
        self.submitted.append(kwargs)
        if self.errors:
            err = self.errors.pop(0)

            async def fail() -> None:
                raise err

            task = asyncio.ensure_future(fail())
        elif self.hang:
            task = asyncio.ensure_future(asyncio.Event().wait())
        else:
            task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self.futures.append(FakeFuture(task))
        return self.futures[-1]


def test_priority_key_and_purity_reach_submit() -> None:
    fake = FakeClient()
    pipe = fl.Parallel({"a": plus5, "b": plus3}, priority={"a": 10, "b": 2.5}, merge="accumulate")
    r = fl.run(pipe, Counter(), backend=fl.backends.Dask(fake))
    assert r.context.counter == 18
    by_prio = sorted((kw["priority"], kw["pure"]) for kw in fake.submitted)
    assert by_prio == [(2.5, False), (10, False)]
    keys = [kw["key"] for kw in fake.submitted]
    assert len(set(keys)) == 2 and all(k.startswith("flowlab-plus") for k in keys)
    assert set(r.branches["worker"]) == {"local"}


def charge_twice(data: Any, ctx: Any) -> None:
    fl.charge(cost=0.1, tokens=5)
    fl.charge(cost=0.2)
    ctx.n += 1


def charge_then_fail(data: Any) -> None:
    fl.charge(tokens=7)
    raise KeyError("boom")


def test_charges_on_a_worker_are_applied_on_the_driver() -> None:
    pipe = fl.Parallel({"a": charge_twice, "b": charge_then_fail}, on_failure="ignore")
    r = fl.run(pipe, Status(), backend=fl.backends.Dask(FakeClient()), usage=fl.UsageLimits(cost=1))
    assert (r.cost, r.tokens, r.context.n) == (0.3, 12, 1)
    rows = r.branches.set_index("branch")
    assert (rows.loc["a", "cost"], rows.loc["a", "tokens"], rows.loc["b", "tokens"]) == (0.3, 5, 7)
    assert rows.loc["b", "error"] == "KeyError: 'boom'"


def test_the_crossing_charge_raises_on_the_worker_and_breaches_on_the_driver() -> None:
    pipe = fl.Parallel({"a": spend})
    with pytest.raises(fl.UsageLimitExceeded) as info:
        fl.run(
            pipe, Status(), backend=fl.backends.Dask(FakeClient()), usage=fl.UsageLimits(cost=0.5)
        )
    assert info.value.branch == "parallel:a" and info.value.limit == "cost"
    assert info.value.totals == {"cost": 0.75, "tokens": 10}
    assert info.value.result is not None and info.value.result.context.n == 0


def node_mutates(state: Status) -> None:
    state.n += 1


def node_updates(ctx: Status) -> fl.Update:
    return fl.Update(status=f"saw n={ctx.n}")


def test_ctx_steps_and_updates_on_the_worker_path() -> None:
    # a context-only step gets the worker's copy of the context (not the data), its writes come
    # back; an Update returned by a remote step is applied on the driver (issue 21)
    pipe = fl.Parallel({"a": fl.Pipeline(node_mutates, node_updates)}, name="fan")
    client = FakeClient()
    r = fl.run(pipe, Status(n=4), input="data", backend=fl.backends.Dask(client))
    assert (r.context.n, r.context.status) == (5, "saw n=5")
    assert r.outputs["fan:a"] == fl.Update(status="saw n=5")
    assert len(client.submitted) == 2


def test_worker_account_raises_only_past_the_budget_left() -> None:
    acc = WorkerAccount(0.5, None)
    acc.charge(0.5, 3)
    with pytest.raises(fl.UsageLimitExceeded, match=r"cost 0\.75, more than the 0\.5 left"):
        acc.charge(0.25, 0)
    assert acc.charges == [(0.5, 3), (0.25, 0)]
    WorkerAccount(None, None).charge(1e9, 10**9)  # no limits: never raises


def raises_with_note(data: Any) -> None:
    raise ValueError("bad input")


def test_step_errors_travel_back_with_the_worker_traceback() -> None:
    with pytest.raises(fl.BranchFailed) as info:
        fl.run(
            fl.Parallel({"a": raises_with_note}), Status(), backend=fl.backends.Dask(FakeClient())
        )
    err = info.value.errors["a"]
    assert type(err) is ValueError and str(err) == "bad input"
    assert 'raise ValueError("bad input")' in "".join(err.__notes__)


def test_lost_steps_are_retried_then_fail_with_worker_lost() -> None:
    from distributed import KilledWorker

    def killed() -> KilledWorker:
        return KilledWorker("k", SimpleNamespace(address="tcp://10.0.0.9:1"), 0)

    ok = fl.run(
        fl.Parallel({"a": plus5}),
        Counter(),
        backend=fl.backends.Dask(FakeClient([killed()]), retries=1),
    )
    assert ok.context.counter == 15
    assert ok.extra["backend_calls"]["status"].tolist() == ["lost", "ok"]
    with pytest.raises(fl.BranchFailed) as info:
        fl.run(
            fl.Parallel({"a": plus5}),
            Counter(),
            backend=fl.backends.Dask(FakeClient([killed(), killed()]), retries=1),
        )
    lost = info.value.errors["a"]
    assert isinstance(lost, fl.backends.WorkerLost) and isinstance(lost.__cause__, KilledWorker)
    assert lost.attempts == 2 and "HINT: its worker died" in str(lost)


def test_step_timeout_cancels_the_cluster_future() -> None:
    fake = FakeClient(hang=True)
    slow = fl.Step(long_nap, timeout=0.2)
    r = fl.run(
        fl.Parallel({"a": slow}), Status(), backend=fl.backends.Dask(fake), raise_on_error=False
    )
    assert r.status == "timeout"
    assert [f.cancelled for f in fake.futures] == [True]
    assert r.extra["backend_calls"]["status"].tolist() == ["cancelled"]


class Private(BaseModel):
    when: Any = None


def test_contexts_that_do_not_round_trip_are_refused() -> None:
    with pytest.raises(fl.BranchFailed) as info:  # a model inside Any comes back as a dict
        fl.run(
            fl.Parallel({"a": plus_n}),
            Private(when=Counter()),
            backend=fl.backends.Dask(FakeClient()),
        )
    err = info.value.errors["a"]
    assert isinstance(err, fl.ConfigError)
    assert "field(s) when change under model_validate(model_dump())" in str(err)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": -1}, "retries=-1 is not valid; give a whole number >= 0."),
        ({"n_workers": 0}, "n_workers=0 is not valid; give a whole number >= 1."),
        (
            {"connect_timeout_s": 0},
            "connect_timeout_s=0 is not valid; give seconds as a number > 0.",
        ),
        ({"address": ""}, "address='' is not valid; give a scheduler address"),
        ({"client": object()}, "client=<object object"),
        (
            {"client": FakeClient(), "address": "tcp://x:1"},
            "client= and address='tcp://x:1' were both",
        ),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(fl.ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        fl.backends.Dask(**kwargs)


def test_virtual_clock_is_refused() -> None:
    r = fl.run(
        fl.Parallel({"a": plus5}),
        Counter(),
        clock="virtual",
        backend=fl.backends.Dask(FakeClient()),
        raise_on_error=False,
    )
    assert r.status == "failed"
    assert "clock='virtual' is not valid with backend=Dask(...)" in str(r.error)


# --- clocks --------------------------------------------------------------------------------------
REMOTE = "tcp://203.0.113.5:4000"


def test_same_host_addresses() -> None:
    assert same_host("tcp://127.0.0.1:1234") and same_host("inproc://x/1") and same_host("")
    assert not same_host(REMOTE)


def test_offset_of_a_skewed_worker_narrows_with_each_call() -> None:
    sync = ClockSync(wall0=1000.0)  # driver wall clock = 1000 + run time
    skew = 100.0  # the worker's clock is 100 s ahead
    # (submitted, received) on the run clock; the step ran [start, stop] of true run time
    trips = [((0.0, 1.0), (0.4, 0.6)), ((1.0, 1.5), (1.05, 1.45)), ((2.0, 2.2), (2.09, 2.19))]
    errors = []
    for (sub, rec), (start, stop) in trips:
        sync.observe(REMOTE, sub, rec, 1000 + skew + start, 1000 + skew + stop)
        offset, err = sync.offset(REMOTE)
        assert abs(offset - skew) <= err + 1e-9
        errors.append(err)
    assert errors == pytest.approx([0.4, 0.05, 0.03])  # the bounds only ever tighten
    start, stop = sync.to_run_time(REMOTE, 1000 + skew + 0.4, 1000 + skew + 0.6, 0.0, 1.0)
    assert abs(start - 0.4) <= err + 1e-9 and abs(stop - 0.6) <= err + 1e-9


def test_converted_times_stay_inside_the_round_trip() -> None:
    sync = ClockSync(wall0=0.0)
    sync.observe(REMOTE, 5.0, 6.0, 50.0, 51.5)  # the worker measured longer than the round trip
    start, stop = sync.to_run_time(REMOTE, 50.0, 51.5, 5.0, 6.0)
    assert 5.0 <= start <= stop <= 6.0
    assert math.isnan(sync.offset("tcp://203.0.113.9:1")[0])


def test_finalize_gives_branch_rows_the_worker_times() -> None:
    sync = ClockSync(wall0=0.0)
    brec = BranchRecord("fan", "a", "fan:a", "", 0.0, 0.0, started=0.1, finished=3.0, status="ok")
    first = CallRecord(
        "s1",
        "fan:a",
        1,
        "k1",
        0.0,
        0.2,
        brec,
        received=1.0,
        address="tcp://127.0.0.1:1",
        worker_started=0.3,
        worker_finished=0.9,
    )
    second = CallRecord(
        "s2",
        "fan:a",
        1,
        "k2",
        0.0,
        1.1,
        brec,
        received=2.9,
        address="tcp://127.0.0.1:1",
        worker_started=1.2,
        worker_finished=2.5,
    )
    for c in (first, second):
        sync.observe(c.address, c.submitted, c.received, c.worker_started, c.worker_finished)
    finalize([first, second], sync, [brec])
    assert (brec.started, brec.finished) == (0.3, 2.5)
    assert (second.offset, second.offset_err) == (0.0, 0.0)


def test_an_unreachable_scheduler_fails_the_run_naming_the_address() -> None:
    backend = fl.backends.Dask(address="tcp://127.0.0.1:9", connect_timeout_s=0.3)
    t = time.perf_counter()
    r = fl.run(fl.Parallel({"a": plus5}), Counter(), backend=backend, raise_on_error=False)
    assert time.perf_counter() - t < 10
    assert r.status == "failed" and isinstance(r.error, fl.ConfigError)
    assert (
        "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within connect_timeout_s=0.3"
        in str(r.error)
    )
    assert isinstance(r.error.__cause__, OSError | TimeoutError)
    assert r.branches.empty


@marks(pytest.mark.timeout(120))
def test_without_client_or_address_it_starts_and_closes_its_own_cluster() -> None:
    import psutil

    def workers() -> set[int]:  # child processes, less multiprocessing's resource tracker
        pids = set()
        for p in psutil.Process().children(recursive=True):
            try:
                if "resource_tracker" not in " ".join(p.cmdline()):
                    pids.add(p.pid)
            except psutil.Error:  # it exited while we looked
                pass
        return pids

    before = workers()
    backend = fl.backends.Dask(n_workers=2)
    r = fl.run(
        fl.Parallel({"a": plus5, "b": plus3}, merge="accumulate"), Counter(), backend=backend
    )
    assert r.context.counter == 18 and set(r.branches["worker"]) <= {"0", "1"}
    assert r.branches["worker"].ne("").all()
    deadline = time.monotonic() + 10
    while workers() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not workers() - before  # its worker processes are gone
    assert repr(backend) == "<Dask LocalCluster(n_workers=2) retries=0 runs_open=0>"


def test_every_leaf_of_nested_and_multi_step_branches_goes_to_the_backend() -> None:
    inner = fl.Parallel({"x": plus5, "y": plus3}, merge="accumulate", name="inner")
    pipe = fl.Pipeline(
        plus5,  # a top-level step runs on the driver
        fl.Parallel({"deep": fl.Pipeline(plus3, inner), "flat": plus5}, merge="accumulate"),
    )
    fake = FakeClient()
    remote = fl.run(pipe, Counter(), backend=fl.backends.Dask(fake))
    local = fl.run(pipe, Counter())
    assert remote.context.counter == local.context.counter == 10 + 5 + 3 + 5 + 3 + 5
    assert len(fake.submitted) == 4
    calls = remote.extra["backend_calls"]
    assert sorted(zip(calls["branch"], calls["step"], strict=True)) == [
        ("parallel:deep", "plus3"),
        ("parallel:deep/inner:x", "plus5"),
        ("parallel:deep/inner:y", "plus3"),
        ("parallel:flat", "plus5"),
    ]
    rows = remote.branches.set_index("path")
    assert rows.loc["parallel:deep", "worker"] == "local"  # ran one step of its own there
    assert (
        rows.loc["parallel:deep", "finished_s"] >= rows.loc["parallel:deep/inner:y", "finished_s"]
    )


class Docs(BaseModel):
    docs: list[int] = [3, 1, 2]
    total: Annotated[int, fl.merge.Sum()] = 0


def square_doc(item: int, ctx: Docs) -> int:
    ctx.total += item
    return item * item


_tries: dict[int, int] = {}


def flaky_doc(item: int, ctx: Docs) -> int:
    _tries[item] = _tries.get(item, 0) + 1
    if _tries[item] == 1:
        raise ValueError("429")
    ctx.total += item
    return item


def test_a_map_runs_its_items_on_the_backend_in_item_order() -> None:
    client = FakeClient()
    pipe = fl.Map(square_doc, over="docs", key=lambda i: f"doc{i}", name="m")
    r = fl.run(pipe, Docs(), backend=fl.backends.Dask(client))
    assert r.output == [9, 1, 4]  # in item order, whichever finished first
    assert r.context.total == 6 and len(client.submitted) == 3
    assert list(r.branches["branch"]) == ["doc3", "doc1", "doc2"]


def test_retried_attempts_each_go_to_the_backend_and_each_is_a_row() -> None:
    _tries.clear()
    client = FakeClient()
    pipe = fl.Map(flaky_doc, over="docs", retry=fl.Retry(attempts=2, backoff=0, jitter=0))
    r = fl.run(pipe, Docs(), backend=fl.backends.Dask(client))
    assert r.output == [3, 1, 2] and r.context.total == 6
    assert len(client.submitted) == 6  # every item failed once, then succeeded
    assert sorted(r.attempts["status"]) == ["failed"] * 3 + ["ok"] * 3


@pytest.mark.parametrize("where", BACKENDS)
def test_a_map_gives_the_same_run_here_and_on_a_cluster(
    where: str, request: pytest.FixtureRequest
) -> None:
    pipe = fl.Map(square_doc, over="docs", key=lambda i: f"doc{i}", max_concurrency=2, name="m")
    r = run_on(where, request, pipe, Docs())
    assert r.output == [9, 1, 4] and r.context.total == 6
    assert list(r.branches["status"]) == ["ok", "ok", "ok"]
