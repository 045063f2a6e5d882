"""Drive JupyterLab in a real headless chromium from tests.

Two pieces, usable apart or together:

* :func:`jupyter_lab` starts ``jupyter lab`` (from this venv) on ``127.0.0.1`` and a free port
  with a fresh, private configuration: no token, no password, no XSRF check, no browser, no
  news or update checks, private settings and workspaces, and a ``python3`` kernelspec that runs
  this interpreter. It waits until the server answers and stops it by its PID afterwards (kernels
  first, then the server, then any process it left behind).
* :func:`chromium_page` launches Debian's ``/usr/bin/chromium`` through playwright (never a
  downloaded browser) with a fresh user-data-dir and yields a page.

On top of them, :func:`open_notebook`, :func:`run_all_cells` (through the Run menu, as a user
would), :func:`wait_kernel_idle` and :func:`save_screenshot` (into ``test-artifacts/``), and
:func:`lab_page`, which combines everything and saves a screenshot and the server log when the
test body fails::

    with lab_page(notebook_dir, tmp_path, name="smoke") as (server, page):
        open_notebook(page, server, "demo.ipynb")
        run_all_cells(page)
        expect(page.locator(".jp-OutputArea-output")).to_contain_text("done")
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kernel_utils import isolated_jupyter_env, write_kernelspec

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = [
    "ARTIFACTS_DIR",
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "JupyterServer",
    "NotebookRunError",
    "chromium_page",
    "free_port",
    "jupyter_lab",
    "lab_page",
    "open_notebook",
    "run_all_cells",
    "save_screenshot",
    "wait_kernel_idle",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS_DIR = Path(os.environ.get("FLOWLAB_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# JupyterLab user settings written into the private settings dir: every cell stays in the DOM
# (the default windowing detaches off-screen cells), and no news / update toasts cover the page.
_LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
}

# The visible notebook panel (JupyterLab hides the others with lm-mod-hidden).
_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"

# Where "Run All" stands in the visible notebook: false while running, "done" when every
# non-empty code cell has an execution count, "stopped" when a cell raised and JupyterLab
# skipped the rest (some counted, the others back to "[ ]", nothing queued: JupyterLab marks
# every queued cell "[*]" at once, so this state only appears at the end). Only meaningful
# after clearing the counts, which run_all_cells does by default.
_RUN_ALL_STATE_JS = """
({panelSelector, detectStop}) => {
  const panel = document.querySelector(panelSelector);
  if (!panel) return false;
  const cells = [...panel.querySelectorAll('.jp-CodeCell')];
  if (cells.length === 0) return false;
  let counted = 0, uncounted = 0;
  for (const cell of cells) {
    const editor = cell.querySelector('.cm-content');
    if (editor === null) return false;  // not rendered yet: cannot judge this cell
    const prompt = (cell.querySelector('.jp-InputPrompt')?.textContent ?? '').trim();
    if (prompt.includes('*')) return false;
    if (editor.textContent.trim() === '') continue;
    if (/\\[\\d+\\]/.test(prompt)) counted += 1; else uncounted += 1;
  }
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  if (indicator !== null && indicator.getAttribute('data-status') !== 'idle') return false;
  if (uncounted === 0) return 'done';
  return detectStop && counted > 0 ? 'stopped' : false;
}
"""

# Source and output text of the code cell with the highest execution count.
_LAST_RUN_CELL_JS = """
(panelSelector) => {
  let best = null, bestCount = -1;
  for (const cell of document.querySelector(panelSelector).querySelectorAll('.jp-CodeCell')) {
    const match = /\\[(\\d+)\\]/.exec(cell.querySelector('.jp-InputPrompt')?.textContent ?? '');
    if (match && Number(match[1]) > bestCount) { bestCount = Number(match[1]); best = cell; }
  }
  if (best === null) return '';
  const source = best.querySelector('.cm-content')?.innerText ?? '';
  const output = [...best.querySelectorAll('.jp-OutputArea-output')].map((o) => o.innerText);
  return `[${bestCount}]: ${source}\\n---\\n${output.join('\\n')}`;
}
"""

# The notebook has cells and every code cell has its editor rendered (only then are the menus' notebook commands useful).
_CELLS_RENDERED_JS = """
(panelSelector) => {
  const panel = document.querySelector(panelSelector);
  if (!panel) return false;
  const code = [...panel.querySelectorAll('.jp-CodeCell')];
  return panel.querySelector('.jp-Cell') !== null
    && code.every((cell) => cell.querySelector('.cm-content') !== null);
}
"""


# The visible notebook's kernel is started, connected and idle (see wait_kernel_idle).
_KERNEL_IDLE_JS = """
(panelSelector) => {
  const panel = document.querySelector(panelSelector);
  if (panel === null) return false;
  const name = (panel.querySelector('.jp-KernelName')?.textContent ?? '').trim();
  if (name === '' || name === 'No Kernel') return false;
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  if (indicator === null || indicator.getAttribute('data-status') !== 'idle') return false;
  return [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(
    (item) => item.textContent.trim() === `${name} | Idle`
  );
}
"""

# Some code cell of the visible notebook is queued ("[*]") or has a count.
_RUN_STARTED_JS = """
(panelSelector) => [...document.querySelector(panelSelector).querySelectorAll(
  '.jp-CodeCell .jp-InputPrompt')].some((prompt) => /\\[(\\*|\\d+)\\]/.test(prompt.textContent))
"""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class JupyterServer:
    """A running ``jupyter lab`` process started by :func:`jupyter_lab`.

    Attributes
    ----------
    process
        The server process (its ``pid`` is what :meth:`stop` signals).
    port
        The port it listens on, on 127.0.0.1.
    root_dir
        The directory it serves; notebook paths are relative to it.
    log_path
        File with the server's stdout and stderr.
    """

    process: subprocess.Popen[bytes]
    port: int
    root_dir: Path
    log_path: Path
    _children: set[int] = field(default_factory=set, repr=False)

    @property
    def url(self) -> str:
        """Base URL, with a trailing slash."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def log_text(self) -> str:
        """The server log so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def api(self, method: str, path: str, *, timeout_s: float = 5.0) -> Any:
        """Call the REST API (no token needed) and return the decoded JSON body, or None."""
        request = urllib.request.Request(self.url + path.lstrip("/"), method=method)
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_pids(self) -> set[int]:
        """Process ids of the server's descendants (the kernels it started)."""
        import psutil

        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return set()
        return {child.pid for child in children}

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """Shut down every kernel, then SIGTERM the server by PID; SIGKILL what remains."""
        import psutil

        self._children |= self.kernel_pids()
        if self.process.poll() is None:
            try:
                for kernel in self.api("GET", "api/kernels"):
                    self.api("DELETE", f"api/kernels/{kernel['id']}", timeout_s=timeout_s)
            except (OSError, urllib.error.URLError, ValueError):
                pass  # the server is going away anyway; leftovers are killed below
            self._children |= self.kernel_pids()
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout_s)
        for pid in self._children:
            try:
                proc = psutil.Process(pid)
                proc.kill()
                proc.wait(timeout=timeout_s)
            except psutil.NoSuchProcess:
                continue


