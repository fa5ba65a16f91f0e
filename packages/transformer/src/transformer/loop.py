"""The recipe both tasks train with, as a `shared.tasks.TrainingTask` for `shared.trainer`.

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

A task (classify.py, translate_task.py) prepares its data and hands its `shared.fit.Task` to
`epoch_task(Recipe(...), task, keep_best, ...)`; `shared.trainer` runs the rest of the run's
life (resume, Ctrl-C, checkpoints), as for every stage. What this stage adds, and why:

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
best score so far, the fp16 scale) and every RNG state (`shared.trainer.checkpoint_meta`), so
`--resume` continues a run with the losses an uninterrupted one would have had.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from shared.checkpoint import load_checkpoint
from shared.config import option
from shared.errors import ConfigError
from shared.fit import FitState, KeepBest
from shared.runs import Run
from shared.tasks import TrainingTask
from shared.training import Decay, RunOptions, Setup, lr_factor

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
# The recipe as a TrainingTask


@dataclass
class Recipe:
    """The recipe for one run of a task counted in epochs: the pieces a `TrainingTask` takes.

    Bound methods rather than closures, so a reader sees each piece on its own. `build_model`
    remembers the network it made, whose weight norm `step_metrics` logs (the loop passes the
    step and the loss only).
    """

    cfg: LoopConfig
    batches_per_epoch: int  # of the task's EpochSampler
    build_network: Callable[[], nn.Module]  # the task's model, on the CPU
    fused: bool = False  # AdamW in one kernel (the stage's own loop on a CPU or CUDA)
    model: nn.Module | None = None  # the one `build_model` made
    smooth: tuple[float, float] = (0.0, 0.0)  # the loss's moving average and its weight

    @property
    def per_epoch(self) -> int:
        return steps_per_epoch(self.batches_per_epoch, self.cfg.accumulate)

    @property
    def total(self) -> int:
        """The run's optimizer steps: --max_steps, else --epochs of them."""
        return self.cfg.max_steps or self.cfg.epochs * self.per_epoch

    def build_model(self) -> nn.Module:
        self.model = self.build_network()
        return self.model

    def build_optimizer(self, model: nn.Module) -> torch.optim.AdamW:
        cfg = self.cfg
        return make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.beta2, fused=self.fused)

    def schedule(self, step: int, elapsed: float, seconds: float | None) -> float:
        """By steps alone: a resumed run's rates are the uninterrupted run's."""
        cfg = self.cfg
        return lr_factor(
            step, 0.0, warmup_steps=cfg.warmup_steps(self.total), max_steps=self.total,
            decay=cfg.schedule, min_ratio=cfg.min_lr_ratio,
        )  # fmt: skip

    def precision(self, env: Setup) -> str:
        return resolve_loop_precision(self.cfg, env)

    def step_metrics(self, state: FitState, loss: float) -> dict[str, float]:
        """A smoothed loss for the plot (an exponential moving average, its start at 0
        corrected) and the weight norm."""
        average, weight = self.smooth
        self.smooth = (0.98 * average + 0.02 * loss, 0.98 * weight + 0.02)
        return {
            "loss_smooth": self.smooth[0] / self.smooth[1],
            "weight_norm": total_norm(self.model.parameters()),
        }


def epoch_task(recipe: Recipe, task: Any, keep_best: KeepBest | None, **stage: Any) -> TrainingTask:
    """The `TrainingTask` of a task trained by this recipe; `stage` holds the task's own
    fields (checkpoint_meta, write_run_files, shard_units, item_name, description, report).

    `task` has a `sampler` (shared.epochs.EpochSampler). With `keep_best` the checkpoint that
    scores best is kept as checkpoints/best; without, the last weights are saved under that
    name. A run cut by the time limit is evaluated where it stopped.
    """
    cfg = recipe.cfg
    return TrainingTask(
        stage=STAGE,
        config=cfg,
        task=task,
        build_model=recipe.build_model,
        build_optimizer=recipe.build_optimizer,
        schedule=recipe.schedule,
        grad_clip=cfg.grad_clip,
        max_steps=recipe.total,
        eval_interval=cfg.eval_interval or recipe.per_epoch,  # an epoch ends every per_epoch
        sampler=task.sampler,
        accumulation_steps=cfg.accumulate,
        keep_best=keep_best,
        evaluate_at_end=True,
        step_metrics=recipe.step_metrics,
        precision=recipe.precision,
        final_checkpoint=None if keep_best is not None else "best",
        **stage,
    )


def fused_on(env: Setup | None) -> bool:
    """AdamW's fused kernel under the stage's own loop on a CPU or CUDA; training_kit's
    engines (env None) take the plain one."""
    return env is not None and env.device.type in ("cpu", "cuda")


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
