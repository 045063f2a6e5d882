# %% [markdown]
# # Concurrency: caps, adaptive limits, cancellation and shared budgets
#
# The same 40-branch workload under caps 1, 2, 4, 8, unlimited and adaptive, on virtual time, with
# the timelines side by side; then a usage budget breach with its cancelled siblings, and a branch
# cancelled by hand.

# %%
import asyncio
import math
from typing import Annotated

import matplotlib.pyplot as plt
import pandas as pd
from pydantic import BaseModel

import flowlab as fl


class Ctx(BaseModel):
    done: Annotated[int, fl.merge.Sum()] = 0


def work(seconds: float):
    async def step(data, ctx: Ctx):
        await asyncio.sleep(seconds)
        ctx.done += 1
    return step


DURATIONS = [0.5 + (i * 7 % 5) * 0.25 for i in range(40)]   # 0.5 s .. 1.5 s, fixed pattern
branches = {f"b{i:02d}": work(d) for i, d in enumerate(DURATIONS)}
print(f"40 branches, {sum(DURATIONS):.1f} s of work in total")

# %% [markdown]
# ## Caps
# `max_concurrency` bounds how many branches of the step are in flight. A limiter can also move:
# `fl.limits.AIMD` grows the limit by one per fast branch and halves it on a slow one;
# `fl.limits.Adaptive` follows the machine's CPU load (here with an injected reading, so the
# notebook is repeatable).

# %%
cpu_series = iter([0.2] * 10 + [0.95] * 10 + [0.3] * 1000)
caps = {
    "1": 1, "2": 2, "4": 4, "8": 8, "unlimited": None,
    "aimd": fl.limits.AIMD(1, 8, latency_target_s=1.2),
    "adaptive": fl.limits.Adaptive(1, 8, target_cpu=0.8, interval_s=0.5,
                                   reader=lambda: (next(cpu_series), 0.3)),
}
results = {}
for label, cap in caps.items():
    pipe = fl.Parallel(branches, max_concurrency=cap, name="fanout")
    results[label] = fl.run(pipe, Ctx(), clock="virtual")

table = pd.DataFrame(
    {label: r.summary() for label, r in results.items()}
).T[["makespan_s", "peak_concurrency", "utilisation", "n_ok"]]
table

# %% [markdown]
# The peak never exceeds the cap, and every branch is counted exactly once (`done == 40`) whatever
# the cap: `Sum` adds each branch's delta.

# %%
for label, r in results.items():
    cap = caps[label]
    if isinstance(cap, int):
        assert r.summary()["peak_concurrency"] <= cap
    assert r.context.done == 40
print("checked")

# %% [markdown]
# ## Timelines side by side
# Light segments are time spent queued for a slot; solid bars are running time.

# %%
fig, axes = plt.subplots(2, 4, figsize=(16, 7), sharex=True)
for ax, (label, r) in zip(axes.flat, results.items()):
    fl.plot.timeline(r, ax=ax)
    ax.set_title(f"cap {label}: {r.makespan_s:.2f} s")
    ax.set_yticklabels([])
axes.flat[-1].axis("off")
fig.tight_layout()

# %% [markdown]
# How the adaptive limiters moved (every move is a row in `result.limits`):

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
for ax, label in zip(axes, ["aimd", "adaptive"]):
    fl.plot.concurrency(results[label], ax=ax)
    ax.set_title(label)
fig.tight_layout()
results["aimd"].limits.head(10)

# %% [markdown]
# ## A run-wide cap that cannot deadlock
# `fl.run(..., max_concurrency=k)` bounds *leaf steps* across the whole run, nested fan-outs
# included. A branch waiting for its own children holds no slot, so nesting deeper than `k` is fine.

# %%
def nested(depth):
    if depth == 0:
        return fl.Parallel({f"leaf{i}": work(1.0) for i in range(3)}, name="level0")
    return fl.Parallel({f"b{i}": nested(depth - 1) for i in range(3)}, name=f"level{depth}")

deep = fl.run(nested(2), Ctx(), clock="virtual", max_concurrency=2)
print(deep.summary()["peak_concurrency"], "leaves at once;", deep.makespan_s, "s for 27 one-second leaves")

# %% [markdown]
# ## A shared budget
# One account for the whole run — never split per branch. The charge that crosses the limit fails
# its branch and every sibling is cancelled at that very instant; the crossing charge still counts.

# %%
def costly(delay):
    async def step(data, ctx: Ctx):
        await asyncio.sleep(delay)
        fl.charge(cost=0.05)
        await asyncio.sleep(10)          # would keep going without the breach
        ctx.done += 1
    return step

budget = fl.Parallel({f"c{i}": costly(i) for i in range(5)}, name="fanout")
try:
    fl.run(budget, Ctx(), clock="virtual", usage=fl.UsageLimits(cost=0.12))
except fl.UsageLimitExceeded as err:
    print(err)
    breach = err.result

breach.branches[["branch", "status", "cost", "finished_s", "reason"]]

# %%
ax = fl.plot.timeline(breach)
ax.set_title(f"breach at t=2 s; total cost {breach.cost:.2f}")

# %% [markdown]
# ## Cancelling one branch by hand
# `fl.start` returns a handle: `handle.cancel("name")` cancels one branch (queued or running). A
# cancelled branch is not a failure: its changes are not merged and its siblings go on.

# %%
quick = {f"q{i}": work(0.2) for i in range(3)}
handle = fl.start(fl.Parallel({**quick, "slow": work(30.0)}, name="fanout"), Ctx())  # real clock
await asyncio.sleep(0.1)
print(handle)            # live progress
handle.cancel("slow")
r = await handle
print(r.status, "done =", r.context.done, f"in {r.makespan_s:.2f} s")
r.branches[["branch", "status", "reason", "finished_s"]]
