"""Text from a language model: one token at a time, each chosen from the model's next-token scores.

    out = generate(model, idx, max_new_tokens=200, temperature=0.8, top_k=40, seed=0)

Every step turns the last position's logits (B, vocab) into one new token per row:

    logits  -> repetition penalty    scores of tokens already in the text pushed down (CTRL)
            -> / temperature         < 1 sharpens the distribution, > 1 flattens it; 0 = greedy
            -> top-k                 keep the k highest scores, drop the rest
            -> top-p                 keep the fewest tokens whose probabilities sum to >= p
            -> softmax, sample       (or argmax when greedy)

(the order of transformers' logits processors, so the same settings mean the same thing there).

With `use_cache=True` (the default) the prompt runs through the model once (prefill) and every
later step feeds only the newest token, reading the other tokens' keys and values from a
`KVCache`; the logits are those of running the whole sequence again (tested), at a fraction of
the cost. Batched prompts of different lengths are left-padded (`pad_left`): every row then ends
at the same column, so the next token of every row is read from the last position; the padding
is masked out of attention and the positions of each row start at its first real token, so a
row gets exactly the tokens it would get alone (tested, greedy).

A context longer than the model's block size is cropped to the most recent tokens (nanoGPT's
rule); with a cache, the cache is rebuilt from the most recent half block when it fills up.
"""

import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import torch
from torch import Tensor

from gpt.kv_cache import KVCache
from gpt.model import GPT


def pad_left(prompts: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Token lists of different lengths -> ids (B, T) and attention_mask (B, T), padded on the
    left so that every prompt ends in the last column."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    T = max(len(p) for p in prompts)
    idx = torch.full((len(prompts), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), T), dtype=torch.long)
    for row, p in enumerate(prompts):
        idx[row, T - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        mask[row, T - len(p) :] = 1
    return idx, mask


# ----------------------------------------------------------------------------------------------
# Turning logits into a choice


def apply_repetition_penalty(
    logits: Tensor, seen: Tensor, penalty: float, seen_mask: Tensor | None = None
) -> Tensor:
    """CTRL's penalty (Keskar et al. 2019): a score of a token already in `seen` (B, S) is
    divided by `penalty` if positive and multiplied if negative, so either way it drops.
    Padding (`seen_mask` == 0) does not count as seen."""
    if penalty == 1.0:
        return logits
    weights = torch.ones_like(seen, dtype=logits.dtype) if seen_mask is None else seen_mask
    counts = torch.zeros_like(logits).scatter_add_(1, seen, weights.to(logits.dtype))  # (B, V)
    hit = counts > 0  # (B, V): padding adds 0, so it never counts as seen
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(hit, penalised, logits)  # (B, V)


def top_k_filter(logits: Tensor, k: int | None) -> Tensor:
    """Set every score below the k-th largest of its row to -inf. (B, V) -> (B, V)."""
    if k is None or k <= 0 or k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float | None) -> Tensor:
    """Nucleus sampling (Holtzman et al. 2020): keep the smallest set of most likely tokens
    whose probabilities add up to at least p; the top token always stays. (B, V) -> (B, V)."""
    if p is None or p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # (B, V) probability of the better tokens
    drop_sorted = mass_before >= p  # the set already reached p without this token
    drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)  # back to vocab order
    return logits.masked_fill(drop, float("-inf"))


