"""Sampled replies and their rewards: what GRPO learns from, and what pass@k counts.

    prompts (P)  -> each written G times -> one left-padded batch (P * G, T)
                 -> `gpt.generate` with the KV cache, temperature > 0, until <|end|>
                 -> G replies per prompt, each with its tokens and whether it ended

A reply is right when it ended (said `<|end|>` within `max_new_tokens`) and its text is the
checked answer exactly (`gpt.chat.evaluate.is_right`, chat-eval's own test): the *verifiable
reward* of RL on these tasks, 1 or 0, with no learned reward model to fool.
"""

from dataclasses import dataclass

import torch

from gpt.chat.evaluate import Case, is_right, replies
from gpt.chat.format import END, render
from gpt.generate import generate, pad_left
from tokenizers_fromscratch import Tokenizer


@dataclass
class Sample:
    text: str  # the reply, decoded, without <|end|>
    ids: list[int]  # its tokens, <|end|> included when it ended
    ended: bool  # it said <|end|> within max_new_tokens


@torch.no_grad()
def sample_replies(model: torch.nn.Module, tok: Tokenizer, cases: list[Case], n: int,
                   temperature: float, max_new_tokens: int, generator: torch.Generator | None,
                   batch_size: int = 256) -> list[list[Sample]]:  # fmt: skip
    """`n` sampled replies to each case's prompt, in batches of at most `batch_size` rows."""
    end = tok.token_to_id(END)
    device = next(model.parameters()).device
    encoded = [tok.encode(render(c.prompt, generation_prompt=True)) for c in cases]
    per_batch = max(1, batch_size // n)  # prompts per batch, each written n times
    out: list[list[Sample]] = []
    for start in range(0, len(cases), per_batch):
        rows = [ids for ids in encoded[start : start + per_batch] for _ in range(n)]
        idx, mask = pad_left(rows, pad_id=end)  # (P * n, T) each
        generated = generate(model, idx.to(device), max_new_tokens, temperature=temperature,
                             eos_token_id=end, attention_mask=mask.to(device), pad_token_id=end,
                             generator=generator)  # fmt: skip
        replies = []
        for ids in generated[:, idx.shape[1] :].tolist():
            ended = end in ids
            ids = ids[: ids.index(end) + 1] if ended else ids
            replies.append(Sample(tok.decode(ids[:-1] if ended else ids), ids, ended))
        out += [replies[k : k + n] for k in range(0, len(replies), n)]
    return out


def reward(case: Case, sample: Sample, lines: dict[str, list[str]]) -> float:
    """1.0 for a reply that ended and is exactly right, else 0.0."""
    return float(sample.ended and is_right(case, sample.text, lines))


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of k replies drawn from n (c of them right) is right: the
    unbiased estimator of Chen et al. (2021), 1 - C(n - c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def task_lines(cases: list[Case]) -> dict[str, list[str]]:
    """Each character's lines, where a `style` case needs them to be checked; else nothing."""
    if not any(c.task == "style" for c in cases):
        return {}
    from gpt.chat.data import lines_by_character, shakespeare

    return lines_by_character(shakespeare())


def greedy_pass_rate(model: torch.nn.Module, tok: Tokenizer, cases: list[Case],
                     max_new_tokens: int, lines: dict[str, list[str]]) -> float:  # fmt: skip
    """pass@1 as chat-eval measures it: the share of greedy replies exactly right."""
    got = replies(model, tok, [c.prompt for c in cases], max_new_tokens, batch_size=64)
    return sum(is_right(c, r, lines) for c, r in zip(cases, got, strict=True)) / len(cases)
