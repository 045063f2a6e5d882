"""Figure 10: how long ``import flowlab`` takes, and that it stays free of heavy modules.

Each sample is a fresh interpreter that times ``import flowlab`` (CPU time of the process, the
target's measure, and wall time, which a busy machine inflates) and lists
which of pandas / matplotlib / ipywidgets ended up in ``sys.modules``. Baseline: the same for
``from pydantic import BaseModel`` — the one dependency flowlab cannot load lazily (a bare
``import pydantic`` is lazy and would understate it). Median of several samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench._core import Figure, Settings, median

__all__ = ["HEAVY", "import_time"]

HEAVY = ("pandas", "matplotlib", "ipywidgets")
FLOWLAB = "import flowlab"
BASELINE = "from pydantic import BaseModel"

_PROBE = """
import json, sys, time
c0, t0 = time.process_time(), time.perf_counter()
{statement}
t, c = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({{"s": t, "cpu": c, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _sample(statement: str) -> dict[str, object]:
    code = _PROBE.format(statement=statement, heavy=HEAVY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONPROFILE")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{statement!r} failed:\n{proc.stderr[-2000:]}")
    data: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def import_time(settings: Settings) -> Figure:
    """Figure 10."""
    fig = Figure("import", 10, "Import time of `import flowlab` (fresh interpreter)")
    n = settings.pick(3, 9)
    _sample(FLOWLAB)  # warm the OS file cache and .pyc files
    flow: list[float] = []
    flow_cpu: list[float] = []
    base_cpu: list[float] = []
    heavy: set[str] = set()
    for _ in range(n):
        b = _sample(BASELINE)
        f = _sample(FLOWLAB)
        base_cpu.append(float(b["cpu"]))  # type: ignore[arg-type]
        flow.append(float(f["s"]))  # type: ignore[arg-type]
        flow_cpu.append(float(f["cpu"]))  # type: ignore[arg-type]
        heavy.update(f["heavy"])  # type: ignore[arg-type]
    fig.add(
        "import_cpu_s", median(flow_cpu), "s", "import flowlab, CPU time, median",
        target="< 0.3 s", check=lambda v: v < 0.3,
    )  # fmt: skip
    fig.add("import_s", median(flow), "s", "  wall time, median (load-sensitive)")
    fig.add("baseline_cpu_s", median(base_cpu), "s", "from pydantic import BaseModel, CPU, median")
    fig.add("ratio", median(flow_cpu) / median(base_cpu), "x", "flowlab / pydantic BaseModel (CPU)")
    fig.add(
        "heavy_modules", float(len(heavy)), "modules",
        "pandas/matplotlib/ipywidgets loaded by it", target="= 0", check=lambda v: v == 0,
    )  # fmt: skip
    if heavy:
        fig.notes.append("loaded at import: " + ", ".join(sorted(heavy)))
    fig.notes.append(f"{n} fresh interpreters each")
    return fig
