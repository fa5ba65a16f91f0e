"""`fit`: the one training loop, and `Task`, what it needs to know about a problem.

A task is everything about the problem and nothing about optimisation: how to draw a batch, the
loss, the scheduled evaluation. `fit` is everything about optimisation and nothing about the
problem. So a stage writes a task and calls `fit`, and `training_kit` can later run the same
task under Accelerate or DeepSpeed without the stage knowing.

    while no budget is spent and no Ctrl-C came:      --max_steps, --time_limit, StopSignals
        lr = peak * schedule(step, elapsed, seconds)   warmup, then decay as the budget ends
        batch = task.train_batch(generator)            drawn with a generator the checkpoint saves
        with autocast(precision):                      bf16 where native, else fp32
            loss = task.loss(model, batch)
        loss.backward(); clip the gradient norm; optimizer.step()
        every --eval_interval steps: task.evaluate(model), logged and printed
        every save_every steps: a checkpoint (the latest --keep_checkpoints kept)

The time limit can cover work that comes after the loop (a final evaluation, say):
`reserve_seconds(state)` says how much of it to keep free, and the loop stops that much early.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared.device import autocast
from shared.runs import Run
from shared.training import RunOptions, StopSignals, prune_checkpoints

# shared imports torch inside functions only (micrograd's stage has none), so the torch types
# below are written `Any`, with what they are in a comment: Module, Tensor, Generator, device.


class Task(Protocol):
    """What `fit` needs from a problem."""

    def train_batch(self, generator: Any) -> Any:  # generator: a torch.Generator
        """The next training batch, drawn with `generator` (whose state checkpoints keep)."""
        ...

    def count(self, batch: Any) -> int:
        """How many items (tokens, sentences) the batch holds: the throughput's unit."""
        ...

    def loss(self, model: Any, batch: Any) -> Any:  # a Module -> a scalar Tensor
        """The batch's mean loss, a scalar tensor with a graph."""
        ...

    def evaluate(self, model: Any, precision_ctx: Callable) -> dict[str, float]:
        """The scheduled evaluation: a few named numbers, e.g. train and val loss."""
        ...


@dataclass
class FitState:
    """What changes as training runs; a checkpoint saves all of it."""

    step: int = 0
    elapsed: float = 0.0  # seconds of training so far (a resumed run continues the budget)
    generator: Any = None  # a torch.Generator that draws the batches (fit makes one if None)


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
    save: Callable[[FitState], Path] | None = None,
    stop: StopSignals | None = None,
    forward_model: Any = None,  # torch.nn.Module
) -> FitState:
    """Train `model` on `task` until a budget ends or a signal asks to stop; returns the state.

    Every parameter group of `optimizer` must hold its peak rate as "peak_lr"; each step sets
    "lr" to that times the schedule. `forward_model` computes the loss when it is not `model`
    itself (a torch.compile'd wrapper). `save(state)` writes a checkpoint and returns its folder.
    """
    import torch

    if forward_model is None:  # (not `or`: a compiled module refuses to be truth-tested)
        forward_model = model
    if state.generator is None:
        state.generator = torch.Generator()

    def precision_ctx():
        return autocast(device, precision)

    def training_seconds() -> float | None:
        """What the time limit leaves for training (None: there is no time limit)."""
        if not opts.time_limit:
            return None
        reserved = settings.reserve_seconds(state) if settings.reserve_seconds else 0.0
        return opts.time_limit - reserved

    def over_budget() -> bool:
        seconds = training_seconds()
        out_of_time = seconds is not None and state.elapsed >= seconds
        out_of_steps = opts.max_steps and state.step >= opts.max_steps
        return bool(out_of_time or out_of_steps or (stop is not None and stop.requested))

    model.train()
    total = opts.max_steps - state.step if opts.max_steps else None
    with run.progress(total, desc="train", item_name=settings.item_name) as bar:
        while not over_budget():
            started = time.perf_counter()
            factor = settings.schedule(state.step, state.elapsed, training_seconds())
            for group in optimizer.param_groups:
                group["lr"] = group["peak_lr"] * factor
            batch = to_device(task.train_batch(state.generator), device)
            with precision_ctx():
                loss = task.loss(forward_model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            state.step += 1
            loss_value = loss.item()
            bar.advance(loss=loss_value, items=task.count(batch))
            run.log(state.step, loss=loss_value, lr=optimizer.param_groups[-1]["lr"])
            if state.step % opts.eval_interval == 0:
                metrics = task.evaluate(model, precision_ctx)
                model.train()
                run.log(state.step, **metrics)
                shown = "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in metrics.items())
                bar.write(f"step {state.step:5d}  {state.elapsed:5.1f}s  {shown}")
            state.elapsed += time.perf_counter() - started
            if save is not None and state.step % opts.save_every == 0:
                saving = time.perf_counter()
                prune_checkpoints(save(state).parent, opts.keep_checkpoints)
                state.elapsed += time.perf_counter() - saving  # the time limit covers saving too
    return state
