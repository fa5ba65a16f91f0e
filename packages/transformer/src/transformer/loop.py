"""The training loop both tasks share, with each technique a learner should master switchable.

    for each optimizer step:
        for each of `accumulate` micro-batches:           gradient accumulation
            with autocast(bf16 or fp16):                  mixed precision
                loss = task.loss(model, batch)
            scaler.scale(loss * share).backward()         share = this batch's items / all items
        scaler.unscale_(optimizer)                        fp16 only: undo the loss scaling
        grad_norm = clip_grad_norm_(params, clip)         gradient clipping
        scaler.step(optimizer); scheduler.step()          AdamW, warmup + linear/cosine decay
        log loss, lr, grad_norm, weight_norm
    after each epoch: task.evaluate(model) on held-out data; keep the best checkpoint

- AdamW (Loshchilov & Hutter 2019) decays the weights directly instead of adding an L2 term
  to the gradient, which Adam's per-weight scaling would distort. Biases, norm weights and
  embeddings are left undecayed (they are not the weights that overfit by growing).
- Accumulation adds the gradients of several micro-batches before one step: a large batch in
  the memory of a small one. Each micro-batch's mean loss is weighted by its share of the items
  (sentences or target tokens), so the sum is exactly the mean over the whole batch (tested).
- Mixed precision runs matrix products in 16 bits. bfloat16 has float32's range and needs no
  help (on the CPU, torch's autocast supports only bf16); float16 on CUDA can underflow small
  gradients to zero, so the GradScaler multiplies the loss by a large factor before backward
  and divides the gradients by it before the step, skipping steps that overflowed.
- Clipping rescales the whole gradient when its norm exceeds `grad_clip`: one bad batch cannot
  throw the weights far. The norm before clipping is logged either way.

A task is anything with the methods of `Task` below: the loop knows nothing about sentiment or
translation, so `training_kit` can later run the same tasks under Accelerate.
"""

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from shared.checkpoint import save_checkpoint
from shared.config import option
from shared.device import (
    autocast,
    describe_precision,
    pick_device,
    pick_threads,
    resolve_precision,
)
from shared.runs import Run
from shared.training import StopSignals
from transformer.schedule import Decay, make_scheduler


@dataclass
class LoopConfig:
    """The techniques of the loop; the task configs add their own fields to these."""

    epochs: int = option(4, "passes over the training data", ge=1)
    batch_size: int = option(64, "examples per micro-batch", ge=1)
    accumulate: int = option(1, "micro-batches per optimizer step (gradient accumulation)", ge=1)
    lr: float = option(1e-3, "peak AdamW learning rate", gt=0)
    weight_decay: float = option(
        0.01, "AdamW weight decay (not on biases, norms, embeddings)", ge=0
    )
    beta2: float = option(0.98, "AdamW's second-moment decay (0.98 as in the paper)", gt=0, lt=1)
    warmup: float = option(0.05, "warmup: a fraction of all steps if < 1, else a step count", ge=0)
    schedule: Decay = option("linear", "decay after warmup: linear, cosine or constant")
    min_lr_ratio: float = option(0.0, "the schedule ends at lr * this", ge=0, le=1)
    grad_clip: float = option(1.0, "clip the gradient's global norm to this (0: off)", ge=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto",
        "auto: bf16 autocast on a CPU with native bf16, else fp32; fp16 + grad scaler on CUDA",
    )
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = option(
        1,
        "torch CPU threads (0: as many as there are idle cores); 1 is fastest for small models "
        "on a busy CPU",
        ge=0,
    )
    time_limit: float = option(0.0, "stop training after this many seconds (0: no limit)", ge=0)
    seed: int = option(0, "seed for weights, data order and dropout")
    run_name: str | None = option(None, "name of the run folder (default: the start time)")

    def warmup_steps(self, total_steps: int) -> int:
        return round(self.warmup * total_steps) if self.warmup < 1 else int(self.warmup)


class Task(Protocol):
    """What the loop needs from a task."""

    best_metric: str  # the key of evaluate()'s result that picks the best epoch
    higher_is_better: bool  # True for accuracy or BLEU, False for a loss

    def train_batches(self, epoch: int) -> Iterable[Any]: ...

    def count(self, batch: Any) -> int: ...  # items the batch's mean loss averages over

    def loss(self, model: nn.Module, batch: Any) -> Tensor: ...  # mean over the batch's items

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    def to_device(self, batch: Any, device: torch.device) -> Any: ...


# ----------------------------------------------------------------------------------------------
# The pieces


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float, beta2: float = 0.999, fused: bool = False
) -> torch.optim.AdamW:
    """AdamW with two groups: matrices decay; biases, norm weights and embeddings do not.

    `fused` updates all weights in one kernel instead of a dozen passes per tensor (on the CPU
    about a third of a small model's step time goes to the optimizer otherwise).
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_embedding = "embed" in name or "position" in name or "cls_token" in name
        (decay if p.dim() >= 2 and not is_embedding else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2), fused=fused)


def accumulate_gradients(
    model: nn.Module,
    task: Task,
    micro_batches: list[Any],
    precision: str,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Backward through every micro-batch; the gradients add up to those of their union.

    Returns the mean loss over all their items.
    """
    counts = [task.count(b) for b in micro_batches]
    total = sum(counts)
    loss_sum = 0.0
    for batch, n in zip(micro_batches, counts, strict=True):
        with autocast(device, precision):
            loss = task.loss(model, batch)  # mean over this micro-batch's n items
        weighted = loss.float() * (n / total)  # its share of the whole batch's mean
        (scaler.scale(weighted) if scaler is not None else weighted).backward()
        loss_sum += float(loss.detach()) * n
    return loss_sum / total


