"""One parity test per op: the same computation in micrograd and torch (float64), compared.

Each case builds random leaves, runs the op in both libraries, checks the values, then pushes a
random upstream gradient back through both and checks every leaf's gradient. A random upstream
gradient (rather than summing the output) catches a backward that is right only for all-ones.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from micrograd import Tensor, concatenate, stack

RTOL, ATOL = 1e-10, 1e-12


def check_op(ours, theirs, shapes, positive=False, seed=0):
    """Run `ours` on micrograd leaves and `theirs` on torch leaves of `shapes`; compare all."""
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0.5, 2.0, size=s) if positive else rng.standard_normal(s) for s in shapes]
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours(*xs), theirs(*ts)
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=RTOL, atol=ATOL)
    upstream = rng.standard_normal(ref.shape)
    out.backward(upstream)
    ref.backward(torch.tensor(upstream))
    for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
        assert x.grad is not None, f"input {i} got no gradient"
        assert x.grad.shape == x.shape
        np.testing.assert_allclose(
            x.grad, t.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"gradient of input {i}"
        )


def same(f):
    """The case where micrograd and torch spell the op the same way."""
    return f, f


IDX = np.array([0, 2, 0, 1, 2, 2])  # repeated rows: their gradients must add up
ROWS, COLS = np.arange(3), np.array([1, 0, 1])

CASES = {
    # elementwise arithmetic with broadcasting, tensors and scalars on either side
    "add": (*same(lambda a, b: a + b), [(3, 4), (4,)]),
    "add_expand_both": (*same(lambda a, b: a + b), [(3, 1), (1, 4)]),
    "sub": (*same(lambda a, b: a - b), [(2, 3, 4), (3, 1)]),
    "mul": (*same(lambda a, b: a * b), [(2, 1, 4), (3, 1)]),
    "div": (*same(lambda a, b: a / b), [(3, 4), (3, 1)], True),
    "radd": (*same(lambda a: 2.5 + a), [(3,)]),
    "rsub": (*same(lambda a: 2.5 - a), [(3,)]),
    "rmul": (*same(lambda a: -1.5 * a), [(3,)]),
    "rdiv": (*same(lambda a: 2.0 / a), [(3,)], True),
    "neg": (*same(lambda a: -a), [(2, 3)]),
    "pow_2": (*same(lambda a: a**2), [(2, 3)]),
    "pow_half": (*same(lambda a: a**0.5), [(2, 3)], True),
    "pow_neg": (*same(lambda a: a**-1.5), [(2, 3)], True),
    "pow_tensor": (*same(lambda a, b: a**b), [(2, 3), (3,)], True),
    "rpow": (*same(lambda a: 2.0**a), [(2, 3)]),
    # matrix products, including batched and 1-D operands
    "matmul": (*same(lambda a, b: a @ b), [(3, 4), (4, 5)]),
    "matmul_batched": (*same(lambda a, b: a @ b), [(2, 3, 4), (2, 4, 5)]),
    "matmul_batch_broadcast": (*same(lambda a, b: a @ b), [(2, 1, 3, 4), (5, 4, 2)]),
    "matmul_shared_weight": (*same(lambda a, b: a @ b), [(2, 3, 4), (4, 5)]),
    "matmul_vec_mat": (*same(lambda a, b: a @ b), [(4,), (4, 3)]),
    "matmul_mat_vec": (*same(lambda a, b: a @ b), [(3, 4), (4,)]),
    "matmul_vec_vec": (*same(lambda a, b: a @ b), [(4,), (4,)]),
    "matmul_batched_vec": (*same(lambda a, b: a @ b), [(2, 3, 4), (4,)]),
    "matmul_vec_batched": (*same(lambda a, b: a @ b), [(4,), (2, 4, 3)]),
    # reductions
    "sum_all": (*same(lambda a: a.sum()), [(2, 3, 4)]),
    "sum_axis": (lambda a: a.sum(axis=1), lambda a: a.sum(dim=1), [(2, 3, 4)]),
    "sum_axes_keepdims": (
        lambda a: a.sum(axis=(0, 2), keepdims=True),
        lambda a: a.sum(dim=(0, 2), keepdim=True),
        [(2, 3, 4)],
    ),
    "mean_all": (*same(lambda a: a.mean()), [(2, 3, 4)]),
    "mean_axis_neg": (lambda a: a.mean(axis=-1), lambda a: a.mean(dim=-1), [(2, 3, 4)]),
    "mean_axes_keepdims": (
        lambda a: a.mean(axis=(0, 1), keepdims=True),
        lambda a: a.mean(dim=(0, 1), keepdim=True),
        [(2, 3, 4)],
    ),
    "max_all": (lambda a: a.max(), lambda a: a.amax(), [(2, 3, 4)]),
    "max_axis": (lambda a: a.max(axis=1), lambda a: a.amax(dim=1), [(2, 3, 4)]),
    "max_axes_keepdims": (
        lambda a: a.max(axis=(0, 2), keepdims=True),
        lambda a: a.amax(dim=(0, 2), keepdim=True),
        [(2, 3, 4)],
    ),
    # shape ops
    "reshape": (lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6), [(2, 3, 4)]),
    "reshape_tuple": (lambda a: a.reshape((-1,)), lambda a: a.reshape(-1), [(2, 3, 4)]),
    "transpose_perm": (lambda a: a.transpose(2, 0, 1), lambda a: a.permute(2, 0, 1), [(2, 3, 4)]),
    "transpose_negative_axes": (
        lambda a: a.transpose(-1, 0, -2),
        lambda a: a.permute(-1, 0, -2),
        [(2, 3, 4)],
    ),
    "transpose_reverse": (lambda a: a.transpose(), lambda a: a.permute(2, 1, 0), [(2, 3, 4)]),
    "T": (*same(lambda a: a.T), [(3, 4)]),
    # indexing: basic, then integer arrays (embedding lookup, gather of one entry per row)
    "index_slice": (*same(lambda a: a[1:, ::2]), [(3, 5)]),
    "index_int": (*same(lambda a: a[1]), [(3, 5)]),
    "index_ellipsis": (*same(lambda a: a[..., -1]), [(2, 3, 4)]),
    "index_newaxis": (*same(lambda a: a[:, None, 1:3]), [(3, 5)]),
    "embedding": (lambda a: a[IDX], lambda a: a[torch.from_numpy(IDX)], [(3, 4)]),
    "embedding_2d_ids": (
        lambda a: a[IDX.reshape(2, 3)],
        lambda a: a[torch.from_numpy(IDX.reshape(2, 3))],
        [(3, 4)],
    ),
    "index_pairs": (
        lambda a: a[ROWS, COLS],
        lambda a: a[torch.from_numpy(ROWS), torch.from_numpy(COLS)],
        [(3, 2)],
    ),
    # joining
    "concatenate": (
        lambda a, b, c: concatenate([a, b, c], axis=1),
        lambda a, b, c: torch.cat([a, b, c], dim=1),
        [(2, 3), (2, 1), (2, 4)],
    ),
    "concatenate_neg_axis": (
        lambda a, b: concatenate([a, b], axis=-1),
        lambda a, b: torch.cat([a, b], dim=-1),
        [(2, 3, 2), (2, 3, 1)],
    ),
    "stack": (lambda a, b: stack([a, b]), lambda a, b: torch.stack([a, b]), [(2, 3), (2, 3)]),
    "stack_last_axis": (
        lambda a, b, c: stack([a, b, c], axis=-1),
        lambda a, b, c: torch.stack([a, b, c], dim=-1),
        [(2, 3), (2, 3), (2, 3)],
    ),
    # elementwise functions
    "exp": (*same(lambda a: a.exp()), [(2, 3)]),
    "log": (*same(lambda a: a.log()), [(2, 3)], True),
    "sqrt": (*same(lambda a: a.sqrt()), [(2, 3)], True),
    "sin": (*same(lambda a: a.sin()), [(2, 3)]),
    "cos": (*same(lambda a: a.cos()), [(2, 3)]),
    "abs": (*same(lambda a: a.abs()), [(2, 3)]),
    "tanh": (*same(lambda a: a.tanh()), [(2, 3)]),
    "sigmoid": (*same(lambda a: a.sigmoid()), [(2, 3)]),
    "relu": (*same(lambda a: a.relu()), [(2, 3)]),
    "gelu_tanh": (lambda a: a.gelu(), lambda a: F.gelu(a, approximate="tanh"), [(3, 4)]),
    "softplus": (lambda a: a.softplus(), F.softplus, [(3, 4)]),
    "clip": (lambda a: a.clip(-0.5, 0.7), lambda a: a.clamp(-0.5, 0.7), [(4, 5)]),
    "softmax": (lambda a: a.softmax(), lambda a: a.softmax(dim=-1), [(3, 5)]),
    "softmax_axis0": (lambda a: a.softmax(axis=0), lambda a: a.softmax(dim=0), [(3, 5)]),
    "log_softmax": (lambda a: a.log_softmax(), lambda a: a.log_softmax(dim=-1), [(2, 3, 5)]),
    "log_softmax_axis1": (
        lambda a: a.log_softmax(axis=1),
        lambda a: a.log_softmax(dim=1),
        [(2, 3, 5)],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_op_matches_torch(name):
    ours, theirs, shapes, *positive = CASES[name]
    check_op(ours, theirs, shapes, positive=bool(positive and positive[0]))


def test_numpy_array_on_the_left_is_a_constant():
    """ndarray (op) Tensor must call Tensor's reflected op, not loop in numpy over objects."""
    a = np.arange(6.0).reshape(2, 3)
    check_op(
        lambda x: a @ x + a[0] * x[0] - a[1] / (x[1] ** 2 + 1),
        lambda x: (
            torch.from_numpy(a) @ x
            + torch.from_numpy(a[0]) * x[0]
            - torch.from_numpy(a[1]) / (x[1] ** 2 + 1)
        ),
        [(3, 3)],
    )


