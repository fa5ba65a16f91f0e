"""Time our attention against torch's: SDPA (naive and fused path) and multi-head attention.

Forward and backward of one call, on the CPU, float32. Each contender runs in rounds,
interleaved (ours, torch, torch, ours, ...), and the medians over rounds are reported with the
ratio ours / torch, so drift in machine load hits both sides alike.

    uv run python tools/bench/attention_vs_torch.py
    uv run python tools/bench/attention_vs_torch.py --batch 8 --seq 256 --dim 512 --heads 8
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--seq", type=int, default=128, help="sequence length (default 128)")
    parser.add_argument("--dim", type=int, default=256, help="embedding size (default 256)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per contender")
    parser.add_argument("--calls", type=int, default=10, help="calls per round")
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
    import torch.nn.functional as F

    from attention import MultiHeadAttention, naive_scaled_dot_product_attention

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, T, E, H = args.batch, args.seq, args.dim, args.heads
    q, k, v = (torch.randn(B, H, T, E // H, requires_grad=True) for _ in range(3))
    x = torch.randn(B, T, E, requires_grad=True)
    ref_mha = torch.nn.MultiheadAttention(E, H, batch_first=True)
    our_mha = MultiHeadAttention.from_torch(ref_mha)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)  # torch MHA: True = hidden

    def backward(out: torch.Tensor) -> None:
        out.sum().backward()

    pairs = {
        "sdpa causal, naive (ours) vs torch fused": (
            lambda: backward(naive_scaled_dot_product_attention(q, k, v, is_causal=True)[0]),
            lambda: backward(F.scaled_dot_product_attention(q, k, v, is_causal=True)),
        ),
        "MHA causal, need_weights=False": (
            lambda: backward(our_mha(x, x, x, is_causal=True, need_weights=False)[0]),
            lambda: backward(
                ref_mha(x, x, x, attn_mask=causal, is_causal=True, need_weights=False)[0]
            ),
        ),
        "MHA with averaged weights": (
            lambda: backward(our_mha(x, x, x, attn_mask=causal)[0]),
            lambda: backward(ref_mha(x, x, x, attn_mask=causal)[0]),
        ),
    }
    print(f"B={B} T={T} E={E} heads={H}, float32, forward+backward, {args.threads} thread(s)")
    print(f"{'case':44s} {'ours ms':>9s} {'torch ms':>9s} {'ratio':>7s}")
    for name, (ours, ref) in pairs.items():
        for fn in (ours, ref):  # warm up
            time_calls(fn, 2)
        times: dict[str, list[float]] = {"ours": [], "torch": []}
        for r in range(args.rounds):
            order = [("ours", ours), ("torch", ref)]
            for label, fn in order if r % 2 == 0 else order[::-1]:
                times[label].append(time_calls(fn, args.calls))
        a, b = statistics.median(times["ours"]), statistics.median(times["torch"])
        print(f"{name:44s} {a * 1e3:9.2f} {b * 1e3:9.2f} {a / b:7.2f}")


if __name__ == "__main__":
    main()
