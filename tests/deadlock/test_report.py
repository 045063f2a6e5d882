"""DeadlockReport: explanation, frames, HTML escaping and plots (artists inspected)."""

from __future__ import annotations

import asyncio

import pytest
from matplotlib.patches import FancyArrowPatch

import flowlab.deadlock as dl
from flowlab.engine.clock import run_virtual
from flowlab.ui.plot._deadlock import CYCLE_COLOR, EDGE_COLOR


def _governor_like() -> dl.DeadlockReport:
    sem = dl.Semaphore(2, name="concurrency")
    lock = dl.Lock(name="completion_lock")
    breached = dl.Event(name="limit_breached", setters=["a"])

    async def a() -> None:
        async with sem:
            await asyncio.sleep(2)
            async with lock:
                breached.set()

    async def b() -> None:
        async with sem:
            await asyncio.sleep(1)
            async with lock:
                await breached.wait()

    async def c() -> None:
        async with sem:
            pass

    async def main() -> dl.DeadlockReport:
        results, report = await dl.supervise(a(), b(), c())
        assert results == []
        return report

    return run_virtual(main())


@pytest.fixture(scope="module")
def report() -> dl.DeadlockReport:
    return _governor_like()


def test_cycle_and_explanation_name_tasks_resources_and_lines(report: dl.DeadlockReport) -> None:
    assert report.cycle == ["a", "Lock 'completion_lock'", "b", "Event 'limit_breached'", "a"]
    assert report.stuck == ["a", "b", "c"]
    text = report.explain()
    assert (
        "task a waits for Lock 'completion_lock' held by task b (acquired at test_report.py:"
        in text
    )
    assert "task b waits for Event 'limit_breached', which only task a sets" in text
    assert "task c waits for Semaphore 'concurrency' held by tasks a (acquired at" in text
    assert "Deadlock detected at t=2.000 s (virtual clock)" in text
    assert "Cycle: a → Lock 'completion_lock' → b → Event 'limit_breached' → a." in text


def test_graph_frame_marks_cycle_edges(report: dl.DeadlockReport) -> None:
    g = report.graph
    assert list(g.columns) == ["source", "target", "kind", "where", "in_cycle"]
    cyc = g.loc[g["in_cycle"]]
    assert list(zip(cyc["source"], cyc["target"], strict=True)) == [
        ("a", "Lock 'completion_lock'"),
        ("Lock 'completion_lock'", "b"),
        ("b", "Event 'limit_breached'"),
        ("Event 'limit_breached'", "a"),
    ]
    assert len(g) == 7  # + c waits for the semaphore, which a and b hold


def test_timeline_has_holds_and_waits_ending_at_detection(report: dl.DeadlockReport) -> None:
    tl = report.timeline
    assert set(tl["state"].astype(str)) == {"hold", "wait"}
    b_lock = tl.loc[(tl["task"] == "b") & (tl["resource"] == "Lock 'completion_lock'")]
    assert b_lock[["state", "start_s", "end_s", "open"]].values.tolist() == [
        ["hold", 1.0, 2.0, True]
    ]
    c_wait = tl.loc[tl["task"] == "c"]
    assert c_wait[["state", "start_s", "end_s"]].values.tolist() == [["wait", 0.0, 2.0]]
    assert report.events["op"].tolist().count("wait") == 3


def test_plot_draws_one_arrow_per_edge_and_highlights_the_cycle(report: dl.DeadlockReport) -> None:
    ax = report.plot()
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(report.edges)
    import matplotlib.colors as mcolors

    red = [p for p in arrows if mcolors.same_color(p.get_edgecolor(), CYCLE_COLOR)]
    grey = [p for p in arrows if mcolors.same_color(p.get_edgecolor(), EDGE_COLOR)]
    assert (len(red), len(grey)) == (4, 3)
    labels = {t.get_text() for t in ax.texts}
    assert {"a", "b", "c", "Lock 'completion_lock'"} <= labels


def test_gantt_has_bars_for_holds_and_waits_and_a_detection_line(report: dl.DeadlockReport) -> None:
    import matplotlib.pyplot as plt

    _, ax0 = plt.subplots()
    ax = report.plot_timeline(ax=ax0)
    assert ax is ax0
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert len(ax.collections) == 5  # a: hold; b: hold; c: wait; a, b: waits
    assert ax.lines[0].get_xdata()[0] == 2.0


def test_html_escapes_every_name() -> None:
    lock = dl.Lock(name="<script>x</script>")

    async def t1() -> None:
        async with lock, lock:
            pass

    _, report = run_virtual(dl.supervise(t1(), names=["<b>bad</b>"]))
    html_text = report._repr_html_()
    assert "<script>" not in html_text and "<b>bad" not in html_text
    assert "&lt;script&gt;" in html_text and "&lt;b&gt;bad&lt;/b&gt;" in html_text


def test_clean_report_plots_and_repr() -> None:
    async def ok() -> None:
        await asyncio.sleep(1)

    _, report = run_virtual(dl.supervise(ok()))
    assert repr(report) == "<DeadlockReport deadlocked=False tasks=1>"
    ax = report.plot()
    assert not [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert report.graph.empty and report.timeline.empty


def test_edge_labels_of_opposite_edges_do_not_overlap() -> None:
    from flowlab.ui.plot._deadlock import plot_graph

    rep = dl.run("governor")  # an event waited for and set by one pair: edges both ways
    ax = plot_graph(rep)
    kinds = {e.kind for e in rep.edges}
    labels = [t for t in ax.texts if t.get_text() in kinds]
    spots = [tuple(round(v, 3) for v in t.get_position()) for t in labels]
    assert len(labels) == len(rep.edges) >= 2
    assert len(set(spots)) == len(spots)  # no two labels at one spot
    assert all(t.get_fontsize() >= 8 for t in labels)
