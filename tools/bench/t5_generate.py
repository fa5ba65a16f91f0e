"""Beam search speed of t5.generate: the KV cache against recomputation, and against transformers.

One random T5 (t5-small's shape scaled down by default: 4 + 4 layers x 256, gated GELU;
speed does not depend on what the weights say), a batch of sources, beam search with
`--beams` beams for up to `--new` tokens. Contenders, on the same weights:

    ours, KV cache         t5.generate(use_cache=True): the source encoded once, its
                           cross-attention keys computed once, one decoder token per step
    ours, recompute        t5.generate(use_cache=False): the whole decoder prefix every step
    transformers           to_hf(model).generate(num_beams=...): the same weights

Each contender's tokens are checked against ours with the cache first (transformers pads
finished beams with EOS, so rows are compared up to EOS). Rounds are interleaved and each
contender reports its median round; the ratio is time over ours with the cache.

    uv run python tools/bench/t5_generate.py
    uv run python tools/bench/t5_generate.py --beams 4 --batch 8 --new 64 --threads 1 --rounds 5
"""

from __future__ import annotations

import _harness


def main() -> None:
    parser = _harness.parser(__doc__, rounds=3, threads=0)
    parser.add_argument("--layers", type=int, default=4, help="encoder and decoder layers each")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4, help="sources per call")
    parser.add_argument("--source", type=int, default=32, help="source tokens")
    parser.add_argument("--new", type=int, default=32, help="new tokens at most")
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--no-hf", action="store_true", help="skip transformers")
    args = _harness.parse(parser)
    import torch

    from t5 import T5, T5Config, generate
    from t5.generate import cut_at_eos

    config = T5Config(
        vocab_size=args.vocab,
        d_model=args.d_model,
        d_kv=args.d_model // args.heads,
        d_ff=args.d_ff,
        num_layers=args.layers,
        num_heads=args.heads,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.0,
    )
    torch.manual_seed(0)
    model = T5(config).eval()
    ids = torch.randint(2, args.vocab, (args.batch, args.source))
    mask = torch.ones_like(ids)
    mask[: args.batch // 2, args.source * 3 // 4 :] = 0  # half the sources padded by a quarter
    settings = dict(num_beams=args.beams, length_penalty=args.length_penalty)
    contenders = {
        "ours, KV cache": lambda: generate(model, ids, args.new, attention_mask=mask, **settings),
        "ours, recompute": lambda: generate(
            model, ids, args.new, attention_mask=mask, use_cache=False, **settings
        ),
    }
    if not args.no_hf:
        import transformers

        from t5.hf import to_hf

        transformers.logging.set_verbosity_error()
        hf = to_hf(model).eval()

        def hf_generate():
            with torch.no_grad():
                return hf.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=args.new,
                    do_sample=False,
                    min_length=0,
                    no_repeat_ngram_size=0,
                    early_stopping=False,
                    decoder_start_token_id=0,
                    eos_token_id=1,
                    pad_token_id=0,
                    **settings,
                )

        contenders["transformers generate"] = hf_generate

    outputs = {name: cut_at_eos(fn()) for name, fn in contenders.items()}  # warm-up, a check
    reference = outputs["ours, KV cache"]
    for name, out in outputs.items():
        print(f"{name:24s} same tokens as ours with cache: {out == reference}")
    lengths = [len(row) for row in reference]

    timings = _harness.interleave(contenders, rounds=args.rounds, warmup=0)  # warmed up above

    print(
        f"T5 {config.num_layers}+{config.num_decoder_layers} layers x {config.d_model}, "
        f"{model.num_parameters():,} parameters, batch {args.batch} x {args.source} source "
        f"tokens, {args.beams} beams, up to {args.new} new (got {min(lengths)}..{max(lengths)}), "
        f"{torch.get_num_threads()} threads; median of {args.rounds} rounds"
    )
    _harness.table(timings, "ours, KV cache", unit="s")


if __name__ == "__main__":
    main()
