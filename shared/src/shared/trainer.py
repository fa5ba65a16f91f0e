"""A training run's life, written once: set up, resume, train, stop on Ctrl-C, keep, finish.

A stage declares its task (`shared.tasks.TrainingTask`: the model, the batches, the loss, the
evaluation, what its checkpoints must carry) and its own after-work; everything every run does
lives here, so `gpt train`, `transformer train`, `bert finetune` ... all take the same path:

    train_command(stage, Config, argv, prepare)
      cfg = parse_config(Config, argv)        with --resume: the checkpoint's config, then argv
      env = setup(cfg)                        threads, device, precision (and why), seeds
      job = prepare(cfg, env, resume)         the stage: data, tokenizer, TrainingTask
      run_training(job, env, resume)
        seed; model = job.build_model(); optimizer = job.build_optimizer(model)
        resume: weights, optimizer moments, loop state, every RNG, the metrics so far
        run folder, config.json, the stage's files (a tokenizer, a vocabulary)
        with StopSignals():                   Ctrl-C or SIGTERM: finish the step, then stop
            fit(...)                          periodic checkpoints, pruned; KeepBest's
            stopped? checkpoints/interrupted, "resume with: ...", exit 130 or 143
            extra = job.finish(trained)       the stage's final evaluation
            checkpoints/final                 (or the name the stage gives, or none; with
                                              KeepBest, checkpoints/best is the one kept)
        plots; job.report(trained); run.finish()

The one checkpoint layout (`checkpoint_meta`): the stage's own meta (its config, model config,
tokenizer reference), then "step", "elapsed", "epoch" (data held in memory), "metrics" (the
best evaluation, with KeepBest), "fit" (the loop's state: `FitState.state_dict()`) and "rng"
(every global RNG). `restore` reads exactly that back, so a resumed run draws the batches, the
dropout masks and the learning rates the uninterrupted one would have: its losses are the same
(tests/test_workspace_resume.py checks every stage's command with a real SIGINT).

Loops written out by hand (seq_models' truncated BPTT, training_kit's loop under Accelerate)
take the pieces: `find_resume`, `resumed_config`, `restore` (= `load_weights` +
`restore_state`), `continue_metrics`, `checkpoint_meta`, `stop_and_exit`. training_kit,
whose engines shard the model and the optimizer, takes `restore`'s parts: `load_weights` (into
the whole model, before sharding) and `restore_state` (the loop's state and the RNGs).
"""

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.checkpoint import load_checkpoint, read_meta, save_checkpoint
from shared.config import parse_config
from shared.device import autocast
from shared.errors import CheckpointError
from shared.fit import FitSettings, FitState, KeepBest, fit
from shared.runs import Run, find_checkpoint
from shared.seeding import rng_state, seed_everything, set_rng_state
from shared.tasks import TrainingTask
from shared.training import Setup, StopSignals, setup

# The optimizer settings a command line may change when resuming: after loading the saved
# optimizer, each group gets this command's values back (a new --lr wins, as the printed
# config says), while the moments and step counts stay the saved ones.
COMMAND_WINS = ("peak_lr", "weight_decay", "betas", "momentum")


# ----------------------------------------------------------------------------------------------
# Resuming


@dataclass
class Resume:
    """A checkpoint to continue from, and its meta.json."""

    checkpoint: Path
    meta: dict[str, Any]

    @property
    def run_folder(self) -> Path:
        return self.checkpoint.parent.parent  # runs/<stage>/<run>/checkpoints/<name>

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))


def find_resume(stage: str, ref: str | Path) -> Resume:
    """The checkpoint `ref` names (a checkpoint, or a run: its latest), as a `Resume`."""
    folder = find_checkpoint(stage, ref)
    return Resume(folder, read_meta(folder))


