"""micrograd's exercises: the backward rules the guide derives, checked against `tensor.py` itself.

    uv run --package micrograd exercise list

Each exercise is one op of `Tensor` (or the helper every broadcasting op uses); the learner writes
it as a plain function whose first argument plays `self`, and the check runs it on random
tensors, then backpropagates a random output gradient through it and through the stage's own op,
and compares the values and the gradients of every input.
"""

from typing import Any

import numpy as np

from micrograd.tensor import Tensor, _unbroadcast
from shared.exercises import Case, Exercise
from shared.learn import exercise_command

IMPORTS = """
from typing import Any

import numpy as np

from micrograd.tensor import (
    _PY_NUMBERS,
    Axis,
    Tensor,
    _broadcast_error,
    _expand,
    _lift,
    _make,
    _power,
    _unbroadcast,
)
"""


def micrograd_gradients(args: tuple, output: Any) -> dict[str, np.ndarray]:
    """Backpropagate a fixed random output gradient; the gradients of the inputs that need one."""
    if not isinstance(output, Tensor) or not output.requires_grad:
        return {}
    seed = np.random.default_rng(1234).standard_normal(output.shape).astype(output.dtype)
    output.backward(seed)
    return {
        f"the gradient of argument {i}": arg.grad
        for i, arg in enumerate(args)
        if isinstance(arg, Tensor) and arg.requires_grad
    }


def _tensor(rng: np.random.Generator, *shape: int, positive: bool = False) -> Tensor:
    data = rng.uniform(0.5, 2.0, shape) if positive else rng.standard_normal(shape)
    return Tensor(data, requires_grad=True)


def _binary_cases(positive: bool = False) -> list[Case]:
    shapes = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((5,), (2, 1, 5))]
    cases = []
    for seed, (sa, sb) in enumerate(shapes):
        rng = np.random.default_rng(seed)
        a, b = _tensor(rng, *sa, positive=positive), _tensor(rng, *sb, positive=positive)
        cases.append(Case(f"a {sa} with b {sb}", (a, b), seed))
    return cases


def _unbroadcast_cases() -> list[Case]:
    pairs = [((3, 4), (3, 4)), ((3, 4), (1, 4)), ((3, 4), (3, 1)), ((2, 3, 4), (4,)),
             ((2, 3, 4), (3, 1)), ((2, 1, 5), (1, 1, 1)), ((4, 5), ())]  # fmt: skip
    cases = []
    for seed, (g_shape, shape) in enumerate(pairs):
        g = np.random.default_rng(seed).standard_normal(g_shape)
        cases.append(Case(f"g of shape {g_shape} summed to {shape}", (g, shape), seed))
    return cases


def _mul_cases() -> list[Case]:
    rng = np.random.default_rng(7)
    return [*_binary_cases(), Case("a (2, 3) times the number 2.5", (_tensor(rng, 2, 3), 2.5), 7)]


def _pow_cases() -> list[Case]:
    cases = []
    for seed, (shape, power) in enumerate([((3, 4), 2), ((5,), 3.0), ((2, 3), 0.5), ((4,), -1)]):
        x = _tensor(np.random.default_rng(seed), *shape, positive=True)
        cases.append(Case(f"x {shape} to the power {power}", (x, power), seed))
    return cases


def _matmul_cases() -> list[Case]:
    shapes = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 3)), ((3, 4), (4,)),
              ((2, 1, 3, 4), (5, 4, 2))]  # fmt: skip
    cases = []
    for seed, (sa, sb) in enumerate(shapes):
        rng = np.random.default_rng(seed)
        cases.append(Case(f"a {sa} @ b {sb}", (_tensor(rng, *sa), _tensor(rng, *sb)), seed))
    return cases


def _sum_cases() -> list[Case]:
    cases = []
    for seed, (shape, axis, keepdims) in enumerate(
        [
            ((3, 4), None, False),
            ((3, 4), 0, False),
            ((3, 4), 1, True),
            ((2, 3, 4), (0, 2), False),
            ((2, 3, 4), -1, False),
            ((2, 3, 4), (1,), True),
        ]  # fmt: skip
    ):
        x = _tensor(np.random.default_rng(seed), *shape)
        label = f"x {shape}, axis={axis}, keepdims={keepdims}"
        cases.append(Case(label, (x, axis, keepdims), seed))
    return cases


