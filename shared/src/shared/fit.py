"""`fit`: the one training loop, and `Task`, what it needs to know about a problem.

A task is everything about the problem and nothing about optimisation: how to draw a batch, the
loss, the scheduled evaluation. `fit` is everything about optimisation and nothing about the
problem. So a stage writes a task and calls `fit`, and `training_kit` can later run the same
task under Accelerate or DeepSpeed without the stage knowing.

    while no budget is spent, no Ctrl-C came and the metric still improves:
        lr = peak * schedule(step, elapsed, seconds)   warmup, then decay as the budget ends
        for each of accumulation_steps micro-batches:  gradient accumulation
            batch = task.train_batch(generator)        drawn with a generator the checkpoint saves
            with autocast(precision):                  bf16 where native, else fp32 (or fp16)
                loss = task.loss(model, batch)
            scale(loss * share).backward()             share = this batch's items / all items
        unscale (fp16); clip the gradient norm; optimizer.step()
        every --eval_interval steps (0: at each epoch's end): task.evaluate(model), logged;
            keep_best: save checkpoints/best when the metric improves, stop after `patience`
            evaluations without improvement
        every --checkpoint_interval steps (0: at each evaluation): a checkpoint, latest k kept

The public API (stable; add freely, rename never):

    Task                                 the protocol: train_batch(generator), count(batch),
                                         loss(model, batch), evaluate(model, precision_ctx)
    FitSettings(schedule, grad_clip=1.0, item_name="tok", reserve_seconds=None,
                accumulation_steps=1, keep_best=None, evaluate_at_end=False, step_metrics=None)
    KeepBest(metric, mode="max", patience=0, name="best")
    FitState(step=0, elapsed=0.0, generator=None, sampler=None, scaler=None, best=None,
             best_step=0, evaluations_since_best=0, stopped_early=False)
        .state_dict() -> dict                JSON-ready: put it in a checkpoint's meta
        .load_state_dict(dict)               ... and resume exactly from it
    fit(task, model, optimizer, opts, settings, run, state, device, precision,
        save=None, stop=None, forward_model=None) -> FitState
    Loop(...)                            fit's pieces, one method each: over_budget, step,
                                         evaluate, keep_best, checkpoint_due, train
    to_device(batch, device)
    shared.epochs.EpochSampler(plan), shared.epochs.length_grouped_batches(...)

Gradient accumulation adds the gradients of several micro-batches before one step: a large
batch in the memory of a small one. Each micro-batch's mean loss is weighted by its share of
the items (`task.count`: sentences, target tokens), so the sum is exactly the mean over the
union, as if it were one batch. float16 (on CUDA) can underflow small gradients to zero, so
with precision "fp16" a GradScaler multiplies the loss before backward and divides the
gradients before clipping, skipping steps that overflowed; bfloat16 has float32's range and
needs none.

A dataset held in memory is read in epochs through `shared.epochs.EpochSampler`: the task's
`train_batch` takes the sampler's next indices, and `state.sampler` is the same object, so fit
can end a group of micro-batches at an epoch's end, evaluate there, and save the position.

The time limit can cover work that comes after the loop (a final evaluation, say):
`reserve_seconds(state)` says how much of it to keep free, and the loop stops that much early.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from shared.device import autocast
from shared.epochs import EpochSampler
from shared.runs import Run
from shared.training import RunOptions, StopSignals, prune_checkpoints

# shared imports torch inside functions only (micrograd's stage has none), so the torch types
# below are written `Any`, with what they are in a comment: Module, Tensor, Generator, device.


class Task(Protocol):
    """What `fit` needs from a problem."""

    def train_batch(self, generator: Any) -> Any:  # generator: a torch.Generator
        """The next training batch, drawn with `generator` (whose state checkpoints keep), or
        from an `EpochSampler` (whose position they keep)."""
        ...

    def count(self, batch: Any) -> int:
        """How many items (tokens, sentences) the batch's mean loss averages over."""
        ...

    def loss(self, model: Any, batch: Any) -> Any:  # a Module -> a scalar Tensor
        """The batch's mean loss, a scalar tensor with a graph."""
        ...

    def evaluate(self, model: Any, precision_ctx: Callable) -> dict[str, float]:
        """The scheduled evaluation: a few named numbers, e.g. train and val loss."""
        ...


