"""Our BERT against transformers' with the same weights: step time, SST-2 accuracy at equal time.

`--mode speed` (default): forward + backward of the packaged MiniLM (our `Bert` and transformers'
`BertModel`, the same weights) at batch 32 x 64 tokens, training mode, interleaved rounds, the
ratio ours / transformers (below 1.00x: ours is faster).

`--mode accuracy`: fine-tune on SST-2 for `--minutes` each, one after the other in this process,
and score both on GLUE's dev set. The reference is the plain loop people write with
transformers: BertForSequenceClassification, float32, AdamW 1e-4, batch 32, warmup then linear
decay over the time budget, rows cut to 66 tokens and padded to each batch's longest, in random
order. Ours is `bert finetune`'s defaults (length-grouped batches, frozen word embeddings, the
precision verdict), with the same budget.

    uv run python tools/bench/bert_vs_hf.py --threads 2
    uv run python tools/bench/bert_vs_hf.py --mode accuracy --minutes 10 --threads 2
"""

from __future__ import annotations

import time
import warnings

import _harness


def speed(args) -> None:
    import torch
    import transformers

    from bert.hf import from_hf
    from bert.pretrained import minilm_folder

    transformers.logging.set_verbosity_error()
    reference = transformers.BertModel.from_pretrained(str(minilm_folder())).train()
    ours = from_hf(reference).train()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (args.batch, args.seq), generator=g)
    mask = torch.ones_like(ids)
    mask[: args.batch // 2, args.seq * 2 // 3 :] = 0  # half the rows padded by a third

    def ours_step():
        ours(ids, mask).last_hidden_state.square().mean().backward()

    def reference_step():
        reference(input_ids=ids, attention_mask=mask).last_hidden_state.square().mean().backward()

    timings = _harness.interleave({"ours": ours_step, "transformers": reference_step},
                                  rounds=args.rounds)  # fmt: skip
    print(f"MiniLM forward+backward, batch {args.batch} x {args.seq} tokens, fp32, "
          f"{args.threads} threads")  # fmt: skip
    _harness.table(timings, reference="transformers")


def reference_finetune(minutes: float, seed: int) -> tuple[float, int]:
    """transformers' classifier in a plain float32 loop for `minutes`; (dev accuracy, steps)."""
    import torch
    import transformers

    from bert.pretrained import minilm_folder
    from shared import datasets

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    folder = str(minilm_folder())
    tokenizer = transformers.BertTokenizerFast.from_pretrained(folder)
    model = transformers.BertForSequenceClassification.from_pretrained(folder, num_labels=2)
    data = datasets.load("sst2")
    train, dev = data["train"], data["validation"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    budget, warmup = minutes * 60, 200
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    started, step = time.perf_counter(), 0
    model.train()
    while (elapsed := time.perf_counter() - started) < budget:
        rows = [order[(step * 32 + i) % len(order)] for i in range(32)]
        batch = tokenizer([train[i]["sentence"] for i in rows], padding=True, truncation=True,
                          max_length=66, return_tensors="pt")  # fmt: skip
        labels = torch.tensor([train[i]["label"] for i in rows])
        factor = (step + 1) / warmup if step < warmup else max(0.0, 1 - elapsed / budget)
        for group in optimizer.param_groups:
            group["lr"] = 1e-4 * factor
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dev), 128):
            part = dev[start : start + 128]
            batch = tokenizer(part["sentence"], padding=True, truncation=True, max_length=66,
                              return_tensors="pt")  # fmt: skip
            correct += int((model(**batch).logits.argmax(-1) == torch.tensor(part["label"])).sum())
    return correct / len(dev), step


def ours_finetune(minutes: float, seed: int, threads: int) -> tuple[float, int]:
    import tempfile

    from bert.finetune import FinetuneConfig, prepare, train
    from shared.runs import Run

    cfg = FinetuneConfig(time_limit=minutes * 60, seed=seed, threads=threads,
                         eval_interval=100_000)  # evaluate once, at the end  # fmt: skip
    ready = prepare(cfg)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        import os

        os.environ["RUNS_DIR"] = folder
        run = Run.start("bert", cfg, name="bench", quiet=True)
        train(cfg, run, ready.task, ready.model, ready.tokenizer, ready.splits, ready.env)
        last = run.metrics()[-1]
    print(f"(ours: {time.perf_counter() - started:.0f}s including the final evaluation)")
    return last["dev_accuracy"], int(last["step"])


def accuracy(args) -> None:
    results = {
        "transformers (fp32 loop)": reference_finetune(args.minutes, args.seed),
        "ours (bert finetune)": ours_finetune(args.minutes, args.seed, args.threads),
    }
    print(f"\nSST-2, GLUE dev accuracy after {args.minutes:g} minutes of fine-tuning MiniLM, "
          f"{args.threads} threads")  # fmt: skip
    for name, (acc, steps) in results.items():
        print(f"  {name:<28} {acc:.2%}  ({steps} steps)")


def main() -> None:
    parser = _harness.parser(__doc__, rounds=7, threads=2)
    parser.add_argument("--mode", choices=["speed", "accuracy"], default="speed")
    parser.add_argument("--batch", type=int, default=32, help="speed: batch size")
    parser.add_argument("--seq", type=int, default=64, help="speed: tokens per row")
    parser.add_argument("--minutes", type=float, default=10.0, help="accuracy: budget per side")
    parser.add_argument("--seed", type=int, default=1337, help="accuracy: seed for both sides")
    args = _harness.parse(parser)
    warnings.filterwarnings("ignore", category=UserWarning)
    speed(args) if args.mode == "speed" else accuracy(args)


if __name__ == "__main__":
    main()
