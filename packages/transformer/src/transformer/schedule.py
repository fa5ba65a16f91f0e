"""Learning-rate schedules: a linear warmup, then a linear or cosine decay.

    factor(step)
      1 |        ____
        |      /      ‾‾--..__                 linear: straight down to min_ratio
        |    /                ‾‾--..__         cosine: half a cosine wave down to min_ratio
        |  /                          ‾‾--..
      0 |/_________________________________ step
         0   warmup                        total

Why warm up: at step 0 Adam's second-moment estimates come from one gradient and the weights
are random, so full-size steps can throw a post-norm transformer into a region it never leaves
(the original paper warms up for 4,000 steps). Why decay: late in training, smaller steps settle
into a minimum instead of bouncing around it. The factor multiplies the peak learning rate;
`torch.optim.lr_scheduler.LambdaLR` applies it, once per optimizer step.
"""

from typing import Literal

import torch

from shared.training import lr_factor as shared_lr_factor

Decay = Literal["linear", "cosine", "constant"]


def lr_factor(
    step: int, warmup_steps: int, total_steps: int, decay: Decay = "linear", min_ratio: float = 0.0
) -> float:
    """The multiplier of the peak learning rate before optimizer step `step` (0-based):
    `shared.training.lr_factor`, the schedule every stage uses, with a step budget."""
    if decay not in ("linear", "cosine", "constant"):
        raise ValueError(f"decay must be linear, cosine or constant, got {decay!r}")
    return shared_lr_factor(
        step,
        0.0,
        warmup_steps=warmup_steps,
        max_steps=total_steps,
        decay=decay,
        min_ratio=min_ratio,
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    decay: Decay = "linear",
    min_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR that follows lr_factor; call its .step() after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, decay, min_ratio)
    )
