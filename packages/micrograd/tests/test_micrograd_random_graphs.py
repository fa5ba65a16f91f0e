"""Property test: random expression graphs agree with torch, values and every leaf's gradient.

Hypothesis draws a broadcast shape, a leaf of that shape and a few whose shapes broadcast to
it (some axes dropped or set to 1), and a random program of unary, binary and reducing ops
over a growing pool of intermediate results. The same program runs in micrograd and in torch
(float64); the final node is contracted with a random tensor to a scalar, and backward runs
in both. Reused nodes, broadcasting in both directions and keepdims reductions all get
exercised, which is where hand-written gradients usually go wrong.

Domains are kept safe by construction: log and sqrt see x^2 + 1, division sees y^2 + 1.
"""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from micrograd import Tensor

# each op: (micrograd version, torch version)
UNARY = {
    "neg": (lambda x: -x, lambda x: -x),
    "tanh": (lambda x: x.tanh(), lambda x: x.tanh()),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: x.sigmoid()),
    "sin": (lambda x: x.sin(), lambda x: x.sin()),
    "cos": (lambda x: x.cos(), lambda x: x.cos()),
    "relu": (lambda x: x.relu(), lambda x: x.relu()),
    "gelu": (lambda x: x.gelu(), lambda x: F.gelu(x, approximate="tanh")),
    "softplus": (lambda x: x.softplus(), F.softplus),
    "square": (lambda x: x**2, lambda x: x**2),
    "exp_tanh": (lambda x: x.tanh().exp(), lambda x: x.tanh().exp()),
    "log": (lambda x: (x * x + 1).log(), lambda x: (x * x + 1).log()),
    "sqrt": (lambda x: (x * x + 1).sqrt(), lambda x: (x * x + 1).sqrt()),
    "pow": (lambda x: (x * x + 1) ** -0.75, lambda x: (x * x + 1) ** -0.75),
    "scale": (lambda x: 0.5 * x - 1.0, lambda x: 0.5 * x - 1.0),
}
SOFTMAX = {  # need at least one axis
    "softmax": (lambda x: x.softmax(), lambda x: x.softmax(dim=-1)),
    "log_softmax": (lambda x: x.log_softmax(), lambda x: x.log_softmax(dim=-1)),
}
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / (b * b + 1), lambda a, b: a / (b * b + 1)),
}
REDUCE = {  # keepdims=True keeps every shape broadcastable against the others
    "sum": (lambda x, ax: x.sum(axis=ax, keepdims=True), lambda x, ax: x.sum(dim=ax, keepdim=True)),
    "mean": (
        lambda x, ax: x.mean(axis=ax, keepdims=True),
        lambda x, ax: x.mean(dim=ax, keepdim=True),
    ),
    "max": (
        lambda x, ax: x.max(axis=ax, keepdims=True),
        lambda x, ax: x.amax(dim=ax, keepdim=True),
    ),
}


@st.composite
def programs(draw):
    """A broadcast shape, leaf shapes that broadcast to it, and a list of op steps."""
    full = draw(st.lists(st.integers(2, 4), min_size=1, max_size=3))
    leaf_shapes = [tuple(full)]  # one full-shaped leaf, so the others really get broadcast
    for _ in range(draw(st.integers(1, 3))):
        keep = draw(st.integers(0, len(full)))  # drop leading axes: broadcast adds them back
        shape = [n if draw(st.booleans()) else 1 for n in full[len(full) - keep :]]
        leaf_shapes.append(tuple(shape))
    # first fold every leaf into the full-shaped one, so each is used and broadcast
    steps = [
        ("binary", draw(st.sampled_from(sorted(BINARY))), -1, i, 0)
        for i in range(1, len(leaf_shapes))
    ]
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "reduce", "softmax"]))
        table = {"unary": UNARY, "binary": BINARY, "reduce": REDUCE, "softmax": SOFTMAX}[kind]
        name = draw(st.sampled_from(sorted(table)))
        a, b = draw(st.integers(0, 1000)), draw(st.integers(0, 1000))  # pool picks, mod len
        axis_pick = draw(st.integers(0, 1000))
        steps.append((kind, name, a, b, axis_pick))
    seed = draw(st.integers(0, 2**32 - 1))
    return leaf_shapes, steps, seed


def run(program, lib):
    """Execute the program with lib 0 (micrograd) or 1 (torch); return (leaves, root)."""
    leaf_shapes, steps, seed = program
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in leaf_shapes]
    if lib == 0:
        leaves = [Tensor(a, requires_grad=True) for a in arrays]
    else:
        leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    pool = list(leaves)
    for kind, name, a, b, axis_pick in steps:
        x, y = pool[a % len(pool)], pool[b % len(pool)]  # a = -1 is the latest node
        if kind == "binary":
            pool.append(BINARY[name][lib](x, y))
        elif x.ndim == 0:  # reductions and softmax need an axis; fall back to tanh
            pool.append(UNARY["tanh"][lib](x))
        elif kind == "reduce":
            pool.append(REDUCE[name][lib](x, axis_pick % x.ndim))
        else:
            pool.append(({**UNARY, **SOFTMAX}[name])[lib](x))
    out = pool[-1]
    weights = rng.standard_normal(tuple(out.shape))  # a random contraction to a scalar
    w = Tensor(weights) if lib == 0 else torch.tensor(weights)
    return leaves, (out * w).sum()


def relative_error(ours, ref):
    """||ours - ref|| / ||ref||, with ||ref|| floored at 1e-5: a gradient that is exactly zero
    in theory (log_softmax ignores a shift) comes out as rounding noise of ~1e-16 in both."""
    return np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-5)


@settings(max_examples=80, deadline=None)
@given(programs())
def test_random_graphs_match_torch(program):
    leaves, root = run(program, 0)
    t_leaves, t_root = run(program, 1)
    assert abs(root.item() - t_root.item()) <= 1e-9 * max(1.0, abs(t_root.item()))
    root.backward()
    t_root.backward()
    for i, (x, t) in enumerate(zip(leaves, t_leaves, strict=True)):
        if t.grad is None:  # leaf not reached by the program
            assert x.grad is None, f"leaf {i} got a gradient torch did not"
            continue
        assert x.grad.shape == tuple(t.shape), f"leaf {i}: gradient has the wrong shape"
        assert relative_error(x.grad, t.grad.numpy()) <= 1e-9, f"leaf {i} gradient differs"
