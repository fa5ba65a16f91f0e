"""A stage ships as a wheel that works outside the workspace.

`uv build --package micrograd` and `--package shared` build the two wheels; a fresh virtual
environment in tmp_path gets both (and their dependencies from the package index, which uv's
cache usually serves), and its Python imports micrograd from there and runs one backward pass.
This catches what the workspace hides: a module left out of the wheel, a dependency declared
only at the root, an import of a later stage. micrograd is the one stage light enough to install
this way in a test (no torch); `uv build --package STAGE` builds any of them.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")

# The stage's first lesson, on made-up numbers: d mean((x w^T - 3)^2) / d w is (-21, -31).
CHECK = textwrap.dedent(
    """
    import importlib.metadata, sys
    import micrograd
    from micrograd import Tensor

    x = Tensor([[1.0, 2.0], [3.0, 4.0]])
    w = Tensor([[0.5, -1.0]], requires_grad=True)
    loss = ((x @ w.T - 3.0) ** 2).mean()
    loss.backward()
    meta = importlib.metadata.metadata("micrograd")
    print(micrograd.__file__)
    print([float(g) for g in w.grad.ravel()])
    print(meta["Version"], meta["License-Expression"])
    """
)


def uv(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    # Outside `uv run`'s own environment: the fresh venv must be the only one in play.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run(["uv", *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"uv {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done


def test_micrograd_wheel_installs_and_runs_in_a_fresh_environment(tmp_path):
    started = time.perf_counter()
    dist = tmp_path / "dist"
    for package in ("shared", "micrograd"):
        uv("build", "--package", package, "--wheel", "--out-dir", str(dist), "--quiet")
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["micrograd", "shared"]

    venv = tmp_path / "venv"
    uv("venv", str(venv), "--python", sys.executable, "--quiet")
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    uv("pip", "install", "--python", str(python), "--quiet", *map(str, wheels))

    # Run from tmp_path with -I, so neither the repository nor its .venv can be imported.
    done = subprocess.run(
        [str(python), "-I", "-c", CHECK], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    where, grad, meta = done.stdout.splitlines()
    assert Path(where).is_relative_to(venv), f"micrograd imported from {where}"
    assert grad == "[-21.0, -31.0]"
    version = tomllib.loads((ROOT / "packages/micrograd/pyproject.toml").read_text())["project"]
    assert meta == f"{version['version']} MIT"
    # Printed (see it with -s) to keep an eye on the cost; uv's cache does the heavy lifting.
    print(f"build + venv + install + import: {time.perf_counter() - started:.1f} s")
