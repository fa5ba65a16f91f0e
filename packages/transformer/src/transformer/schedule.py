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

import math
from typing import Literal

import torch

Decay = Literal["linear", "cosine", "constant"]


def lr_factor(
    step: int, warmup_steps: int, total_steps: int, decay: Decay = "linear", min_ratio: float = 0.0
) -> float:
    """The multiplier of the peak learning rate before optimizer step `step` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps  # never exactly 0: the first step still learns
    if decay == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)  # 0 at the end of warmup, 1 at the end
    if decay == "linear":
        shape = 1.0 - progress
    elif decay == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"decay must be linear, cosine or constant, got {decay!r}")
    return min_ratio + (1.0 - min_ratio) * shape


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
