"""The kit's loop: `shared.fit.fit`'s steps, written for N processes and any `Engine`.

    every process, in step:
        stop? agreed by all processes (one of them out of time stops everyone: no hangs)
        lr = peak * schedule(step, elapsed, seconds)
        draw N x accumulation micro-batches with the shared generator; keep this rank's share
        for each kept micro-batch:                       (no gradient exchange but on the last)
            loss = task.loss(model, batch)               in bf16 autocast where native
            backward(loss * n * N / total)               total = items of the step, all ranks
        clip and step (the engine exchanges gradients: all-reduce, or reduce-scatter)
        loss of the step = sum of loss * n over everything / total     (all-reduced)
        every --eval_interval steps: task.evaluate on every process, logged by rank 0
        every checkpoint interval: gather the whole model, rank 0 writes the stage's checkpoint

Why weight each micro-batch by `n * N / total`: DDP, ZeRO and FSDP all *average* gradients
over the N processes. If each process backpropagates its own mean loss, a process whose batch
holds fewer items (shorter sentences) would count as much as one with more. Scaling by
`n * N / total` turns that average into the exact mean over all the step's items, the same
number a single process gets from the union of the batches; so `single` with accumulation 2
and `ddp` on 2 processes take the same steps (tested).

Why every process draws every batch and keeps one: the batches of N processes are then, in
order, exactly the micro-batches one process would draw, whatever the task's data is (random
windows, shuffled epochs). The cost is drawing N times the indices, which is nothing next to
the forward pass.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from shared.device import autocast
from shared.fit import FitState, to_device
from shared.tasks import TrainingTask
from training_kit.strategies import Engine


class ProcessShare:
    """The task as process `rank` of `world_size` sees it: of every `world_size` batches
    drawn, it keeps the `rank`-th."""

    def __init__(self, task: Any, rank: int, world_size: int) -> None:
        self.task, self.rank, self.world_size = task, rank, world_size

    def train_batch(self, generator: torch.Generator) -> Any:
        batches = [self.task.train_batch(generator) for _ in range(self.world_size)]
        return batches[self.rank]

    def count(self, batch: Any) -> int:
        return self.task.count(batch)

    def loss(self, model: Any, batch: Any) -> Any:
        return self.task.loss(model, batch)

    def evaluate(self, model: Any, precision_ctx: Callable) -> dict[str, float]:
        return self.task.evaluate(model, precision_ctx)

    @property
    def sampler(self) -> Any:  # an epoch position (shared.epochs.EpochSampler), if the task has one
        return getattr(self.task, "sampler", None)


def process_task(training: TrainingTask, rank: int, world_size: int) -> Any:
    """What process `rank` trains on: the stage's own share of the data where it has one
    (`for_process`), else every batch drawn and the rank-th of each N kept."""
    if training.for_process is not None:
        return training.for_process(rank, world_size)
    return ProcessShare(training.task, rank, world_size)


def all_sum(values: list[float]) -> list[float]:
    """The sums over every process (float64, on the CPU: gloo's home)."""
    t = torch.tensor(values, dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def anyone(flag: bool) -> bool:
    """True if the flag is set on any process."""
    return all_sum([float(flag)])[0] > 0


def average_gradients(model: torch.nn.Module) -> None:
    """What DDP does after each backward, written by hand: every parameter's gradient becomes
    its mean over the processes (an all-reduce of the sum, then a division by their number).

    Called on every process after `loss.backward()` on its own shard of the batch, it leaves
    the same gradient everywhere, so the same optimizer step keeps the copies of the weights
    equal. The loop leaves this to the engine: DDP does it in buckets of parameters while the
    backward is still running, ZeRO-2 and FSDP reduce-scatter instead (each process keeps the
    1/N it updates). The exercise checks this function against DDP's gradients on 2 processes.
    A frozen parameter has no gradient on any process: it is left alone.
    """
    world_size = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)  # the sum over every process, in place
            p.grad /= world_size


@dataclass
class LoopState(FitState):
    """`shared.fit.FitState` (step, elapsed, the batch generator, the data's position: what a
    checkpoint keeps, in the one layout) and what this loop alone reports back."""

    last_eval: dict[str, float] | None = None
    interrupted: bool = False  # a signal stopped the loop (no final evaluation then)


def train(
    engine: Engine,
    training: TrainingTask,
    accumulation: int,
    device: torch.device,
    precision: str,
    log: Callable[..., None],
    progress: Any,
    save: Callable[[LoopState, str], None],
    stop_requested: Callable[[], bool] = lambda: False,
    after_evaluation: Callable[[int, dict[str, float]], None] | None = None,
    start: LoopState | None = None,
    task: Any = None,
) -> LoopState:
    """Train until the step cap or the time limit; evaluate and checkpoint on schedule.

    `log(step, **metrics)` and `progress` act on rank 0 only (elsewhere they do nothing);
    `save(state, name)` is collective: every process calls it. `after_evaluation(step,
    metrics)` sees every evaluation (a sweep reports it to Optuna, which may stop the trial
    by raising `optuna.TrialPruned`). `start` continues a saved state (`--resume`). `task` is
    this process's `process_task` (made here when not given).
    """
    cfg = training.config
    max_steps = training.max_steps or cfg.max_steps
    eval_interval = training.eval_interval or cfg.eval_interval
    if task is None:
        task = process_task(training, engine.rank, engine.world_size)
    state = start or LoopState()
    if state.generator is None:
        state.generator = torch.Generator().manual_seed(cfg.seed)
    generator = state.generator
    seconds = cfg.time_limit or None

    def precision_ctx():
        return autocast(device, precision)

    def evaluate() -> dict[str, float]:
        with engine.evaluation_model() as model:  # every process (ZeRO-3, FSDP gather)
            metrics = task.evaluate(model, precision_ctx)
        engine.model.train()
        log(state.step, **metrics)
        shown = "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in metrics.items())
        progress.write(f"step {state.step:5d}  {state.elapsed:6.1f}s  {shown}")
        state.last_eval = metrics
        if after_evaluation is not None:
            after_evaluation(state.step, metrics)
        return metrics

    engine.model.train()
    while True:
        out_of_steps = bool(max_steps) and state.step >= max_steps
        out_of_time = seconds is not None and state.elapsed >= seconds
        signalled = stop_requested()
        if anyone(out_of_steps or out_of_time or signalled):
            state.interrupted = anyone(signalled)  # any process's Ctrl-C stops them all
            break
        started = time.perf_counter()
        engine.set_lr(training.schedule(state.step, state.elapsed, seconds))
        batches = [to_device(task.train_batch(generator), device) for _ in range(accumulation)]
        counts = [task.count(batch) for batch in batches]
        (total,) = all_sum([sum(counts)])
        loss_sum = 0.0
        for i, (batch, n) in enumerate(zip(batches, counts, strict=True)):
            with engine.accumulating(last=i == accumulation - 1):
                with precision_ctx():
                    loss = task.loss(engine.model, batch)  # () mean over this batch's n items
                engine.backward(loss.float() * (n * engine.world_size / total))
            loss_sum += loss.item() * n
        grad_norm = engine.step(training.grad_clip)
        (loss_total,) = all_sum([loss_sum])
        loss_value = loss_total / total  # the step's mean loss over every process's items
        state.step += 1
        logged = {"loss": loss_value, "lr": engine.param_groups()[-1]["lr"]}
        if grad_norm is not None:
            logged["grad_norm"] = grad_norm
        log(state.step, **logged)
        progress.advance(loss=loss_value, items=int(total))
        evaluated = state.step % eval_interval == 0
        if evaluated:
            evaluate()
        state.elapsed += time.perf_counter() - started
        due = state.step % cfg.checkpoint_interval == 0 if cfg.checkpoint_interval else evaluated
        if due:
            saving = time.perf_counter()
            save(state, f"step_{state.step:06d}")
            state.elapsed += time.perf_counter() - saving
    if not state.interrupted and (state.last_eval is None or state.step % eval_interval != 0):
        evaluate()
    return state
