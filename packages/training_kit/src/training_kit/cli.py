"""`uv run --package training_kit train`: any stage's task, on any strategy, in one line.

    uv run --package training_kit train --task gpt --max_steps=200           # one process
    uv run --package training_kit train --task gpt --strategy ddp --num_processes 2
    uv run --package training_kit train --task gpt --strategy fsdp --num_processes 2 \\
        --optimizer=adamw
    uv run --package training_kit train --task gpt --strategy deepspeed --zero_stage 3 \\
        --num_processes 2 --optimizer=adamw
    uv run --package gpt sample --run NAME       # the checkpoint is the stage's own

Options the kit does not know go to the stage's task (`--help` lists both). The command checks
everything it can before a worker starts (options, data, the port, the optimizer against the
strategy), writes the run folder under runs/<stage>/, then starts the workers.
"""

import contextlib
import json
import sys

from shared.config import format_help
from shared.errors import UsageError
from shared.runs import Run
from shared.tasks import TrainingTask, available_tasks, load_training_task
from training_kit.launch import WorkersFailed, check_port, launch_workers
from training_kit.options import KitOptions, parse_kit, split_argv, usable_cores
from training_kit.tracking import check_tracker


def check_strategy(kit: KitOptions, training: TrainingTask) -> None:
    """Refuse what the strategy cannot run, before any process starts (built on the meta
    device: no memory, no time)."""
    import torch

    if kit.strategy not in ("fsdp", "deepspeed"):
        return
    with torch.device("meta"):
        optimizer = training.build_optimizer(training.build_model())
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise UsageError(
            f"--strategy {kit.strategy} splits every weight matrix across the processes, and "
            f"{type(optimizer).__name__} needs whole ones; use a torch optimizer "
            "(for gpt: --optimizer=adamw)"
        )


def print_help(argv: list[str]) -> None:
    kit_argv, _ = split_argv([a for a in argv if a not in ("-h", "--help")])
    print(format_help(KitOptions, "training_kit train", __doc__.split("\n\n")[0]))
    task = parse_kit(kit_argv).task if kit_argv else "gpt"
    if task in available_tasks():
        print(f"\nthe {task} task's own options follow (those of `{task} train`):\n")
        with contextlib.suppress(SystemExit):
            load_training_task(task, ["--help"])


def train(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print_help(argv)
        return 0
    kit_argv, stage_argv = split_argv(argv)
    kit = parse_kit(kit_argv)
    if kit.list_tasks:
        for name, ep in sorted(available_tasks().items()):
            print(f"{name:12s} {ep.value}")
        return 0
    cores = usable_cores()
    if kit.num_processes > cores:
        print(f"warning: {kit.num_processes} processes on {cores} cores take turns on them: "
              "slower than fewer, but it runs", file=sys.stderr)  # fmt: skip
    check_tracker(kit.tracker)
    port = check_port(kit.port) if kit.strategy != "single" else 0
    training = load_training_task(kit.task, stage_argv)  # the stage checks its options and data
    check_strategy(kit, training)

    run = Run.start(training.stage, training.config, name=training.config.run_name)
    (run.folder / "training_kit.json").write_text(json.dumps(vars(kit), indent=2))
    training.write_run_files(run.folder)
    kit.run_folder = str(run.folder)
    if kit.strategy == "single":
        from training_kit.worker import work

        work(kit, stage_argv, training)
    else:
        worker_argv = [*kit_argv, f"--run_folder={run.folder}", *stage_argv]
        try:
            launch_workers(kit.num_processes, port, worker_argv)
        except WorkersFailed as error:
            print(f"error: {error}; {last_checkpoint_note(run)}", file=sys.stderr)
            return error.exit_code
    run.plot_metrics("loss.png", ["loss", "train_loss", "val_loss"],
                     title=f"{kit.task} under {kit.strategy} x {kit.num_processes}")  # fmt: skip
    run.finish()
    return 0


def last_checkpoint_note(run: Run) -> str:
    """Where the last complete checkpoint is, for the line that reports a failure."""
    from shared.runs import latest_checkpoint

    try:
        return f"last complete checkpoint: {latest_checkpoint(run.folder)}"
    except UsageError:
        return "no checkpoint was written"
