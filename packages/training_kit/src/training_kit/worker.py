"""One worker process: join the group, build the task and the engine, train, save.

The launcher (`training_kit.launch`) starts N of these with torch's elastic launcher, which
sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; `--strategy single` runs `work` in the
launching process itself. Rank 0 is the main process: it alone prints, logs and writes files.
"""

import contextlib
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

from shared.atomic import write_text_atomic
from shared.checkpoint import save_checkpoint
from shared.commands import report_errors
from shared.config import config_to_dict
from shared.errors import UsageError
from shared.fit import FitState
from shared.runs import Run
from shared.seeding import rng_state
from shared.tasks import TrainingTask, load_training_task
from shared.trainer import (
    Resume,
    checkpoint_meta,
    find_resume,
    load_weights,
    restore_state,
    stop_and_exit,
)
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


class GatheredPosition:
    """Where the data stands over every process, as `FitState.sampler` gives it to a
    checkpoint (collective: every process makes one).

    An epoch position is the same on every process. A task whose processes each read their
    own streams (`TrainingTask.for_process`) has a part on each: gathered and merged into the
    one position a single process reading every stream would have, so a run can resume on any
    number of processes."""

    def __init__(self, sampler: Any) -> None:
        merge = getattr(sampler, "merge_process_states", None)
        mine = sampler.state_dict()
        self.merged = mine if merge is None else merge(gather_objects(mine))
        self.epochs_done = getattr(sampler, "epochs_done", None)

    def state_dict(self) -> dict[str, Any]:
        return self.merged


@dataclass
class KitCheckpoints:
    """`save(state, name)` for the kit's loop (collective): every process gathers its shard of
    the weights, its share of the optimizer, its streams and its dropout generator; rank 0
    writes the stage's checkpoint in the one layout (`shared.trainer.checkpoint_meta`), plus
    each process's dropout generator and how the kit ran."""

    kit: KitOptions
    training: TrainingTask
    engine: Engine
    run: Run | None  # rank 0's; None elsewhere
    world_size: int

    def __call__(self, state: LoopState, name: str) -> Path:
        weights = self.engine.full_state_dict()  # collective: every rank gathers its shard
        optimizer = self.engine.optimizer_state_dict()  # ... and its share of Adam's moments
        if state.sampler is not None:  # ... and its streams' state, for a task with streams
            state = dataclasses.replace(state, sampler=GatheredPosition(state.sampler))
        dropout = gather_objects(torch.get_rng_state().tolist())  # ... and its dropout's RNG
        folder = self.run.checkpoints / name if self.run is not None else Path(name)
        if self.run is not None and weights is not None:
            meta = {
                **checkpoint_meta(self.training.checkpoint_meta(), state),
                "dropout_generators": dropout,  # one per process, in rank order
                "training_kit": {"strategy": self.kit.strategy, "zero_stage": self.kit.zero_stage,
                                 "num_processes": self.world_size},
            }  # fmt: skip
            save_checkpoint(folder, weights, optimizer=optimizer, meta=meta)
            prune_checkpoints(self.run.checkpoints, self.training.config.keep_checkpoints)
        if dist.is_initialized():
            dist.barrier()
        return folder


def old_layout(meta: dict[str, Any]) -> dict[str, Any]:
    """A kit checkpoint saved before the one layout ("loop", "sampler"), in the new one. It
    kept no global RNG: they stay as the setup left them, as that layout's resume did."""
    if "loop" not in meta:
        return meta
    fit = {**FitState().state_dict(), **meta["loop"], "sampler": meta.get("sampler")}
    return {**meta, "fit": fit, "rng": rng_state()}


def resume_engine(resume: Resume, checkpoint: Any, engine: Engine, state: LoopState,
                  rank: int, world_size: int) -> None:  # fmt: skip
    """Continue where `checkpoint` stopped: the optimizer's state (sharded by the engine), the
    loop's state and Python's and numpy's generators (`shared.trainer.restore_state`: the same
    on every process, which all draw every batch), and this process's dropout generator where
    the run had as many processes (else the one seeded for this rank stays)."""
    if checkpoint.optimizer is None or not ({"fit", "loop"} & checkpoint.meta.keys()):
        raise UsageError(
            f"{resume.checkpoint} holds weights only (saved before a first step): sample from "
            "it, or start a new run from the stage"
        )
    engine.load_optimizer_state_dict(checkpoint.optimizer)
    meta = old_layout(checkpoint.meta)
    shared_rng = {k: v for k, v in meta["rng"].items() if not k.startswith("torch")}
    restore_state({**meta, "rng": shared_rng}, state)
    dropout_states = meta.get("dropout_generators") or []
    if len(dropout_states) == world_size:  # the same number of processes: the same masks
        torch.set_rng_state(torch.tensor(dropout_states[rank], dtype=torch.uint8))