def choose(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One token per row from scores (B, V): argmax when temperature is 0, else a sample."""
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    logits = top_p_filter(top_k_filter(logits / temperature, top_k), top_p)
    probs = logits.float().softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)


# ----------------------------------------------------------------------------------------------
# Stopping and streaming


class StopStrings:
    """Watches each row's new text for any of `stop`; a row is done once one appears."""

    def __init__(self, stop: Sequence[str], decode: Callable[[list[int]], str], batch: int):
        self.stop, self.decode = list(stop), decode
        self.new: list[list[int]] = [[] for _ in range(batch)]

    def update(self, tokens: Tensor, active: Tensor) -> Tensor:
        """Record this step's tokens (B,); return which rows have now produced a stop string."""
        hit = torch.zeros_like(active)
        for row in range(len(self.new)):
            if not active[row]:
                continue
            self.new[row].append(int(tokens[row]))
            tail = self.decode(self.new[row][-64:])  # a stop string ends in the newest tokens
            hit[row] = any(s in tail for s in self.stop)
        return hit


class TextStreamer:
    """Prints the text of row 0 as tokens arrive. It decodes everything so far and prints the
    part not yet printed, holding back a trailing "\ufffd" (a multi-byte character whose bytes
    a byte-level BPE has not finished)."""

    def __init__(self, decode: Callable[[list[int]], str], file: TextIO | None = None):
        self.decode, self.file = decode, file or sys.stdout
        self.ids: list[int] = []
        self.printed = 0

    def __call__(self, tokens: Tensor) -> None:
        self.ids.append(int(tokens[0]))
        text = self.decode(self.ids)
        if text.endswith("\ufffd"):
            return
        self.file.write(text[self.printed :])
        self.file.flush()
        self.printed = len(text)

    def end(self) -> None:
        text = self.decode(self.ids)
        self.file.write(text[self.printed :] + "\n")
        self.file.flush()


# ----------------------------------------------------------------------------------------------
# The loop


def _positions(mask: Tensor) -> Tensor:
    """Position of each token counted from its row's first real token: (B, T)."""
    return (mask.cumsum(dim=-1) - 1).clamp(min=0)


@torch.no_grad()
def _check_arguments(
    idx: Tensor, temperature: float, stop: Sequence[str] | None, decode: Callable | None
) -> None:
    if idx.dim() != 2:
        raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if stop and decode is None:
        raise ValueError("stop strings need decode= (a function from token ids to text)")


def _cached_forward(
    model: GPT, out: Tensor, out_mask: Tensor, cache: KVCache | None, cache_mask: Tensor | None,
    plain: bool,
) -> tuple[Tensor, KVCache, Tensor]:  # fmt: skip
    """The logits of one step with the KV cache: (logits, cache, the cache's mask).

    The first step, and any step that finds the cache full, prefills it from the most recent
    tokens (all of the prompt, or half a block); every other step feeds just the newest token.
    `plain`: no padding and no finished row, so no mask is needed (faster, same logits).
    """
    block = model.config.block_size
    if cache is None or cache.length >= block:  # prefill (again, from recent tokens)
        keep = block if cache is None else block // 2
        ctx, ctx_mask = out[:, -keep:], out_mask[:, -keep:]
        cache = model.new_cache(block)
        return model(ctx, cache, _positions(ctx_mask), ctx_mask), cache, ctx_mask  # (B, T, V)
    cache_mask = torch.cat([cache_mask, out_mask[:, -1:]], dim=1)  # (B, S)
    if plain:  # positions from the cache
        return model(out[:, -1:], cache), cache, cache_mask  # (B, 1, V)
    position = _positions(cache_mask)[:, -1:]  # (B, 1)
    return model(out[:, -1:], cache, position, cache_mask), cache, cache_mask  # (B, 1, V)


def generate(
    model: GPT,
    idx: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    stop: Sequence[str] | None = None,
    decode: Callable[[list[int]], str] | None = None,
    eos_token_id: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    stream: Callable[[Tensor], None] | None = None,
    attention_mask: Tensor | None = None,
    pad_token_id: int = 0,
    use_cache: bool = True,
) -> Tensor:
    """The prompt followed by up to `max_new_tokens` new tokens: a LongTensor (B, T + new).

    idx: (B, T) prompt ids, left-padded with `attention_mask` (1 = real token) when batched.
    temperature 0 is greedy decoding. `seed` (or a `generator`) makes sampling reproducible.
    stop: strings that end a row (needs `decode`: ids -> text); eos_token_id ends a row too.
    A finished row is filled with `pad_token_id`; generation ends when every row is finished.
    stream: called with each step's new tokens (B,), e.g. a TextStreamer.
    use_cache: False recomputes the whole context every step (slow; for checking the cache).
    """
    _check_arguments(idx, temperature, stop, decode)
    if generator is None and seed is not None:
        generator = torch.Generator(device=idx.device).manual_seed(seed)
    was_training = model.training
    model.eval()
    B = idx.size(0)
    block = model.config.block_size
    mask = torch.ones_like(idx) if attention_mask is None else attention_mask.to(idx.device).long()
    stopper = StopStrings(stop, decode, B) if stop else None
    active = torch.ones(B, dtype=torch.bool, device=idx.device)
    out, out_mask = idx, mask
    cache, cache_mask = None, None
    # Without padding, and while no row has finished, every mask is all ones: the model can
    # then skip building masks and attend with its plain causal path (same logits, tested).
    unpadded, finished_none = bool(mask.all()), True
    try:
        for _ in range(max_new_tokens):
            if not use_cache:  # recompute: the whole (cropped) context every step
                ctx, ctx_mask = out[:, -block:], out_mask[:, -block:]
                logits = model(ctx, positions=_positions(ctx_mask), attention_mask=ctx_mask)
            else:
                logits, cache, cache_mask = _cached_forward(
                    model, out, out_mask, cache, cache_mask, plain=unpadded and finished_none
                )
            logits = logits[:, -1, :].float()  # (B, V): the scores for the next token
            logits = apply_repetition_penalty(logits, out, repetition_penalty, out_mask)
            token = choose(logits, temperature, top_k, top_p, generator)  # (B,)
            token = torch.where(active, token, torch.full_like(token, pad_token_id))
            out = torch.cat([out, token[:, None]], dim=1)  # (B, T + 1)
            out_mask = torch.cat([out_mask, active[:, None].long()], dim=1)
            if stream is not None:
                stream(token)
            finished = torch.zeros_like(active)
            if eos_token_id is not None:
                finished |= token == eos_token_id
            if stopper is not None:
                finished |= stopper.update(token, active)
            active = active & ~finished
            finished_none = bool(active.all())
            if not active.any():
                break
    finally:
        model.train(was_training)
    return out
