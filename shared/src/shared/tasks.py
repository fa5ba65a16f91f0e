"""A stage's training task, packed for any loop: what `training_kit` asks a stage for.

`shared.fit.Task` is the problem (batches, loss, evaluation). To train it under another engine
(Accelerate's DDP, torch's FSDP, DeepSpeed's ZeRO), a loop needs a little more from the stage:
how to build the model and its optimizer, the schedule, and how to write a checkpoint the
stage's own commands can read (`gpt sample --run ...` on a model trained with ZeRO-3). A stage
offers all of it as a `TrainingTask`, built from the same command-line options as its `train`:

    # packages/gpt/pyproject.toml
    [project.entry-points."shared.tasks"]
    gpt = "gpt.kit:training_task"          # (argv: list[str], prog: str) -> TrainingTask

    task = load_training_task("gpt", ["--model.n_layer=2", "--max_steps=50"])

The stage's own `train` command runs the same `TrainingTask` through `shared.trainer` (the
plain loop, `shared.fit.fit`); training_kit's engines are the second door into it, and the
stage does not know which loop is behind it. Both build it with the stage's one `prepare`.
The fields after `extra` are for `shared.trainer` (training_kit reads `note` alone): the plain
loop's extras (epochs, accumulation, the kept checkpoint) and the stage's after-work (a final
evaluation, a sample).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from shared.config import parse_config
from shared.epochs import EpochSampler
from shared.errors import UsageError
from shared.fit import FitState, KeepBest
from shared.training import RunOptions, Setup

GROUP = "shared.tasks"


@dataclass
class TrainingTask:
    """Everything about one stage's training that does not depend on the engine running it.

    `config` is the stage's own training config (its run options included: `--max_steps`,
    `--time_limit`, `--seed`, ...), so an option means the same under every loop.
    """

    stage: str  # the stage that owns the task ("gpt"); checkpoints are this stage's format
    config: RunOptions  # the stage's parsed training config
    task: Any  # a shared.fit.Task: train_batch, count, loss, evaluate
    build_model: Callable[[], Any]  # () -> torch.nn.Module, on the CPU, seeded by the caller
    build_optimizer: Callable[[Any], Any]  # (module) -> optimizer; groups carry "peak_lr"
    schedule: Callable[[int, float, float | None], float]  # (step, elapsed, seconds) -> factor
    checkpoint_meta: Callable[[], dict[str, Any]]  # what the stage's loader needs in meta.json
    write_run_files: Callable[[Path], None]  # files beside the checkpoints (a tokenizer, ...)
    shard_units: Callable[[Any], list[Any]]  # (module) -> submodules FSDP shards one by one
    grad_clip: float = 1.0
    # A stage that counts in epochs (transformer: --epochs, evaluation at each epoch's end)
    # gives its budget in steps here; 0 means "the config's --max_steps / --eval_interval".
    max_steps: int = 0
    eval_interval: int = 0
    # (rank, world_size) -> the task process `rank` trains on, for data that cannot be dealt
    # out batch by batch (streams that carry a state from one window to the next); None: every
    # process draws every batch and keeps its own (training_kit.loop.ProcessShare).
    for_process: Callable[[int, int], Any] | None = None
    item_name: str = "tok"  # the unit of task.count(), for the progress bar
    description: str = ""  # one line for the run's log
    extra: dict[str, Any] = field(default_factory=dict)

    # --- what `shared.trainer` (the stage's own `train`) reads besides the above ---
    note: str = ""  # printed last before training (e.g. "offline: using pystdlib instead")
    sampler: EpochSampler | None = None  # the task's epoch position, for data held in memory
    accumulation_steps: int = 1  # micro-batches per optimizer step
    keep_best: KeepBest | None = None  # keep the checkpoint that scores best (and maybe stop)
    evaluate_at_end: bool = False  # evaluate after the loop unless its last step just did
    reserve_seconds: Callable[[FitState], float] | None = None  # time kept for `finish`
    step_metrics: Callable[[FitState, float], dict[str, float]] | None = None  # more to log
    shown_metrics: tuple[str, ...] = ()  # of step_metrics' names, those the progress bar shows
    precision: Callable[[Setup], str] | None = None  # (setup) -> precision, if not the verdict
    compile: bool = False  # torch.compile the model for the forward and backward passes
    check_resume: Callable[[Any], None] | None = None  # (Resume) -> None; raise if it misfits
    resume_command: str = ""  # printed on Ctrl-C before "--resume=RUN" (default: STAGE train)
    finish: Callable[[Any], dict[str, Any] | None] | None = None  # (Trained) -> final meta
    final_checkpoint: str | None = "final"  # the last weights' name (None: not saved)
    plots: dict[str, list[str]] = field(default_factory=dict)  # file name -> metrics plotted
    plot_title: Callable[[Any], str] | None = None  # (Trained) -> the plots' title
    report: Callable[[Any], dict[str, Path] | None] | None = None  # (Trained) -> paths to show
    # A checkpoint holds every weight, unless the stage saves a part (LoRA: the adapters):
    saved_weights: Callable[[Any], dict[str, Any]] | None = None  # (model) -> name -> tensor
    load_saved_weights: Callable[[Any, dict[str, Any]], None] | None = None  # (model, saved)

    def __post_init__(self) -> None:
        if not self.resume_command:
            self.resume_command = f"uv run --package {self.stage} train"


def prepared_task(
    config_cls: type, prepare: Callable[[Any], TrainingTask], argv: list[str], prog: str,
    command: str,
) -> TrainingTask:  # fmt: skip
    """A stage's task for training_kit: its training command's options (`command`, e.g.
    "bert finetune") parsed from `argv`, then the stage's own `prepare(cfg)`. `--resume`
    belongs to the command (training_kit resumes its own runs with its own --resume)."""
    cfg = parse_config(config_cls, argv, prog=prog)
    if cfg.resume:
        raise UsageError(f"--resume belongs to `{command}`; training_kit has its own --resume")
    return prepare(cfg)


def available_tasks() -> dict[str, Any]:
    """Task name -> entry point, for every installed stage that offers one."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_training_task(
    name: str, argv: list[str], prog: str = "training_kit train"
) -> TrainingTask:
    """The stage task called `name`, built from the stage's training options in `argv`;
    `prog` is the command named in `--help` and in errors."""
    tasks = available_tasks()
    if name not in tasks:
        known = ", ".join(sorted(tasks)) or "none installed"
        raise UsageError(f"unknown task {name!r}; the installed stages offer: {known}")
    return tasks[name].load()(argv, prog)
