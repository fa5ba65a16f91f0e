"""Weight initialisers: fill a tensor in place with random values of a chosen variance.

Why the variance matters: a layer y = W x with fan_in inputs of unit variance gives outputs of
variance fan_in * Var(W). Keep that near 1 (times a gain for the nonlinearity) and activations
neither explode nor vanish as they pass through many layers.

- Xavier/Glorot (tanh, sigmoid, linear): Var(W) = gain^2 * 2 / (fan_in + fan_out).
- Kaiming/He (ReLU family): Var(W) = gain^2 / fan (fan_in by default); ReLU zeroes half its
  inputs, hence gain sqrt(2).

A uniform U(-b, b) has variance b^2 / 3, which is where the sqrt(3) in the bounds comes from.
Formulas and the fan convention (weight shape (out, in, *kernel)) match torch.nn.init, so the
same statistics come out; the random numbers differ, since they come from a numpy Generator.
"""

from __future__ import annotations

import math

import numpy as np

from micrograd.tensor import Tensor


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shaped (out, in, *kernel), as torch computes them."""
    if len(shape) < 2:
        raise ValueError(f"fan in/out need a tensor with at least 2 dims, got shape {shape}")
    receptive = math.prod(shape[2:])  # 1 for a Linear weight
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps the variance of activations stable through `nonlinearity`."""
    if nonlinearity in ("linear", "sigmoid", "identity"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


def uniform_(tensor: Tensor, low: float, high: float, rng: np.random.Generator) -> Tensor:
    tensor.data[...] = rng.uniform(low, high, size=tensor.shape)
    return tensor


def normal_(tensor: Tensor, mean: float, std: float, rng: np.random.Generator) -> Tensor:
    tensor.data[...] = rng.normal(mean, std, size=tensor.shape)
    return tensor


def xavier_uniform_(tensor: Tensor, rng: np.random.Generator, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = fans(tensor.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))  # sqrt(3) * std
    return uniform_(tensor, -bound, bound, rng)


def xavier_normal_(tensor: Tensor, rng: np.random.Generator, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = fans(tensor.shape)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def _kaiming_std(shape: tuple[int, ...], a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor,
    rng: np.random.Generator,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> Tensor:
    """He uniform. `a` is the negative slope of a leaky ReLU (0 gives plain ReLU's gain)."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor.shape, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, rng)


def kaiming_normal_(
    tensor: Tensor,
    rng: np.random.Generator,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> Tensor:
    return normal_(tensor, 0.0, _kaiming_std(tensor.shape, a, mode, nonlinearity), rng)
