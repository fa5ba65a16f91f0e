"""Rewards of sampled replies (`gpt.chat.sampling`), and greedy pass@1: what GRPO learns from.

A reply is right when it ended (said `<|end|>` within `max_new_tokens`) and its text is the
checked answer exactly (`gpt.chat.evaluate.is_right`, chat-eval's own test): the *verifiable
reward* of RL on these tasks, 1 or 0, with no learned reward model to fool.
"""

import torch

from gpt.chat.evaluate import Case, is_right, replies
from gpt.chat.sampling import Sample
from tokenizers_fromscratch import Tokenizer


def reward(case: Case, sample: Sample, lines: dict[str, list[str]],
           format_reward: float = 0.0) -> float:  # fmt: skip
    """1.0 for a reply that ended and is exactly right, else 0.0; plus `format_reward` for any
    reply that ended (said `<|end|>` in time), right or not."""
    return float(sample.ended and is_right(case, sample.text, lines)) + format_reward * sample.ended


def greedy_pass_rate(model: torch.nn.Module, tok: Tokenizer, cases: list[Case],
                     max_new_tokens: int, lines: dict[str, list[str]]) -> float:  # fmt: skip
    """pass@1 as chat-eval measures it: the share of greedy replies exactly right."""
    got = replies(model, tok, [c.prompt for c in cases], max_new_tokens, batch_size=64)
    return sum(is_right(c, r, lines) for c, r in zip(cases, got, strict=True)) / len(cases)
