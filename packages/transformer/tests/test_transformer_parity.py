"""Encoder/decoder layers, stacks and the full Transformer against torch, weights copied.

Everything in float64 with dropout 0, in training mode (so torch takes its plain path, not the
nested-tensor fast path), comparing outputs, the gradients of the inputs and the gradient of
every parameter, for both norm_first settings, relu and gelu, and with padding and causal masks.
"""

import re

import pytest
import torch
from torch import nn

from transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    generate_square_subsequent_mask,
    padding_mask,
)

f64 = torch.float64
D, H, FF = 16, 4, 32
B, S, T = 3, 6, 5
SETTINGS = [(nf, act) for nf in (False, True) for act in ("relu", "gelu")]
MASKS = ["none", "padding", "causal", "padding+causal"]

# torch's own notes about its fast path and mixed mask types are not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _randomize_norms(module: nn.Module) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))


def torch_named_grads(ours: nn.Module) -> dict[str, torch.Tensor]:
    """Our parameter gradients under torch's names (q/k/v stacked into in_proj_*)."""
    out, qkv = {}, {}
    for name, p in ours.named_parameters():
        name = name.replace("ff.fc_in", "linear1").replace("ff.fc_out", "linear2")
        name = name.replace("cross_attn", "multihead_attn")
        match = re.match(r"(.*)\.([qkv])_proj\.(weight|bias)$", name)
        if match:
            qkv.setdefault((match[1], match[3]), {})[match[2]] = p.grad
        else:
            out[name] = p.grad
    for (prefix, kind), parts in qkv.items():
        out[f"{prefix}.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def _compare_grads(ours: nn.Module, theirs: nn.Module) -> None:
    expected = {n: p.grad for n, p in theirs.named_parameters()}
    got = torch_named_grads(ours)
    assert sorted(got) == sorted(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], msg=lambda m, n=name: f"{n}: {m}")


def _lengths() -> torch.Tensor:
    return torch.tensor([S, S - 2, 2])


def _masks(kind: str, length: int, lengths: torch.Tensor):
    """(torch's kwargs, our kwargs) for a layer's self-attention; ours get is_causal alone."""
    padding = padding_mask(lengths, length) if "padding" in kind else None
    causal = generate_square_subsequent_mask(length, dtype=f64) if "causal" in kind else None
    return padding, causal


@pytest.mark.parametrize("norm_first, activation", SETTINGS)
@pytest.mark.parametrize("masks", MASKS)
def test_encoder_layer_matches_torch(norm_first, activation, masks):
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(
        D, H, FF, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first,
        dtype=f64,
    )  # fmt: skip
    _randomize_norms(theirs)
    ours = TransformerEncoderLayer.from_torch(theirs)
    padding, causal = _masks(masks, S, _lengths())
    x = torch.randn(B, S, D, dtype=f64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_theirs = theirs(x2, src_mask=causal, src_key_padding_mask=padding,
                        is_causal=causal is not None)  # fmt: skip
    out_ours = ours(x1, src_key_padding_mask=padding, is_causal=causal is not None)
    torch.testing.assert_close(out_ours, out_theirs)
    grad = torch.randn_like(out_ours)
    out_ours.backward(grad)
    out_theirs.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad)
    _compare_grads(ours, theirs)
    # the explicit float mask gives the same as is_causal
    if causal is not None:
        again = ours(x, src_mask=causal, src_key_padding_mask=padding)
        torch.testing.assert_close(again, out_theirs.detach())


@pytest.mark.parametrize("norm_first, activation", SETTINGS)
@pytest.mark.parametrize("masks", MASKS)
def test_decoder_layer_matches_torch(norm_first, activation, masks):
    torch.manual_seed(1)
    theirs = nn.TransformerDecoderLayer(
        D, H, FF, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first,
        dtype=f64,
    )  # fmt: skip
    _randomize_norms(theirs)
    ours = TransformerDecoderLayer.from_torch(theirs)
    tgt_pad, causal = _masks(masks, T, torch.tensor([T, T - 1, 3]))
    mem_pad = padding_mask(_lengths(), S) if "padding" in masks else None
    tgt, mem = torch.randn(B, T, D, dtype=f64), torch.randn(B, S, D, dtype=f64)
    t1, t2 = tgt.clone().requires_grad_(), tgt.clone().requires_grad_()
    m1, m2 = mem.clone().requires_grad_(), mem.clone().requires_grad_()
    out_theirs = theirs(
        t2, m2, tgt_mask=causal, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad,
        tgt_is_causal=causal is not None,
    )  # fmt: skip
    out_ours = ours(
        t1, m1, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad,
        tgt_is_causal=causal is not None,
    )  # fmt: skip
    torch.testing.assert_close(out_ours, out_theirs)
    grad = torch.randn_like(out_ours)
    out_ours.backward(grad)
    out_theirs.backward(grad)
    torch.testing.assert_close(t1.grad, t2.grad)
    torch.testing.assert_close(m1.grad, m2.grad)
    _compare_grads(ours, theirs)


