"""Decoding speed of int8 models: float against `int8-weight-only` and `dynamic-int8`.

The same weights three ways (`gpt.deploy.int8.quantize_model` on copies of one float model), each
decoding `--new` tokens greedily with the KV cache at batch 1 and batch 16. Rounds are
interleaved; the table gives tokens/s (batch x new tokens over the median round) and time over
the float model's. Checkpoint sizes and validation losses come from the commands themselves
(`gpt quantize` prints the sizes, `gpt eval` the loss).

    uv run python tools/bench/gpt_quantize.py --run chatbase          # a trained run
    uv run python tools/bench/gpt_quantize.py --n-embd 512 --n-layer 6  # a wider random model
"""

from __future__ import annotations

import _harness


def main() -> None:
    parser = _harness.parser(__doc__, rounds=5, threads=2)
    parser.add_argument("--run", help="a gpt run (default: a random model of the sizes below)")
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--new", type=int, default=48, help="new tokens per call")
    parser.add_argument("--batches", default="1,16", help="batch sizes, comma-separated")
    args = _harness.parse(parser)
    import copy
    import warnings

    import torch

    from gpt import GPT, GPTConfig, generate
    from gpt.deploy.int8 import quantize_model

    warnings.filterwarnings("ignore", category=UserWarning)  # torch.ao's deprecation notices
    if args.run:
        from gpt.runs import load_run_model

        model, _, _, _ = load_run_model(args.run, torch.device("cpu"))
        label = args.run
    else:
        torch.manual_seed(0)
        cfg = GPTConfig(vocab_size=65, block_size=256, n_layer=args.n_layer,
                        n_head=args.n_head, n_embd=args.n_embd)  # fmt: skip
        model = GPT(cfg).eval()
        label = f"random {args.n_layer} x {args.n_embd}"
    models = {"float": model}
    for method in ("int8-weight-only", "dynamic-int8"):
        models[method] = quantize_model(copy.deepcopy(model), method)
    prompt_len = 8
    new = min(args.new, model.config.block_size - prompt_len)
    print(f"{label}: {model.num_parameters() / 1e6:.2f}M weights, {new} new tokens, greedy, "
          f"KV cache, threads {args.threads}")  # fmt: skip
    for batch in [int(b) for b in args.batches.split(",")]:
        idx = torch.randint(0, model.config.vocab_size, (batch, prompt_len))
        contenders = {name: (lambda m=m, idx=idx: generate(m, idx, new, temperature=0))
                      for name, m in models.items()}  # fmt: skip
        timings = _harness.interleave(contenders, rounds=args.rounds)
        print(f"\nbatch {batch}: tokens/s = {batch} x {new} / median seconds")
        for name, t in timings.items():
            print(f"  {name:18s} {batch * new / t.median:9.0f} tokens/s")
        _harness.table(timings, reference="float")


if __name__ == "__main__":
    main()
