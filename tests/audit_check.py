"""Drive one :mod:`audit_gen` program on virtual time and hold everything a user reads against
the leaves' own journal.

Checked (each against the journal or against another view, never against flowlab's own model):

* ``result.attempts``: one row per attempt really made, with its start, end, charges, status;
  an attempt after a failed one starts no sooner than ``policy.delay`` after it;
* ``result.branches``: ``wait_s = started_s - queued_s``, ``duration_s = finished_s - started_s``;
  a branch starts no later than its first leaf and finishes no sooner than its last; its cost
  and tokens are its leaves' accepted charges; ``completion_rank`` agrees with ``finished_s``;
  a branch whose leaves all ended ok is not failed; a leaf's error is its branch's error;
* caps: at no instant more branches of a step running than its cap (fixed, per key); rates:
  starts of a rated step spaced by the rate; the run-wide cap and rate bound leaf attempts;
* ``result.cost`` / ``tokens`` are the journal's totals; over budget iff breached;
* ``result.outputs`` / ``result.errors``: the leaf's own return value and exception object;
* ``result.context``: base + the deltas of exactly the leaves whose branch chain was ok;
* ``handle.as_completed()``: one outcome per branch row, same status, time, output, error;
* ``fl.plot.timeline``: one status bar per branch row at its times; ``to_chrome_trace``: one run
  slice per started branch at its times.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from audit_gen import ACtx, Attempt, Journal, LeafPlan, Program, build

import flowlab as fl
from flowlab.engine.clock import run_virtual

EPS = 1e-9


@dataclass
class Outcome:
    prog: Program
    result: fl.RunResult
    journal: Journal
    stream: list[Any] = field(default_factory=list)
    raised: BaseException | None = None
    fired: list[tuple[float, str, bool]] = field(default_factory=list)


async def _drive(prog: Program) -> Outcome:
    journal = Journal()
    loop = asyncio.get_running_loop()
    journal.clock = loop.time
    pipe = build(prog, journal)
    usage = None
    if prog.usage is not None:
        cents, tokens = prog.usage
        usage = fl.UsageLimits(cost=None if cents is None else cents / 100, tokens=tokens)
    t0 = loop.time()
    journal.clock = lambda: loop.time() - t0
    called: list[Any] = []
    handle = fl.start(
        pipe,
        ACtx(total=prog.base_total),
        clock="virtual",
        usage=usage,
        max_concurrency=prog.run_cap,
        timeout=prog.run_timeout,
        on_branch=called.append,
        rate=fl.limits.Rate(per_second=prog.run_rate, tokens_per_minute=prog.run_tpm)
        if prog.run_rate or prog.run_tpm
        else None,
    )
    journal.handle = handle
    fired: list[tuple[float, str, bool]] = []

    def fire(path: str) -> None:
        fired.append((journal.clock(), path, handle.done()))
        handle.cancel(path or None)

    timers = [loop.call_later(t, fire, p) for t, p in prog.cancels]
    stream: list[Any] = []

    async def read() -> None:
        async for o in handle.as_completed():
            stream.append(o)

    reader = asyncio.ensure_future(read())
    result = await asyncio.wait_for(handle.wait(), timeout=10_000)
    await asyncio.wait_for(reader, timeout=10)
    raised = None
    try:
        await handle
    except BaseException as err:
        raised = err
    for t in timers:
        t.cancel()
    assert [o.path for o in called] == [o.path for o in stream], "on_branch != as_completed"
    return Outcome(prog, result, journal, stream, raised, fired)


def drive(prog: Program) -> Outcome:
    """Run ``prog`` on a fresh virtual loop."""
    return run_virtual(_drive(prog))


# ------------------------------------------------------------------------------------ checks


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-6


def check(out: Outcome) -> None:
    """Every check of the module docstring; an AssertionError says which and where."""
    _attempts(out)
    rows = _branches(out)
    _caps(out, rows)
    _usage(out, rows)
    _outputs(out, rows)
    _context(out, rows)
    _stream(out, rows)
    _pictures(out, rows)


def _records(frame: Any) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = frame.to_dict("records")
    for row in recs:
        if "status" in row:
            row["status"] = str(row["status"])
    return recs


def _attempts(out: Outcome) -> None:
    prog, r, j = out.prog, out.result, out.journal
    frame = _records(r.attempts)
    by_path: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in frame:
        by_path[row["path"]].append(row)
    for leaf_id, leaf in prog.leaves.items():
        atts = j.of(leaf_id)
        policy = prog.policy[leaf_id]
        path = prog.step_path[leaf_id]
        rows = by_path.get(path, [])
        if policy is None:
            assert len(atts) <= 1, (leaf_id, "ran twice without a policy", atts)
            assert not rows, (leaf_id, "attempt rows without a policy", rows)
            continue
        assert len(atts) <= policy.attempts, (leaf_id, len(atts), policy)
        # (an attempt cancelled before its call began, a sync one before its thread ran, has a
        # row of no time and no journal entry)
        for row in rows[len(atts) :]:
            assert row["status"] == "cancelled" and row["duration_s"] == 0, (leaf_id, row)
        assert len(rows) >= len(atts), (leaf_id, "attempt rows", len(rows), "made", len(atts))
        for att, row in zip(atts, rows, strict=False):
            assert row["attempt"] == att.n, (leaf_id, row, att)
            assert _close(row["started_s"], att.start), (leaf_id, att.n, row["started_s"], att)
            assert row["finished_s"] >= att.end - EPS, (leaf_id, att.n, row["finished_s"], att)
            assert abs(row["cost"] - att.cents / 100) < 1e-9, (leaf_id, att.n, row["cost"], att)
            assert row["tokens"] == att.tokens, (leaf_id, att.n, row["tokens"], att)
            if att.stubborn:  # it swallowed its cancellation: its branch says so (ignored)
                pass
            elif att.how == "ok" and not (leaf.sync and row["status"] == "cancelled"):
                # (a sync call cancelled as it returned ran on in its thread: discarded)
                assert row["status"] == "ok", (leaf_id, att.n, row, att)
            else:
                assert row["status"] != "ok", (leaf_id, att.n, row, att)
        for prev, nxt in itertools.pairwise(atts):
            want = policy.delay(prev.n, path)
            assert nxt.start >= prev.end + want - EPS, (leaf_id, prev, nxt, want)
            row = rows[nxt.n - 1]
            assert _close(row["delay_s"], want), (leaf_id, row["delay_s"], want)


def _branches(out: Outcome) -> list[dict[str, Any]]:
    prog, r, j = out.prog, out.result, out.journal
    rows = _records(r.branches)
    paths = [b["path"] for b in rows]
    assert len(paths) == len(set(paths)), ("two rows for one branch", paths)
    leaves_of: dict[str, list[str]] = collections.defaultdict(list)
    for leaf_id, owners in prog.owner.items():
        for p in owners:
            leaves_of[p].append(leaf_id)
    ends = collections.Counter(
        e["branch"] for e in r.events.to_dict("records") if e["kind"] == "branch_finished"
    )
    by_step: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for b in rows:
        p = b["path"]
        assert ends[p] == 1, ("branch_finished events", p, ends[p])
        assert p in prog.fan_of_branch, ("a row for an unknown branch", p)
        assert b["status"] in ("ok", "failed", "cancelled", "timeout"), b
        if not math.isnan(b["started_s"]):
            assert _close(b["wait_s"], b["started_s"] - b["queued_s"]), b
            assert _close(b["duration_s"], b["finished_s"] - b["started_s"]), b
        if str(b["reason"]).startswith("branch_timeout="):
            # counted from its start, as its row says (not from its dispatch, before it waited
            # for a run-wide slot): it ran its branch_timeout to the end
            limit = prog.fans[prog.fan_of_branch[p]].branch_timeout
            assert limit is not None and b["duration_s"] >= limit - EPS, ("timed out early", b)
        atts = [a for leaf_id in leaves_of[p] for a in j.of(leaf_id)]
        own = [a for a in atts if prog.owner[a.leaf][-1] == p]  # charges count where made
        if atts:
            assert not math.isnan(b["started_s"]), ("leaves ran in a branch never started", b)
            first = min(a.start for a in atts)
            last = max(a.end for a in atts)
            assert b["started_s"] <= first + EPS, ("branch started after its leaf", b, first)
            assert b["finished_s"] >= last - EPS, ("branch finished before its leaf", b, last)
            late = [a for a in atts if a.start > b["finished_s"] + EPS]
            assert not late, ("a leaf started after its branch ended", b, late)
        cents = sum(a.cents for a in own)
        tokens = sum(a.tokens for a in own)
        assert abs(b["cost"] - cents / 100) < 1e-9, ("branch cost", p, b["cost"], cents)
        assert b["tokens"] == tokens, ("branch tokens", p, b["tokens"], tokens)
        by_step[b["step"]].append(b)
    for step, bs in by_step.items():
        ranked = sorted(bs, key=lambda b: int(b["completion_rank"]))
        ranks = [int(b["completion_rank"]) for b in ranked]
        assert ranks == list(range(1, len(bs) + 1)), (step, ranks)
        ends = [b["finished_s"] for b in ranked]
        assert ends == sorted(ends), ("completion_rank disagrees with finished_s", step, ranked)
    return rows


def _sweep(intervals: list[tuple[float, float]]) -> int:
    points = sorted(
        [(s, 1) for s, e in intervals if e > s] + [(e, -1) for s, e in intervals if e > s]
    )
    peak = cur = 0
    for _, d in points:
        cur += d
        peak = max(peak, cur)
    return peak


def _caps(out: Outcome, rows: list[dict[str, Any]]) -> None:
    prog, j = out.prog, out.journal
    fan_of = prog.fan_of_branch
    for fan_path, fan in prog.fans.items():
        mine = [b for b in rows if fan_of[b["path"]] == fan_path and not math.isnan(b["started_s"])]
        spans = [(b["started_s"], b["finished_s"]) for b in mine]
        if isinstance(fan.cap, int):
            assert _sweep(spans) <= fan.cap, ("cap exceeded", fan_path, fan.cap, mine)
        if isinstance(fan.cap, int) and not fan.rate and not prog.capped:
            # slots go by priority, ties in declared order: no branch starts while a better
            # placed one of its step still waits
            names = list(fan.branches)
            allrows = [b for b in rows if fan_of[b["path"]] == fan_path]

            def place(
                b: dict[str, Any], fan: Any = fan, names: list[str] = names
            ) -> tuple[float, int]:
                return (-fan.priority.get(b["branch"], 0), names.index(b["branch"]))

            for b in mine:
                t = b["started_s"]
                for c in allrows:
                    later = math.isnan(c["started_s"]) or c["started_s"] > t + EPS
                    waiting = c["queued_s"] <= t + EPS and later and c["finished_s"] > t + EPS
                    if waiting:
                        assert place(c) > place(b), ("priority order broken", fan_path, b, c)
        elif isinstance(fan.cap, tuple) and fan.cap[0] == "keyed":
            if fan.rate is None and not prog.capped:
                # one wait row per held start, as long as that branch's wait
                lim = out.result.limits
                rows_w = lim.loc[(lim["step"] == fan_path) & (lim["event"] == "wait"), "wait_s"]
                held = collections.Counter(b["wait_s"] for b in mine if b["wait_s"] > EPS)
                logged = collections.Counter(rows_w.tolist())
                assert not held - logged, ("keyed waits not logged", fan_path, held - logged)
                # (and a branch admitted as its step was torn down, then cancelled unstarted)
                unstarted = [
                    b for b in rows if fan_of[b["path"]] == fan_path and math.isnan(b["started_s"])
                ]
                assert (logged - held).total() <= len(unstarted), ("keyed waits", fan_path)
            for g, cap in fan.cap[1].items():
                keyed = [
                    (b["started_s"], b["finished_s"])
                    for b in mine
                    if b["branch"].startswith(g + "_")
                ]
                assert _sweep(keyed) <= cap, ("key cap exceeded", fan_path, g, cap)
        if fan.rate:
            # every start of a rated step's branches, and every retry of a leaf whose innermost
            # branch is one of them, is a request: spaced by 1/rate at burst 1
            retries = [
                a.start
                for a in j.attempts
                if a.n > 1 and prog.owner[a.leaf] and fan_of[prog.owner[a.leaf][-1]] == fan_path
            ]
            starts = sorted([b["started_s"] for b in mine] + retries)
            for a, b2 in itertools.pairwise(starts):
                assert b2 - a >= 1 / fan.rate - EPS, ("rate broken", fan_path, starts)
    steps = _records(out.result.steps)
    for srow in steps:
        if srow["kind"] != "parallel" or srow["path"] not in prog.fans:
            continue
        fan = prog.fans[srow["path"]]
        mine = [
            (b["started_s"], b["finished_s"])
            for b in rows
            if fan_of[b["path"]] == srow["path"] and not math.isnan(b["started_s"])
        ]
        peak = srow["peak_concurrency"]
        if isinstance(fan.cap, int):
            assert peak <= fan.cap, ("step peak above its cap", srow)
        # (a branch ending in the instant another starts may count as both: peak >= rows)
        if not prog.capped:
            assert peak >= _sweep(mine), ("step peak below its rows", srow["path"], peak)
    leaf_atts = [a for a in j.attempts if not math.isnan(a.end)]
    if prog.run_cap is not None:
        spans = [(a.start, a.end) for a in leaf_atts]
        assert _sweep(spans) <= prog.run_cap, ("run cap exceeded", prog.run_cap)
    if prog.run_tpm is not None:  # no start while the last minute's tokens are at the limit
        charged = [c for a in j.attempts for c in a.charged]
        for a in j.attempts:
            t = a.start
            window = sum(k for c, k in charged if t - 60 + EPS < c < t - EPS)
            assert window < prog.run_tpm, ("token rate broken", a, window, prog.run_tpm)
    if prog.run_rate is not None:
        starts = sorted(a.start for a in j.attempts)
        for a, b2 in itertools.pairwise(starts):
            assert b2 - a >= 1 / prog.run_rate - EPS, ("run rate broken", starts)


def _usage(out: Outcome, rows: list[dict[str, Any]]) -> None:
    r, j, prog = out.result, out.journal, out.prog
    cents = sum(a.cents for a in j.attempts)
    tokens = sum(a.tokens for a in j.attempts)
    s = r.summary()
    busy = sum(a.end - a.start for a in j.attempts if not math.isnan(a.end))
    if s["peak_concurrency"] and r.makespan_s and not any(x.sync for x in prog.leaves.values()):
        want = busy / (r.makespan_s * s["peak_concurrency"])
        assert abs(s["utilization"] - want) < 1e-5, ("utilization", s["utilization"], want)
    assert abs(r.cost - cents / 100) < 1e-9, ("run cost", r.cost, cents)
    assert r.tokens == tokens, ("run tokens", r.tokens, tokens)
    top_cents = sum(a.cents for a in j.attempts if not prog.owner[a.leaf])
    assert abs(sum(b["cost"] for b in rows) + top_cents / 100 - r.cost) < 1e-9
    if prog.usage is not None:
        lc, lt = prog.usage
        over = (lc is not None and cents > lc) or (lt is not None and tokens > lt)
        breached = any(a.how == "breach" for a in j.attempts)
        assert over == breached, ("over budget vs breach", over, breached)
        if r.status == "usage_limit_exceeded":
            assert breached


def _chain_ok(prog: Program, leaf_id: str, status: dict[str, str]) -> bool:
    return all(status.get(p) == "ok" for p in prog.owner[leaf_id])


def _outputs(out: Outcome, rows: list[dict[str, Any]]) -> None:
    prog, r, j = out.prog, out.result, out.journal
    {b["path"]: b["status"] for b in rows}
    outputs, errors = dict(r.outputs), dict(r.errors)
    for b in rows:
        p = b["path"]
        node = _node_of(prog, p)
        if b["status"] == "ok":
            assert p in outputs, ("ok branch without an output", p)
            assert p not in errors, ("ok branch with an error", p)
            if isinstance(node, LeafPlan):
                last = j.of(node.id)[-1]
                assert last.how == "ok", ("branch ok, its leaf not", p, last)
                assert _same_output(outputs[p], last.output), (p, outputs[p], last.output)
        else:
            assert p not in outputs, ("a branch that did not succeed has an output", p, b)
        if b["status"] == "failed" and isinstance(node, LeafPlan):
            last = j.of(node.id)[-1] if j.of(node.id) else None
            if last is not None and last.error is not None and last.how in ("fail",):
                assert errors.get(p) is last.error, ("errors[] is not the leaf's error", p,
                                                     errors.get(p), last.error)  # fmt: skip
        if b["status"] in ("failed", "timeout"):
            assert p in errors, ("a failed branch without an error object", p, b)
    last = prog.top[-1]
    if r.status == "ok" and not isinstance(last, LeafPlan):
        names = list(last.branches)
        got = {n: outputs.get(f"{last.name}:{n}") for n in names}
        if last.kind == "map":  # the items' outputs in order, None where a branch did not succeed
            assert r.output == [got[n] for n in names], ("Map output", r.output)
        else:  # the branches that succeeded, in declared order
            want = {n: v for n, v in got.items() if f"{last.name}:{n}" in outputs}
            assert list(r.output) == list(want), ("Parallel output keys", r.output)
    for d in _records(r.diffs):
        b = next(x for x in rows if x["step"] == d["step"] and x["branch"] == d["branch"])
        assert str(d["branch_status"]) == b["status"], ("diff row status", d, b["status"])
    for m in _records(r.merges):
        for w in m["writers"]:
            hits = [x for x in rows if x["step"] == m["step"] and x["branch"] == w]
            assert hits and all(x["status"] == "ok" for x in hits), ("merged a writer not ok", m)
    for b in rows:
        node = _node_of(prog, b["path"])
        if isinstance(node, LeafPlan) and j.of(node.id):
            last = j.of(node.id)[-1]
            if last.how == "ok" and b["status"] == "failed":
                raise AssertionError(("leaf ended ok, branch failed", b, last))


def _same_output(a: Any, b: Any) -> bool:
    if isinstance(b, fl.Update):
        return isinstance(a, fl.Update) and a == b
    return bool(a == b)


def _node_of(prog: Program, path: str) -> Any:
    fan = prog.fans[prog.fan_of_branch[path]]
    return fan.branches[path.rsplit(":", 1)[1]]


def _context(out: Outcome, rows: list[dict[str, Any]]) -> None:
    prog, r, j = out.prog, out.result, out.journal
    if r.status != "ok":
        return
    status = {b["path"]: b["status"] for b in rows}
    total = prog.base_total
    seen: set[str] = set()
    for leaf_id, leaf in prog.leaves.items():
        atts = j.of(leaf_id)
        if atts and atts[-1].how == "ok" and _chain_ok(prog, leaf_id, status):
            total += leaf.delta
            seen.add(leaf_id)
    ctx = r.context
    assert isinstance(ctx, ACtx)
    assert ctx.total == total, ("total", ctx.total, total)
    note = _note(out, rows)
    if note is not None:
        assert ctx.note == note, ("note (overwrite, by order)", ctx.note, note)
    assert set(ctx.seen) == seen, ("seen", sorted(set(ctx.seen) ^ seen))


def _note(out: Outcome, rows: list[dict[str, Any]]) -> str | None:
    """``note`` after an ok run whose fan-outs are all flat (every branch one leaf): each step's
    last writer in its ``order`` wins (declared order, or completion rank); None: not modelled."""
    prog, j = out.prog, out.journal
    by_path = {b["path"]: b for b in rows}
    note = ""
    for node in prog.top:
        if isinstance(node, LeafPlan):
            if not node.update:
                note = node.id
            continue
        if not all(isinstance(b, LeafPlan) for b in node.branches.values()):
            return None
        writers = []
        for name, leaf in node.branches.items():
            b = by_path[f"{node.name}:{name}"]
            atts = j.of(leaf.id)
            if b["status"] == "ok" and not leaf.update and atts and atts[-1].how == "ok":
                writers.append((b["completion_rank"] if node.order == "completion" else 0, leaf.id))
        if writers:  # (a stable sort: declared order among equal keys)
            note = sorted(writers, key=lambda w: w[0])[-1][1]
    return note


def _stream(out: Outcome, rows: list[dict[str, Any]]) -> None:
    r = out.result
    by_path = {b["path"]: b for b in rows}
    got = [o.path for o in out.stream]
    assert sorted(got) == sorted(by_path), ("as_completed paths", sorted(set(got) ^ set(by_path)))
    times = [o.finished_s for o in out.stream]
    assert times == sorted(times), ("as_completed out of time order", out.stream)
    outputs, errors = dict(r.outputs), dict(r.errors)
    for o in out.stream:
        b = by_path[o.path]
        assert o.status == b["status"], ("stream status", o, b)
        assert _close(o.finished_s, b["finished_s"]), ("stream time", o, b)
        if o.status == "ok":
            assert _same_output(o.output, outputs[o.path]), ("stream output", o)
        if o.path in errors:
            assert o.error is errors[o.path], ("stream error", o, errors[o.path])


def _pictures(out: Outcome, rows: list[dict[str, Any]]) -> None:
    r = out.result
    ax = fl.plot.timeline(r)
    bars = {p.get_gid(): p for p in ax.patches if str(p.get_gid()).startswith("run:")}
    assert sorted(bars) == sorted(f"run:{b['path']}" for b in rows), "timeline bars != rows"
    for b in rows:
        patch = bars[f"run:{b['path']}"]
        left = b["queued_s"] if math.isnan(b["started_s"]) else b["started_s"]
        assert _close(patch.get_x(), left), ("bar start", b, patch.get_x())
        assert _close(patch.get_x() + patch.get_width(), b["finished_s"]), ("bar end", b)
    ranks = {
        t.get_gid(): t.get_text().strip() for t in ax.texts if str(t.get_gid()).startswith("rank:")
    }
    if len(rows) <= 40:  # (compact beyond: no ranks written)
        for b in rows:
            assert ranks[f"rank:{b['path']}"] == f"#{int(b['completion_rank'])}", b
    import matplotlib.pyplot as plt

    plt.close(ax.figure)
    # the in-flight line counts leaf steps as they really ran: never above the run-wide cap or
    # the recorded peak, and at its peak wherever the journal's attempts overlap most
    ax = fl.plot.concurrency(r, limit=out.prog.run_cap)
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "in_flight"]
    drawn = max(int(y) for y in line.get_ydata())
    real = _sweep([(a.start, a.end) for a in out.journal.attempts if not math.isnan(a.end)])
    assert drawn == real, ("concurrency plot peak", drawn, "journal", real)
    assert drawn <= r.summary()["peak_concurrency"], (drawn, r.summary())
    if out.prog.run_cap is not None:
        assert drawn <= out.prog.run_cap, ("concurrency plot above the run cap", drawn)
    plt.close(ax.figure)
    # fl.plot.attempts: a bar per attempt at the journal's times; the backoff before attempt n
    # starts where attempt n - 1 ended and lasts its delay_s; the rest of the gap is "queued"
    if len(r.attempts):
        ax = fl.plot.attempts(r, retried_only=False)
        patches = {p.get_gid(): p for p in ax.patches}
        atts = _records(r.attempts)
        by_leaf: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for row in atts:
            by_leaf[row["path"]].append(row)
            bar = patches[f"attempt:{row['path']}#{row['attempt']}"]
            assert _close(bar.get_x(), row["started_s"]), ("attempt bar start", row)
            assert _close(bar.get_width(), row["duration_s"]), ("attempt bar width", row)
        for path, rs in by_leaf.items():
            for prev, row in itertools.pairwise(rs):
                gap = row["started_s"] - prev["finished_s"]
                back = patches.get(f"backoff:{path}#{row['attempt']}")
                queued = patches.get(f"queued:{path}#{row['attempt']}")
                drawn = (back.get_width() if back else 0.0) + (queued.get_width() if queued else 0)
                assert _close(drawn, gap), ("attempt gap drawn", path, row["attempt"], drawn, gap)
                if back is not None:
                    assert _close(back.get_x(), prev["finished_s"]), ("backoff start", path)
        plt.close(ax.figure)
    trace = r.to_chrome_trace()
    names = {
        e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["tid"]
    }
    slices = collections.defaultdict(list)
    for e in trace["traceEvents"]:
        if e["ph"] == "X" and e["tid"] and e["cat"] in ("ok", "failed", "cancelled", "timeout"):
            slices[names[e["tid"]]].append(e)
    queues = collections.defaultdict(list)
    steps_on = collections.defaultdict(list)
    for e in trace["traceEvents"]:
        if e["ph"] == "X" and e["tid"] and e["cat"] == "queue":
            queues[names[e["tid"]]].append(e)
        elif e["ph"] == "X" and e["tid"] and e["cat"] == "step":
            steps_on[names[e["tid"]]].append(e)
    for b in rows:
        end = b["finished_s"] if math.isnan(b["started_s"]) else b["started_s"]
        if end > b["queued_s"] + EPS:  # its time in the queue, on its track
            (q,) = queues[b["path"]]
            assert _close(q["ts"] / 1e6, b["queued_s"]), ("trace queue start", b, q)
            assert _close((q["ts"] + q["dur"]) / 1e6, end), ("trace queue end", b, q)
    for srow in _records(r.steps):
        if srow["kind"] == "step" and srow["parent"] and not math.isnan(srow["started_s"]):
            on = [e for e in steps_on[srow["parent"]] if _close(e["ts"] / 1e6, srow["started_s"])]
            assert any(_close(e["dur"] / 1e6, srow["duration_s"]) for e in on), ("step", srow)
    for b in rows:
        if math.isnan(b["started_s"]):
            continue
        (e,) = slices[b["path"]]
        assert _close(e["ts"] / 1e6, b["started_s"]), ("trace start", b, e)
        assert _close((e["ts"] + e["dur"]) / 1e6, b["finished_s"]), ("trace end", b, e)
        assert e["cat"] == b["status"]


def attempts_of(j: Journal, leaf: str) -> list[Attempt]:
    return j.of(leaf)