@dataclass
class KeepBest:
    """Keep the checkpoint with the best value of one evaluated metric; maybe stop when stuck.

    Choose the metric on data the reported figures do not come from (a slice held out of the
    training set): picking the best of several checkpoints by a score is fitting to it.
    """

    metric: str  # a key of task.evaluate()'s result, e.g. "select_accuracy"
    mode: Literal["max", "min"] = "max"  # max for an accuracy or BLEU, min for a loss
    patience: int = 0  # stop after this many evaluations without improvement (0: never)
    name: str = "best"  # the checkpoint's name: save(state, name)

    def improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best


@dataclass
class FitState:
    """What changes as training runs; a checkpoint saves all of it (`state_dict`)."""

    step: int = 0  # optimizer steps taken
    elapsed: float = 0.0  # seconds of training so far (a resumed run continues the budget)
    generator: Any = None  # a torch.Generator that draws the batches (fit makes one if None)
    sampler: EpochSampler | None = None  # the task's epoch position, for data held in memory
    scaler: Any = None  # fp16: a torch.amp.GradScaler, or its saved state_dict (fit makes one)
    best: dict[str, float] | None = None  # KeepBest: the best evaluation's metrics so far
    best_step: int = 0  # ... and its step
    evaluations_since_best: int = 0
    stopped_early: bool = False  # KeepBest's patience ran out

    def state_dict(self) -> dict[str, Any]:
        """Everything above as JSON-ready values, for a checkpoint's meta.json."""
        scaler = self.scaler
        if scaler is not None and not isinstance(scaler, dict):
            scaler = scaler.state_dict()
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "generator": None if self.generator is None else self.generator.get_state().tolist(),
            "sampler": None if self.sampler is None else self.sampler.state_dict(),
            "scaler": scaler,
            "best": self.best,
            "best_step": self.best_step,
            "evaluations_since_best": self.evaluations_since_best,
            "stopped_early": self.stopped_early,
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from `state_dict()`'s result; the sampler, if any, must exist already."""
        import torch

        self.step, self.elapsed = saved["step"], saved["elapsed"]
        if saved["generator"] is not None:
            self.generator = self.generator or torch.Generator()
            self.generator.set_state(torch.tensor(saved["generator"], dtype=torch.uint8))
        if saved["sampler"] is not None:
            if self.sampler is None:
                raise ValueError("the saved state has an epoch position: give FitState a sampler")
            self.sampler.load_state_dict(saved["sampler"])
        self.scaler = saved["scaler"]  # fit rebuilds the GradScaler from it
        self.best, self.best_step = saved["best"], saved["best_step"]
        self.evaluations_since_best = saved["evaluations_since_best"]
        self.stopped_early = saved["stopped_early"]


