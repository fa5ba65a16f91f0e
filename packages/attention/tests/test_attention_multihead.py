"""MultiHeadAttention against torch.nn.MultiheadAttention, and grouped-query attention."""

import pytest
import torch
from torch import nn

from attention import MultiHeadAttention

TOL = {"atol": 1e-10, "rtol": 1e-8}  # float64
E, HEADS, N, L, S = 12, 3, 2, 4, 5


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def twins(**kwargs) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(E, HEADS, dtype=torch.float64, **kwargs)
    with torch.no_grad():  # torch zeroes the biases at init; make them matter
        for name, p in ref.named_parameters():
            if "bias" in name:
                p.normal_()
    return MultiHeadAttention.from_torch(ref), ref


def inputs(batch_first: bool, kdim: int = E, vdim: int = E, unbatched: bool = False):
    shapes = [(L, E), (S, kdim), (S, vdim)]
    if not unbatched:
        shapes = [(N, t, d) if batch_first else (t, N, d) for t, d in shapes]
    return [rand(*shape, seed=i).requires_grad_() for i, shape in enumerate(shapes)]


def padding_mask(as_float: bool = False) -> torch.Tensor:
    mask = torch.zeros(N, S, dtype=torch.bool)
    mask[0, -2:] = True  # torch's convention: True = padding, do not attend
    if as_float:
        return torch.zeros(N, S, dtype=torch.float64).masked_fill(mask, float("-inf"))
    return mask


