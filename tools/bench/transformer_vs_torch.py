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

import argparse
import statistics
import time
import warnings
from collections.abc import Callable


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--seq", type=int, default=32, help="sequence length (default 32)")
    parser.add_argument("--dim", type=int, default=256, help="d_model (default 256)")
    parser.add_argument("--heads", type=int, default=8, help="attention heads (default 8)")
    parser.add_argument("--ff", type=int, default=1024, help="dim_feedforward (default 1024)")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds per contender")
    parser.add_argument("--calls", type=int, default=5, help="calls per round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return parser.parse_args()


def time_calls(fn: Callable[[], None], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main() -> None:
    args = parse_args()
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
    torch.set_num_threads(args.threads)
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
    print(f"{'block':42s} {'ours ms':>9s} {'torch ms':>9s} {'ratio':>7s}")
    for name, (ours, ref) in pairs.items():
        ours(), ref()  # warm up
        times: dict[str, list[float]] = {"ours": [], "torch": []}
        for r in range(args.rounds):
            order = [("ours", ours), ("torch", ref)]
            for label, fn in order if r % 2 == 0 else order[::-1]:
                times[label].append(time_calls(fn, args.calls))
        o, t = statistics.median(times["ours"]), statistics.median(times["torch"])
        print(f"{name:42s} {o * 1e3:9.2f} {t * 1e3:9.2f} {o / t:7.2f}")


if __name__ == "__main__":
    main()
