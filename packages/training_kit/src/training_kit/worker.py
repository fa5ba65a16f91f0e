"""One worker process: join the group, build the task and the engine, train, save.

The launcher (`training_kit.launch`) starts N of these with torch's elastic launcher, which
sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; `--strategy single` runs `work` in the
launching process itself. Rank 0 is the main process: it alone prints, logs and writes files.
"""

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

from shared.atomic import write_text_atomic
from shared.checkpoint import load_checkpoint, save_checkpoint
from shared.commands import report_errors
from shared.config import config_to_dict
from shared.errors import UsageError
from shared.runs import Run
from shared.tasks import TrainingTask, load_training_task
from shared.training import StopSignals, prune_checkpoints, setup
from training_kit.loop import LoopState, process_task, train
from training_kit.options import KitOptions, parse_kit, split_argv, usable_cores
from training_kit.strategies import AccelerateEngine, DeepSpeedEngine, Engine, FSDPEngine
from training_kit.tracking import start_tracker


class WorkerStop(StopSignals):
    """`StopSignals` for a worker: every signal only asks to stop after this step.

    A worker's Ctrl-C comes from the launcher, which forwards it and, 30 s later, kills what
    is left; a second signal must not end the process before its checkpoint is written.
    """

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            super()._handle(signum, frame)


class Silent:
    """What the other ranks get for a progress bar: it shows nothing."""

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def write(self, message: str) -> None:
        pass


def join_group(kit: KitOptions) -> tuple[int, int]:
    """(rank, world size), after joining the launcher's process group (gloo on a CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if kit.strategy != "single" and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if kit.strategy != "single" and dist.get_world_size() != kit.num_processes:
        raise RuntimeError(
            f"asked for {kit.num_processes} processes, the group has {dist.get_world_size()}"
        )
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world_size


def make_engine(
    kit: KitOptions, training: TrainingTask, model: torch.nn.Module, precision: str
) -> Engine:
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    if kit.strategy in ("single", "ddp"):
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=next(model.parameters()).device.type == "cpu")
        optimizer = training.build_optimizer(model)
        return AccelerateEngine(kit.strategy, accelerator, model, optimizer)
    if kit.strategy == "fsdp":
        return FSDPEngine(training, model, world_size)
    micro_batch = getattr(training.task, "batch_size", 1)
    return DeepSpeedEngine(
        training, model, world_size, kit.zero_stage or 0, micro_batch, kit.accumulation_steps,
        training.grad_clip, precision == "bf16",
    )  # fmt: skip


def gather_objects(value: Any) -> list[Any]:
    """`value` from every process, in rank order (collective); [value] without a group."""
    if not dist.is_initialized():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def data_position(sampler: Any) -> Any:
    """Where the data stands, for the checkpoint (collective: every process calls it).

    An epoch position is the same on every process. A task whose processes each read their own
    streams (`TrainingTask.for_process`) has a part on each: gathered and merged into the one
    position a single process reading every stream would have, so a run can resume on any
    number of processes."""
    if sampler is None:
        return None
    merge = getattr(sampler, "merge_process_states", None)
    if merge is None:
        return sampler.state_dict()
    return merge(gather_objects(sampler.state_dict()))


def read_resumable(folder: Path, model: torch.nn.Module) -> Any:
    """A kit checkpoint's weights loaded into `model`; the checkpoint (optimizer state, meta).
    Refuses one that cannot continue exactly: no optimizer state, or no loop state."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    checkpoint = load_checkpoint(folder, expected=expected, framework="torch")
    if checkpoint.optimizer is None or "loop" not in checkpoint.meta:
        raise UsageError(
            f"{folder} holds weights only (saved by the stage's own loop, or before a first "
            "step): sample from it, or start a new run from the stage"
        )
    model.load_state_dict(checkpoint.model)
    return checkpoint


