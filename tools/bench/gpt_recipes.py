"""The cost of one `gpt train` step under different options: the same step `gpt train` takes
(forward, backward, clipping, Muon + AdamW), for each set of options, interleaved.

Each contender is `NAME="--option=value ..."` with `gpt train`'s own options; the first is the
reference of the ratios. The batches are random token ids of the option's vocabulary (the
tokenizer's size: `--bpe_vocab_size`, or 65 with `--tokenizer=char`), so no text is read; the
precision follows this machine's verdict, as `--precision=auto` does. What an option buys per
step (a lower loss) is measured by training, at equal steps; this says what it costs, so the two
together say whether it pays at equal time.

    uv run python tools/bench/gpt_recipes.py --threads 2
    uv run python tools/bench/gpt_recipes.py --threads 2 default= char=--tokenizer=char \\
        "wide=--model.n_embd=192" "deep=--model.n_layer=6"
"""

from __future__ import annotations

import _harness

CHAR_VOCABULARY = 65  # tinyshakespeare's characters


def main() -> None:
    parser = _harness.parser(__doc__, rounds=6, threads=2, calls=5)
    parser.add_argument(
        "recipes",
        nargs="*",
        default=["default=", "char=--tokenizer=char", "bpe-1024=--bpe_vocab_size=1024"],
        help='NAME="gpt train options" (the first is the reference)',
    )
    args = _harness.parse(parser)
    import torch

    from gpt.model import GPT
    from gpt.train import TrainConfig, fused_attention, make_optimizer, model_config
    from shared.config import parse_config
    from shared.device import autocast, resolve_precision

    cpu = torch.device("cpu")
    precision = resolve_precision("auto", cpu)  # bf16 only where this CPU has it natively
    contenders = {}
    for recipe in args.recipes:
        name, _, options = recipe.partition("=")
        cfg = parse_config(TrainConfig, options.split(), prog="gpt_recipes")
        vocab = CHAR_VOCABULARY if cfg.tokenizer == "char" else cfg.bpe_vocab_size
        torch.manual_seed(0)
        fused = fused_attention(cfg, "cpu", precision)
        model = GPT(model_config(cfg, vocab), fused_attention=fused)
        optimizer = make_optimizer(model, cfg)
        shape = (cfg.batch_size, cfg.model.block_size)
        x, y = torch.randint(0, vocab, shape), torch.randint(0, vocab, shape)
        contenders[name] = make_step(
            model, optimizer, x, y, lambda: autocast(cpu, precision), cfg.grad_clip
        )
        weights = model.num_parameters()
        print(f"{name}: {weights:,} weights, batch {shape[0]} x {shape[1]}, options: {options}")
    print(f"{precision} on the CPU; ms per optimizer step, median of rounds of {args.calls} steps")
    timings = _harness.interleave(contenders, rounds=args.rounds, calls=args.calls)
    _harness.table(timings, reference=next(iter(timings)))


def make_step(model, optimizer, x, y, precision_ctx, grad_clip: float):
    """One training step as `shared.fit` takes it, as a function of no arguments."""
    import torch

    from gpt.model import lm_loss

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with precision_ctx():
            loss = lm_loss(model(x), y)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()

    return step


if __name__ == "__main__":
    main()
