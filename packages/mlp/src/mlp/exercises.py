"""mlp's exercises: the pieces the guide teaches, checked against the code this stage trains with.

    uv run --package mlp exercise list

The learner writes the seeded mini-batches both backends share (`data.batches`), the network
(`build_mlp`), and the softmax cross-entropy it is trained on. The loss is micrograd's own
(`Tensor.log_softmax` and `nn.cross_entropy`): this stage builds its MLP from them, and its README
derives them, the log-sum-exp that keeps them finite and the gradient softmax - onehot. Each check
runs the learner's function and the stage's on the same random inputs; for the loss it also
backpropagates a random output gradient through both and compares the gradients of the logits.
"""

from typing import Any

import numpy as np

from micrograd import Tensor, nn
from micrograd.exercises import micrograd_gradients
from mlp.data import batches
from mlp.model_micrograd import MLPConfig, build_mlp
from shared.exercises import Case, Exercise
from shared.learn import exercise_command

# ---------------------------------------------------------------------------- 1: batches


def _batches_cases() -> list[Case]:
    settings = [(10, 3, 0, 0), (12, 4, 3, 7), (10, 5, 1, 2), (7, 10, 2, 0), (1, 1, 0, 5)]
    return [
        Case(f"n={n}, batch_size={b}, seed={s}, epoch={e}", (n, b, s, e), seed)
        for seed, (n, b, s, e) in enumerate(settings)
    ]


def _all_batches(function: Any, args: tuple) -> list[np.ndarray]:
    """`batches` is a generator: compare the list of index arrays it yields."""
    return list(function(*args))


# ---------------------------------------------------------------------------- 2: build_mlp


def _build_cases() -> list[Case]:
    configs = [
        (MLPConfig(n_in=6, hidden=(5,), n_out=3), "float64"),
        (MLPConfig(n_in=8, hidden=(6, 4), n_out=3, activation="sigmoid"), "float64"),
        (MLPConfig(n_in=5, hidden=(), n_out=4), "float64"),
        (MLPConfig(n_in=64, hidden=(16,), n_out=10), "float32"),
    ]
    cases = []
    for seed, (cfg, dtype) in enumerate(configs):
        sizes = " -> ".join(map(str, cfg.layer_sizes()))
        label = f"sizes {sizes}, {cfg.activation}, {dtype}"
        cases.append(Case(label, (cfg, np.random.default_rng(seed), dtype), seed))
    return cases


def _describe_model(function: Any, args: tuple) -> dict[str, Any]:
    """A built model as what can be compared: its layers, in order, and its weights by name."""
    model = function(*args)
    return {"layers": ", ".join(map(repr, model)), "weights": model.state_dict()}


# ---------------------------------------------------------------------------- 3, 4: the loss


