"""Binder: binder/requirements.txt alone installs flowlab and JupyterLab into a fresh venv.

Binder (repo2docker) runs ``pip install -r binder/requirements.txt`` from the repository
root, so the test does the same: a brand-new venv (no system site-packages), pip run from the
repository root, then ``import flowlab`` from an unrelated directory in isolated mode, so that
the import can only succeed from what was installed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BINDER = REPO_ROOT / "binder"


def _notebook_imports() -> set[str]:
    """The top-level modules the notebooks import (``import x`` / ``from x import ...``)."""
    import nbformat

    found: set[str] = set()
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                for m in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", cell.source, re.M):
                    found.add(m.group(1))
    return found - {"__future__"}


def test_notebooks_need_distributed_and_binder_installs_the_dask_extra() -> None:
    # 07_dask.ipynb starts a cluster: Binder must install the extra that brings it
    reqs = (BINDER / "requirements.txt").read_text(encoding="utf-8").split()
    assert ".[dask]" in reqs
    assert {"flowlab", "pydantic"} <= _notebook_imports()


def test_runtime_txt_asks_for_a_supported_python() -> None:
    runtime = (BINDER / "runtime.txt").read_text(encoding="utf-8").strip()
    # repo2docker's form is "python-X.Y"; flowlab needs >= 3.11 (pyproject requires-python).
    match = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert match is not None, f"binder/runtime.txt must read like 'python-3.12', not {runtime!r}"
    assert int(match.group(1)) == 12


@pytest.mark.slow
def test_requirements_install_flowlab_and_jupyterlab_into_a_fresh_venv(tmp_path: Path) -> None:
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Speed without cheating: this venv's pip drives the new one (`pip --python`, no ensurepip
    # step) and skips byte-compiling (`--no-compile`, 3x faster on a busy machine); what gets
    # installed is exactly what Binder installs.
    install = subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
            "--no-compile", "--disable-pip-version-check", "-r", "binder/requirements.txt",
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert install.returncode == 0, f"pip failed:\n{install.stdout}\n{install.stderr}"

    probe = (
        "import json, flowlab, jupyterlab, ipywidgets;"
        "print(json.dumps({'flowlab': flowlab.__file__, 'version': flowlab.__version__,"
        " 'jupyterlab': jupyterlab.__version__}))"
    )
    done = subprocess.run(
        [str(python), "-I", "-c", probe],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert Path(found["flowlab"]).is_relative_to(venv), found  # installed, not the checkout
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert found["version"] == project["project"]["version"]
    assert int(found["jupyterlab"].split(".")[0]) >= 4

    # every module a notebook imports is importable there, and distributed, which 07_dask.ipynb
    # reaches through fl.backends
    modules = sorted(_notebook_imports() | {"distributed"})
    imported = subprocess.run(
        [str(python), "-I", "-c", "import importlib, sys\n"
         "for m in sys.argv[1:]: importlib.import_module(m)", *modules],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert imported.returncode == 0, (modules, imported.stderr)

    lab = subprocess.run(
        [str(venv / "bin" / "jupyter-lab"), "--version"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert lab.returncode == 0, lab.stderr
    assert lab.stdout.strip() == found["jupyterlab"]
