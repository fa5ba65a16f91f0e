"""How likely a model finds a reply: the sum of its tokens' log-probabilities.

    prompt  [system?, user]            -> <|system|>...<|end|><|user|>...<|end|><|assistant|>
    reply   "eltsac"                   -> e l t s a c <|end|>         (the tokens scored)

    log pi(reply | prompt) = sum over the reply's tokens t of log softmax(logits_t)[token_t]

DPO and GRPO both need this number, for the policy and for the frozen reference. It is
computed with exactly the template and the mask SFT trains on (`gpt.chat.format`): the
assistant's content and its `<|end|>`, nothing of the prompt. The reply's `<|end|>` counts: a
model that would go on talking after the right answer has not given it.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from gpt.chat.format import Conversation, Message, encode_conversation
from gpt.chat.sft import Example, pad_batch
from tokenizers_fromscratch import Tokenizer


def reply_example(tok: Tokenizer, prompt: Conversation, reply: str) -> Example:
    """(ids, scored) of the prompt followed by `reply` as the assistant's turn; only the
    reply's tokens (and its `<|end|>`) are scored, not earlier assistant turns."""
    ids, trained = encode_conversation(tok, [*prompt, Message("assistant", reply)])
    n_reply = len(tok.encode(reply)) + 1  # its content and <|end|>
    return ids, [False] * (len(ids) - n_reply) + trained[-n_reply:]


def token_logprobs(logits: Tensor, targets: Tensor) -> Tensor:
    """log p(target) at each position: logits (B, T, V), targets (B, T) with -100 where not
    scored -> (B, T), 0 where not scored."""
    scored = targets != -100
    safe = targets.masked_fill(~scored, 0)
    logp = F.log_softmax(logits.float(), dim=-1).gather(-1, safe[..., None]).squeeze(-1)
    return logp * scored  # (B, T)


def batch_logprobs(model: torch.nn.Module, examples: list[Example], pad_id: int) -> Tensor:
    """Each example's reply log-probability, summed over its scored tokens: (B,)."""
    x, y = pad_batch(examples, pad_id)  # (B, T) each
    device = next(model.parameters()).device
    return token_logprobs(model(x.to(device)), y.to(device)).sum(-1)  # (B,)
