"""Drive a real Jupyter kernel (ipykernel) from tests through jupyter_client.

The kernel always runs the interpreter that runs the tests (``sys.executable``, i.e. the
project venv), whatever kernelspecs happen to be installed on the machine: we write a private
kernelspec into a temporary directory and hand jupyter_client a ``KernelSpecManager`` that looks
only there. The kernel also gets fresh, private IPython and Jupyter directories, so user
profiles and startup scripts cannot leak into a test.

Typical use::

    with kernel_session() as kernel:
        cells = kernel.submit_many(["import asyncio", "await asyncio.sleep(0)"])  # queued at once
        kernel.wait(cells)
        assert [c.status for c in cells] == ["ok", "ok"]

        sleeper = kernel.submit("import time; print('sleeping', flush=True); time.sleep(30)")
        kernel.wait_for_stdout(sleeper, "sleeping")
        kernel.interrupt()
        kernel.wait([sleeper])
        assert sleeper.error_name == "KeyboardInterrupt"

``kernel_session`` is a context manager, so a pytest fixture is simply
``with kernel_session() as kernel: yield kernel``.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

__all__ = [
    "KERNEL_NAME",
    "CellResult",
    "KernelDied",
    "KernelSession",
    "isolated_jupyter_env",
    "kernel_session",
    "write_kernelspec",
]

KERNEL_NAME = "flowlab-test-python"
_POLL_S = 0.05


class KernelDied(RuntimeError):
    """The kernel process exited while a test was waiting for it."""


def write_kernelspec(
    kernels_dir: Path, name: str = KERNEL_NAME, *, python: str | os.PathLike[str] | None = None
) -> Path:
    """Write an ipykernel kernelspec that runs ``python`` (default: this interpreter).

    Parameters
    ----------
    kernels_dir
        A ``kernels`` directory (``<jupyter data dir>/kernels``); created if missing.
    name
        Kernel name, i.e. the name of the spec's directory.
    python
        Interpreter that runs the kernel. Defaults to ``sys.executable``.

    Returns
    -------
    Path
        The spec directory (``kernels_dir / name``).
    """
    spec_dir = Path(kernels_dir) / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [
            str(python or sys.executable),
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": False},
        # debugpy prints a "frozen modules" warning to stderr on every start without this.
        "env": {"PYDEVD_DISABLE_FILE_VALIDATION": "1"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return spec_dir


def isolated_jupyter_env(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment whose Jupyter and IPython state lives under ``home`` only.

    Config, data, runtime and IPython directories point into ``home`` (created here), so no user
    or machine configuration (tokens, passwords, kernelspecs, IPython startup files) applies.
    ``JUPYTER_PATH`` puts ``home/share/jupyter`` first, so a ``python3`` kernelspec written
    there with :func:`write_kernelspec` beats every other ``python3`` spec.

    Parameters
    ----------
    home
        Directory that holds the isolated state.
    base
        Environment to start from. Defaults to ``os.environ``.

    Returns
    -------
    dict of str to str
        The environment, ready for ``subprocess`` or ``KernelManager.start_kernel(env=...)``.
    """
    env = dict(os.environ if base is None else base)
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "IPYTHONDIR": home / "ipython",
        "JUPYTERLAB_SETTINGS_DIR": home / "lab" / "user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "lab" / "workspaces",
    }
    for var, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[var] = str(path)
    shared = home / "share" / "jupyter"
    shared.mkdir(parents=True, exist_ok=True)
    env["JUPYTER_PATH"] = str(shared)
    env.pop("JUPYTER_CONFIG_PATH", None)
    # Silences "Jupyter is migrating its paths to use standard platformdirs".
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    # Kernel output must not depend on the terminal that runs pytest.
    env.pop("PYTHONSTARTUP", None)
    env["MPLBACKEND"] = "agg"
    return env