def resumed_config(
    config_cls: type, argv: list[str], prog: str, resume: Resume,
    renamed: dict[str, str] | None = None,
) -> Any:  # fmt: skip
    """The resumed run's config: the checkpoint's own under this command's options, so
    `--resume RUN --max_steps=2000` changes the step cap and keeps everything else. An option
    saved under an old name (`renamed`: old -> new) keeps its value under the new one."""
    config = resume.meta.get("config")
    if config is None:  # a checkpoint from before this layout (t5's): the run's config.json
        config = json.loads((resume.run_folder / "config.json").read_text(encoding="utf-8"))
    saved = {(renamed or {}).get(k, k): v for k, v in config.items()}
    return parse_config(config_cls, argv, prog=prog, saved=saved)


def load_weights(
    resume: Resume, model: Any, load: Callable[[Any, dict[str, Any]], None] | None = None
) -> Any:
    """The checkpoint's weights into `model` (shapes checked); returns the `Checkpoint` (its
    optimizer state and meta). A distributed engine calls it on the whole model, before it
    shards the weights, and loads the optimizer its own way. `load(model, saved)` puts back a
    checkpoint that holds only part of the weights (a stage's `load_saved_weights`)."""
    if load is not None:
        checkpoint = load_checkpoint(resume.checkpoint, framework="torch")
        load(model, dict(checkpoint.model))
        return checkpoint
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    checkpoint = load_checkpoint(resume.checkpoint, expected=expected, framework="torch")
    model.load_state_dict(checkpoint.model)
    return checkpoint


def restore(
    resume: Resume, model: Any, optimizer: Any, state: FitState,
    load: Callable[[Any, dict[str, Any]], None] | None = None,
) -> None:  # fmt: skip
    """Put the checkpoint back: weights (shapes checked), optimizer, the loop's state and every
    global RNG. The optimizer keeps this command's `COMMAND_WINS` settings."""
    checkpoint = load_weights(resume, model, load)
    if optimizer is not None and checkpoint.optimizer is not None:
        ours = [{k: g[k] for k in COMMAND_WINS if k in g} for g in optimizer.param_groups]
        optimizer.load_state_dict(checkpoint.optimizer)
        for group, settings in zip(optimizer.param_groups, ours, strict=True):
            group.update(settings)
    restore_state(checkpoint.meta, state)


def restore_state(meta: dict[str, Any], state: FitState) -> None:
    """The loop's state and every global RNG from a checkpoint's meta (`restore`'s last part;
    a loop with its own engine or its own state calls it alone)."""
    import torch

    if "fit" in meta:
        state.load_state_dict(meta["fit"])
    elif "data_generator" in meta:  # a gpt checkpoint from before this layout
        state.step, state.elapsed = meta["step"], meta["elapsed"]
        state.generator = state.generator or torch.Generator()
        state.generator.set_state(torch.tensor(meta["data_generator"], dtype=torch.uint8))
    else:
        raise CheckpointError(
            "the checkpoint was saved before the shared layout and holds no loop state to "
            "resume from; start a new run (its weights still load where an --init takes them)"
        )
    if "rng" in meta:
        set_rng_state(meta["rng"])
    else:  # t5's checkpoints from before this layout saved torch's RNG (dropout's) only
        torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))


def continue_metrics(run: Run, resume: Resume, step: int) -> None:
    """Start the new run's metrics.jsonl with the old run's lines up to `step`, so its curves
    go on where the interrupted run's stopped."""
    earlier = [m for m in Run(resume.run_folder).metrics() if m["step"] <= step]
    with open(run.metrics_path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(m) + "\n" for m in earlier)


def carry_kept_checkpoint(
    run: Run, resume: Resume, keep_best: KeepBest | None, state: FitState
) -> None:
    """Copy the resumed run's kept checkpoint (KeepBest's) into the new run, if it is the one
    the restored state remembers: the resumed run saves a new one only if it beats that score,
    so without the copy a run whose best came before the interruption would keep nothing."""
    import shutil

    if keep_best is None or state.best is None:
        return
    kept = resume.run_folder / "checkpoints" / keep_best.name
    if kept.is_dir() and read_meta(kept).get("step") == state.best_step:
        shutil.copytree(kept, run.checkpoints / keep_best.name)