@pytest.mark.parametrize("norm_first, activation", SETTINGS)
def test_stacks_match_torch(norm_first, activation):
    torch.manual_seed(2)
    kwargs = {"dropout": 0.0, "activation": activation, "norm_first": norm_first, "dtype": f64}
    enc_t = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(D, H, FF, batch_first=True, **kwargs), 2,
        norm=nn.LayerNorm(D, dtype=f64),
    )  # fmt: skip
    dec_t = nn.TransformerDecoder(
        nn.TransformerDecoderLayer(D, H, FF, batch_first=True, **kwargs), 2
    )
    for layer in [*enc_t.layers, *dec_t.layers]:  # torch's clones start equal: make them differ
        for p in layer.parameters():
            nn.init.normal_(p, std=0.3) if p.dim() > 1 else None
    enc, dec = TransformerEncoder.from_torch(enc_t), TransformerDecoder.from_torch(dec_t)
    src, tgt = torch.randn(B, S, D, dtype=f64), torch.randn(B, T, D, dtype=f64)
    pad = padding_mask(_lengths(), S)
    causal = generate_square_subsequent_mask(T, dtype=f64)
    mem_t = enc_t(src, src_key_padding_mask=pad)
    mem = enc(src, src_key_padding_mask=pad)
    torch.testing.assert_close(mem, mem_t)
    out_t = dec_t(tgt, mem_t, tgt_mask=causal, memory_key_padding_mask=pad, tgt_is_causal=True)
    out = dec(tgt, mem, tgt_is_causal=True, memory_key_padding_mask=pad)
    torch.testing.assert_close(out, out_t)
    (out * out).sum().backward()
    (out_t * out_t).sum().backward()
    _compare_grads(enc, enc_t)
    _compare_grads(dec, dec_t)


@pytest.mark.parametrize("norm_first, activation", SETTINGS)
def test_transformer_matches_torch(norm_first, activation):
    torch.manual_seed(3)
    theirs = nn.Transformer(
        D, H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF, dropout=0.0,
        activation=activation, batch_first=True, norm_first=norm_first, dtype=f64,
    )  # fmt: skip
    _randomize_norms(theirs)
    ours = Transformer.from_torch(theirs)
    src, tgt = torch.randn(B, S, D, dtype=f64), torch.randn(B, T, D, dtype=f64)
    src_pad = padding_mask(_lengths(), S)
    tgt_pad = padding_mask(torch.tensor([T, 2, 4]), T)
    causal = Transformer.generate_square_subsequent_mask(T, dtype=f64)
    torch.testing.assert_close(causal, nn.Transformer.generate_square_subsequent_mask(T, dtype=f64))
    masks = {"src_key_padding_mask": src_pad, "tgt_key_padding_mask": tgt_pad,
             "memory_key_padding_mask": src_pad}  # fmt: skip
    out_t = theirs(src, tgt, tgt_mask=causal, tgt_is_causal=True, **masks)
    out = ours(src, tgt, tgt_is_causal=True, **masks)
    torch.testing.assert_close(out, out_t)
    out.pow(2).sum().backward()
    out_t.pow(2).sum().backward()
    _compare_grads(ours, theirs)


def test_sequence_first_layout_matches_torch():
    """batch_first=False: (T, B, C) in and out, as torch's default."""
    torch.manual_seed(4)
    theirs = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, dtype=f64)  # batch_first=False
    ours = TransformerEncoderLayer.from_torch(theirs)
    assert not ours.batch_first
    x = torch.randn(S, B, D, dtype=f64)
    pad = padding_mask(_lengths(), S)
    torch.testing.assert_close(
        ours(x, src_key_padding_mask=pad), theirs(x, src_key_padding_mask=pad)
    )
    x2 = torch.randn(S, D, dtype=f64)  # unbatched
    torch.testing.assert_close(ours(x2), theirs(x2))


def test_eval_mode_fast_path_agrees_on_real_tokens():
    """In eval mode torch may take its fast path (padded rows become 0): real tokens agree."""
    torch.manual_seed(5)
    theirs = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(D, H, FF, batch_first=True, dtype=f64), 2
    ).eval()
    ours = TransformerEncoder.from_torch(theirs)
    assert not ours.training
    x = torch.randn(B, S, D, dtype=f64)
    pad = padding_mask(_lengths(), S)
    with torch.no_grad():
        a, b = ours(x, src_key_padding_mask=pad), theirs(x, src_key_padding_mask=pad)
    torch.testing.assert_close(a[~pad], b[~pad])


def test_defaults_are_batch_first_and_torch_like():
    layer = TransformerEncoderLayer(D, H)
    assert layer.batch_first and not layer.norm_first
    assert layer.ff.fc_in.out_features == 2048 and layer.dropout1.p == 0.1
    model = Transformer(d_model=D, nhead=H, num_encoder_layers=1, num_decoder_layers=1)
    out = model(torch.randn(2, 4, D), torch.randn(2, 3, D))
    assert out.shape == (2, 3, D)
    with pytest.raises(ValueError, match="same batch size, got 2 and 3"):
        model(torch.randn(2, 4, D), torch.randn(3, 3, D))


def test_rmsnorm_swiglu_variant_runs():
    layer = TransformerEncoderLayer(D, H, 24, activation="swiglu", norm="rmsnorm", norm_first=True,
                                    num_kv_heads=2)  # fmt: skip
    assert layer(torch.randn(2, 5, D), is_causal=True).shape == (2, 5, D)
    assert layer.self_attn.num_kv_heads == 2
