"""LoRA against full fine-tuning: trainable weights, optimizer memory and step time.

The same base model (a gpt run, grown to the chat vocabulary as `gpt sft` grows it), the same
batches of synthetic conversations (`make-chat-data`'s add and reverse tasks), one AdamW step
each: full fine-tuning of every weight, and LoRA (rank 8 on every linear layer of the blocks,
plus the new tokens' embedding rows, as `gpt sft --lora.rank 8` trains). Rounds interleave.

    uv run python tools/bench/gpt_sft_lora.py --run chatbase
    uv run python tools/bench/gpt_sft_lora.py --run chatbase --rank 4 --batch-size 64 --threads 2
"""

from __future__ import annotations

import _harness


def main() -> None:
    parser = _harness.parser(__doc__, rounds=5, threads=0)
    parser.add_argument("--run", default=None, help="the base gpt run (default: the latest)")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per round")
    args = _harness.parse(parser)
    import copy

    import torch

    from gpt.chat.data import make_rows, shakespeare
    from gpt.chat.format import Message, chat_tokenizer, encode_conversation, grow_vocabulary
    from gpt.chat.lora import LoRAConfig, apply_lora
    from gpt.chat.sft import SFTTask, train_new_token_rows
    from gpt.runs import load_run_model
    from shared.device import autocast, bf16_verdict

    base, tok, _, folder = load_run_model(args.run, torch.device("cpu"))
    rows = make_rows(["add", "reverse"], 2000, "train", 0, shakespeare())
    conversations = [[Message(**m) for m in r["conversations"]] for r in rows]
    tok = chat_tokenizer(tok, conversations)
    old_vocab = base.config.vocab_size
    grow_vocabulary(base, tok.vocab_size, torch.Generator().manual_seed(0))
    examples = [encode_conversation(tok, c) for c in conversations]
    task = SFTTask(examples, examples[:64], tok.token_to_id("<|end|>"), args.batch_size, 128,
                   packing=False)  # fmt: skip
    precision = "bf16" if bf16_verdict(torch.device("cpu")).native else "fp32"

    full = copy.deepcopy(base).train()
    lora = copy.deepcopy(base).train()
    apply_lora(lora, LoRAConfig(rank=args.rank))
    train_new_token_rows(lora, old_vocab)  # the old rows stay: only the new tokens' rows learn

    def trainer(model):
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
        generator = torch.Generator().manual_seed(0)

        def steps():
            for _ in range(args.steps):
                batch = task.train_batch(generator)
                with autocast(torch.device("cpu"), precision):
                    loss = task.loss(model, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        steps()  # the optimizer's state exists after the first step
        state = sum(t.numel() * t.element_size() for s in opt.state.values()
                    for t in s.values() if torch.is_tensor(t))  # fmt: skip
        return steps, sum(p.numel() for p in params), state

    full_steps, full_n, full_state = trainer(full)
    lora_steps, lora_n, lora_state = trainer(lora)
    contenders = {"full fine-tuning": full_steps, f"LoRA r={args.rank}": lora_steps}
    timings = _harness.interleave(contenders, rounds=args.rounds, warmup=0)
    total = base.num_parameters()
    print(f"base {folder}: {total:,} weights; batch {args.batch_size} conversations, {precision}, "
          f"{torch.get_num_threads()} threads; {args.steps} steps a round, median of "
          f"{args.rounds} rounds")  # fmt: skip
    facts = {"full fine-tuning": (full_n, full_state), f"LoRA r={args.rank}": (lora_n, lora_state)}
    _harness.table(
        timings,
        "full fine-tuning",
        unit="s",
        columns={
            "trainable": lambda name, t: f"{facts[name][0]:,} ({facts[name][0] / total:.1%})",
            "AdamW state": lambda name, t: f"{facts[name][1] / 2**20:.2f} MiB",
            "ms/step": lambda name, t: f"{1000 * t.median / args.steps:.1f}",
        },
    )


if __name__ == "__main__":
    main()