def _write_lab_config(home: Path) -> None:
    """Write the private kernelspec and JupyterLab user settings under ``home``."""
    write_kernelspec(home / "share" / "jupyter" / "kernels", "python3")
    settings = home / "lab" / "user-settings"
    for relpath, values in _LAB_SETTINGS.items():
        target = settings / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values), encoding="utf-8")


def _server_command(root_dir: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.disable_check_xsrf=True",
        "--ServerApp.terminals_enabled=False",
        "--ServerApp.allow_root=True",  # CI runs as root
        "--IdentityProvider.token=",
        "--PasswordIdentityProvider.hashed_password=",
        "--KernelSpecManager.ensure_native_kernel=False",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]


@contextmanager
def jupyter_lab(
    root_dir: Path, workdir: Path, *, startup_timeout_s: float = 60.0, attempts: int = 3
) -> Iterator[JupyterServer]:
    """Run ``jupyter lab`` serving ``root_dir`` with a fresh private configuration.

    Parameters
    ----------
    root_dir
        Directory the server serves (where the notebooks are).
    workdir
        Empty scratch directory for the private config, settings, runtime files and the log.
    startup_timeout_s
        How long to wait for ``/api/status`` to answer.
    attempts
        How many free ports to try (another process may grab a port between choice and bind).

    Yields
    ------
    JupyterServer
        The ready server; it is stopped when the block exits.
    """
    home = workdir / "jupyter-home"
    env = isolated_jupyter_env(home)
    _write_lab_config(home)
    server = None
    for attempt in range(1, attempts + 1):
        port = free_port()
        log_path = workdir / f"jupyter-lab-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                _server_command(root_dir, port),
                cwd=root_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the test terminal must not reach it
            )
        candidate = JupyterServer(process, port, root_dir, log_path)
        if _wait_ready(candidate, startup_timeout_s):
            server = candidate
            break
        candidate.stop()
        in_use = "address already in use" in candidate.log_text().lower()
        if not in_use or attempt == attempts:
            raise RuntimeError(
                f"jupyter lab did not become ready within {startup_timeout_s} s "
                f"(exit code {process.poll()}); log:\n{candidate.log_text()[-6000:]}"
            )
    assert server is not None
    try:
        yield server
    finally:
        server.stop()