@dataclass
class CellResult:
    """Everything one ``execute_request`` produced, filled in as messages arrive.

    Attributes
    ----------
    msg_id
        The request's message id (the ``parent_header.msg_id`` of every message it caused).
    code
        The code sent.
    status
        ``"pending"`` until the ``execute_reply`` arrives, then ``"ok"``, ``"error"`` or
        ``"aborted"`` (a queued request skipped after an earlier one failed).
    execution_count
        The reply's execution count.
    stdout, stderr
        Text of the ``stream`` messages.
    outputs
        ``execute_result`` and ``display_data`` contents (their ``data`` bundles and metadata).
    error
        The ``error`` content (``ename``, ``evalue``, ``traceback``) if the cell raised.
    """

    msg_id: str
    code: str
    status: str = "pending"
    execution_count: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    busy_seen: bool = False
    idle_seen: bool = False

    @property
    def done(self) -> bool:
        """True once both the reply and the kernel's ``idle`` status for it arrived."""
        return self.reply is not None and self.idle_seen

    @property
    def error_name(self) -> str | None:
        """The exception class name if the cell raised, else None."""
        return None if self.error is None else str(self.error.get("ename"))

    @property
    def text(self) -> str:
        """The ``text/plain`` parts of every result and display, joined by newlines."""
        return "\n".join(
            str(out["data"]["text/plain"]) for out in self.outputs if "text/plain" in out["data"]
        )

    def describe(self) -> str:
        """A multi-line summary for assertion messages."""
        parts = [f"cell {self.code!r}: status={self.status} count={self.execution_count}"]
        if self.stdout:
            parts.append(f"  stdout: {self.stdout!r}")
        if self.stderr:
            parts.append(f"  stderr: {self.stderr!r}")
        if self.error is not None:
            parts.append(f"  error: {self.error.get('ename')}: {self.error.get('evalue')}")
        return "\n".join(parts)


