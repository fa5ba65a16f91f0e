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

from shared.atomic import write_text_atomic
from shared.config import format_help
from shared.errors import UsageError
from shared.runs import Run, latest_checkpoint
from shared.tasks import TrainingTask, available_tasks, load_training_task
from shared.trainer import Resume, continue_metrics, find_resume
from training_kit.launch import WorkersFailed, check_port, launch_workers
from training_kit.options import KIT_KEYS, KitOptions, parse_kit, split_argv, usable_cores
from training_kit.options import kit_argv as kit_argv_of
from training_kit.tracking import check_tracker


def check_strategy(kit: KitOptions, training: TrainingTask) -> None:
    """Refuse what the strategy cannot run, before any process starts (built on the meta
    device: no memory, no time)."""
    import torch

    if kit.strategy not in ("fsdp", "deepspeed"):
        return
    with torch.device("meta"):
        optimizer = training.build_optimizer(training.build_model())
    # Muon orthogonalises each matrix; Adafactor keeps a row and a column moment per matrix
    # and scales its step by the matrix's RMS. Both need the whole matrix in one process.
    splits = kit.strategy == "fsdp" or (kit.zero_stage or 0) > 0
    whole = not isinstance(optimizer, torch.optim.Optimizer) or isinstance(
        optimizer, torch.optim.Adafactor
    )
    if splits and whole:
        raise UsageError(
            f"--strategy {kit.strategy} splits every weight matrix across the processes, and "
            f"{type(optimizer).__name__} needs whole ones; use a torch optimizer that works "
            "weight by weight (for gpt and t5: --optimizer=adamw), or --strategy ddp"
        )


def print_help(argv: list[str]) -> None:
    kit_argv, _ = split_argv([a for a in argv if a not in ("-h", "--help")])
    print(format_help(KitOptions, "training_kit train", __doc__.split("\n\n")[0]))
    task = parse_kit(kit_argv).task if kit_argv else "gpt"
    if task in available_tasks():
        print(f"\nthe {task} task's own options follow (those of `{task} train`):\n")
        with contextlib.suppress(SystemExit):
            load_training_task(task, ["--help"], prog=f"training_kit train --task {task}")


def train(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print_help(argv)
        raise SystemExit(0)  # as every command's --help does (shared.config)
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
    resume = None
    if kit.resume is not None:
        stage_argv, resume = prepare_resume(kit, kit_argv, stage_argv)
    training = load_training_task(kit.task, stage_argv)  # the stage checks its options and data
    check_strategy(kit, training)

    run = Run.start(training.stage, training.config, name=training.config.run_name)
    write_text_atomic(run.folder / "training_kit.json", json.dumps(vars(kit), indent=2))
    training.write_run_files(run.folder)
    if resume is not None:  # a resumed run's curve starts with the steps it continues from
        continue_metrics(run, resume, resume.step)
    kit.run_folder = str(run.folder)
    if kit.strategy == "single":
        from training_kit.worker import work

        work(kit, stage_argv, training)
    else:
        # The kit's options as resolved here (the task and checkpoint of --resume included).
        worker_argv = [*kit_argv_of(kit), "--", *stage_argv]
        try:
            launch_workers(kit.num_processes, port, worker_argv)
        except WorkersFailed as error:
            prefix = "" if error.exit_code > 128 else "error: "  # a Ctrl-C is not an error
            print(f"{prefix}{error}; {last_checkpoint_note(run)}", file=sys.stderr)
            return error.exit_code
    how = f"ZeRO-{kit.zero_stage}" if kit.strategy == "deepspeed" else kit.strategy
    run.plot_metrics("loss.png", ["loss", "train_loss", "val_loss"],
                     title=f"{kit.task} under {how} x {kit.num_processes}")  # fmt: skip
    run.finish()
    return 0


def saved_options(config: dict, prefix: str = "") -> list[str]:
    """A saved stage config as `--key=value` options (nested keys dotted), the kit's own keys
    left out: what `--resume` puts before the options given on its command line."""
    argv = []
    for key, value in config.items():
        if isinstance(value, dict):
            argv += saved_options(value, f"{prefix}{key}.")
            continue
        if not prefix and key in KIT_KEYS:
            continue
        if value is None:
            text = "none"
        elif isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, (list, tuple)):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        argv.append(f"--{prefix}{key}={text}")
    return argv


def prepare_resume(
    kit: KitOptions, kit_argv: list[str], stage_argv: list[str]
) -> tuple[list[str], Resume]:
    """Point `kit.resume` at the run's latest checkpoint; returns the task's options (the run's,
    then this command's) and the checkpoint (`shared.trainer.Resume`)."""
    from training_kit.compare import find_run

    folder = find_run(kit.resume)
    if not (folder / "training_kit.json").is_file():
        raise UsageError(
            f"{folder} was trained by its stage's own loop: resume it with the command that "
            f"trained it (uv run --package {folder.parent.name} ...) and --resume={folder}"
        )
    resume = find_resume(folder.parent.name, folder)
    if (
        not ({"fit", "loop"} & resume.meta.keys())
        or not (resume.checkpoint / "optimizer.safetensors").is_file()
    ):
        raise UsageError(f"{resume.checkpoint} holds weights only (saved before a first step): "
                         "it can be sampled from, not resumed")  # fmt: skip
    saved_kit = json.loads((folder / "training_kit.json").read_text())
    if not any(a.startswith("--task") for a in kit_argv):
        kit.task = saved_kit["task"]
    kit.resume = str(resume.checkpoint.resolve())
    saved = json.loads((folder / "config.json").read_text())
    print(f"resuming {folder} from {resume.checkpoint.name} (step {resume.step}, saved under "
          f"{saved_kit['strategy']} x {saved_kit['num_processes']})", flush=True)  # fmt: skip
    return [*saved_options(saved), *stage_argv], resume


def last_checkpoint_note(run: Run) -> str:
    """Where the last complete checkpoint is, for the line that reports a failure."""
    try:
        return f"last complete checkpoint: {latest_checkpoint(run.folder)}"
    except UsageError:
        return "no checkpoint was written"
