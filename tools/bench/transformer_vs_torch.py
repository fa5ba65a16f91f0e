"""Time our transformer blocks against torch's: LayerNorm, RMSNorm, an encoder layer, a decoder
layer, and the encoder-decoder Transformer.

Forward and backward of one call, on the CPU, float32, with padding (and for the decoder a
causal) mask, in training mode (so torch uses its general path, like ours). Contenders run in
rounds, interleaved (ours, torch, torch, ours, ...), and the medians over rounds are reported with
the ratio ours / torch, so drift in machine load hits both sides alike.

    uv run python tools/bench/transformer_vs_torch.py
    uv run python tools/bench/transformer_vs_torch.py --batch 64 --seq 16 --dim 128 --heads 4
"""

from __future__ import annotations

import warnings

import _harness


def main() -> None:
    parser = _harness.parser(__doc__, rounds=9, threads=1, calls=5)
    parser.add_argument("--batch", type=int, default=32, help="batch size")
    parser.add_argument("--seq", type=int, default=32, help="sequence length")
    parser.add_argument("--dim", type=int, default=256, help="d_model")
    parser.add_argument("--heads", type=int, default=8, help="attention heads")
    parser.add_argument("--ff", type=int, default=1024, help="dim_feedforward")
    args = _harness.parse(parser)
    import torch
    from torch import nn

    from transformer import (
        LayerNorm,
        RMSNorm,
        Transformer,
        TransformerDecoderLayer,
        TransformerEncoderLayer,
        padding_mask,
    )

    warnings.filterwarnings("ignore", category=UserWarning)
    torch.manual_seed(0)
    B, T, D, H, FF = args.batch, args.seq, args.dim, args.heads, args.ff
    x = torch.randn(B, T, D, requires_grad=True)
    mem = torch.randn(B, T, D, requires_grad=True)
    pad = padding_mask(torch.randint(T // 2, T + 1, (B,)), T)  # (B, T) True at padding
    causal = nn.Transformer.generate_square_subsequent_mask(T)

    ln_t, rms_t = nn.LayerNorm(D), nn.RMSNorm(D)
    enc_t = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=True)
    dec_t = nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, batch_first=True)
    full_t = nn.Transformer(D, H, 2, 2, FF, dropout=0.0, batch_first=True)
    ln, rms = LayerNorm.from_torch(ln_t), RMSNorm.from_torch(rms_t)
    enc, dec = TransformerEncoderLayer.from_torch(enc_t), TransformerDecoderLayer.from_torch(dec_t)
    full = Transformer.from_torch(full_t)

    def backward(out: torch.Tensor) -> None:
        out.sum().backward()

    pairs = {
        "LayerNorm (tensor ops vs fused)": (lambda: backward(ln(x)), lambda: backward(ln_t(x))),
        "RMSNorm (tensor ops vs fused)": (lambda: backward(rms(x)), lambda: backward(rms_t(x))),
        "encoder layer, padding mask": (
            lambda: backward(enc(x, src_key_padding_mask=pad)),
            lambda: backward(enc_t(x, src_key_padding_mask=pad)),
        ),
        "decoder layer, causal + memory padding": (
            lambda: backward(dec(x, mem, tgt_is_causal=True, memory_key_padding_mask=pad)),
            lambda: backward(
                dec_t(x, mem, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=pad)
            ),
        ),
        "Transformer 2+2 layers": (
            lambda: backward(full(x, mem, tgt_is_causal=True, src_key_padding_mask=pad)),
            lambda: backward(
                full_t(x, mem, tgt_mask=causal, tgt_is_causal=True, src_key_padding_mask=pad)
            ),
        ),
    }
    print(f"B={B} T={T} d_model={D} heads={H} ff={FF}, float32, {args.threads} thread(s)")
    _harness.pairs(pairs, rounds=args.rounds, calls=args.calls, title="block")


if __name__ == "__main__":
    main()
