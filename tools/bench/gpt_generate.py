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

import _harness


def main() -> None:
    parser = _harness.parser(__doc__, rounds=3, threads=0)
    parser.add_argument("--variant", choices=["gpt2", "modern"], default="gpt2")
    parser.add_argument("--n-layer", type=int, default=6)
    parser.add_argument("--n-embd", type=int, default=384)
    parser.add_argument("--n-head", type=int, default=6)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--prompt", type=int, default=16, help="prompt tokens")
    parser.add_argument("--new", type=int, default=256, help="new tokens")
    parser.add_argument("--no-hf", action="store_true", help="skip transformers")
    args = _harness.parse(parser)
    import torch

    from gpt import GPT, GPTConfig, generate

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

    timings = _harness.interleave(contenders, rounds=args.rounds, warmup=0)  # warmed up above

    print(
        f"{args.variant} {cfg.n_layer}x{cfg.n_embd}, {model.num_parameters():,} parameters, "
        f"{args.prompt}-token prompt + {args.new} new tokens, batch 1, greedy, "
        f"{torch.get_num_threads()} threads; median of {args.rounds} rounds"
    )
    _harness.table(
        timings,
        "ours, KV cache",
        unit="s",
        columns={"tokens/s": lambda name, t: f"{args.new / t.median:,.0f}"},
    )


if __name__ == "__main__":
    main()