# ----------------------------------------------------------------------------------------------
# Checkpoints and stopping


def checkpoint_meta(stage_meta: dict[str, Any], state: FitState) -> dict[str, Any]:
    """The one checkpoint layout: the stage's meta, then the loop's state and every RNG."""
    meta = {**stage_meta, "step": state.step, "elapsed": state.elapsed}
    if getattr(state.sampler, "epochs_done", None) is not None:  # not a stream's position
        meta["epoch"] = state.sampler.epochs_done
    meta["metrics"] = state.best or {}
    meta["fit"] = state.state_dict()
    meta["rng"] = rng_state()
    return meta


def stop_and_exit(
    stop: StopSignals, state: FitState, saved: Path, resume_command: str, run_folder: Path
) -> None:
    """After a Ctrl-C or SIGTERM: say what was saved and how to go on, and exit 130 or 143."""
    where = f"step {state.step} ({state.elapsed:.0f}s of training"
    if getattr(state.sampler, "epochs_done", None) is not None:
        where += f", epoch {state.sampler.epochs_done:.2f}"
    print(
        f"interrupted at {where}); saved {saved}\n"
        f"resume with: {resume_command} --resume={run_folder}",
        flush=True,
    )
    raise SystemExit(stop.exit_code)


# ----------------------------------------------------------------------------------------------
# The whole run


@dataclass
class Trained:
    """What the stage's after-work gets: the trained model and everything about its run."""

    job: TrainingTask
    model: Any  # torch.nn.Module, on env.device
    optimizer: Any
    state: FitState
    run: Run
    env: Setup
    precision: str
    final: dict[str, Any] = field(default_factory=dict)  # what job.finish returned
    checkpoint: Path | None = None  # the final (or kept) checkpoint

    def precision_ctx(self) -> Any:
        return autocast(self.env.device, self.precision)


class RunCheckpoints:
    """`save(state)` and `save(state, name)` for `fit`: this run's checkpoints, one layout."""

    def __init__(self, job: TrainingTask, run: Run, model: Any, optimizer: Any) -> None:
        self.job, self.run, self.model, self.optimizer = job, run, model, optimizer

    def __call__(self, state: FitState, name: str | None = None, extra: dict | None = None) -> Path:
        meta = checkpoint_meta(self.job.checkpoint_meta(), state)
        saved = self.job.saved_weights
        return save_checkpoint(
            self.run.checkpoints / (name or f"step_{state.step:06d}"),
            saved(self.model) if saved is not None else self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            meta={**meta, **(extra or {})},
        )


def train_command(
    stage: str,
    config_cls: type,
    argv: list[str],
    prepare: Callable[[Any, Setup | None, Resume | None], TrainingTask],
    prog: str | None = None,
    description: str = "",
    renamed: dict[str, str] | None = None,
) -> Trained:
    """A stage's `train` command: parse, resume's config, set up, `prepare` the task, train.

    `prepare(cfg, env, resume)` is the stage's one preparation (training_kit calls it too,
    with env None): it reads the data, makes or (resuming) reloads the tokenizer, and returns
    the `TrainingTask`. It runs before the run folder exists, so bad data leaves none behind.
    """
    prog = prog or f"{stage} train"
    cfg = parse_config(config_cls, argv, prog=prog, description=description)
    resume = None
    if getattr(cfg, "resume", None):
        resume = find_resume(stage, cfg.resume)
        cfg = resumed_config(config_cls, argv, prog, resume, renamed)
    env = setup(cfg)
    return run_training(prepare(cfg, env, resume), env, resume)


