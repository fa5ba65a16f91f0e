"""Experiment tracking through Accelerate's trackers, beside the run's own metrics.jsonl.

    --tracker tensorboard    runs/<stage>/<run>/tensorboard/   `tensorboard --logdir runs`
    --tracker mlflow         runs/<stage>/<run>/mlruns/        (if mlflow is installed)
    --tracker wandb          runs/<stage>/<run>/wandb/, offline (if wandb is installed)

metrics.jsonl is always written (the plots and `compare` read it); a tracker is a second copy
for the tools people already use. TensorBoard is a dependency of this stage; MLflow and W&B are
not (they are large, and W&B wants an account): where they are installed they work, offline,
into the run folder; where not, the command says how to install them.
"""

import importlib.util
import os
from pathlib import Path
from typing import Any, Literal

from shared.errors import UsageError

Tracker = Literal["none", "tensorboard", "mlflow", "wandb"]


def check_tracker(kind: Tracker) -> None:
    """Refuse a tracker whose package is not installed, before anything starts."""
    if kind != "none" and importlib.util.find_spec(kind) is None:
        raise UsageError(f"--tracker {kind} needs the {kind} package: uv pip install {kind} "
                         "(or --tracker tensorboard, which this stage installs)")  # fmt: skip


def plain(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as flat `a.b` keys with the scalar types trackers accept."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(plain(value, f"{prefix}{key}."))
        elif isinstance(value, (bool, int, float, str)):
            out[f"{prefix}{key}"] = value
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


def start_tracker(kind: Tracker, run_folder: Path, stage: str, config: dict[str, Any]) -> Any:
    """An Accelerate tracker writing into the run folder, started, with the config stored;
    None for "none". Call it on the main process only."""
    if kind == "none":
        return None
    check_tracker(kind)
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    if kind == "tensorboard":
        tracker = TensorBoardTracker(run_folder.name, logging_dir=run_folder / "tensorboard")
    elif kind == "mlflow":
        os.environ.setdefault("MLFLOW_TRACKING_URI", (run_folder / "mlruns").resolve().as_uri())
        tracker = MLflowTracker(experiment_name=stage, run_name=run_folder.name)
    else:
        os.environ.setdefault("WANDB_MODE", "offline")  # never the network
        os.environ.setdefault("WANDB_DIR", str(run_folder))
        tracker = WandBTracker(stage, name=run_folder.name)  # project, then this run
    tracker.start()
    tracker.store_init_configuration(plain(config))
    return tracker
