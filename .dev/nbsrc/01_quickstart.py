# %% [markdown]
# # flowlab quickstart
#
# A pipeline step that fans out into parallel **branches**. Each branch works on its own copy of a
# pydantic context; afterwards flowlab merges the branches' changes back with a strategy you pick,
# and records everything that happened as pandas frames.
#
# This notebook builds a small fan-out, runs it on **virtual time** (sleeps take no wall time, and
# the timings are exact and identical on every run), and looks at the frames.

# %%
import asyncio
from typing import Annotated

from pydantic import BaseModel

import flowlab as fl


class Ctx(BaseModel):
    processed: Annotated[int, fl.merge.Sum()] = 0      # counters add their deltas
    tags: Annotated[list[str], fl.merge.Union()] = []  # lists are de-duplicated in order
    scores: dict[str, float] = {}                      # no rule: the step's strategy applies
    status: str = "new"

# %% [markdown]
# Steps are plain functions `(data, ctx)`, sync or async. Sync steps run in a worker thread.

# %%
def prepare(data, ctx: Ctx):
    ctx.status = "prepared"
    return data


def make_branch(name: str, seconds: float, n: int):
    async def branch(data, ctx: Ctx):
        await asyncio.sleep(seconds)          # stands in for an API call
        ctx.processed += n
        ctx.tags += [name, "seen"]
        ctx.scores[name] = n / 10
        fl.charge(cost=0.01 * n, tokens=100 * n)
        return f"{name} handled {len(data)} docs"
    branch.__name__ = name
    return branch


def finalize(outputs, ctx: Ctx):
    ctx.status = "done"
    return sorted(outputs)


pipe = fl.Pipeline(
    prepare,
    fl.Parallel(
        {"fetch": make_branch("fetch", 2.0, 5), "score": make_branch("score", 1.0, 3),
         "tag": make_branch("tag", 1.5, 2), "summarise": make_branch("summarise", 3.0, 1)},
        merge="deep",
        max_concurrency=2,
        priority={"summarise": 10},
        name="fanout",
    ),
    finalize,
)
pipe

# %% [markdown]
# `fl.run` works in scripts and in notebook cells (here a loop is already running; flowlab handles it).
# `await fl.arun(...)` is the async spelling.

# %%
result = fl.run(pipe, Ctx(), input=["d1", "d2", "d3"], clock="virtual",
                usage=fl.UsageLimits(cost=1.0, tokens=10_000))
result

# %%
result.context

# %%
result.output

# %% [markdown]
# ## The frames
# One row per branch: when it was queued, started and finished (seconds from the run start), how
# long it waited for a slot, its status, completion rank and what it cost.

# %%
result.branches[["branch", "priority", "queued_s", "started_s", "finished_s", "wait_s",
                 "duration_s", "status", "completion_rank", "cost", "tokens"]]

# %% [markdown]
# `summarise` has the highest priority, so it took the first free slot. With two slots and
# branches of 3, 2, 1.5 and 1 s the makespan is exactly 4 s:

# %%
result.summary()

# %% [markdown]
# What each branch changed (`diffs`) and how the merge resolved every path (`merges`):

# %%
result.diffs

# %%
result.merges

# %%
result.steps[["step", "path", "kind", "started_s", "finished_s", "status", "merge_s", "peak_concurrency"]]

# %% [markdown]
# ## The same run, awaited
# In async code (and in notebook cells) use `await fl.arun(...)`. Every run is recorded, failed
# ones too: the error carries the partial result.

# %%
async def flaky(data, ctx: Ctx):
    await asyncio.sleep(0.5)
    raise RuntimeError("upstream returned 503")

broken = fl.Parallel({"ok": make_branch("ok", 1.0, 1), "flaky": flaky}, name="fanout")
try:
    await fl.arun(broken, Ctx(), clock="virtual")
except fl.BranchFailed as err:
    print("raised:", err)
    partial = err.result

partial.branches[["branch", "status", "error", "finished_s"]]

# %% [markdown]
# `partial.context` is untouched: a step that fails merges nothing. `on_failure="ignore"` would
# merge the branches that succeeded instead.

# %%
assert partial.context == Ctx()
ignored = fl.run(fl.Parallel({"ok": make_branch("ok", 1.0, 1), "flaky": flaky}, on_failure="ignore"),
                 Ctx(), clock="virtual")
ignored.context

# %% [markdown]
# ## Export
# `to_chrome_trace` writes a trace you can open in https://ui.perfetto.dev (one track per branch).

# %%
import json, tempfile, pathlib
path = pathlib.Path(tempfile.mkdtemp()) / "run.json"
trace = result.to_chrome_trace(path)
print(path, len(trace["traceEvents"]), "events")
