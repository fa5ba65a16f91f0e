"""Decoding speed of gpt.generate: the KV cache against recomputation, and against transformers.

One 6-layer model (GPT-2 style by default, 6 x 384, random weights: speed does not depend on
what the weights say), a batch of one 16-token prompt, 256 new tokens, greedy so that every
contender produces the same tokens (checked). Contenders:

    ours, KV cache         gpt.generate(use_cache=True): prefill, then one token at a time
    ours, recompute        gpt.generate(use_cache=False): the whole context every step
    transformers           to_hf(model).generate(do_sample=False): the same weights

Rounds are interleaved and each contender reports its median round.

    uv run python tools/bench/gpt_generate.py
    uv run python tools/bench/gpt_generate.py --variant modern --threads 1 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=["gpt2", "modern"], default="gpt2")
    p.add_argument("--n-layer", type=int, default=6)
    p.add_argument("--n-embd", type=int, default=384)
    p.add_argument("--n-head", type=int, default=6)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--prompt", type=int, default=16, help="prompt tokens")
    p.add_argument("--new", type=int, default=256, help="new tokens")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--no-hf", action="store_true", help="skip transformers")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    import torch

    from gpt import GPT, GPTConfig, generate

    if args.threads:
        torch.set_num_threads(args.threads)
    make = GPTConfig.gpt2 if args.variant == "gpt2" else GPTConfig.modern
    cfg = make(
        vocab_size=args.vocab,
        block_size=args.prompt + args.new,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
    )
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    idx = torch.randint(args.vocab, (1, args.prompt))
    contenders = {
        "ours, KV cache": lambda: generate(model, idx, args.new, temperature=0),
        "ours, recompute": lambda: generate(model, idx, args.new, temperature=0, use_cache=False),
    }
    if not args.no_hf:
        import transformers

        from gpt.hf import to_hf

        transformers.logging.set_verbosity_error()
        hf = to_hf(model).eval()
        mask = torch.ones_like(idx)

        def hf_generate():
            with torch.no_grad():
                return hf.generate(
                    idx,
                    attention_mask=mask,
                    max_new_tokens=args.new,
                    min_new_tokens=args.new,
                    do_sample=False,
                    pad_token_id=0,
                )

        contenders["transformers generate"] = hf_generate

    outputs = {name: fn().tolist() for name, fn in contenders.items()}  # warm-up, and a check
    reference = outputs["ours, KV cache"]
    for name, out in outputs.items():
        print(f"{name:24s} same tokens as ours with cache: {out == reference}")

    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)

    print(
        f"{args.variant} {cfg.n_layer}x{cfg.n_embd}, {model.num_parameters():,} parameters, "
        f"{args.prompt}-token prompt + {args.new} new tokens, batch 1, greedy, "
        f"{torch.get_num_threads()} threads; median of {args.rounds} rounds"
    )
    ours = statistics.median(times["ours, KV cache"])
    print(f"{'contender':24s} {'seconds':>8s} {'tokens/s':>9s} {'vs ours+cache':>14s}")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"{name:24s} {t:8.2f} {args.new / t:9.0f} {t / ours:13.2f}x")


if __name__ == "__main__":
    main()
