"""The test infrastructure itself: the CI script, real kernels, real JupyterLab in chromium.

These use plain Python (no flowlab) so that a failure here points at the infrastructure.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_utils import CellResult, KernelSession, kernel_session

REPO_ROOT = Path(__file__).resolve().parents[1]
CI_SCRIPT = REPO_ROOT / ".ci" / "run"
README_TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/python -m pytest"
)


# --- .ci/run ---------------------------------------------------------------------------------


def _fake_repo(tmp_path: Path, readme: str) -> Path:
    """A directory holding a copy of .ci/run and the given README.md."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(CI_SCRIPT, repo / ".ci" / "run")
    (repo / "README.md").write_text(readme, encoding="utf-8")
    return repo


def _fake_tool(path: Path, log: Path, exit_code: int = 0) -> None:
    """An executable that appends its name and arguments to ``log`` and exits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'#!/bin/sh\necho "{path.name} $*" >> "{log}"\nexit {exit_code}\n', encoding="utf-8"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_ci_script_refuses_to_run_when_readme_lost_the_test_command(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path, "# flowlab\n\nRun the tests with `pytest`.\n")
    done = subprocess.run(
        ["bash", str(repo / ".ci" / "run")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "README.md drifted" in done.stderr
    assert README_TEST_COMMAND in done.stderr  # tells the reader what is missing
    assert not (repo / ".venv").exists()  # failed before doing anything


def test_ci_script_runs_the_readme_command_verbatim_and_passes_on_its_status(
    tmp_path: Path,
) -> None:
    readme = f"# flowlab\n\n```bash\n$ {README_TEST_COMMAND}\n```\n"
    repo = _fake_repo(tmp_path, readme)
    log = tmp_path / "calls.log"
    fake_bin = tmp_path / "bin"
    _fake_tool(fake_bin / "python3", log)
    _fake_tool(repo / ".venv" / "bin" / "pip", log)
    _fake_tool(repo / ".venv" / "bin" / "python", log, exit_code=3)  # "pytest" fails
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("/usr/bin/chromium is missing; .ci/run installs it before the tests run")
    done = subprocess.run(
        ["bash", str(repo / ".ci" / "run")],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    calls = log.read_text(encoding="utf-8").splitlines()
    assert calls == [
        "python3 --version",  # logged by the script
        "python3 -m venv .venv",
        "pip install -q -e .[dev]",
        "python -m pytest",
    ]


def test_repo_readme_contains_the_command_ci_runs() -> None:
    script = CI_SCRIPT.read_text(encoding="utf-8")
    assert f'TEST_COMMAND="{README_TEST_COMMAND}"' in script
    lines = [
        line.strip().removeprefix("$ ").strip()
        for line in (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    ]
    assert README_TEST_COMMAND in lines, "README.md must show the exact command .ci/run runs"


# --- real kernels ----------------------------------------------------------------------------


@pytest.fixture
def kernel() -> Iterator[KernelSession]:
    with kernel_session() as session:
        yield session


def _ok(cells: list[CellResult]) -> None:
    bad = [cell.describe() for cell in cells if cell.status != "ok"]
    assert not bad, "\n".join(bad)


@pytest.mark.kernel
def test_every_queued_cell_replies_in_order(kernel: KernelSession) -> None:
    codes = [
        f"import asyncio\nawait asyncio.sleep(0)\nprint('cell', {i})\n{i} * 10" for i in range(8)
    ]
    cells = kernel.submit_many(codes)  # all sent before the first reply, like "Run All"
    kernel.wait(cells, timeout_s=30)
    _ok(cells)
    assert [cell.execution_count for cell in cells] == list(range(1, 9))
    assert [cell.stdout for cell in cells] == [f"cell {i}\n" for i in range(8)]
    assert [cell.text for cell in cells] == [str(i * 10) for i in range(8)]


@pytest.mark.kernel
def test_kernel_runs_this_venvs_interpreter_in_isolation(kernel: KernelSession) -> None:
    cell = kernel.run("import os, sys\nprint(sys.executable)\nprint(os.environ['IPYTHONDIR'])")
    _ok([cell])
    executable, ipython_dir = cell.stdout.splitlines()
    assert executable == sys.executable
    assert "flowlab-kernel-" in ipython_dir  # private IPython profile, not the user's


@pytest.mark.kernel
def test_interrupt_stops_a_sleeping_cell_and_the_next_cell_runs(kernel: KernelSession) -> None:
    sleeper = kernel.submit("import time\nprint('sleeping', flush=True)\ntime.sleep(30)")
    kernel.wait_for_stdout(sleeper, "sleeping", timeout_s=20)
    started = time.monotonic()
    kernel.interrupt()
    kernel.wait([sleeper], timeout_s=10)
    assert time.monotonic() - started < 10
    assert sleeper.status == "error"
    assert sleeper.error_name == "KeyboardInterrupt"
    after = kernel.run("21 * 2")
    _ok([after])
    assert after.text == "42"


@pytest.mark.kernel
def test_errors_are_reported_and_shutdown_leaves_no_process() -> None:
    with kernel_session() as session:
        failing = session.run("raise ValueError('boom')")
        pid = session.pid
        assert pid is not None and session.is_alive()
    assert failing.status == "error"
    assert failing.error_name == "ValueError"
    assert failing.error is not None and failing.error["evalue"] == "boom"
    assert not _running(pid)


# --- real JupyterLab in chromium -------------------------------------------------------------


def _write_notebook(path: Path, sources: list[str]) -> None:
    """Write a notebook (nbformat 4.5 JSON) with a title and one code cell per source."""
    cells: list[dict[str, object]] = [
        {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": f"# {path.stem}"}
    ]
    cells += [
        {
            "cell_type": "code",
            "id": f"code-{number}",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": source,
        }
        for number, source in enumerate(sources)
    ]
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            },
            "language_info": {"name": "python"},
        },
        "cells": cells,
    }
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


@pytest.mark.browser
@pytest.mark.slow
def test_jupyterlab_runs_a_notebook_and_renders_a_widget(tmp_path: Path) -> None:
    from browser_utils import (
        NotebookRunError,
        lab_page,
        open_notebook,
        run_all_cells,
        save_screenshot,
    )
    from playwright.sync_api import expect

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _write_notebook(
        notebooks / "smoke.ipynb",
        [
            # The marker is only assembled when the cell runs, so finding it proves execution.
            "print('FLOWLAB-SMOKE-' + str(6 * 7))",
            "import ipywidgets as widgets\nwidgets.Button(description='Smoke' + 'Button')",
            "import sys\nprint(sys.executable)",
        ],
    )
    _write_notebook(
        notebooks / "broken.ipynb",
        ["x = 1", "raise ValueError('broken-' + 'on-purpose')", "print('never printed')"],
    )
    with lab_page(notebooks, tmp_path / "work", name="infra-smoke") as (server, page):
        open_notebook(page, server, "smoke.ipynb")
        run_all_cells(page)
        outputs = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output")
        expect(outputs.filter(has_text="FLOWLAB-SMOKE-42")).to_have_count(1)
        button = page.locator("button.jupyter-button", has_text="SmokeButton")
        expect(button).to_be_visible()
        expect(outputs.filter(has_text=sys.executable)).to_have_count(1)
        shot = save_screenshot(page, "infra-smoke")

        # A cell that raises is reported at once, with its error, not after the timeout.
        open_notebook(page, server, "broken.ipynb")
        started = time.monotonic()
        with pytest.raises(NotebookRunError, match=r"(?s)ValueError.*broken-on-purpose"):
            run_all_cells(page, timeout_s=60)
        assert time.monotonic() - started < 30
        kernels = server.kernel_pids()
        server_pid = server.pid
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(kernels) == 2  # one per notebook
    assert not _running(server_pid)
    assert not any(_running(pid) for pid in kernels)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
