"""The stage notebooks (notebooks/NN_<stage>.ipynb) as the repository keeps them.

`uv run pytest` executes every notebook through nbmake (the root pyproject's pytest table), which
proves they run on today's code. They are committed stripped, without outputs or execution
counts: a diff then shows code and prose only, and no stored picture can show what the current
code would not draw. These tests hold that, and the notebooks' shape:

- one notebook per stage, numbered in the stage order (shared's included, as 00);
- no outputs, no execution counts, no run metadata (`tools/strip_notebooks.py` removes them);
- the kernel is `python3`, which nbmake starts with this environment's own python;
- each opens with the way into its stage: the guide (the stage's README.md) and the exercises;
- each imports its stage and defines no function or class: a notebook shows the package's
  code at work, it does not carry a copy of it.
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from shared.learn import STAGE_ORDER

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STRIP = ROOT / "tools" / "strip_notebooks.py"

# The stage order of ARCHITECTURE.md's table, written out so that a change to it is seen here.
STAGES = (
    "shared",
    "micrograd",
    "mlp",
    "seq_models",
    "attention",
    "transformer",
    "tokenizers_fromscratch",
    "gpt",
    "bert",
    "t5",
    "training_kit",
)
EXPECTED = [f"{number:02d}_{stage}.ipynb" for number, stage in enumerate(STAGES)]
PATHS = [NOTEBOOKS / name for name in EXPECTED]


def load_strip_tool():
    spec = importlib.util.spec_from_file_location("strip_notebooks", STRIP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_of(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in read(path)["cells"] if c["cell_type"] == "code"]


def test_one_notebook_per_stage_in_the_stage_order():
    assert STAGES == STAGE_ORDER, "the stage order changed: rename the notebooks to match"
    found = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert found == EXPECTED


@pytest.mark.parametrize("path", PATHS, ids=EXPECTED)
def test_notebook_is_stripped(path):
    problems = load_strip_tool().what_to_strip(read(path))
    assert not problems, (
        f"{path.name} was committed with what a run leaves behind ({'; '.join(problems)}); "
        f"strip it with `uv run python tools/strip_notebooks.py` (or check all with --check)"
    )


@pytest.mark.parametrize("path", PATHS, ids=EXPECTED)
def test_notebook_runs_in_this_environments_python3_kernel(path):
    kernel = read(path)["metadata"].get("kernelspec", {})
    assert kernel.get("name") == "python3", (
        f"{path.name} asks for kernel {kernel.get('name')!r}; nbmake would start that one "
        "instead of this environment's python (set the notebook's kernel to python3)"
    )


@pytest.mark.parametrize("stage", STAGES)
def test_notebook_opens_with_the_guide_and_the_exercises(stage):
    path = NOTEBOOKS / f"{STAGES.index(stage):02d}_{stage}.ipynb"
    first = read(path)["cells"][0]
    text = "".join(first["source"])
    guide = "../shared/README.md" if stage == "shared" else f"../packages/{stage}/README.md"
    assert first["cell_type"] == "markdown"
    assert guide in text, f"{path.name}'s first cell should link the guide, {guide}"
    assert f"uv run --package {stage} exercise list" in text, (
        f"{path.name}'s first cell should name `uv run --package {stage} exercise list`"
    )


@pytest.mark.parametrize("stage", STAGES)
def test_notebook_imports_its_stage_and_copies_no_code(stage):
    path = NOTEBOOKS / f"{STAGES.index(stage):02d}_{stage}.ipynb"
    code = "\n".join(code_of(path))
    assert re.search(rf"^\s*(from|import) {stage}\b", code, re.MULTILINE), (
        f"{path.name} never imports {stage}: the notebook should run the package's own code"
    )
    definitions = re.findall(r"^\s*(?:async\s+)?(?:def|class)\s+\w+", code, re.MULTILINE)
    assert not definitions, (
        f"{path.name} defines {', '.join(d.strip() for d in definitions)}: import the "
        f"package's own function or class instead of writing a copy in the notebook"
    )


def test_strip_tool_strips_and_checks(tmp_path, capsys):
    tool = load_strip_tool()
    notebook = read(PATHS[1])
    cell = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
    cell["execution_count"] = 3
    cell["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    dirty = tmp_path / "dirty.ipynb"
    dirty.write_text(json.dumps(notebook), encoding="utf-8")

    assert tool.main(["--check", str(dirty)]) == 1
    assert "dirty.ipynb: cell" in capsys.readouterr().out
    assert tool.main([str(dirty)]) == 0
    assert tool.main(["--check", str(dirty)]) == 0
    assert read(dirty) == read(PATHS[1])  # only what the run added is gone
