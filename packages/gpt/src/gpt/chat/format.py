"""Conversations: the data format, the chat template, the loss mask, and a model that grows.

    {"conversations": [{"role": "system", "content": "Answer exactly."},
                       {"role": "user", "content": "What is 12 + 30?"},
                       {"role": "assistant", "content": "42"}]}        one JSON object a line

    render(messages)  ->  <|system|>Answer exactly.<|end|><|user|>What is 12 + 30?<|end|>
                          <|assistant|>42<|end|>                          (one line, no newlines)
    mask              ->  0 ...                                     0 ... 1 1 1      (4 targets)

A base model only continues text. Supervised fine-tuning (SFT) teaches it a *format*: a role
token opens each turn and `<|end|>` closes it, so that at inference the chat command writes the
conversation so far, then `<|assistant|>`, and the model writes a reply and says when it is
done by emitting `<|end|>`. The role tokens are new ids added after the base vocabulary
(`AddedTokensTokenizer`): text can never spell them by accident, and the old ids keep their
meaning.

Why the loss covers only the assistant's tokens (its reply and its `<|end|>`): the user's and
the system's words are given at inference, never generated; training the model to predict them
spends capacity on imitating the questions. The role token `<|assistant|>` itself is not a
target either: the chat command writes it.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from gpt.model import GPT
from shared.errors import UsageError
from tokenizers_fromscratch import AddedTokensTokenizer, Tokenizer

ROLES = ("system", "user", "assistant")
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
END = "<|end|>"
CHAT_TOKENS = [*ROLE_TOKENS.values(), END]


@dataclass
class Message:
    role: str  # system, user or assistant
    content: str


Conversation = list[Message]


def parse_conversation(line: str, where: str) -> Conversation:
    """One JSON Lines row -> messages; any problem is a UsageError naming `where` (file:line)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise UsageError(f"{where}: not valid JSON ({error.msg})") from None
    turns = row.get("conversations") if isinstance(row, dict) else None
    if not isinstance(turns, list) or not turns:
        raise UsageError(f'{where}: expected {{"conversations": [{{"role": ..., "content": ...}}'
                         ", ...]} with at least one message")  # fmt: skip
    messages = []
    for k, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ROLES:
            raise UsageError(f"{where}: message {k + 1} needs a role: system, user or assistant")
        if not isinstance(turn.get("content"), str):
            raise UsageError(f"{where}: message {k + 1} needs a content string")
        if any(t in turn["content"] for t in CHAT_TOKENS):
            raise UsageError(
                f"{where}: message {k + 1} contains a chat token ({', '.join(CHAT_TOKENS)})"
            )
        messages.append(Message(turn["role"], turn["content"]))
    if not any(m.role == "assistant" for m in messages):
        raise UsageError(f"{where}: no assistant message, so nothing to learn from")
    return messages


def read_conversations(path: Path) -> list[Conversation]:
    """Every conversation of a JSON Lines file, read strictly: a bad line stops everything."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    conversations = [parse_conversation(line, f"{path}:{i + 1}")
                     for i, line in enumerate(lines) if line.strip()]  # fmt: skip
    if not conversations:
        raise UsageError(f"{path} holds no conversations")
    return conversations


def render(messages: Conversation, generation_prompt: bool = False) -> str:
    """The template as text; with `generation_prompt`, ending in `<|assistant|>` for a reply."""
    text = "".join(f"{ROLE_TOKENS[m.role]}{m.content}{END}" for m in messages)
    return text + (ROLE_TOKENS["assistant"] if generation_prompt else "")


def encode_conversation(tok: Tokenizer, messages: Conversation) -> tuple[list[int], list[bool]]:
    """(ids, trained): the template's ids and, for each, whether it is a target the loss sees
    (the assistant's content and its `<|end|>`)."""
    end = tok.token_to_id(END)
    ids: list[int] = []
    trained: list[bool] = []
    for m in messages:
        content = tok.encode(m.content)
        ids += [tok.token_to_id(ROLE_TOKENS[m.role]), *content, end]
        mine = m.role == "assistant"
        trained += [False, *[mine] * len(content), mine]
    return ids, trained


def chat_tokenizer(base: Tokenizer, conversations: list[Conversation]) -> AddedTokensTokenizer:
    """The base tokenizer plus the chat tokens and, for a char tokenizer, every character of the
    conversations it lacks (Shakespeare has no digits)."""
    chars: list[str] = []
    if base.kind == "char" or (base.kind == "added" and base.base.kind == "char"):
        seen = {c for conv in conversations for m in conv for c in m.content}
        chars = sorted(c for c in seen if c not in base.str_to_id)
    if isinstance(base, AddedTokensTokenizer):  # a chat run fine-tuned again: extend its base
        return AddedTokensTokenizer(base.base, [*base.added_special, *CHAT_TOKENS],
                                    [*base.added_chars, *chars])  # fmt: skip
    return AddedTokensTokenizer(base, CHAT_TOKENS, chars)


def grow_vocabulary(model: GPT, vocab_size: int, generator: torch.Generator | None = None) -> int:
    """Give `model` rows for ids up to `vocab_size`; returns how many were added.

    The old rows are copied unchanged, so every old token's embedding and logit stay what
    they were. A new row starts at the mean of the old rows (a token the model has no opinion
    about yet: its logit starts near the average one, not at a random extreme) plus a little
    noise, so that new tokens start apart from each other and can learn different things.
    """
    old = model.config.vocab_size
    if vocab_size <= old:
        return 0
    weight = model.tok_emb.weight.data  # (V_old, C)
    std = weight.std().item() * 0.1
    new_rows = weight.mean(0, keepdim=True) + std * torch.randn(
        vocab_size - old, weight.shape[1], generator=generator
    ).to(weight)  # (V_new - V_old, C)
    embedding = nn.Embedding(vocab_size, weight.shape[1]).to(weight)
    embedding.weight.data = torch.cat([weight, new_rows])  # (V_new, C)
    model.tok_emb = embedding
    if model.config.tie_embeddings:
        model.lm_head = nn.Linear(weight.shape[1], vocab_size, bias=False).to(weight)
        model.lm_head.weight = model.tok_emb.weight
    else:
        head = model.lm_head.weight.data  # (V_old, C)
        new_head = head.mean(0, keepdim=True).expand(vocab_size - old, -1)
        model.lm_head = nn.Linear(head.shape[1], vocab_size, bias=False).to(head)
        model.lm_head.weight.data = torch.cat([head, new_head])
    model.config.vocab_size = vocab_size
    return vocab_size - old


def masked_targets(ids: Tensor, trained: Tensor) -> Tensor:
    """Next-token targets for ids (B, T + 1): y[t] = ids[t + 1] where that token is trained,
    else -100 (ignored by cross entropy). Returns (B, T)."""
    y = ids[:, 1:].clone()
    y[~trained[:, 1:]] = -100
    return y