def attention_mask(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    if kind == "bool":
        mask = torch.rand(L, S, generator=g) > 0.6  # True = do not attend
        mask[:, 0] = False
        return mask
    if kind == "bool3d":  # one mask per (batch, head): (N * heads, L, S)
        mask = torch.rand(N * HEADS, L, S, generator=g) > 0.6
        mask[..., 0] = False
        return mask
    return rand(L, S, seed=8)  # float: added to the scores


CASES = {
    "plain": {},
    "key padding": {"key_padding_mask": padding_mask()},
    "float key padding": {"key_padding_mask": padding_mask(as_float=True)},
    "bool attn_mask": {"attn_mask": attention_mask("bool")},
    "per-head bool attn_mask": {"attn_mask": attention_mask("bool3d")},
    "float attn_mask": {"attn_mask": attention_mask("float")},
    "padding and attn_mask": {
        "key_padding_mask": padding_mask(),
        "attn_mask": attention_mask("bool"),
    },
    "per-head weights": {"key_padding_mask": padding_mask(), "average_attn_weights": False},
    "no weights": {"need_weights": False, "attn_mask": attention_mask("float")},
}


def check_parity(ours, ref, args, kwargs):
    args2 = [a.detach().clone().requires_grad_() for a in args]
    out, w = ours(*args, **kwargs)
    out_ref, w_ref = ref(*args2, **kwargs)
    torch.testing.assert_close(out, out_ref, **TOL)
    if w_ref is None:
        assert w is None
    else:
        torch.testing.assert_close(w, w_ref, **TOL)
    grad = rand(*out.shape, seed=11)
    ours_params = [ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight, ours.out_proj.weight]
    if ref.in_proj_weight is not None:
        ref_params = [*ref.in_proj_weight.chunk(3), ref.out_proj.weight]
    else:
        ref_params = [ref.q_proj_weight, ref.k_proj_weight, ref.v_proj_weight, ref.out_proj.weight]
    g_ours = torch.autograd.grad(out, [*args, *ours_params], grad)
    ref_leaves = [ref.in_proj_weight] if ref.in_proj_weight is not None else ref_params[:3]
    g_ref = torch.autograd.grad(out_ref, [*args2, *ref_leaves, ref.out_proj.weight], grad)
    if ref.in_proj_weight is not None:  # split torch's stacked (3E, E) gradient
        g_ref = (*g_ref[:3], *g_ref[3].chunk(3), g_ref[4])
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
@pytest.mark.parametrize("case", list(CASES))
def test_mha_matches_torch(case, batch_first):
    ours, ref = twins(batch_first=batch_first)
    check_parity(ours, ref, inputs(batch_first), CASES[case])


@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
def test_mha_with_kdim_vdim_matches_torch(batch_first):
    ours, ref = twins(batch_first=batch_first, kdim=7, vdim=5)
    assert ref.in_proj_weight is None  # torch keeps three separate matrices then
    kwargs = {"key_padding_mask": padding_mask(as_float=True), "attn_mask": attention_mask("f")}
    check_parity(ours, ref, inputs(batch_first, kdim=7, vdim=5), kwargs)


def test_mha_without_bias_and_unbatched_inputs():
    ours, ref = twins(bias=False)
    assert ours.q_proj.bias is None
    check_parity(ours, ref, inputs(False, unbatched=True), {"attn_mask": attention_mask("bool")})


def test_is_causal_matches_torch_with_a_causal_mask():
    ours, ref = twins(batch_first=True)
    x = rand(N, L, E)
    causal = torch.ones(L, L, dtype=torch.bool).triu(1)  # torch's convention: True = hidden
    out, _ = ours(x, x, x, is_causal=True, need_weights=False)  # ours builds the mask itself
    out_ref, _ = ref(x, x, x, attn_mask=causal, is_causal=True, need_weights=False)
    torch.testing.assert_close(out, out_ref, **TOL)
    out_hint, _ = ours(x, x, x, attn_mask=causal, is_causal=True)
    torch.testing.assert_close(out_hint, out_ref, **TOL)


def test_from_torch_copies_the_module_state():
    ref = nn.MultiheadAttention(E, HEADS, dropout=0.25, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(ref)
    assert (ours.dropout, ours.batch_first, ours.training) == (0.25, True, False)
    with pytest.raises(NotImplementedError):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(E, HEADS, add_bias_kv=True))
    with pytest.raises(NotImplementedError):
        MultiHeadAttention(E, HEADS, add_bias_kv=True)


def test_bad_shapes_and_head_counts_are_explained():
    with pytest.raises(ValueError, match="embed_dim 12 is not divisible by num_heads 5"):
        MultiHeadAttention(12, 5)
    with pytest.raises(ValueError, match="multiple of num_kv_heads 4"):
        MultiHeadAttention(12, 6, num_kv_heads=4)
    mha = MultiHeadAttention(E, HEADS, batch_first=True)
    with pytest.raises(ValueError, match="query has 5 features, this attention expects 12"):
        mha(torch.randn(2, 3, 5), torch.randn(2, 3, 5), torch.randn(2, 3, 5))


# ----------------------------------------------------------------------------------------------
# Grouped-query and multi-query attention


def test_gqa_with_all_kv_heads_is_standard_attention():
    torch.manual_seed(1)
    gqa = MultiHeadAttention(E, HEADS, num_kv_heads=HEADS, batch_first=True, dtype=torch.float64)
    ref = nn.MultiheadAttention(E, HEADS, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(
            torch.cat([gqa.q_proj.weight, gqa.k_proj.weight, gqa.v_proj.weight])
        )
        ref.in_proj_bias.copy_(torch.cat([gqa.q_proj.bias, gqa.k_proj.bias, gqa.v_proj.bias]))
        ref.out_proj.load_state_dict(gqa.out_proj.state_dict())
    x, mem = rand(N, L, E), rand(N, S, E, seed=1)
    out, w = gqa(x, mem, mem, key_padding_mask=padding_mask())
    out_ref, w_ref = ref(x, mem, mem, key_padding_mask=padding_mask())
    torch.testing.assert_close(out, out_ref, **TOL)
    torch.testing.assert_close(w, w_ref, **TOL)


@pytest.mark.parametrize("kv_heads", [1, 2], ids=["multi-query", "grouped-query"])
@pytest.mark.parametrize("need_weights", [True, False])
def test_gqa_equals_mha_with_repeated_kv_heads(kv_heads, need_weights):
    torch.manual_seed(2)
    gqa = MultiHeadAttention(8, 4, num_kv_heads=kv_heads, batch_first=True, dtype=torch.float64)
    assert gqa.k_proj.weight.shape == (kv_heads * 2, 8)  # fewer key/value parameters
    with torch.no_grad():
        for p in gqa.parameters():
            p.normal_()
    full = gqa.to_multi_head()
    x, mem = rand(N, L, 8), rand(N, S, 8, seed=1)
    mask = torch.zeros(N, S, dtype=torch.bool)
    mask[1, -1] = True
    kwargs = {"key_padding_mask": mask, "need_weights": need_weights}
    out, w = gqa(x, mem, mem, **kwargs)
    out_full, w_full = full(x, mem, mem, **kwargs)
    torch.testing.assert_close(out, out_full, **TOL)
    if need_weights:
        torch.testing.assert_close(w, w_full, **TOL)
    x32 = x.float()
    gqa32, full32 = gqa.float(), full.float()
    out32, _ = gqa32(x32, x32, x32, is_causal=True, need_weights=False)
    out32_full, _ = full32(x32, x32, x32, is_causal=True, need_weights=False)
    torch.testing.assert_close(out32, out32_full)


# ----------------------------------------------------------------------------------------------
# The lower-level path a KV cache uses


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_attend_with_cached_keys_equals_full_causal_attention(kv_heads):
    """Feed tokens one at a time, keeping projected keys/values: same as one causal pass."""
    torch.manual_seed(3)
    mha = MultiHeadAttention(16, 4, num_kv_heads=kv_heads, batch_first=True, dtype=torch.float64)
    x = rand(N, 6, 16)
    full, _ = mha(x, x, x, is_causal=True, need_weights=False)
    cache_k = cache_v = None
    outs = []
    for t in range(6):
        xt = x[:, t : t + 1]  # (N, 1, E)
        q = mha.project_query(xt)  # (N, h, 1, d)
        k, v = mha.project_key_value(xt, xt)  # (N, h_kv, 1, d)
        cache_k = k if cache_k is None else torch.cat([cache_k, k], dim=2)  # (N, h_kv, t+1, d)
        cache_v = v if cache_v is None else torch.cat([cache_v, v], dim=2)
        out, _ = mha.attend(q, cache_k, cache_v, is_causal=True)  # (N, 1, E)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, **TOL)
    # two new tokens at once after four cached: the causal mask lines up with the newest keys
    q = mha.project_query(x[:, 4:])
    k, v = mha.project_key_value(x, x)
    out, w = mha.attend(q, k, v, is_causal=True, need_weights=True)
    torch.testing.assert_close(out, full[:, 4:], **TOL)
    assert (w[:, 0, 5] == 0).all() and (w[:, 1, 5] > 0).all()
