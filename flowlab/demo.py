"""A built-in, realistic fan-out: enriching one document with five branches at once.

The pipeline (``load`` → Parallel ``enrich`` → ``finalize``) looks like the enrichment stage of a
retrieval or publishing system:

* ``fetch`` — a small pipeline: download the text, then resolve its links;
* ``score`` — a nested Parallel of three scorers (quality, readability, toxicity) that each write
  one key of ``ctx.scores``;
* ``tag_topics`` — topic tags;
* ``tag_entities`` — named-entity tags. It is the **flaky** branch: it fails, deterministically,
  on the first non-ASCII word (the demo document mentions Zürich), after it has tagged the title:
  it shows up red, and its partial tags are recorded in ``diffs`` but never merged;
* ``summarize`` — the slowest branch.

Every branch charges usage (``fl.charge``), counts its work in ``processed`` (a ``Sum`` field),
adds tags to ``tags`` (a ``Union`` field) and adds the tokens it used to ``tokens_used`` — a plain
``int`` with no field rule, so the step's merge strategy decides what happens to it: ``accumulate``
adds every branch's delta, ``overwrite`` keeps the last writer's value, ``keep_first`` the first,
and ``error_on_conflict`` refuses to choose. Latencies are fixed per (document, branch), so on the
virtual clock every run is exact and repeatable.

>>> from flowlab import demo                      # doctest: +SKIP
>>> result = fl.run(demo.pipeline(), demo.Enrichment(), input=demo.DOCUMENT, clock="virtual")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel

from flowlab.core import merge
from flowlab.core.pipeline import Parallel, Pipeline
from flowlab.engine.coordinator import charge

if TYPE_CHECKING:
    from flowlab.results.record import RunResult
    from flowlab.study.experiment import Comparison

__all__ = [
    "DOCUMENT",
    "GRID",
    "DemoOutcome",
    "Enrichment",
    "latency",
    "pipeline",
    "run_demo",
]

DOCUMENT: dict[str, str] = {
    "id": "doc-0042",
    "title": "Tram network expansion approved",
    "text": (
        "The city council of Zürich approved a CHF 310 million expansion of the tram network. "
        "Construction of the new lines starts in spring; the transport authority expects 40,000 "
        "extra daily passengers and lower emissions across the region."
    ),
}
"""The demo's input document (its non-ASCII ``ü`` trips the flaky entity tagger)."""

GRID: dict[str, list[Any]] = {
    "merge": ["overwrite", "keep_first", "deep", "accumulate", "error_on_conflict"],
    "max_concurrency": [1, 2, 4],
}
"""The comparison the demo runs: every merge strategy × three concurrency caps."""

_BASE_LATENCY_S: dict[str, float] = {
    "fetch_text": 0.6, "fetch_links": 0.4, "quality": 0.5, "readability": 0.3, "toxicity": 0.7,
    "tag_topics": 0.9, "tag_entities": 0.8, "summarize": 1.6,
}  # fmt: skip


_STOPWORDS = frozenset({"The", "A", "An", "In", "On", "Of", "And"})


class Enrichment(BaseModel):
    """The demo's context: what the enrichment branches write."""

    processed: Annotated[int, merge.Sum()] = 0
    """Work items done: a ``Sum`` field, so every branch's count adds up under any strategy."""
    tags: Annotated[list[str], merge.Union()] = []
    """Tags in first-seen order, de-duplicated: a ``Union`` field."""
    scores: dict[str, float] = {}
    """One score per scorer; no rule: ``overwrite`` keeps one writer's whole dict, ``deep`` merges keys."""
    tokens_used: int = 0
    """Tokens used, as a plain counter with no rule: the strategy decides (see module docs)."""
    summary: str = ""
    status: str = "new"


def latency(doc_id: str, task: str) -> float:
    """Seconds ``task`` takes on document ``doc_id``: its base latency ±40 %, fixed by a hash."""
    jitter = zlib.crc32(f"{doc_id}/{task}".encode()) % 81 - 40  # -40 .. +40 (%)
    return round(_BASE_LATENCY_S[task] * (1 + jitter / 100), 3)


def _work(
    task: str, tokens: int, cost: float
) -> Callable[[dict[str, str], Enrichment], Awaitable[None]]:
    async def step(doc: dict[str, str], ctx: Enrichment) -> None:
        await asyncio.sleep(latency(doc["id"], task))
        charge(cost=cost, tokens=tokens)
        ctx.processed += 1
        ctx.tokens_used += tokens

    step.__name__ = task
    return step


def load(doc: dict[str, str], ctx: Enrichment) -> dict[str, str]:
    """Validate the input document and mark the context as started."""
    missing = [k for k in ("id", "title", "text") if k not in doc]
    if missing:
        raise ValueError(f"document is missing {missing}")
    ctx.status = "enriching"
    return doc


async def fetch_text(doc: dict[str, str], ctx: Enrichment) -> dict[str, str]:
    await _work("fetch_text", 120, 0.0004)(doc, ctx)
    return doc


async def fetch_links(doc: dict[str, str], ctx: Enrichment) -> list[str]:
    await _work("fetch_links", 60, 0.0002)(doc, ctx)
    return [w for w in doc["text"].split() if w[:1].isupper()][:3]


def _scorer(name: str, tokens: int) -> Callable[[dict[str, str], Enrichment], Awaitable[float]]:
    async def score(doc: dict[str, str], ctx: Enrichment) -> float:
        await _work(name, tokens, 0.001)(doc, ctx)
        value = round((zlib.crc32(f"{doc['id']}:{name}".encode()) % 1000) / 1000, 3)
        ctx.scores[name] = value
        return value

    score.__name__ = name
    return score