def to_device(batch: Any, device: Any) -> Any:
    """`batch` with every tensor in it (in tuples, lists and dicts too) moved to `device`."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(x, device) for x in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


@dataclass
class FitSettings:
    """How `fit` optimises, beyond the run options: the schedule, clipping, the unit shown."""

    # (step, elapsed seconds, seconds for training or None without a time limit) -> lr / peak
    schedule: Callable[[int, float, float | None], float]
    grad_clip: float = 1.0  # clip the gradient's global norm to this (0: off)
    item_name: str = "tok"  # the unit of task.count(), for the progress bar
    reserve_seconds: Callable[[FitState], float] | None = None  # time kept for after the loop
    accumulation_steps: int = 1  # micro-batches per optimizer step (fewer at an epoch's end)
    keep_best: KeepBest | None = None  # keep the best checkpoint by an evaluated metric
    evaluate_at_end: bool = False  # evaluate after the loop unless its last step just did
    step_metrics: Callable[[FitState, float], dict[str, float]] | None = None  # more to log
    shown_metrics: tuple[str, ...] = ()  # of those, the ones the progress bar shows too


def fit(
    task: Task,
    model: Any,  # torch.nn.Module
    optimizer: Any,  # a torch.optim.Optimizer, or anything with param_groups, zero_grad, step
    opts: RunOptions,
    settings: FitSettings,
    run: Run,
    state: FitState,
    device: Any,  # torch.device
    precision: str,
    save: Callable[..., Path] | None = None,
    stop: StopSignals | None = None,
    forward_model: Any = None,  # torch.nn.Module
) -> FitState:
    """Train `model` on `task` until a budget ends, a signal asks to stop or the kept metric
    stops improving; returns the state.

    Every parameter group of `optimizer` must hold its peak rate as "peak_lr"; each step sets
    "lr" to that times the schedule. `forward_model` computes the loss when it is not `model`
    itself (a torch.compile'd wrapper). `save(state)` writes a periodic checkpoint and returns
    its folder; `save(state, name)` a named one (KeepBest's). `opts.eval_interval == 0` means
    "at each epoch's end" and needs `state.sampler`.
    """
    loop = Loop(task, model, optimizer, opts, settings, run, state, device, precision, save, stop,
                forward_model)  # fmt: skip
    return loop.train()


class Loop:
    """One call of `fit`: its arguments, and the loop cut into the steps the docstring names.

    A class rather than a function with closures, so each piece (the budget, a step, an
    evaluation, a checkpoint) can be read, and tested, on its own.
    """

    def __init__(
        self, task: Task, model: Any, optimizer: Any, opts: RunOptions, settings: FitSettings,
        run: Run, state: FitState, device: Any, precision: str,
        save: Callable[..., Path] | None = None, stop: StopSignals | None = None,
        forward_model: Any = None,
    ) -> None:  # fmt: skip
        import torch

        self.task, self.model, self.optimizer = task, model, optimizer
        self.opts, self.settings, self.run, self.state = opts, settings, run, state
        self.device, self.precision, self.save, self.stop = device, precision, save, stop
        # (not `or`: a compiled module refuses to be truth-tested)
        self.forward_model = model if forward_model is None else forward_model
        if state.generator is None:
            state.generator = torch.Generator()
        self.scaler = None
        if precision == "fp16":  # a saved scaler's state (a dict) becomes a GradScaler again
            self.scaler = torch.amp.GradScaler(device.type)
            if isinstance(state.scaler, dict) and state.scaler:
                self.scaler.load_state_dict(state.scaler)
            state.scaler = self.scaler

    def precision_ctx(self) -> Any:
        return autocast(self.device, self.precision)

    # --- when to stop, evaluate, save -------------------------------------------------------

    def training_seconds(self) -> float | None:
        """What the time limit leaves for training (None: there is no time limit)."""
        if not self.opts.time_limit:
            return None
        reserve = self.settings.reserve_seconds
        return self.opts.time_limit - (reserve(self.state) if reserve else 0.0)

    @property
    def signalled(self) -> bool:
        return self.stop is not None and self.stop.requested

    def over_budget(self) -> bool:
        state, seconds = self.state, self.training_seconds()
        out_of_time = seconds is not None and state.elapsed >= seconds
        out_of_steps = self.opts.max_steps and state.step >= self.opts.max_steps
        return bool(out_of_time or out_of_steps or self.signalled or state.stopped_early)

    def evaluation_due(self) -> bool:
        if self.opts.eval_interval:
            return self.state.step % self.opts.eval_interval == 0
        return self.state.sampler is not None and self.state.sampler.at_epoch_start

    def checkpoint_due(self, evaluated: bool) -> bool:
        if self.opts.checkpoint_interval:
            return self.state.step % self.opts.checkpoint_interval == 0
        return evaluated

    # --- one optimizer step -----------------------------------------------------------------

    def micro_batches(self) -> list:
        """`accumulation_steps` batches, or fewer where an epoch ends (it ends a group)."""
        group, sampler = [], self.state.sampler
        while len(group) < self.settings.accumulation_steps:
            group.append(to_device(self.task.train_batch(self.state.generator), self.device))
            if sampler is not None and sampler.at_epoch_start:
                break
        return group

    def step(self) -> tuple[dict[str, float], int]:
        """One optimizer step over a group of micro-batches: (what to log, items seen)."""
        import torch

        state, optimizer, scaler = self.state, self.optimizer, self.scaler
        factor = self.settings.schedule(state.step, state.elapsed, self.training_seconds())
        for group in optimizer.param_groups:
            group["lr"] = group["peak_lr"] * factor
        optimizer.zero_grad(set_to_none=True)
        batches = self.micro_batches()
        counts = [self.task.count(batch) for batch in batches]
        loss_value = 0.0  # the mean over all the group's items
        for batch, n in zip(batches, counts, strict=True):
            with self.precision_ctx():
                loss = self.task.loss(self.forward_model, batch)  # () mean over n items
            weighted = loss.float() * (n / sum(counts))  # its share of the group's mean
            (scaler.scale(weighted) if scaler is not None else weighted).backward()
            loss_value += loss.item() * (n / sum(counts))
        if scaler is not None:
            scaler.unscale_(optimizer)  # the gradients are their true size again
        logged = {"loss": loss_value, "lr": optimizer.param_groups[-1]["lr"]}
        if self.settings.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
            logged["grad_norm"] = float(norm)  # before clipping
        if scaler is not None:
            scaler.step(optimizer)  # skipped if the gradients hold inf or NaN
            scaler.update()
        else:
            optimizer.step()
        state.step += 1
        return logged, sum(counts)

    # --- evaluating and keeping the best ----------------------------------------------------

    def evaluate(self, bar: Any) -> None:
        """The scheduled evaluation, logged and printed; KeepBest's checkpoint and patience."""
        state = self.state
        metrics = self.task.evaluate(self.model, self.precision_ctx)
        self.model.train()
        self.run.log(state.step, **metrics)
        shown = "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in metrics.items())
        where = f"step {state.step:5d}  {state.elapsed:5.1f}s"
        if state.sampler is not None:
            where += f"  epoch {state.sampler.epochs_done:.2f}"
        note = self.keep_best(metrics) if self.settings.keep_best is not None else ""
        bar.write(f"{where}  {shown}{note}")

    def keep_best(self, metrics: dict[str, float]) -> str:
        """Save the checkpoint if `metrics` is the best yet; count toward patience if not.
        Returns the note printed after the evaluation."""
        keep, state = self.settings.keep_best, self.state
        value = metrics[keep.metric]
        if keep.improves(value, None if state.best is None else state.best[keep.metric]):
            state.best, state.best_step, state.evaluations_since_best = metrics, state.step, 0
            note = f"  (best {keep.metric.replace('_', ' ')} so far"
            if self.save is not None:
                self.save(state, keep.name)
                note += ", saved"
            return note + ")"
        state.evaluations_since_best += 1
        if keep.patience and state.evaluations_since_best >= keep.patience:
            state.stopped_early = True
            return f"  (no better {keep.metric} in {keep.patience} evaluations: stopping)"
        return ""

    # --- the loop ---------------------------------------------------------------------------

    def train(self) -> FitState:
        """The loop of the module's docstring; returns the state."""
        state, settings = self.state, self.settings
        self.model.train()
        total = self.opts.max_steps - state.step if self.opts.max_steps else None
        with self.run.progress(total, desc="train", item_name=settings.item_name) as bar:
            while not self.over_budget():
                started = time.perf_counter()
                logged, items = self.step()
                if settings.step_metrics is not None:
                    logged.update(settings.step_metrics(state, logged["loss"]))
                shown = {k: logged[k] for k in settings.shown_metrics if k in logged}
                bar.advance(loss=logged["loss"], items=items, **shown)
                self.run.log(state.step, **logged)
                evaluated = self.evaluation_due()
                if evaluated:
                    self.evaluate(bar)
                state.elapsed += time.perf_counter() - started
                if self.save is not None and self.checkpoint_due(evaluated):
                    saving = time.perf_counter()
                    prune_checkpoints(self.save(state).parent, self.opts.keep_checkpoints)
                    state.elapsed += time.perf_counter() - saving  # the limit covers saving too
            if settings.evaluate_at_end and not self.signalled and not self.evaluation_due():
                started = time.perf_counter()
                self.evaluate(bar)
                state.elapsed += time.perf_counter() - started
        return state
