"""Time our attention against torch's: SDPA (naive and fused path) and multi-head attention.

Forward and backward of one call, on the CPU, float32. Each contender runs in rounds,
interleaved (ours, torch, torch, ours, ...), and the medians over rounds are reported with the
ratio ours / torch, so drift in machine load hits both sides alike.

    uv run python tools/bench/attention_vs_torch.py
    uv run python tools/bench/attention_vs_torch.py --batch 8 --seq 256 --dim 512 --heads 8
"""

from __future__ import annotations

import _harness


def main() -> None:
    parser = _harness.parser(__doc__, rounds=15, threads=1, calls=10)
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument("--seq", type=int, default=128, help="sequence length")
    parser.add_argument("--dim", type=int, default=256, help="embedding size")
    parser.add_argument("--heads", type=int, default=4, help="attention heads")
    args = _harness.parse(parser)
    import torch
    import torch.nn.functional as F

    from attention import MultiHeadAttention, naive_scaled_dot_product_attention

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
    _harness.pairs(pairs, rounds=args.rounds, calls=args.calls, warmup=2)


if __name__ == "__main__":
    main()