def _wait_ready(server: JupyterServer, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            server.api("GET", "api/status", timeout_s=2.0)
        except (OSError, urllib.error.URLError, ValueError):
            time.sleep(0.1)
        else:
            return True
    return False


@contextmanager
def chromium_page(
    user_data_dir: Path, *, timeout_s: float = 30.0, width: int = 1400, height: int = 1000
) -> Iterator[Page]:
    """Launch ``/usr/bin/chromium`` headless through playwright and yield a fresh page.

    Parameters
    ----------
    user_data_dir
        Empty directory for the browser profile (a fresh profile every time).
    timeout_s
        Default timeout of page actions and waits.
    width, height
        Viewport size in CSS pixels.

    Yields
    ------
    playwright.sync_api.Page
        A blank page; the browser is closed when the block exits.
    """
    from playwright.sync_api import sync_playwright

    if not CHROMIUM_PATH.exists():
        raise FileNotFoundError(
            f"{CHROMIUM_PATH} is missing. HINT: `apt-get install -y chromium` (.ci/run does it)."
        )
    user_data_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=str(CHROMIUM_PATH),
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": width, "height": height},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(timeout_s * 1000)
            yield page
        finally:
            context.close()


def save_screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG as ``test-artifacts/<name>.png`` and return its path."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    path = ARTIFACTS_DIR / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_kernel_idle(page: Page, *, timeout_s: float = 60.0) -> None:
    """Wait until the open notebook's kernel is started, connected and idle.

    Three signals must agree: the notebook toolbar names a kernel (not "No Kernel"), its
    execution indicator says ``idle``, and the status bar reads ``<kernel name> | Idle``. The
    indicator alone is not enough: it already says ``idle`` while there is no kernel yet, and
    cells run at that moment are silently dropped. The status bar alone is not enough either:
    while a page loads it may still describe another notebook.
    """
    page.wait_for_function(_KERNEL_IDLE_JS, arg=_PANEL, timeout=timeout_s * 1000)


def open_notebook(
    page: Page, server: JupyterServer, relpath: str, *, timeout_s: float = 60.0
) -> None:
    """Open ``relpath`` (relative to the server's root) in JupyterLab, ready to run.

    The workspace is reset first, so the notebook is the only open document. Returns once
    every cell is rendered, the notebook is the active widget (so the Run menu acts on it)
    and its kernel is idle (see :func:`wait_kernel_idle`).
    """
    page.goto(f"{server.url}lab/tree/{quote(relpath)}?reset", timeout=timeout_s * 1000)
    page.wait_for_function(_CELLS_RENDERED_JS, arg=_PANEL, timeout=timeout_s * 1000)
    wait_kernel_idle(page, timeout_s=timeout_s)
    # Clicking a prompt activates the panel and selects a cell without entering edit mode.
    page.locator(f"{_PANEL} .jp-Cell .jp-InputPrompt").first.click()


def _menu(page: Page, menu: str, item: str) -> None:
    """Click ``menu`` in the menu bar, then its enabled entry ``item``."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{re.escape(menu)}$")).click()
    entry = page.locator(
        ".lm-Menu-item:not(.lm-mod-disabled)",
        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")),
    )
    entry.click()
    page.locator(".lm-Menu").first.wait_for(state="detached")


def _ensure_run_started(page: Page, *, timeout_s: float, attempts: int = 3) -> None:
    """Make sure "Run All" queued the cells; if JupyterLab dropped it, wait and run again.

    JupyterLab marks every queued cell ``[*]`` in the click's own event handler, so right
    after a Run All on cleared cells, no ``[*]`` and no count means nothing was queued (it
    happens when the session's kernel is not attached yet). Running again is then safe.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    for attempt in range(1, attempts + 1):
        try:
            page.wait_for_function(_RUN_STARTED_JS, arg=_PANEL, timeout=5000)
        except PlaywrightTimeoutError:
            if attempt == attempts:
                raise
            wait_kernel_idle(page, timeout_s=timeout_s)
            _menu(page, "Run", "Run All Cells")
        else:
            return


class NotebookRunError(AssertionError):
    """A cell raised during :func:`run_all_cells`, so JupyterLab skipped the cells after it."""


def run_all_cells(page: Page, *, clear_first: bool = True, timeout_s: float = 120.0) -> None:
    """Run every cell of the open notebook through the menus and wait until all ran.

    Parameters
    ----------
    page
        A page showing a notebook (see :func:`open_notebook`).
    clear_first
        Clear outputs and execution counts first (Edit > Clear Outputs of All Cells), so that
        counts saved in the file cannot pass for fresh ones. It also lets a cell that raises
        be reported at once instead of at the timeout.
    timeout_s
        How long the whole run may take.

    Raises
    ------
    NotebookRunError
        If a cell raised (needs ``clear_first``); the message shows that cell and its output.

    Notes
    -----
    "All ran" means: every non-empty code cell shows an execution count, none shows ``[*]``,
    and the kernel is idle (see :func:`wait_kernel_idle`).
    """
    if clear_first:
        _menu(page, "Edit", "Clear Outputs of All Cells")
    _menu(page, "Run", "Run All Cells")
    if clear_first:
        _ensure_run_started(page, timeout_s=timeout_s)
    state = page.wait_for_function(
        _RUN_ALL_STATE_JS,
        arg={"panelSelector": _PANEL, "detectStop": clear_first},
        timeout=timeout_s * 1000,
    ).json_value()
    if state == "stopped":
        last = page.evaluate(_LAST_RUN_CELL_JS, _PANEL)
        raise NotebookRunError(f"Run All stopped at a cell that raised:\n{last[-4000:]}")
    wait_kernel_idle(page, timeout_s=timeout_s)


@contextmanager
def lab_page(
    root_dir: Path, workdir: Path, *, name: str, timeout_s: float = 30.0
) -> Iterator[tuple[JupyterServer, Page]]:
    """A JupyterLab server on ``root_dir`` plus a chromium page, with evidence on failure.

    If the block raises, a screenshot ``test-artifacts/<name>-failure.png`` is saved and the
    tails of the browser console and of the server log are printed to stderr (pytest shows
    them with the failure).

    Parameters
    ----------
    root_dir
        Directory with the notebooks to serve.
    workdir
        Empty scratch directory (server config, browser profile, logs).
    name
        Used to name failure artefacts.
    timeout_s
        Default timeout of page actions.

    Yields
    ------
    tuple of (JupyterServer, playwright.sync_api.Page)
        The running server and a blank page.
    """
    with (
        jupyter_lab(root_dir, workdir) as server,
        chromium_page(workdir / "chromium-profile", timeout_s=timeout_s) as page,
    ):
        console: list[str] = []
        page.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
        page.on("pageerror", lambda err: console.append(f"[pageerror] {err}"))
        try:
            yield server, page
        except BaseException:
            print("browser console (tail):\n" + "\n".join(console[-80:]), file=sys.stderr)
            try:
                shot = save_screenshot(page, f"{name}-failure")
                print(f"screenshot of the failure: {shot}", file=sys.stderr)
            except Exception as err:  # the page may be gone; the original error matters more
                print(f"could not save a failure screenshot: {err!r}", file=sys.stderr)
            print(f"jupyter lab log (tail):\n{server.log_text()[-6000:]}", file=sys.stderr)
            raise
