"""Norms, the feed-forward network and the positional encodings against torch and by hand."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transformer import (
    FeedForward,
    FusedLayerNorm,
    LayerNorm,
    LearnedPositionalEmbedding,
    RMSNorm,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    plot_sinusoidal,
    sinusoidal_table,
)

f64 = torch.float64


def _randomize(module: nn.Module) -> nn.Module:
    """Weights away from their ones/zeros init, so that a swapped weight and bias would show."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    return module


def _check_output_and_grads(ours, theirs, x, pairs):
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    out1, out2 = ours(x1), theirs(x2)
    torch.testing.assert_close(out1, out2)
    g = torch.randn_like(out1)
    out1.backward(g)
    out2.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad)
    for a, b in pairs:
        torch.testing.assert_close(a.grad, b.grad)


# ----------------------------------------------------------------------------------------------
# Norms


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        (8, {}),
        ((3, 8), {}),
        (8, {"bias": False}),
        (8, {"elementwise_affine": False}),
        (8, {"eps": 1e-2}),
    ],
)
def test_layernorm_matches_torch(shape, kwargs):
    torch.manual_seed(0)
    theirs = _randomize(nn.LayerNorm(shape, dtype=f64, **kwargs))
    ours = LayerNorm.from_torch(theirs)
    x = torch.randn(4, 5, 3, 8, dtype=f64) * 3 + 1
    pairs = [(getattr(ours, n), getattr(theirs, n)) for n in ("weight", "bias")]
    pairs = [(a, b) for a, b in pairs if a is not None]
    _check_output_and_grads(ours, theirs, x, pairs)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


@pytest.mark.parametrize("shape, eps", [(8, None), (8, 1e-6), ((3, 8), 1e-5)])
def test_rmsnorm_matches_torch(shape, eps):
    torch.manual_seed(0)
    theirs = _randomize(nn.RMSNorm(shape, eps=eps, dtype=f64))
    ours = RMSNorm.from_torch(theirs)
    x = torch.randn(4, 5, 3, 8, dtype=f64) * 3 + 1
    _check_output_and_grads(ours, theirs, x, [(ours.weight, theirs.weight)])


def test_fused_layernorm_equals_the_explicit_one():
    """FusedLayerNorm (torch's kernel) and LayerNorm (the formula): same outputs and gradients."""
    torch.manual_seed(0)
    explicit = LayerNorm(8, eps=1e-12, dtype=f64)
    with torch.no_grad():
        explicit.weight.normal_()
        explicit.bias.normal_()
    fused = FusedLayerNorm(8, eps=1e-12, dtype=f64)
    fused.load_state_dict(explicit.state_dict())
    x = torch.randn(4, 5, 8, dtype=f64, requires_grad=True) * 3 + 1
    g = torch.randn(4, 5, 8, dtype=f64)
    a, b = explicit(x), fused(x)
    torch.testing.assert_close(b, a)
    grads_a = torch.autograd.grad(a, [x, explicit.weight, explicit.bias], g)
    grads_b = torch.autograd.grad(b, [x, fused.weight, fused.bias], g)
    for got, want in zip(grads_b, grads_a, strict=True):
        torch.testing.assert_close(got, want)
    assert fused(torch.randn(2, 8).bfloat16()).dtype == torch.bfloat16


def test_norm_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"LayerNorm\(8,\) got an input of shape \(2, 7\)"):
        LayerNorm(8)(torch.randn(2, 7))


def test_norms_keep_bfloat16():
    x = torch.randn(2, 3, 16).bfloat16()
    assert LayerNorm(16)(x).dtype == torch.bfloat16
    assert RMSNorm(16)(x).dtype == torch.bfloat16


# ----------------------------------------------------------------------------------------------
# Feed-forward


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_feedforward_matches_two_linears(activation):
    torch.manual_seed(0)
    act = {"relu": nn.ReLU(), "gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh")}
    theirs = nn.Sequential(
        nn.Linear(8, 32, dtype=f64), act[activation], nn.Linear(32, 8, dtype=f64)
    )
    ours = FeedForward(8, 32, activation, dtype=f64)
    ours.fc_in.load_state_dict(theirs[0].state_dict())
    ours.fc_out.load_state_dict(theirs[2].state_dict())
    x = torch.randn(3, 5, 8, dtype=f64)
    _check_output_and_grads(ours, theirs, x, [(ours.fc_in.weight, theirs[0].weight)])


def test_swiglu_is_llamas_mlp():
    """Llama's MLP: down_proj(silu(gate_proj(x)) * up_proj(x)), no biases."""
    torch.manual_seed(0)
    ff = FeedForward(8, 24, "swiglu", bias=False, dtype=f64)
    assert sorted(n for n, _ in ff.named_parameters()) == [
        "down.weight",
        "gate.weight",
        "up.weight",
    ]
    x = torch.randn(2, 4, 8, dtype=f64)
    expected = (F.silu(x @ ff.gate.weight.T) * (x @ ff.up.weight.T)) @ ff.down.weight.T
    torch.testing.assert_close(ff(x), expected)