def _logits(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return Tensor(scale * rng.standard_normal(shape), requires_grad=True)


def _log_softmax_cases() -> list[Case]:
    rng = np.random.default_rng(0)
    return [
        Case("x (4, 10), axis -1", (_logits(rng, 4, 10), -1), 0),
        Case("x (3, 5), axis 0", (_logits(rng, 3, 5), 0), 1),
        Case("x (2, 3, 4), axis 1", (_logits(rng, 2, 3, 4), 1), 2),
        Case("x (1, 6), a batch of 1", (_logits(rng, 1, 6), -1), 3),
        Case("x (3, 10) with entries near +-1000", (_logits(rng, 3, 10, scale=1000.0), -1), 4),
    ]


def _cross_entropy_cases() -> list[Case]:
    rng = np.random.default_rng(1)
    confident = _logits(rng, 3, 5)
    confident.data[np.arange(3), [1, 2, 3]] += 800.0  # sure of 1, 2, 3; the answers are 0, 0, 0
    sequences, sequence_targets = _logits(rng, 2, 3, 5), rng.integers(0, 5, (2, 3))
    return [
        Case("logits (4, 10), targets (4,)", (_logits(rng, 4, 10), rng.integers(0, 10, 4)), 0),
        Case("logits (1, 3), a batch of 1", (_logits(rng, 1, 3), np.array([2])), 1),
        Case("logits (2, 3, 5), targets (2, 3)", (sequences, sequence_targets), 2),
        Case("logits (3, 5), confidently wrong by 800", (confident, np.array([0, 0, 0])), 3),
    ]


EXERCISES = [
    Exercise(
        slug="batches",
        title="seeded mini-batches that cover the data once per epoch",
        reference=batches,
        cases=_batches_cases,
        call=_all_batches,
        imports="""
from collections.abc import Iterator

import numpy as np
""",
        docstring="""
Index arrays that cover range(n) once, in a random order fixed by (seed, epoch).

Yields int arrays of shape (batch_size,), the last one shorter when batch_size does not divide
n: n=10, batch_size=3 gives 4 arrays of sizes 3, 3, 3, 1. The order is a permutation drawn
from np.random.default_rng([seed, epoch]), so epoch 7 is the same whether or not 0..6 ran.""",
        hint="""One permutation per epoch from default_rng([seed, epoch]), then yield its slices.
order = np.random.default_rng([seed, epoch]).permutation(n), then order[start : start +
batch_size] for start in range(0, n, batch_size); the last slice is simply shorter. Seed with
both numbers: a generator seeded with `seed` alone gives every epoch the same order.""",
    ),
    Exercise(
        slug="build_mlp",
        title="the network: Linear, activation, ..., Linear",
        reference=build_mlp,
        cases=_build_cases,
        call=_describe_model,
        imports="""
import numpy as np

from micrograd import nn
from mlp.model_micrograd import MLPConfig
""",
        docstring="""
Linear, activation, Linear, activation, ..., Linear: no activation on the logits.

cfg.layer_sizes() is [n_in, *hidden, n_out], e.g. [64, 128, 10]: one nn.Linear(n_in, n_out,
rng=rng, dtype=np.dtype(dtype)) per consecutive pair (weight (n_out, n_in), bias (n_out,)),
drawing from `rng` in order, each but the last followed by nn.ReLU() or nn.Sigmoid() as
cfg.activation says. The check compares the layers and every weight ("0.weight", ...).""",
        hint="""One Linear per pair of consecutive sizes; an activation after each but the last.
Pair the sizes with zip(sizes[:-1], sizes[1:]). The last Linear's outputs are the logits, and
the loss applies its own softmax, so no activation follows it. Create the Linears in order, so
each draws the next numbers from rng, and pass dtype=np.dtype(dtype).""",
    ),
    Exercise(
        slug="log_softmax",
        title="a stable log-softmax (log-sum-exp) and its backward",
        reference=Tensor.log_softmax,
        function="log_softmax",
        cases=_log_softmax_cases,
        gradients=micrograd_gradients,
        imports="""
import numpy as np

from micrograd.tensor import Tensor, _make
""",
        docstring="""
x - logsumexp(x) along `axis`: log-probabilities, the same shape as x, e.g. (B, 10).

Must stay finite for any finite x, logits near 1000 included. Return
`_make(data, (self,), backward, "log_softmax")`, where backward(g) maps the output's
gradient g (x's shape) to a one-tuple: the gradient of x.""",
        hint="""Subtract the max first, so exp cannot overflow; backward is g - softmax * sum(g).
Log-softmax does not change when a constant is subtracted along the axis (keepdims=True keeps
the shapes broadcastable). Forward: z - log(sum(exp(z))). Backward: d out_i / d x_k =
[i == k] - softmax_k, so dx = g - softmax(x) * sum(g) along the axis; softmax(x) is
exp(output).""",
    ),
    Exercise(
        slug="cross_entropy",
        title="mean softmax cross-entropy from the log-softmax",
        reference=nn.cross_entropy,
        cases=_cross_entropy_cases,
        gradients=micrograd_gradients,
        imports="""
from typing import Any

import numpy as np

from micrograd.tensor import Tensor
""",
        docstring="""
Mean negative log-likelihood of integer class `targets` under softmax(`logits`): a scalar.

logits (N, C) with targets (N,) ints in [0, C); or logits (..., C) with targets (...), flattened
first to (N, C) and (N,). Use logits.log_softmax(axis=-1) (micrograd's own, stable), pick each
row's log-probability of its target, and average. Raise ValueError or TypeError for targets of
the wrong shape, range or dtype (the check passes only valid ones).""",
        hint="""loss = -mean over rows i of log_softmax(logits)[i, targets[i]] (mean, not sum).
Pick one entry per row by indexing with two arrays: logp[np.arange(N), targets]. The mean:
the README's gradient is (softmax - onehot) / N. Flatten (..., C) logits with
.reshape(-1, C) and the targets with .reshape(-1) first.""",
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package mlp exercise ...` (see shared/learn.py)."""
    return exercise_command("mlp", EXERCISES, argv)
