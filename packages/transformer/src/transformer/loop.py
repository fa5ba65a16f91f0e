"""The recipe both tasks train with, on the one loop every stage shares (`shared.fit`).

    for each optimizer step (shared.fit.fit):
        for each of `accumulate` micro-batches:           gradient accumulation
            with autocast(bf16 or fp16):                  mixed precision
                loss = task.loss(model, batch)
            scaler.scale(loss * share).backward()         share = this batch's items / all items
        scaler.unscale_(optimizer)                        fp16 only: undo the loss scaling
        grad_norm = clip_grad_norm_(params, clip)         gradient clipping
        optimizer.step() at lr * lr_factor(step)          AdamW, warmup + linear/cosine decay
        log loss, lr, grad_norm, weight_norm
    after each epoch: task.evaluate(model); keep the checkpoint that scores best on the
    selection slice, a part of the training data held out (--select_fraction)

What this stage adds to the loop, and why:

- AdamW (Loshchilov & Hutter 2019) decays the weights directly instead of adding an L2 term
  to the gradient, which Adam's per-weight scaling would distort. Biases, norm weights and
  embeddings are left undecayed (they are not the weights that overfit by growing).
- Accumulation adds the gradients of several micro-batches before one step: a large batch in
  the memory of a small one. Each micro-batch's mean loss is weighted by its share of the items
  (sentences or target tokens), so the sum is exactly the mean over the whole batch (tested,
  in shared/tests/test_shared_fit.py and here with padded sentences).
- Mixed precision runs matrix products in 16 bits. bfloat16 has float32's range and needs no
  help; float16 on CUDA can underflow small gradients to zero, so a GradScaler multiplies the
  loss by a large factor before backward and divides the gradients by it before the step,
  skipping steps that overflowed. `--precision=auto` picks fp16 with the scaler on CUDA.
- Clipping rescales the whole gradient when its norm exceeds `grad_clip`: one bad batch cannot
  throw the weights far. The norm before clipping is logged either way.
- Choosing the best epoch is fitting a hyperparameter, so it is done on data the reported
  figures do not come from: a slice of the training set held out before training
  (`--select_fraction`; 0 keeps the last epoch's weights). Choosing it by the dev set's labels
  and then reporting dev accuracy would overstate it.

Every checkpoint holds the weights, AdamW's moments, the loop's state (step, epoch position,
best score so far, the fp16 scale) and every RNG state, so `--resume` continues a run with the
losses an uninterrupted one would have had (tested with a real SIGINT).
"""

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from shared.checkpoint import load_checkpoint, save_checkpoint
from shared.config import option
from shared.errors import ConfigError
from shared.fit import FitSettings, FitState, KeepBest, fit
from shared.runs import Run
from shared.seeding import rng_state, set_rng_state
from shared.training import Decay, RunOptions, Setup, StopSignals, lr_factor

STAGE = "transformer"


@dataclass
class LoopConfig(RunOptions):
    """The recipe's options; the task configs add data and the network. The run options
    (`--max_steps`, `--time_limit` in seconds, `--precision`, ...) mean what they mean in every
    stage; the defaults that differ were measured so (one thread, seed 0)."""

    max_steps: int = option(
        0, "stop after this many optimizer steps (0: after --epochs or the time limit)", ge=0
    )
    eval_interval: int = option(0, "evaluate every N steps (0: at the end of each epoch)", ge=0)
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
    select_fraction: float = option(
        0.05,
        "hold out this fraction of the training data to pick the best epoch on (0: keep the "
        "last epoch's weights)",
        ge=0,
        lt=1,
    )
    patience: int = option(
        0, "stop after this many evaluations without a better selection score (0: never)", ge=0
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto",
        "auto: bf16 autocast on a CPU with native bf16, else fp32; fp16 + grad scaler on CUDA",
    )
    threads: int = option(
        1,
        "torch CPU threads (0: as many as there are idle cores); 1 is fastest for small models "
        "on a busy CPU",
        ge=0,
    )
    seed: int = option(0, "seed for weights, data order, the selection slice and dropout")
    resume: str | None = option(None, "continue a run (its name, folder or a checkpoint folder)")

    def __post_init__(self) -> None:
        pass  # --epochs always ends training, so neither --max_steps nor --time_limit is needed

    def warmup_steps(self, total_steps: int) -> int:
        return round(self.warmup * total_steps) if self.warmup < 1 else int(self.warmup)


def held_out(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training indices, selection indices): a random `fraction` of range(n) set aside.

    Drawn from its own generator, so the same seed always holds out the same examples (a
    resumed run trains on exactly the rows the interrupted one did)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919)).tolist()
    k = round(n * fraction)
    if fraction and (k == 0 or k == n):
        raise ConfigError(f"--select_fraction={fraction} of {n} examples leaves no usable split")
    return sorted(order[k:]), sorted(order[:k])


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
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2), fused=fused)
    for group in optimizer.param_groups:
        group["peak_lr"] = lr  # shared.fit sets "lr" to this times the schedule
    return optimizer


def total_norm(tensors) -> float:
    """The 2-norm of all tensors taken together, as if flattened into one vector."""
    tensors = [t.detach() for t in tensors if t is not None]
    if not tensors:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([t.float().norm() for t in tensors])))