async def tag_topics(doc: dict[str, str], ctx: Enrichment) -> list[str]:
    await _work("tag_topics", 300, 0.0015)(doc, ctx)
    topics = [t for t, words in (("transport", ("tram", "transport")), ("politics", ("council",)),
                                 ("climate", ("emissions",))) if any(w in doc["text"].lower() for w in words)]  # fmt: skip
    ctx.tags += topics
    return topics


async def tag_entities(doc: dict[str, str], ctx: Enrichment) -> list[str]:
    """Tag capitalised words, title first. Fails on the first non-ASCII word (the flaky branch)."""
    await asyncio.sleep(latency(doc["id"], "tag_entities"))
    charge(cost=0.002, tokens=250)
    found: list[str] = []
    for word in (doc["title"] + " " + doc["text"]).split():
        word = word.strip(".,;:")
        if not word[:1].isupper() or word in _STOPWORDS:
            continue
        if not word.isascii():  # the branch has already written tags: recorded, never merged
            raise ValueError(f"entity tagger cannot handle non-ASCII text (word {word!r})")
        if f"entity:{word}" not in found:
            found.append(f"entity:{word}")
            ctx.tags.append(f"entity:{word}")
    ctx.processed += 1
    ctx.tokens_used += 250
    return found


async def summarize(doc: dict[str, str], ctx: Enrichment) -> str:
    await _work("summarize", 800, 0.004)(doc, ctx)
    ctx.summary = doc["text"].split(". ")[0] + "."
    ctx.tags += ["summarized"]
    return ctx.summary


def finalize(outputs: dict[str, Any], ctx: Enrichment) -> dict[str, Any]:
    """Mark the context done and return what the branches produced."""
    ctx.status = "enriched"
    return {"branches_ok": sorted(outputs), "tags": list(ctx.tags)}


def pipeline(*, merge_strategy: str = "accumulate", max_concurrency: int | None = 2) -> Pipeline:
    """The demo pipeline: ``load`` → Parallel ``enrich`` (five branches, one nested) → ``finalize``.

    ``enrich`` ignores the flaky branch's failure (``on_failure="ignore"``) so the run completes
    and the failure shows in the frames and plots.
    """
    scorers = {
        name: _scorer(name, t)
        for name, t in (("quality", 200), ("readability", 90), ("toxicity", 150))
    }
    return Pipeline(
        load,
        Parallel(
            {
                "fetch": Pipeline(fetch_text, fetch_links, name="fetch"),
                "score": Parallel(scorers, merge=merge_strategy, name="score"),
                "tag_topics": tag_topics,
                "tag_entities": tag_entities,
                "summarize": summarize,
            },
            merge=merge_strategy,
            max_concurrency=max_concurrency,
            priority={"summarize": 10},
            on_failure="ignore",
            name="enrich",
        ),
        finalize,
        name="document-enrichment",
    )


@dataclass
class DemoOutcome:
    """What :func:`run_demo` produced."""

    comparison: Comparison
    result: RunResult
    report: Path | None
    trace: Path | None


def run_demo(
    out: str | Path | None = "flowlab-demo",
    *,
    repeat: int = 1,
    progress: bool | str = False,
    detail: dict[str, Any] | None = None,
) -> DemoOutcome:
    """Run the demo comparison on virtual time and write ``out/report.html`` and ``out/trace.json``.

    Parameters
    ----------
    out : str or Path or None, default "flowlab-demo"
        Output directory (created); ``None`` writes nothing.
    repeat : int, default 1
    progress : bool or "auto", default False
    detail : dict, optional
        Grid values of the run shown in detail; default ``{"merge": "accumulate",
        "max_concurrency": 2}``.
    """
    from flowlab.study.experiment import compare
    from flowlab.ui import report

    cmp = compare(
        pipeline(), Enrichment(), grid=GRID, repeat=repeat, clock="virtual", input=DOCUMENT,
        fields=["processed", "tokens_used", "scores.readability", "status"], progress=progress,
    )  # fmt: skip
    detail = detail or {"merge": "accumulate", "max_concurrency": 2}
    chosen = cmp.result(detail)
    report_path = trace_path = None
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        report_path = folder / "report.html"
        report.render(
            comparison=cmp,
            result=chosen,
            comparison_plots=[
                {"x": "max_concurrency", "y": "makespan_s", "hue": "merge", "dodge": True},
                {"x": "merge", "y": "ctx.tokens_used", "hue": "max_concurrency", "dodge": True},
            ],
            title="flowlab demo: document enrichment",
            intro=(
                "One document is enriched by five parallel branches (fetch, a nested Parallel of "
                "three scorers, topic tags, entity tags, a summary) on the virtual clock. The "
                "entity tagger fails on non-ASCII text after it tagged the title, so it is red in "
                "every run and its partial tags are recorded but never merged. Each merge "
                "strategy is run under three concurrency caps; the makespan depends only on the "
                "cap, the merged context only on the strategy: tokens_used (no field rule) is "
                "summed by accumulate, taken from the last writer by overwrite and deep, from the "
                "first by keep_first, and refused by error_on_conflict; processed (a Sum field) "
                "is the same everywhere."
            ),
            result_heading="One run in detail ("
            + ", ".join(f"{k}={v}" for k, v in detail.items())
            + ")",
            path=report_path,
        )
        trace_path = folder / "trace.json"
        chosen.to_chrome_trace(trace_path)
    return DemoOutcome(cmp, chosen, report_path, trace_path)