def total_norm(tensors: Iterable[Tensor]) -> float:
    """The 2-norm of all tensors taken together, as if flattened into one vector."""
    tensors = [t.detach() for t in tensors if t is not None]
    if not tensors:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([t.float().norm() for t in tensors])))


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    clip: float,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Unscale (fp16), clip, step, zero the gradients; returns the norm before clipping."""
    if scaler is not None:
        scaler.unscale_(optimizer)  # the gradients are now their true size
    params = [p for p in model.parameters() if p.grad is not None]
    if clip > 0:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
    else:
        grad_norm = total_norm(p.grad for p in params)
    if scaler is not None:
        scaler.step(optimizer)  # skipped if the gradients hold inf or NaN
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def grouped(batches: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """[b1, b2, b3, b4, b5], 2 -> [b1, b2], [b3, b4], [b5]."""
    group: list[Any] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


# ----------------------------------------------------------------------------------------------
# The loop


@dataclass
class FitResult:
    best: dict[str, float]  # evaluate()'s result at the best epoch
    best_epoch: int
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)  # one evaluate() per epoch


def fit(
    task: Task,
    model: nn.Module,
    cfg: LoopConfig,
    run: Run,
    steps_per_epoch: int,
    meta: dict[str, Any] | None = None,
    items_name: str = "ex",
) -> FitResult:
    """Train `model` on `task` for cfg.epochs, evaluating and keeping the best after each epoch.

    `steps_per_epoch` is the number of micro-batches per epoch (for the schedule and the bar).
    The best weights go to run.checkpoints/"best" with `meta` and the epoch's metrics.
    """
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    if cfg.precision == "auto" and device.type == "cuda" and precision == "bf16":
        precision = "fp16"  # the classic CUDA recipe: fp16 autocast with a grad scaler
    threads_note = pick_threads(cfg.threads)
    model.to(device)
    fused = device.type in ("cpu", "cuda")
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.beta2, fused=fused)
    updates_per_epoch = math.ceil(steps_per_epoch / cfg.accumulate)
    total_updates = cfg.epochs * updates_per_epoch
    scheduler = make_scheduler(
        optimizer, cfg.warmup_steps(total_updates), total_updates, cfg.schedule, cfg.min_lr_ratio
    )
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    note = precision if precision == "fp16" else describe_precision(cfg.precision, device)
    print(
        f"device {device} ({threads_note}), precision {note}, {total_updates} optimizer steps",
        flush=True,
    )

    start = time.perf_counter()
    deadline = start + cfg.time_limit if cfg.time_limit else math.inf
    best: dict[str, float] = {}
    best_epoch, step = 0, 0
    smooth, smooth_weight = 0.0, 0.0  # an exponential moving average of the loss, for the plot
    history = []
    stop = StopSignals()  # Ctrl-C or SIGTERM: finish the step, keep the weights, exit 130/143
    progress = run.progress(total_updates, desc="train", unit="step", item_name=items_name)
    with stop, progress as bar:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            for group in grouped(task.train_batches(epoch), cfg.accumulate):
                group = [task.to_device(b, device) for b in group]
                lr = optimizer.param_groups[0]["lr"]
                loss = accumulate_gradients(model, task, group, precision, device, scaler)
                grad_norm = optimizer_step(model, optimizer, cfg.grad_clip, scaler)
                scheduler.step()
                step += 1
                weight_norm = total_norm(model.parameters())
                smooth = 0.98 * smooth + 0.02 * loss
                smooth_weight = 0.98 * smooth_weight + 0.02  # corrects the average's start at 0
                run.log(
                    step, loss=loss, loss_smooth=smooth / smooth_weight, lr=lr,
                    grad_norm=grad_norm, weight_norm=weight_norm,
                )  # fmt: skip
                bar.advance(loss=loss, items=sum(task.count(b) for b in group))
                if time.perf_counter() > deadline or stop.requested:
                    break
            if stop.requested:
                break
            model.eval()
            metrics = task.evaluate(model)
            history.append(metrics)
            run.log(step, epoch=epoch, **metrics)
            line = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            key, sign = task.best_metric, 1 if task.higher_is_better else -1
            improved = not best or sign * metrics[key] > sign * best[key]
            if improved:
                best, best_epoch = metrics, epoch
                save_checkpoint(
                    run.checkpoints / "best",
                    model.state_dict(),
                    meta={**(meta or {}), "epoch": epoch, "step": step, "metrics": metrics},
                )
            bar.write(
                f"epoch {epoch}/{cfg.epochs}  {line}{'  (best so far, saved)' if improved else ''}"
            )
            if time.perf_counter() > deadline:
                bar.write(f"time limit of {cfg.time_limit:g} s reached after epoch {epoch}")
                break
    if stop.requested:
        folder = save_checkpoint(
            run.checkpoints / "interrupted",
            model.state_dict(),
            meta={**(meta or {}), "epoch": epoch, "step": step, "metrics": {}},
        )
        print(
            f"interrupted at step {step} (epoch {epoch}); its weights are in {folder}, the best "
            f"epoch's (if one finished) in {run.checkpoints / 'best'}; this stage cannot resume "
            f"a run yet",
            flush=True,
        )
        raise SystemExit(stop.exit_code)
    return FitResult(best, best_epoch, step, time.perf_counter() - start, history)
