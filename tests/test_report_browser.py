"""The demo's report.html in a real headless chromium: every image decodes, nothing is broken."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _flowlab_command() -> list[str]:
    script = Path(sys.executable).with_name("flowlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flowlab.cli"]


def test_demo_report_opens_in_chromium_with_every_image_loaded(tmp_path: Path) -> None:
    from browser_utils import chromium_page, save_screenshot

    out = tmp_path / "demo"
    done = subprocess.run(
        [*_flowlab_command(), "demo", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = out / "report.html"
    assert report.is_file()

    with chromium_page(tmp_path / "profile", width=1200, height=900) as page:
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(report.resolve().as_uri(), wait_until="load")
        shot = save_screenshot(page, "demo-report")
        images = page.evaluate(
            """() => Array.from(document.images).map(img => ({
                   alt: img.alt, complete: img.complete,
                   w: img.naturalWidth, h: img.naturalHeight }))"""
        )
        title = page.title()
        headings = page.eval_on_selector_all("h2, h3", "els => els.map(e => e.textContent)")

    assert shot.is_file() and shot.stat().st_size > 10_000
    assert errors == []
    assert title == "flowlab demo: document enrichment"
    alts = [img["alt"] for img in images]
    # comparison plots, then timeline, concurrency and merges of the detail run
    assert alts == [
        "makespan_s by grid value", "ctx.tokens_used by grid value", "timeline", "concurrency", "merges",
    ]  # fmt: skip
    for img in images:
        assert img["complete"], img["alt"]
        assert img["w"] > 0 and img["h"] > 0, img
    assert "Timeline" in headings and "Concurrency" in headings