class KernelSession:
    """A started kernel plus a blocking client, with helpers to queue and collect cells.

    Messages are routed to the :class:`CellResult` of the request that caused them, so many
    requests can be in flight at once, as when a notebook is run with "Run All".

    Parameters
    ----------
    manager
        The kernel's manager (owns the process).
    client
        A started blocking client for that kernel.
    log_path
        File that receives the kernel process's own stdout and stderr.

    Attributes
    ----------
    pid
        The kernel's process id, kept after shutdown so tests can check the process is gone.
    """

    def __init__(
        self, manager: KernelManager, client: BlockingKernelClient, *, log_path: Path | None = None
    ) -> None:
        self.manager = manager
        self.client = client
        self.log_path = log_path
        self.pid = _kernel_pid(manager)
        self._cells: dict[str, CellResult] = {}

    def __repr__(self) -> str:
        pending = sum(not cell.done for cell in self._cells.values())
        return f"<KernelSession pid={self.pid} alive={self.is_alive()} pending={pending}>"

    def log_text(self) -> str:
        """What the kernel process itself wrote to stdout/stderr (for failure messages)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def is_alive(self) -> bool:
        """Whether the kernel process is running."""
        return bool(self.manager.is_alive())

    def submit(self, code: str) -> CellResult:
        """Send one execute request without waiting; return its (pending) result."""
        msg_id = self.client.execute(code, allow_stdin=False, stop_on_error=True)
        cell = CellResult(msg_id=msg_id, code=code)
        self._cells[msg_id] = cell
        return cell

    def submit_many(self, codes: Iterable[str]) -> list[CellResult]:
        """Send several execute requests back to back, before any reply, like "Run All"."""
        return [self.submit(code) for code in codes]

    def run(self, code: str, *, timeout_s: float = 30.0) -> CellResult:
        """Execute ``code`` and wait until it is done."""
        cell = self.submit(code)
        self.wait([cell], timeout_s=timeout_s)
        return cell

    def wait(self, cells: Iterable[CellResult], *, timeout_s: float = 30.0) -> list[CellResult]:
        """Process messages until every cell in ``cells`` is done.

        Raises
        ------
        TimeoutError
            If some cell is not done after ``timeout_s`` seconds (the message lists them).
        KernelDied
            If the kernel process exits first.
        """
        cells = list(cells)
        self._pump_until(lambda: all(cell.done for cell in cells), timeout_s, cells)
        return cells

    def wait_for_stdout(self, cell: CellResult, text: str, *, timeout_s: float = 30.0) -> None:
        """Process messages until ``text`` appears in ``cell.stdout``."""
        self._pump_until(lambda: text in cell.stdout, timeout_s, [cell])

    def interrupt(self) -> None:
        """Interrupt the kernel (SIGINT to its process group), as the toolbar's stop button."""
        self.manager.interrupt_kernel()

    def _pump_until(
        self, predicate: Callable[[], bool], timeout_s: float, watched: list[CellResult]
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pending = "\n".join(cell.describe() for cell in watched if not cell.done)
                raise TimeoutError(f"kernel did not finish within {timeout_s} s:\n{pending}")
            if not self._pump_once(min(remaining, _POLL_S)) and not self.is_alive():
                raise KernelDied(
                    "the kernel process exited; pending cells:\n"
                    + "\n".join(cell.describe() for cell in watched)
                    + f"\nkernel log:\n{self.log_text()[-4000:]}"
                )

    def _pump_once(self, timeout_s: float) -> bool:
        """Route every message that is ready (waiting up to ``timeout_s`` for the first)."""
        got = False
        for getter in (self.client.get_iopub_msg, self.client.get_shell_msg):
            while True:
                try:
                    msg = getter(timeout=0 if got else timeout_s / 2)
                except queue.Empty:
                    break
                got = True
                self._route(msg)
        return got

    def _route(self, msg: dict[str, Any]) -> None:
        cell = self._cells.get(msg.get("parent_header", {}).get("msg_id", ""))
        if cell is None:
            return
        kind, content = msg["msg_type"], msg["content"]
        if kind == "execute_reply":
            cell.reply = content
            cell.status = str(content.get("status"))
            cell.execution_count = content.get("execution_count")
        elif kind == "status":
            state = content.get("execution_state")
            cell.busy_seen |= state == "busy"
            cell.idle_seen |= state == "idle"
        elif kind == "stream":
            if content.get("name") == "stderr":
                cell.stderr += content["text"]
            else:
                cell.stdout += content["text"]
        elif kind in {"execute_result", "display_data"}:
            cell.outputs.append(content)
        elif kind == "error":
            cell.error = content


@contextmanager
def kernel_session(
    *,
    python: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = 60.0,
    shutdown_timeout_s: float = 10.0,
) -> Iterator[KernelSession]:
    """Start a private ipykernel, yield a :class:`KernelSession`, always shut it down.

    Parameters
    ----------
    python
        Interpreter for the kernel; defaults to ``sys.executable`` (the project venv).
    cwd
        Working directory of the kernel; defaults to a fresh temporary directory.
    env
        Extra environment variables for the kernel (on top of an isolated environment).
    startup_timeout_s
        How long to wait for the kernel to answer its first ``kernel_info`` request.
    shutdown_timeout_s
        How long a polite shutdown may take before the process is killed.

    Yields
    ------
    KernelSession
        The running kernel.
    """
    with tempfile.TemporaryDirectory(prefix="flowlab-kernel-") as tmp:
        home = Path(tmp)
        kernel_env = isolated_jupyter_env(home / "jupyter")
        kernel_env.update(env or {})
        write_kernelspec(home / "kernels", python=python)
        specs = KernelSpecManager(kernel_dirs=[str(home / "kernels")], ensure_native_kernel=False)
        manager = KernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=specs,
            connection_file=str(home / "connection.json"),
            # Unix sockets in our temp dir: no port races, no "TCP without encryption" warning.
            transport="ipc",
            ip=str(home / "ipc"),
        )
        workdir = Path(cwd) if cwd is not None else home / "cwd"
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = home / "kernel.log"
        with log_path.open("wb") as log:
            # The kernel process's own stdout/stderr (not a cell's: those arrive as messages).
            manager.start_kernel(cwd=str(workdir), env=kernel_env, stdout=log, stderr=log)
        client = manager.client()
        session = KernelSession(manager, client, log_path=log_path)
        try:
            client.start_channels()
            client.wait_for_ready(timeout=startup_timeout_s)
            yield session
        finally:
            client.stop_channels()
            if manager.has_kernel:
                manager.shutdown_kernel(now=False, restart=False)
            manager.cleanup_resources()
            if session.pid is not None:
                _ensure_dead(session.pid, shutdown_timeout_s)


def _kernel_pid(manager: KernelManager) -> int | None:
    """The process id of a started kernel (None if the provisioner does not expose one)."""
    process = getattr(manager.provisioner, "process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


def _ensure_dead(pid: int, timeout_s: float) -> None:
    """Wait for ``pid`` to disappear; SIGKILL it if it outlives ``timeout_s``."""
    import signal

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
