"""Strip the stage notebooks of what running them leaves behind: outputs and execution counts.

    uv run python tools/strip_notebooks.py            # strip notebooks/*.ipynb in place
    uv run python tools/strip_notebooks.py --check    # list unstripped ones, exit 1 if any
    uv run python tools/strip_notebooks.py FILE ...   # only these notebooks

The notebooks are committed without outputs: a diff then shows code and prose only, and no
committed picture can claim what today's code would not draw. `uv run pytest` executes every
notebook (nbmake), which is the proof that they run; `tests/test_workspace_notebooks.py` checks
that they stay stripped. Stripping removes each code cell's outputs, its execution count and
the timings a runner records in its metadata (`execution`), and nothing else. A notebook that
needs no change is not rewritten.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CELL_METADATA_FROM_RUNS = ("execution", "collapsed", "scrolled")


def what_to_strip(notebook: dict[str, Any]) -> list[str]:
    """What in this notebook (its JSON) a run left behind, one phrase each; empty if clean."""
    found = []
    for number, cell in enumerate(notebook.get("cells", []), 1):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {number} has outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {number} has an execution count")
        left = [key for key in CELL_METADATA_FROM_RUNS if key in cell.get("metadata", {})]
        if left:
            found.append(f"cell {number} has run metadata ({', '.join(left)})")
    return found


def strip(notebook: dict[str, Any]) -> dict[str, Any]:
    """The notebook without outputs, execution counts or run metadata (changed in place)."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        cell["outputs"] = []
        cell["execution_count"] = None
        for key in CELL_METADATA_FROM_RUNS:
            cell.get("metadata", {}).pop(key, None)
    return notebook


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def write(path: Path, notebook: dict[str, Any]) -> None:
    """nbformat's own layout (one-space indent, sorted keys), so Jupyter rewrites nothing."""
    text = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="notebooks (default: notebooks/*)")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if any needs stripping"
    )
    args = parser.parse_args(argv)
    files = args.files or sorted(NOTEBOOKS.glob("*.ipynb"))
    dirty = []
    for path in files:
        notebook = read(path)
        problems = what_to_strip(notebook)
        if not problems:
            continue
        dirty.append(path)
        if args.check:
            print(f"{path}: {'; '.join(problems)}")
        else:
            write(path, strip(notebook))
            print(f"stripped {path}")
    if args.check and dirty:
        print(
            f"{len(dirty)} notebook(s) hold outputs; strip them with "
            "`uv run python tools/strip_notebooks.py`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
