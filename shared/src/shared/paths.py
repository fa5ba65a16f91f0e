"""Where things live: the repository root, the dataset cache, and the runs folder.

Commands may be started from any folder (`uv run` works from anywhere inside the workspace), so
paths are anchored to the workspace root rather than the current directory. Environment variables
override each location, which is how tests and CI point them at temporary folders.
"""

import os
from pathlib import Path


def _is_workspace_root(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    return pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text(encoding="utf-8")


def repo_root() -> Path:
    """The uv workspace root that holds this checkout, else the current directory.

    Looks upwards from the current directory first (the user's own checkout), then from this
    file (an editable install of `shared` lives at <root>/shared/src/shared/).
    """
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if _is_workspace_root(folder):
                return folder
    return Path.cwd().resolve()


def datasets_cache_dir() -> Path:
    """`$DATASETS_CACHE` if set, else `<repo root>/datasets_cache`."""
    env = os.environ.get("DATASETS_CACHE")
    return Path(env).expanduser().resolve() if env else repo_root() / "datasets_cache"


def datasets_mirror_dir() -> Path | None:
    """`$DATASETS_MIRROR` if set: a local folder laid out like the cache (`<name>/<file>`)."""
    env = os.environ.get("DATASETS_MIRROR")
    return Path(env).expanduser().resolve() if env else None


def runs_dir() -> Path:
    """`$RUNS_DIR` if set, else `<repo root>/runs`."""
    env = os.environ.get("RUNS_DIR")
    return Path(env).expanduser().resolve() if env else repo_root() / "runs"


def exercises_dir() -> Path:
    """`$EXERCISES_DIR` if set, else `<repo root>/exercises`: the learner's code (git-ignored)."""
    env = os.environ.get("EXERCISES_DIR")
    return Path(env).expanduser().resolve() if env else repo_root() / "exercises"
