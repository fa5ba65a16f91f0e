"""The engine's contract: backward order and accumulation, grad mode, dtypes, errors, viz.

Gradients of composite functions are also checked against central finite differences, which
need no reference library: (f(x + h) - f(x - h)) / 2h has error O(h^2).
"""

import shutil

import numpy as np
import pytest
import torch

import micrograd.viz
from micrograd import Tensor, concatenate, is_grad_enabled, no_grad, render_png, stack, to_dot

# -------------------------------------------------------------------- backward pass


def test_backward_through_a_100_000_op_chain_does_not_recurse():
    x = Tensor(0.5, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0  # 100,000 ops deep; a recursive sort would hit the recursion limit
    y.backward()
    assert x.grad == pytest.approx(1.0)


def test_a_node_used_many_times_sums_its_gradients_before_passing_them_on():
    """Diamond graph: y = a*a + a*3 with a = x*2; dy/dx = (2a + 3) * 2."""
    x = Tensor(1.5, requires_grad=True)
    a = x * 2
    (a * a + a * 3).backward()
    assert x.grad == pytest.approx((2 * 3.0 + 3) * 2)


def test_gradients_accumulate_across_backward_calls_until_zeroed():
    data = np.array([0.3, -1.2, 2.0])
    x, t = Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    y, ref = (x.tanh() * x).sum(), (t.tanh() * t).sum()
    y.backward()
    ref.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    ref.backward()
    np.testing.assert_allclose(x.grad, 2 * first, rtol=1e-14)
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)
    x.zero_grad()
    assert x.grad is None


def test_only_leaves_keep_gradients():
    x = Tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 3
    hidden.sum().backward()
    assert hidden.grad is None
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_leaf_gradients_are_private_copies():
    """`a + b` hands the same upstream array to both inputs; their .grad must not alias."""
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0], requires_grad=True)
    (a + b).backward(np.array([1.0, 1.0]))
    a.grad *= 10
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_non_scalar_root_needs_an_explicit_gradient():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"gradient shape \(3,\)"):
        y.backward(np.ones(3))
    y.backward(np.full((2, 3), 0.5))
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))


def test_backward_without_a_graph_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0, 2.0]).sum().backward()


# -------------------------------------------------------------------- grad mode and detach


def test_no_grad_builds_no_graph_and_restores_the_mode():
    w = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = (w * 2).sum()
        with no_grad():
            pass
        assert not is_grad_enabled()  # the inner block restored the outer mode
    assert is_grad_enabled()
    assert not y.requires_grad and y._parents == ()
    with pytest.raises(ZeroDivisionError), no_grad():
        raise ZeroDivisionError
    assert is_grad_enabled()


