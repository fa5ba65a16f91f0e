"""Text in, text out, in batches: what selection, `eval` and `generate` all use.

    outputs = predict(model, tokenizer, ["sst2 sentence: a fine film", ...], num_beams=4)
    score(task, outputs, references)      # {"bleu": 34.5} or {"accuracy": 0.91}

Inputs are sorted by length and cut into batches, so a batch pads little; each batch runs
through `t5.generate` (greedy, or beam search with the KV cache), and the outputs come back in
the inputs' order. An input longer than the model was trained for is refused rather than cut:
a cut sentence is a different sentence, and its translation would be scored as if it were not.
"""

import time
from collections.abc import Sequence
from typing import Any

import torch

from attention.bleu import corpus_bleu
from shared.errors import UsageError
from t5.generate import cut_at_eos, generate
from t5.model import T5
from t5.tasks import TextTask
from t5.tokenizer import T5Tokenizer
from t5.training import pad_rows


def encode_inputs(tokenizer: T5Tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Ids of each input (EOS included); a clear error for one longer than `max_length`."""
    rows = tokenizer.encode_batch(list(texts))
    for text, row in zip(texts, rows, strict=True):
        if len(row) > max_length:
            raise UsageError(
                f"an input is {len(row)} tokens long, longer than the {max_length} this model "
                f"was trained with (--max_input_length): {text[:60]!r}..."
            )
    return rows


@torch.no_grad()
def predict(
    model: T5,
    tokenizer: T5Tokenizer,
    texts: Sequence[str],
    max_input_length: int,
    max_new_tokens: int = 64,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    batch_size: int = 64,
    precision_ctx: Any = None,
) -> list[str]:
    """Decoded outputs for `texts`, in their order."""
    rows = encode_inputs(tokenizer, texts, max_input_length)
    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    outputs: list[str] = [""] * len(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        input_ids = pad_rows([rows[i] for i in chunk], tokenizer.pad_id).to(device)  # (B, S)
        mask = (input_ids != tokenizer.pad_id).long()  # (B, S); EOS is never padding
        with precision_ctx() if precision_ctx else torch.autocast("cpu", enabled=False):
            out = generate(
                model,
                input_ids,
                max_new_tokens,
                num_beams=num_beams,
                length_penalty=length_penalty,
                attention_mask=mask,
            )  # (B, L)
        for i, ids in zip(chunk, cut_at_eos(out, tokenizer.eos_id), strict=True):
            outputs[i] = tokenizer.decode(ids)
    return outputs


def score(task: TextTask, outputs: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """BLEU (sacrebleu, 13a, cased) for translation; exact-match accuracy otherwise."""
    if task.metric == "bleu":
        return {"bleu": corpus_bleu(outputs, references)}
    hits = sum(o.strip() == r.strip() for o, r in zip(outputs, references, strict=True))
    return {"accuracy": hits / max(len(references), 1)}


def evaluate_task(
    model: T5,
    tokenizer: T5Tokenizer,
    task: TextTask,
    examples: Sequence[tuple[str, str]],
    max_input_length: int,
    max_new_tokens: int,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    batch_size: int = 64,
    precision_ctx: Any = None,
) -> tuple[dict[str, float], list[str], float]:
    """(metrics, outputs, seconds) of `task` on `examples`."""
    started = time.perf_counter()
    outputs = predict(model, tokenizer, [s for s, _ in examples], max_input_length,
                      max_new_tokens, num_beams, length_penalty, batch_size,
                      precision_ctx)  # fmt: skip
    metrics = score(task, outputs, [t for _, t in examples])
    return metrics, outputs, time.perf_counter() - started