EXERCISES = [
    Exercise(
        slug="unbroadcast",
        title="sum a gradient back to a broadcast input's shape",
        reference=_unbroadcast,
        cases=_unbroadcast_cases,
        imports=IMPORTS,
        docstring="""
Sum `g` down to `shape`, undoing numpy broadcasting.

g: the gradient of an op's output, e.g. (2, 3, 4); shape: an input's shape, e.g. (3, 1).
Returns an array of `shape`. Broadcasting added leading axes (here 1: the 2) and stretched
axes of size 1 (here the last: 1 -> 4); each copy fed the output, so sum over both.""",
        hint="""Sum away g's extra leading axes, then the axes that were stretched from 1.
There are g.ndim - len(shape) extra leading axes; the stretched ones are the axes where
shape has 1 but g does not: sum those with keepdims=True. A g of the right shape is returned
as it is.""",
    ),
    Exercise(
        slug="mul",
        title="the backward of mul, with broadcasting",
        reference=Tensor.__mul__,
        function="mul",
        cases=_mul_cases,
        gradients=micrograd_gradients,
        imports=IMPORTS,
        docstring="""
self * other, elementwise with numpy broadcasting: a (3, 1) times b (1, 4) is (3, 4).

Returns a Tensor made by `_make(data, parents, backward, "mul")`, where `backward(g)` maps
the output's gradient g (the output's shape) to one gradient per parent, each in that
parent's shape (`_unbroadcast`), or None for a parent that does not require a gradient.
A Python number `other` is a constant: the only parent is self.""",
        hint="""The gradients are g * b for a and g * a for b, each summed to its input's shape.
d(a*b)/da = b and d(a*b)/db = a; `_unbroadcast(g * b, a.shape)` does the summing. Capture
the numpy arrays a, b in the closure, not the tensors.""",
    ),
    Exercise(
        slug="pow",
        title="the backward of pow (a constant exponent)",
        reference=Tensor.__pow__,
        function="pow",
        cases=_pow_cases,
        gradients=micrograd_gradients,
        imports=IMPORTS,
        docstring="""
self ** exponent, elementwise; the output has self's shape.

For a Python number exponent p: backward(g) returns (g * d(x^p)/dx,), one gradient for the one
parent. A tensor exponent goes to `_power` (already written for you in tensor.py).""",
        hint="""d(x^p)/dx = p * x^(p-1): the gradient is g times that.
Keep the call to `_power` for the tensor-exponent branch (the check uses number exponents).""",
        rtol=1e-6,
    ),
    Exercise(
        slug="matmul",
        title="the backward of matmul (batched, and with vectors)",
        reference=Tensor.__matmul__,
        function="matmul",
        cases=_matmul_cases,
        gradients=micrograd_gradients,
        imports=IMPORTS,
        docstring="""
self @ other with numpy's rules: (..., n, k) @ (..., k, m) -> (..., n, m), batch axes broadcast.

backward(g), g: (..., n, m) -> (dA, dB) with dA = g @ B^T in A's shape (..., n, k) and
dB = A^T @ g in B's shape (..., k, m); sum over broadcast batch axes (`_unbroadcast`).
A 1-D left operand is a row (1, k), a 1-D right operand a column (k, 1), that axis removed
from the output: put it back in g before the products.""",
        hint="""In 2-D, dA = g @ b.T and dB = a.T @ g; then batches, then vectors.
Check the shapes: (n, m) @ (m, k) is (n, k). Batches: np.swapaxes(x, -1, -2) transposes the
last two axes, and _unbroadcast sums the batch axes an operand was broadcast along. Vectors:
a[None, :] and b[:, None], g with np.expand_dims, and .reshape back to the vector's shape.""",
    ),
    Exercise(
        slug="sum",
        title="the backward of sum over an axis",
        reference=Tensor.sum,
        function="sum",
        cases=_sum_cases,
        gradients=micrograd_gradients,
        imports=IMPORTS,
        docstring="""
Sum over `axis` (None: all axes; an int or a tuple of ints, negatives allowed).

x (2, 3, 4).sum(axis=1) is (2, 4); with keepdims=True it is (2, 1, 4). backward(g) gets g in
the output's shape and returns (gradient of x,), shaped like x: every summed element gets the
gradient of the sum it fed.""",
        hint="""Put the summed axes back as size 1 (unless keepdims), then broadcast g to x's shape.
np.expand_dims(g, axis) takes an int or a tuple; _expand(g, shape) broadcasts to a fresh array.""",
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package micrograd exercise ...` (see shared/learn.py)."""
    return exercise_command("micrograd", EXERCISES, argv)