def _budget(job: TrainingTask) -> Any:
    """The run options fit reads, with the task's own step budget where it counts in epochs."""
    cfg = job.config
    return dataclasses.replace(
        cfg,
        max_steps=job.max_steps or cfg.max_steps,
        eval_interval=job.eval_interval or cfg.eval_interval,
    )


def _announce(job: TrainingTask, env: Setup, precision: str, model: Any, resume: Resume | None,
              state: FitState) -> None:  # fmt: skip
    parameters = sum(p.numel() for p in model.parameters())
    shown = precision if precision != env.precision else env.precision_note
    print(
        f"{job.description}; {parameters:,} parameters; {shown} on {env.device}, "
        f"{env.threads_note}",
        flush=True,
    )
    if resume is not None:
        print(f"resumed from {resume.checkpoint} at step {state.step}", flush=True)
    if job.note:  # last, just before training, where it cannot scroll away
        print(job.note, flush=True)


def run_training(job: TrainingTask, env: Setup, resume: Resume | None = None) -> Trained:
    """Train `job` from the start or from `resume`, to the end of its budget or a signal."""
    import torch

    cfg = job.config
    precision = job.precision(env) if job.precision is not None else env.precision
    seed_everything(cfg.seed)  # the weights: the same seed, the same model
    model = job.build_model().to(env.device)
    optimizer = job.build_optimizer(model)
    state = FitState(generator=torch.Generator().manual_seed(cfg.seed), sampler=job.sampler)
    if resume is not None:
        if job.check_resume is not None:
            job.check_resume(resume)
        restore(resume, model, optimizer, state, job.load_saved_weights)
    run = Run.start(job.stage, cfg, name=cfg.run_name)
    job.write_run_files(run.folder)
    if resume is not None:
        continue_metrics(run, resume, state.step)
        carry_kept_checkpoint(run, resume, job.keep_best, state)
    _announce(job, env, precision, model, resume, state)
    trained = Trained(job, model, optimizer, state, run, env, precision)
    save = RunCheckpoints(job, run, model, optimizer)
    settings = FitSettings(
        schedule=job.schedule,
        grad_clip=job.grad_clip,
        item_name=job.item_name,
        reserve_seconds=job.reserve_seconds,
        accumulation_steps=job.accumulation_steps,
        keep_best=job.keep_best,
        evaluate_at_end=job.evaluate_at_end,
        step_metrics=job.step_metrics,
        shown_metrics=job.shown_metrics,
    )
    forward_model = torch.compile(model) if job.compile else model
    # The signals stay caught until the final checkpoint is written: a Ctrl-C during the final
    # evaluation lets it finish rather than lose the run.
    with StopSignals() as stop:
        fit(job.task, model, optimizer, _budget(job), settings, run, state, env.device,
            precision, save, stop, forward_model)  # fmt: skip
        if stop.requested:
            stop_and_exit(stop, state, save(state, "interrupted"), job.resume_command, run.folder)
        if job.finish is not None:
            trained.final = job.finish(trained) or {}
        last = None
        if job.final_checkpoint is not None:
            last = save(state, job.final_checkpoint, trained.final)
        # the checkpoint the run's readers take: the kept one (KeepBest's), else the last
        kept = run.checkpoints / job.keep_best.name if job.keep_best is not None else None
        trained.checkpoint = kept or last
    if stop.requested:  # the signal came during the final evaluation: its checkpoint is saved
        print(f"interrupted after the final checkpoint {last}", flush=True)
        raise SystemExit(stop.exit_code)
    for filename, keys in job.plots.items():
        title = job.plot_title(trained) if job.plot_title is not None else ""
        run.plot_metrics(filename, keys, title=title)
    shown = job.report(trained) if job.report is not None else None
    where = {"kept checkpoint": kept} if kept is not None else {}
    if last is not None:
        where["checkpoint" if kept is None else "last checkpoint"] = last
    run.finish({**where, **(shown or {})})
    return trained