def test_feedforward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="got 'tanh'"):
        FeedForward(8, 16, "tanh")


# ----------------------------------------------------------------------------------------------
# Positions


def test_sinusoidal_table_is_the_papers_formula():
    d, n = 10, 30
    table = sinusoidal_table(n, d)
    for pos in range(n):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoidal_table(4, 7).shape == (4, 7)  # odd widths work too


def test_sinusoidal_adds_positions_with_offset():
    pe = SinusoidalPositionalEncoding(16, max_len=20)
    x = torch.zeros(2, 5, 16)
    torch.testing.assert_close(pe(x, offset=3)[1], sinusoidal_table(20, 16)[3:8])
    assert not list(pe.parameters()) and not pe.state_dict()  # nothing to train, nothing saved
    with pytest.raises(ValueError, match="max_len is 20"):
        pe(torch.zeros(1, 21, 16))


def test_learned_positions_are_an_embedding_table():
    pos = LearnedPositionalEmbedding(12, 8)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(pos(x, offset=2), x + pos.weight[2:7])
    assert [n for n, _ in pos.named_parameters()] == ["weight"]


def test_sinusoidal_png_is_written(tmp_path):
    path = plot_sinusoidal(tmp_path / "sinusoidal.png", n_positions=50, d_model=64)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _rope_complex(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0):
    """An independent RoPE: treat (x_i, x_{i + d/2}) as the complex number x_i + j x_{i + d/2}
    and multiply it by e^{j m theta_i}, theta_i = base^(-2i/d)."""
    d = x.size(-1)
    half = d // 2
    theta = base ** (-2.0 * torch.arange(half, dtype=f64) / d)  # (d/2,)
    angles = positions.to(f64).unsqueeze(-1) * theta  # (T, d/2)
    z = torch.complex(x[..., :half].to(f64), x[..., half:].to(f64))  # (..., T, d/2)
    z = z * torch.polar(torch.ones_like(angles), angles)
    return torch.cat([z.real, z.imag], dim=-1).to(x.dtype)


def test_rope_matches_complex_rotation():
    torch.manual_seed(0)
    rope = RotaryEmbedding(16, max_seq_len=64)
    q, k = torch.randn(2, 3, 10, 16), torch.randn(2, 3, 10, 16)
    q_rot, k_rot = rope(q, k, offset=5)
    positions = torch.arange(5, 15)
    torch.testing.assert_close(q_rot, _rope_complex(q, positions), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k_rot, _rope_complex(k, positions), atol=1e-5, rtol=1e-5)
    # beyond the cache the angles are computed on the fly, and agree
    far = rope.rotate(q, torch.arange(60, 70))
    torch.testing.assert_close(far, _rope_complex(q, torch.arange(60, 70)), atol=1e-4, rtol=1e-4)


def test_rope_scores_depend_only_on_relative_position():
    """q_m . k_n = Re(q z^m conj(k z^n)) = Re(q conj(k) z^(m-n)): only m - n matters."""
    torch.manual_seed(0)
    rope = RotaryEmbedding(32, max_seq_len=256)
    q, k = torch.randn(32), torch.randn(32)

    def score(m: int, n: int) -> float:
        qm = rope.rotate(q.view(1, 1, 1, -1), torch.tensor([m]))
        kn = rope.rotate(k.view(1, 1, 1, -1), torch.tensor([n]))
        return float((qm * kn).sum())

    for offset in (0, 3, -7):
        values = [score(m, m - offset) for m in (10, 40, 200)]
        assert values == pytest.approx([values[0]] * 3, abs=1e-4)
    assert score(10, 10) == pytest.approx(float(q @ k), abs=1e-5)  # same position: no rotation
    assert abs(score(10, 7) - score(10, 10)) > 1e-3  # and it does change with the distance


def test_rope_offset_is_what_a_kv_cache_needs():
    torch.manual_seed(0)
    rope = RotaryEmbedding(8)
    q = torch.randn(1, 2, 6, 8)
    full, _ = rope(q, q)
    last, _ = rope(q[:, :, 4:], q[:, :, 4:], offset=4)
    torch.testing.assert_close(last, full[:, :, 4:])
    per_row = rope.rotate(q.expand(2, -1, -1, -1), torch.tensor([[0, 1, 2, 3, 4, 5]] * 2))
    torch.testing.assert_close(per_row[0], full[0])


def test_rope_matches_transformers_llama():
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama import modeling_llama

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=64, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128
    )
    hf_rope = modeling_llama.LlamaRotaryEmbedding(config=config)
    q, k = torch.randn(2, 4, 7, 16), torch.randn(2, 4, 7, 16)
    position_ids = torch.arange(3, 10).unsqueeze(0).expand(2, -1)  # (B, T)
    cos, sin = hf_rope(q, position_ids)
    hf_q, hf_k = modeling_llama.apply_rotary_pos_emb(q, k, cos, sin)
    ours_q, ours_k = RotaryEmbedding(16, max_seq_len=128)(q, k, offset=3)
    torch.testing.assert_close(ours_q, hf_q, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_k, hf_k, atol=1e-5, rtol=1e-5)
