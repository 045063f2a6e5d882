"""notebooks/05_lab.ipynb in a real JupyterLab and headless chromium, driven through the page."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_lab.ipynb"
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden) .flowlab-lab"


def check_compare_view(panel: Any, *, runs: int) -> None:
    """The notebook's cap sweep is drawn in value order (no cap last), and Side by side tables
    the two latest runs' final contexts."""
    from browser_utils import save_screenshot
    from playwright.sync_api import expect

    compare = panel.locator(".flowlab-compare-output")
    expect(compare.locator("h4.flowlab-compare-title")).to_contain_text(
        "makespan_s by enrich.max_concurrency · last sweep"
    )
    points = compare.locator("table.flowlab-compare-points")
    expect(points).to_be_visible()
    header = [h.strip() for h in points.locator("thead th").all_inner_texts()]
    assert header[:3] == ["enrich.max_concurrency", "runs", "makespan_s"], header
    xs = [t.strip() for t in points.locator("tbody tr td:first-child").all_inner_texts()]
    assert xs == ["1", "2", "3", "4", "5", "none"], xs  # numbers sorted, no cap last
    assert compare.locator("img").first.get_attribute("src")
    points.scroll_into_view_if_needed()
    save_screenshot(panel.page, "lab-05-compare")

    panel.locator("button.flowlab-side-by-side").click()
    table = compare.locator("table.flowlab-context-ab")
    expect(table).to_be_visible(timeout=30_000)
    expect(table.locator("caption")).to_contain_text(re.compile(r"final context: \d+ of \d+"))
    labels = [h.strip() for h in table.locator("tr").first.locator("th").all_inner_texts()]
    assert labels[0] == "field", labels
    assert labels[1].startswith(f"#{runs - 1} ") and labels[2].startswith(f"#{runs} "), labels
    assert table.locator("tr.flowlab-differs, tr.flowlab-same").count() >= 3


def check_history_view(panel: Any) -> None:
    """The history leads with outcomes and names the columns that never changed once."""
    table = panel.locator("table.flowlab-history")
    header = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    assert header[:4] == ["run", "status", "makespan_s", "ctx.processed"], header
    assert "clock" not in header and "enrich.order" not in header, header
    caption = table.locator("caption").inner_text()
    assert "same in every run: " in caption and "clock = virtual" in caption, caption
    error = table.locator("td[title^='MergeConflict: ']")
    assert error.count() == 1  # the error_on_conflict run: cut in the cell, whole on hover
    assert error.inner_text().endswith("…") and len(error.inner_text()) <= 60


def test_lab_notebook_runs_then_a_fresh_panel_runs_with_new_settings(tmp_path: Path) -> None:
    from browser_utils import lab_page, open_notebook, run_all_cells, save_screenshot
    from playwright.sync_api import expect

    served = tmp_path / "notebooks"
    served.mkdir()
    shutil.copy(NOTEBOOK, served / NOTEBOOK.name)  # the browser may autosave: never the original
    with lab_page(served, tmp_path / "work", name="lab-05") as (server, page):
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        open_notebook(page, server, NOTEBOOK.name)
        run_all_cells(page, timeout_s=240)

        panels = page.locator(PANEL)
        expect(panels).to_have_count(2)  # the panel the code drove, then a fresh one
        driven, panel = panels.nth(0), panels.nth(1)
        driven_rows = driven.locator("table.flowlab-history tbody tr")
        runs = driven_rows.count()
        assert runs >= 8  # two runs, a merge sweep and a cap sweep, all from code
        expect(driven.locator(".flowlab-output h4.flowlab-timeline")).to_have_text(
            f"timeline · run #{runs}"
        )
        check_history_view(driven)
        check_compare_view(driven, runs=runs)
        driven.locator("table.flowlab-history").scroll_into_view_if_needed()
        save_screenshot(page, "lab-05-history")
        driven.locator("table.flowlab-context-ab").scroll_into_view_if_needed()
        save_screenshot(page, "lab-05-context-ab")

        # the fresh panel: nothing run yet, everything from the page
        expect(panel.locator(".flowlab-history-output")).to_contain_text("No runs yet")
        rows = panel.locator("table.flowlab-history tbody tr")
        output = panel.locator(".flowlab-output")
        enrich = panel.locator(".flowlab-step-enrich")
        enrich.locator(".flowlab-merge select").select_option("keep_first")
        readout = enrich.locator(".flowlab-max-concurrency .widget-readout")
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("1")
        page.keyboard.press("Enter")
        expect(readout).to_have_text("1")
        expect(enrich.locator(".flowlab-cap button.mod-active")).to_have_text("fixed")

        panel.locator("button.flowlab-run").click()
        expect(output.locator("h4.flowlab-timeline")).to_have_text(
            "timeline · run #1", timeout=60_000
        )
        expect(rows).to_have_count(1)
        new_image = output.locator("img").first
        expect(new_image).to_be_visible()
        assert new_image.get_attribute("src")
        assert page.evaluate("(img) => img.naturalWidth > 0", new_image.element_handle())
        last = rows.last.locator("td")
        cells = [c.strip() for c in last.all_inner_texts()]
        assert cells[0] == "1"
        assert "keep_first" in cells
        header = [
            h.strip() for h in panel.locator("table.flowlab-history thead th").all_inner_texts()
        ]
        assert cells[header.index("enrich.merge")] == "keep_first"
        assert cells[header.index("enrich.max_concurrency")] == "1"
        assert cells[header.index("status")] == "ok"
        assert re.fullmatch(r"\d+(\.\d+)?", cells[header.index("makespan_s")])
        expect(panel.locator(".flowlab-progress")).to_be_visible()
        enrich.scroll_into_view_if_needed()
        controls = save_screenshot(page, "lab-05-controls")
        output.locator("h4.flowlab-timeline").scroll_into_view_if_needed()
        shot = save_screenshot(page, "lab-05")
        assert not errors, errors
    assert shot.read_bytes()[:8] == controls.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
