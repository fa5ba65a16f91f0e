"""Several sampled replies to each prompt, and pass@k: how often one of k tries is right.

    prompts (P)  -> each written n times -> one left-padded batch (P * n, T)
                 -> `gpt.generate` with the KV cache, temperature > 0, until <|end|>
                 -> n replies per prompt, each with its tokens and whether it ended

Greedy decoding answers a prompt one way; sampling shows what else the model would say, and
how often it is right: `chat-eval --samples 8` reports pass@8, and `gpt rl` learns from such
groups of replies.
"""

from dataclasses import dataclass

import torch

from gpt.chat.format import END, Conversation, render
from gpt.generate import generate, pad_left
from tokenizers_fromscratch import Tokenizer


@dataclass
class Sample:
    text: str  # the reply, decoded, without <|end|>
    ids: list[int]  # its tokens, <|end|> included when it ended
    ended: bool  # it said <|end|> within max_new_tokens


@torch.no_grad()
def sample_replies(model: torch.nn.Module, tok: Tokenizer, prompts: list[Conversation], n: int,
                   temperature: float, max_new_tokens: int, generator: torch.Generator | None,
                   batch_size: int = 256) -> list[list[Sample]]:  # fmt: skip
    """`n` sampled replies to each prompt, in batches of at most `batch_size` rows."""
    end = tok.token_to_id(END)
    device = next(model.parameters()).device
    encoded = [tok.encode(render(p, generation_prompt=True)) for p in prompts]
    per_batch = max(1, batch_size // n)  # prompts per batch, each written n times
    out: list[list[Sample]] = []
    for start in range(0, len(prompts), per_batch):
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


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of k replies drawn from n (c of them right) is right: the
    unbiased estimator of Chen et al. (2021), 1 - C(n - c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product
