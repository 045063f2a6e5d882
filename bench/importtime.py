"""Figure 10: how long ``import flowlab`` takes, and that it stays free of heavy modules.

Each sample is a fresh interpreter that times ``import flowlab`` with ``perf_counter`` and lists
which of pandas / matplotlib / ipywidgets ended up in ``sys.modules``. Baseline: the same for
``import pydantic``, the one dependency flowlab cannot load lazily. Median of several samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench._core import Figure, Settings, median

__all__ = ["HEAVY", "import_time"]

HEAVY = ("pandas", "matplotlib", "ipywidgets")

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import {module}
t = time.perf_counter() - t0
print(json.dumps({{"s": t, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _sample(module: str) -> dict[str, object]:
    code = _PROBE.format(module=module, heavy=HEAVY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONPROFILE")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"import {module} failed:\n{proc.stderr[-2000:]}")
    data: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def import_time(settings: Settings) -> Figure:
    """Figure 10."""
    fig = Figure("import", 10, "Import time of `import flowlab` (fresh interpreter)")
    n = settings.pick(3, 9)
    _sample("flowlab")  # warm the OS file cache and .pyc files
    flow: list[float] = []
    base: list[float] = []
    heavy: set[str] = set()
    for _ in range(n):
        b = _sample("pydantic")
        f = _sample("flowlab")
        base.append(float(b["s"]))  # type: ignore[arg-type]
        flow.append(float(f["s"]))  # type: ignore[arg-type]
        heavy.update(f["heavy"])  # type: ignore[arg-type]
    fig.add(
        "import_s", median(flow), "s", "import flowlab, median", target="< 0.3 s",
        check=lambda v: v < 0.3,
    )  # fmt: skip
    fig.add("baseline_s", median(base), "s", "import pydantic, median")
    fig.add("ratio", median(flow) / median(base), "x", "flowlab / pydantic")
    fig.add(
        "heavy_modules", float(len(heavy)), "modules",
        "pandas/matplotlib/ipywidgets loaded by it", target="= 0", check=lambda v: v == 0,
    )  # fmt: skip
    if heavy:
        fig.notes.append("loaded at import: " + ", ".join(sorted(heavy)))
    fig.notes.append(f"{n} fresh interpreters each")
    return fig