def work(
    kit: KitOptions,
    stage_argv: list[str],
    training: TrainingTask | None = None,
    after_evaluation: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train the task under the strategy; returns the last evaluation (on every rank).
    `training` is the task already built (by the launching process, for `single`);
    `after_evaluation` goes to the loop (a sweep's pruning)."""
    rank, world_size = join_group(kit)
    if training is None:
        training = load_training_task(kit.task, stage_argv)
    cfg = training.config
    if cfg.threads == 0:  # the cores shared out, so that N workers do not fight over them
        cfg.threads = max(1, usable_cores() // max(1, world_size))
    env = setup(cfg)  # threads, device, precision, seeds: the same weights on every rank
    main = rank == 0
    model = training.build_model().to(env.device)
    resumed = None
    if kit.resume is not None:  # whole weights into every rank's model, before any sharding
        resumed = read_resumable(Path(kit.resume), model)
    engine = make_engine(kit, training, model, env.precision)
    sharding = engine.check_sharding()
    # The weights are built alike everywhere; from here each process draws its own dropout
    # masks (the same seed would give every process the same masks for different batches).
    torch.manual_seed(cfg.seed + rank)
    start = None
    task = process_task(training, rank, world_size)  # this process's share of the data
    sampler = getattr(task, "sampler", None)  # where in the data: an epoch, streams; if any
    if resumed is not None:
        engine.load_optimizer_state_dict(resumed.optimizer)
        start = LoopState.from_state_dict(resumed.meta["loop"])
        if resumed.meta.get("sampler") is not None:
            sampler.load_state_dict(resumed.meta["sampler"])
        dropout_states = resumed.meta.get("dropout_generators") or []
        if len(dropout_states) == world_size:  # the same number of processes: the same masks
            torch.set_rng_state(torch.tensor(dropout_states[rank], dtype=torch.uint8))
    run = Run(Path(kit.run_folder)) if main and kit.run_folder else None
    if run is not None and not (run.folder / "config.json").is_file():
        # Started by another launcher (torchrun, accelerate launch, deepspeed) on a cluster:
        # the folder is this process's to make, as `training_kit train` would have.
        run.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run.folder / "config.json", json.dumps(config_to_dict(cfg), indent=2))
        write_text_atomic(run.folder / "training_kit.json", json.dumps(vars(kit), indent=2))
        training.write_run_files(run.folder)
    tracker = None
    if run is not None:
        config = {"training_kit": vars(kit), training.stage: config_to_dict(cfg)}
        tracker = start_tracker(kit.tracker, run.folder, training.stage, config)

    def log(step: int, **metrics: Any) -> None:
        if run is not None:
            run.log(step, **metrics)
        if tracker is not None:
            tracker.log(metrics, step=step)

    def save(state: LoopState, name: str) -> None:
        weights = engine.full_state_dict()  # collective: every rank gathers its shard
        optimizer = engine.optimizer_state_dict()  # ... and its share of Adam's moments
        position = data_position(sampler)  # ... and its streams' state, for a task with streams
        dropout = gather_objects(torch.get_rng_state().tolist())  # ... and its dropout's generator
        if run is not None and weights is not None:
            meta = {
                **training.checkpoint_meta(),
                "step": state.step,
                "elapsed": state.elapsed,
                "loop": state.state_dict(),
                "sampler": position,
                "dropout_generators": dropout,  # one per process, in rank order
                "training_kit": {"strategy": kit.strategy, "zero_stage": kit.zero_stage,
                                 "num_processes": world_size},
            }  # fmt: skip
            save_checkpoint(run.checkpoints / name, weights, optimizer=optimizer, meta=meta)
            prune_checkpoints(run.checkpoints, cfg.keep_checkpoints)  # the step_ ones only
        if dist.is_initialized():
            dist.barrier()

    if main:
        print(f"{training.description}; {kit.strategy} on {world_size} process(es), "
              f"{env.precision_note}, {cfg.threads} thread(s) each", flush=True)  # fmt: skip
        print(sharding, flush=True)
    if run is not None:
        total = training.max_steps or cfg.max_steps or None
        bar = run.progress(total, item_name=training.item_name)
    else:
        bar = contextlib.nullcontext(Silent())
    with bar as progress, WorkerStop() as stop:
        state = train(
            engine, training, kit.accumulation_steps, env.device, env.precision, log, progress,
            save, stop_requested=lambda: stop.requested, after_evaluation=after_evaluation,
            start=start, task=task,
        )  # fmt: skip
    if state.interrupted:  # Ctrl-C or SIGTERM: every step so far kept, and how to go on
        save(state, "interrupted")
        if run is not None:
            print(f"interrupted at step {state.step}; saved {run.checkpoints / 'interrupted'}\n"
                  f"resume with: uv run --package training_kit train --resume {run.folder}",
                  flush=True)  # fmt: skip
        if dist.is_initialized():
            dist.destroy_process_group()
        raise SystemExit(stop.exit_code if stop.requested else 130)
    save(state, "final")
    if run is not None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in (state.last_eval or {}).items())
        print(f"after {state.step} steps ({state.elapsed:.0f}s of training): {shown}", flush=True)
        write_text_atomic(run.folder / "result.json", json.dumps(state.last_eval or {}))
    if tracker is not None:
        tracker.finish()
    if dist.is_initialized():
        dist.destroy_process_group()
    return state.last_eval or {}


def main() -> None:
    """`python -m training_kit.worker ARGS`: what each launched process runs."""
    argv = sys.argv[1:]

    def run() -> None:
        kit_argv, stage_argv = split_argv(argv)
        work(parse_kit(kit_argv), stage_argv)

    sys.exit(report_errors(run))


if __name__ == "__main__":
    main()