def open_run(kit: KitOptions, training: TrainingTask) -> Run | None:
    """Rank 0's run folder (None on the others, or with no folder given). A folder that has no
    config.json yet was started by another launcher (torchrun, accelerate launch, deepspeed)
    on a cluster: it is this process's to make, as `training_kit train` would have."""
    if not kit.run_folder:
        return None
    run = Run(Path(kit.run_folder))
    if not (run.folder / "config.json").is_file():
        run.folder.mkdir(parents=True, exist_ok=True)
        config = json.dumps(config_to_dict(training.config), indent=2)
        write_text_atomic(run.folder / "config.json", config)
        write_text_atomic(run.folder / "training_kit.json", json.dumps(vars(kit), indent=2))
        training.write_run_files(run.folder)
    return run


@dataclass
class Logger:
    """`log(step, **metrics)`: rank 0's metrics.jsonl and tracker; nothing elsewhere."""

    run: Run | None
    tracker: Any = None

    def __call__(self, step: int, **metrics: Any) -> None:
        if self.run is not None:
            self.run.log(step, **metrics)
        if self.tracker is not None:
            self.tracker.log(metrics, step=step)


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
    model = training.build_model().to(env.device)
    resume = find_resume(training.stage, kit.resume) if kit.resume is not None else None
    if resume is not None:  # whole weights into every rank's model, before any sharding
        checkpoint = load_weights(resume, model)
    engine = make_engine(kit, training, model, env.precision)
    sharding = engine.check_sharding()
    # The weights are built alike everywhere; from here each process draws its own dropout
    # masks (the same seed would give every process the same masks for different batches).
    torch.manual_seed(cfg.seed + rank)
    task = process_task(training, rank, world_size)  # this process's share of the data
    sampler = getattr(task, "sampler", None)  # where in the data: an epoch, streams; if any
    state = LoopState(generator=torch.Generator().manual_seed(cfg.seed), sampler=sampler)
    if resume is not None:
        resume_engine(resume, checkpoint, engine, state, rank, world_size)
    run = open_run(kit, training) if rank == 0 else None
    log = Logger(run)
    if run is not None:
        config = {"training_kit": vars(kit), training.stage: config_to_dict(cfg)}
        log.tracker = start_tracker(kit.tracker, run.folder, training.stage, config)
    save = KitCheckpoints(kit, training, engine, run, world_size)
    if rank == 0:
        how = f"{kit.strategy} on {world_size} process(es), {env.precision_note}"
        print(f"{training.description}; {how}, {cfg.threads} thread(s) each", flush=True)
        print(sharding, flush=True)
        if training.note:  # last, just before training, where it cannot scroll away
            print(training.note, flush=True)
    bar = contextlib.nullcontext(Silent())
    if run is not None:
        bar = run.progress(
            training.max_steps or cfg.max_steps or None, item_name=training.item_name
        )
    with bar as progress, WorkerStop() as stop:
        state = train(
            engine, training, kit.accumulation_steps, env.device, env.precision, log, progress,
            save, stop_requested=lambda: stop.requested, after_evaluation=after_evaluation,
            start=state, task=task,
        )  # fmt: skip
    if state.interrupted:  # Ctrl-C or SIGTERM on any process: every step so far kept
        saved = save(state, "interrupted")
        leave_group()
        stop.signum = stop.signum or signal.SIGINT  # another process's signal stopped this one
        if run is None:
            raise SystemExit(stop.exit_code)
        stop_and_exit(stop, state, saved, "uv run --package training_kit train", run.folder)
    save(state, "final")
    if run is not None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in (state.last_eval or {}).items())
        print(f"after {state.step} steps ({state.elapsed:.0f}s of training): {shown}", flush=True)
        write_text_atomic(run.folder / "result.json", json.dumps(state.last_eval or {}))
    if log.tracker is not None:
        log.tracker.finish()
    leave_group()
    return state.last_eval or {}


def leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def main() -> None:
    """`python -m training_kit.worker ARGS`: what each launched process runs."""
    argv = sys.argv[1:]

    def run() -> None:
        kit_argv, stage_argv = split_argv(argv)
        work(parse_kit(kit_argv), stage_argv)

    sys.exit(report_errors(run))


if __name__ == "__main__":
    main()
