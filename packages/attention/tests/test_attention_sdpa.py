"""softmax and scaled dot-product attention against torch: values and gradients, in float64."""

import math

import pytest
import torch
import torch.nn.functional as F

from attention import (
    causal_mask,
    log_softmax,
    naive_scaled_dot_product_attention,
    scaled_dot_product_attention,
    softmax,
)

TOL = {"atol": 1e-10, "rtol": 1e-8}  # float64


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# softmax


def test_softmax_matches_torch_values_and_gradients():
    x = rand(3, 4, 7).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    grad = rand(3, 4, 7, seed=1)
    for dim in (-1, 0, 1):
        ours, ref = softmax(x, dim), torch.softmax(x_ref, dim)
        torch.testing.assert_close(ours, ref, **TOL)
        (g_ours,) = torch.autograd.grad(ours, x, grad)
        (g_ref,) = torch.autograd.grad(ref, x_ref, grad)
        torch.testing.assert_close(g_ours, g_ref, **TOL)
    torch.testing.assert_close(log_softmax(x, -1), torch.log_softmax(x_ref, -1), **TOL)


def test_softmax_is_finite_for_huge_inputs():
    """exp(1e4) overflows even float64 (max about exp(709)); subtracting the max avoids it."""
    x = torch.tensor([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4]], dtype=torch.float32)
    assert not torch.isfinite(torch.exp(x[0])).all()  # the naive formula would give inf/inf
    p = softmax(x)
    assert torch.isfinite(p).all()
    e = math.e
    torch.testing.assert_close(p[0], torch.tensor([e / (e + 1), 1 / (e + 1), 0.0]))
    torch.testing.assert_close(p[1], torch.full((3,), 1 / 3))
    assert torch.isfinite(log_softmax(x)).all()


def test_fully_masked_row_gives_zeros_not_nan():
    x = rand(2, 5).requires_grad_()
    mask = torch.tensor([[True, False, True, True, False], [False] * 5])
    p = softmax(x.masked_fill(~mask, float("-inf")))
    assert torch.isnan(torch.softmax(x.masked_fill(~mask, float("-inf")), -1)[1]).all()  # torch
    assert torch.equal(p[1], torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(p[0].sum(), torch.tensor(1.0, dtype=torch.float64))
    assert (p[0][~mask[0]] == 0).all()
    p.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[1] == 0).all()


# ----------------------------------------------------------------------------------------------
# scaled dot-product attention

B, H, L, S, E, EV = 2, 3, 5, 6, 8, 4


def qkv(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return rand(B, H, L, E, seed=seed), rand(B, H, S, E, seed=seed + 1), rand(B, H, S, EV, seed=2)


def bool_mask(seed: int = 3, full_row: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, 1, L, S, generator=g) > 0.4  # True = attend, broadcast over heads
    mask[..., 0] = True  # every row keeps one key ...
    if full_row:
        mask[1, 0, 2] = False  # ... except this one, which sees nothing
    return mask


def float_mask(seed: int = 4) -> torch.Tensor:
    m = rand(L, S, seed=seed)  # arbitrary additive biases ...
    m[0, 3] = float("-inf")  # ... and a removed key
    return m


CASES = {
    "no mask": {},
    "boolean": {"attn_mask": bool_mask()},
    "float": {"attn_mask": float_mask()},
    "causal": {"is_causal": True},
    "fully masked row": {"attn_mask": bool_mask(full_row=True)},
    "float fully masked row": {"attn_mask": torch.full((L, S), float("-inf"), dtype=torch.float64)},
    "scale": {"scale": 0.37},
    "scale and causal": {"scale": 2.0, "is_causal": True},
}


@pytest.mark.parametrize("fused", [False, True], ids=["naive", "fused"])
@pytest.mark.parametrize("case", list(CASES))
def test_sdpa_matches_torch_outputs_and_gradients(case, fused):
    kwargs = CASES[case]
    q, k, v = (t.requires_grad_() for t in qkv())
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    ours = scaled_dot_product_attention(q, k, v, fused=fused, **kwargs)
    ref = F.scaled_dot_product_attention(q2, k2, v2, **kwargs)
    torch.testing.assert_close(ours, ref, **TOL)
    grad = rand(*ref.shape, seed=9)
    g_ours = torch.autograd.grad(ours, (q, k, v), grad)
    g_ref = torch.autograd.grad(ref, (q2, k2, v2), grad)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_fully_masked_query_outputs_zero():
    q, k, v = qkv()
    out, weights = scaled_dot_product_attention(
        q, k, v, attn_mask=bool_mask(full_row=True), return_weights=True
    )
    assert torch.equal(out[1, :, 2], torch.zeros(H, EV, dtype=torch.float64))
    assert torch.equal(weights[1, :, 2], torch.zeros(H, S, dtype=torch.float64))
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(H, L, dtype=torch.float64))


def test_weights_are_the_softmax_of_scaled_scores():
    """The equation itself: with one query and two keys, w = softmax([q.k1, q.k2] / sqrt(E))."""
    q = torch.tensor([[1.0, 2.0, 0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    v = torch.tensor([[10.0], [20.0]])
    out, w = scaled_dot_product_attention(q, k, v, return_weights=True)
    expected = torch.softmax(torch.tensor([2.0, 2.0]) / 2.0, -1)  # both dot products are 2
    torch.testing.assert_close(w[0], expected)
    torch.testing.assert_close(out, torch.tensor([[15.0]]))


def test_naive_and_fused_agree_in_float32_and_with_gqa():
    q = rand(B, 4, L, E).float()
    k, v = rand(B, 2, S, E, seed=1).float(), rand(B, 2, S, EV, seed=2).float()
    naive, _ = naive_scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    fused = scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(naive, ref)
    torch.testing.assert_close(fused, ref)


def test_causal_mask_offsets():
    assert torch.equal(causal_mask(3, 3), torch.ones(3, 3, dtype=torch.bool).tril())
    # 2 new queries after 3 cached keys: the last query sees all 5, the first all but the last
    assert causal_mask(2, 5, offset=3).tolist() == [
        [True, True, True, True, False],
        [True, True, True, True, True],
    ]


def test_dropout_keeps_the_expectation():
    q, k, v = (t.float() for t in qkv())
    torch.manual_seed(0)
    _, w = scaled_dot_product_attention(q, k, v, dropout_p=0.5, return_weights=True)
    assert ((w == 0).float().mean() - 0.5).abs() < 0.15
    outs = torch.stack(
        [scaled_dot_product_attention(q, k, v, dropout_p=0.3, fused=False) for _ in range(400)]
    )
    torch.testing.assert_close(
        outs.mean(0), scaled_dot_product_attention(q, k, v), atol=0.15, rtol=0
    )


def test_shape_errors_name_the_shapes():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"same last dimension, got q \(2, 3, 5, 8\)"):
        scaled_dot_product_attention(q, k[..., :5], v)
    with pytest.raises(ValueError, match="same length"):
        scaled_dot_product_attention(q, k, v[..., :4, :])
    with pytest.raises(ValueError, match="not both"):
        scaled_dot_product_attention(q, k, v, attn_mask=bool_mask(), is_causal=True)
    with pytest.raises(ValueError, match="fused=False"):
        scaled_dot_product_attention(q, k, v, return_weights=True, fused=True)