def test_detach_shares_data_and_stops_gradients():
    data = np.array([0.5, -2.0, 3.0])
    x = Tensor(data, requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.data is x.data
    (d * x).sum().backward()  # d is a constant here: d/dx (c * x) = c
    np.testing.assert_array_equal(x.grad, data)


def test_tensors_without_grad_build_no_graph():
    a, b = Tensor([1.0, 2.0]), Tensor([3.0, 4.0])
    out = (a * b).exp().sum()
    assert not out.requires_grad and out._parents == () and out._backward is None


# -------------------------------------------------------------------- dtypes


def test_default_dtype_is_float64_and_float_arrays_keep_theirs():
    assert Tensor([1, 2]).dtype == np.float64
    assert Tensor(3).dtype == np.float64
    assert Tensor(np.arange(3)).dtype == np.float64  # integers become float64
    assert Tensor(np.ones(2, dtype=np.float32)).dtype == np.float32
    assert Tensor([1, 2], dtype=np.float32).dtype == np.float32


def test_tensor_copies_its_input():
    data = np.ones(3)
    x = Tensor(data)
    data[0] = 5.0
    assert x.data[0] == 1.0


def test_float32_is_preserved_through_ops_and_gradients():
    rng = np.random.default_rng(0)
    f32 = np.float32
    x = Tensor(rng.standard_normal((4, 3)), requires_grad=True, dtype=f32)
    w = Tensor(rng.standard_normal((3, 5)), requires_grad=True, dtype=f32)
    e = Tensor(rng.standard_normal((6, 5)), requires_grad=True, dtype=f32)
    h = (x @ w + 0.5).gelu() * 0.5 - 1  # Python scalars must not promote to float64
    h = h / 3.0 + 2.0 ** h.tanh() + h.sigmoid().sqrt().log() + h.relu() ** 2 + h.sin() * h.cos()
    h = h.softmax() + h.log_softmax(axis=0) + h.max(axis=1, keepdims=True) + h.exp().mean()
    h = concatenate([h, e[np.array([0, 3])]], axis=0) + stack([h[0], h[1]]).sum(axis=0)
    out = h.reshape(-1).T.sum()
    for t in (h, out):
        assert t.dtype == np.float32
    out.backward()
    for leaf in (x, w, e):
        assert leaf.grad.dtype == np.float32


# -------------------------------------------------------------------- errors name the shapes


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: Tensor(np.ones((2, 3))) + Tensor(np.ones(4)), r"add: .*\(2, 3\).*\(4,\)"),
        (lambda: Tensor(np.ones((2, 3))) * np.ones((3, 2)), r"mul: .*\(2, 3\).*\(3, 2\)"),
        (lambda: Tensor(np.ones((2, 3))) / Tensor(np.ones(2)), r"div: .*\(2, 3\).*\(2,\)"),
        (
            lambda: Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5))),
            r"matmul: .*\(2, 3\).*\(4, 5\)",
        ),
        (lambda: Tensor(np.ones(6)).reshape(4, 2), r"reshape: .*\(6,\).*\(4, 2\)"),
        (
            lambda: concatenate([Tensor(np.ones((2, 3))), Tensor(np.ones((3, 2)))], axis=0),
            r"concatenate: .*\(2, 3\).*\(3, 2\)",
        ),
        (lambda: stack([Tensor(np.ones(2)), Tensor(np.ones(3))]), r"stack: .*\(2,\).*\(3,\)"),
    ],
)
def test_shape_errors_name_the_op_and_both_shapes(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


# -------------------------------------------------------------------- finite differences


def numerical_grad(f, x, h=1e-6):
    """Central differences, one coordinate at a time."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f(x)
        x[i] = old - h
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


COMPOSITES = {
    "mlp_layer": lambda x, w: ((x @ w).tanh() * (x @ w).sigmoid()).sum(),
    "logsumexp_ratio": lambda x, w: (x.log_softmax() * (w[:3, :2] ** 2 + 1).T.mean()).sum(),
    "norm_like": lambda x, w: (
        (x / ((x * x).mean(axis=-1, keepdims=True) + 1e-3).sqrt() @ w).max(axis=0).sum()
    ),
    "embed_and_pool": lambda x, w: (
        concatenate([x[np.array([1, 1, 0])], w.T[:1]], axis=0)
        .gelu()
        .mean(axis=0)
        .softmax()
        .log()
        .sum()
    ),
}


@pytest.mark.parametrize("name", list(COMPOSITES))
def test_gradients_match_central_differences(name):
    f = COMPOSITES[name]
    rng = np.random.default_rng(1)
    x0, w0 = rng.standard_normal((2, 4)), rng.standard_normal((4, 3))
    x, w = Tensor(x0, requires_grad=True), Tensor(w0, requires_grad=True)
    f(x, w).backward()
    num_x = numerical_grad(lambda a: f(Tensor(a), Tensor(w0)).item(), x0.copy())
    num_w = numerical_grad(lambda a: f(Tensor(x0), Tensor(a)).item(), w0.copy())
    np.testing.assert_allclose(x.grad, num_x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(w.grad, num_w, rtol=1e-6, atol=1e-8)


# -------------------------------------------------------------------- visualisation


def small_graph():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    w = Tensor(np.ones((3, 4)), requires_grad=True)
    return (x @ w).relu().sum()


def test_to_dot_lists_every_op_and_edge():
    dot = to_dot(small_graph())
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for op in ("matmul", "relu", "sum", "leaf"):
        assert op in dot
    assert "2x4" in dot  # the matmul's output shape
    assert dot.count("->") == 4  # x, w -> matmul -> relu -> sum


def test_render_png_without_graphviz_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(micrograd.viz.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="graphviz"):
        render_png(small_graph(), tmp_path / "g.png")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_render_png_writes_a_png(tmp_path):
    path = render_png(small_graph(), tmp_path / "g.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