def test_max_splits_gradient_evenly_among_ties_like_amax():
    data = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [0.0, -1.0, 5.0]])
    for axis in (None, 0, 1):
        x, t = Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
        (x.max() if axis is None else x.max(axis=axis)).sum().backward()
        (t.amax() if axis is None else t.amax(dim=axis)).sum().backward()
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_family_is_finite_and_matches_torch_on_huge_inputs(fn):
    data = np.array([[1e300, -1e300, 0.0], [1000.0, 1000.0, 999.0], [-1e4, -1e4 - 1, -1e4 - 2]])
    x, t = Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    out, ref = getattr(x, fn)(), getattr(t, fn)(dim=-1)
    assert np.isfinite(out.data).all()
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    upstream = np.random.default_rng(0).standard_normal(data.shape)
    out.backward(upstream)
    ref.backward(torch.tensor(upstream))
    assert np.isfinite(x.grad).all()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_sigmoid_and_softplus_do_not_overflow():
    data = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    for fn in ("sigmoid", "softplus"):
        x, t = Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out = getattr(x, fn)()
            out.sum().backward()
        ref = t.sigmoid() if fn == "sigmoid" else F.softplus(t)
        ref.sum().backward()
        np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)


def test_gelu_tanh_form_is_close_to_exact_erf_gelu():
    """Our GELU is the tanh approximation; it stays within 1e-3 of torch's exact (erf) GELU."""
    data = np.linspace(-6, 6, 241)
    exact = F.gelu(torch.tensor(data)).numpy()
    assert np.max(np.abs(Tensor(data).gelu().data - exact)) < 1e-3