def resolve_loop_precision(cfg: LoopConfig, env: Setup) -> str:
    """The shared verdict, except that auto on CUDA takes the classic recipe: fp16 + scaler."""
    if cfg.precision == "auto" and env.device.type == "cuda" and env.precision == "bf16":
        return "fp16"
    return env.precision


def steps_per_epoch(batches_per_epoch: int, accumulate: int) -> int:
    return math.ceil(batches_per_epoch / accumulate)  # a group of micro-batches ends an epoch


# ----------------------------------------------------------------------------------------------
# Training a task


def train_task(
    task: Any,  # a shared.fit.Task with a `sampler` (shared.epochs.EpochSampler)
    model: nn.Module,
    cfg: LoopConfig,
    run: Run,
    env: Setup,
    meta: dict[str, Any],
    keep_best: KeepBest | None,
    item_name: str = "ex",
    resume_from: Path | None = None,
) -> FitState:
    """Train with `shared.fit.fit`; the chosen weights end in checkpoints/best.

    With `keep_best`, fit saves the checkpoint that scores best; without, the last weights are
    saved as "best" at the end. On Ctrl-C or SIGTERM: checkpoints/interrupted, the command that
    resumes it, exit 130 or 143.
    """
    device = env.device
    precision = resolve_loop_precision(cfg, env)
    model.to(device)
    optimizer = make_optimizer(
        model, cfg.lr, cfg.weight_decay, cfg.beta2, fused=device.type in ("cpu", "cuda")
    )
    per_epoch = steps_per_epoch(task.sampler.batches_per_epoch, cfg.accumulate)
    total = cfg.max_steps or cfg.epochs * per_epoch
    warmup = cfg.warmup_steps(total)
    state = FitState(generator=torch.Generator().manual_seed(cfg.seed), sampler=task.sampler)
    if resume_from is not None:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        checkpoint = load_checkpoint(resume_from, expected, framework="torch")
        model.load_state_dict(checkpoint.model)
        optimizer.load_state_dict(checkpoint.optimizer)
        for group in optimizer.param_groups:
            group["peak_lr"] = cfg.lr  # this command's --lr wins, as in the printed config
        state.load_state_dict(checkpoint.meta["fit"])
        set_rng_state(checkpoint.meta["rng"])
        earlier = Run(resume_from.parent.parent).metrics()
        with open(run.metrics_path, "w", encoding="utf-8") as fh:  # the curve goes on from there
            fh.writelines(json.dumps(m) + "\n" for m in earlier if m["step"] <= state.step)
    print(
        f"device {device} ({env.threads_note}), precision "
        f"{precision if precision == 'fp16' else env.precision_note}, {total} optimizer steps "
        f"({per_epoch} an epoch)" + (f"; resumed at step {state.step}" if resume_from else ""),
        flush=True,
    )

    def save(s: FitState, name: str | None = None) -> Path:
        return save_checkpoint(
            run.checkpoints / (name or f"step_{s.step:06d}"),
            model.state_dict(),
            optimizer=optimizer.state_dict(),
            meta={
                **meta, "step": s.step, "epoch": s.sampler.epochs_done, "metrics": s.best or {},
                "fit": s.state_dict(), "rng": rng_state(),
            },
        )  # fmt: skip

    smooth = [0.0, 0.0]  # an exponential moving average of the loss and its weight, for the plot

    def step_metrics(s: FitState, loss: float) -> dict[str, float]:
        smooth[0] = 0.98 * smooth[0] + 0.02 * loss
        smooth[1] = 0.98 * smooth[1] + 0.02  # corrects the average's start at 0
        return {"loss_smooth": smooth[0] / smooth[1], "weight_norm": total_norm(model.parameters())}

    settings = FitSettings(
        schedule=lambda step, elapsed, seconds: lr_factor(
            step, 0.0, warmup_steps=warmup, max_steps=total, decay=cfg.schedule,
            min_ratio=cfg.min_lr_ratio,
        ),  # by steps alone: a resumed run's rates are the uninterrupted run's
        grad_clip=cfg.grad_clip,
        item_name=item_name,
        accumulation_steps=cfg.accumulate,
        keep_best=keep_best,
        evaluate_at_end=True,  # a run cut by the time limit is evaluated where it stopped
        step_metrics=step_metrics,
    )  # fmt: skip
    opts = dataclasses.replace(cfg, max_steps=total)
    with StopSignals() as stop:
        state = fit(
            task, model, optimizer, opts, settings, run, state, device, precision, save, stop
        )
        if stop.requested:
            folder = save(state, "interrupted")
            print(
                f"interrupted at step {state.step} (epoch {state.sampler.epochs_done:.2f}); "
                f"saved {folder}\nresume with: uv run --package {STAGE} train "
                f"--resume={run.folder}",
                flush=True,
            )
            raise SystemExit(stop.exit_code)
    if keep_best is None:
        save(state, "best")  # no selection: the last weights are the ones kept
    return state


def best_epoch(state: FitState, batches_per_epoch: int, accumulate: int) -> float:
    """The epoch (fractional if cut short) whose weights were kept."""
    step = state.best_step if state.best is not None else state.step
    return step / steps_per_epoch(batches_per_epoch, accumulate)


def kept_weights(run: Run, model: nn.Module, device: Any) -> dict[str, Any]:
    """Load checkpoints/best into `model`; returns its meta."""
    best = load_checkpoint(run.checkpoints / "best", framework="torch")
    model.load_state_dict(best.model)
    model.to(device)
    return best.meta
