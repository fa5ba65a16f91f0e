"""Greedy decoding and beam search for `TransformerTranslator`.

`greedy_decode` and `beam_search` re-run the decoder on the whole prefix at every step (no KV
cache). Captions are short, so this costs little, and the code stays the plain definition:

    greedy:  y_t = argmax_w p(w | x, y_<t), for the whole batch at once, until every row has <eos>
    beam:    keep the `beam_size` best prefixes by summed log-probability; extend each by every
             word; keep the best `beam_size` of those; a prefix ending in <eos> is finished and
             scored by log p / lp(length), GNMT's length penalty lp = ((5 + len) / 6) ** alpha,
             so that long translations are not punished for having more words.

With beam_size = 1 beam search picks the argmax at every step: it is greedy decoding (tested).
The length penalty and the output length limit come from the attention stage's decode.py.

`beam_search_batch` is the one `translate_batch` uses: the beams of many sentences are rows of
one batch (the bookkeeping is the attention stage's `batched_beam_search`), and the decoder
feeds only the newest word, with a KV cache: each layer keeps its self-attention's projected
keys and values of the words so far, and its cross-attention's projected memory, computed once.
A step then costs one position instead of t. It picks the same words as `beam_search` (tested).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from attention.decode import batched_beam_search, length_penalty, max_output_length
from attention.translation_data import pad
from attention.vocab import BOS, EOS
from transformer.translator import TransformerTranslator


@torch.no_grad()
def greedy_decode(model: TransformerTranslator, src: Tensor, max_len: int = 100) -> list[list[int]]:
    """src (B, S) padded ids -> B lists of output ids (ending with <eos> if one was produced)."""
    B, S = src.shape
    memory, src_pad = model.encode(src)  # (B, S, d), (B, S)
    ys = torch.full((B, 1), BOS, dtype=torch.long, device=src.device)  # (B, 1)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    for _ in range(max_output_length(S, max_len)):
        logits = model.decode(ys, memory, src_pad)[:, -1]  # (B, V): the newest position only
        word = logits.argmax(dim=-1)  # (B,)
        word = torch.where(done, torch.full_like(word, EOS), word)  # finished rows stay done
        ys = torch.cat([ys, word.unsqueeze(1)], dim=1)  # (B, t + 1)
        done |= word == EOS
        if bool(done.all()):
            break
    out = []
    for row in ys[:, 1:].tolist():
        out.append(row[: row.index(EOS) + 1] if EOS in row else row)
    return out


@torch.no_grad()
def beam_search(
    model: TransformerTranslator,
    src: Tensor,
    beam_size: int = 5,
    alpha: float = 0.6,
    max_len: int = 100,
) -> tuple[list[int], float]:
    """One sentence, src (1, S) or (S,) -> (best output ids, its length-normalised log-prob)."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    src = src.view(1, -1)  # (1, S)
    memory, src_pad = model.encode(src)  # (1, S, d), (1, S)
    prefixes = torch.full((1, 1), BOS, dtype=torch.long, device=src.device)  # (K, t)
    scores = torch.zeros(1, device=src.device)  # (K,) summed log-probabilities
    finished: list[tuple[list[int], float]] = []
    steps = max_output_length(src.size(1), max_len)
    for t in range(steps):
        K = prefixes.size(0)
        logits = model.decode(prefixes, memory.expand(K, -1, -1), src_pad.expand(K, -1))
        logp = logits[:, -1].float().log_softmax(dim=-1)  # (K, V)
        V = logp.size(-1)
        total = (scores.unsqueeze(1) + logp).view(-1)  # (K * V,)
        top, flat = total.topk(min(2 * beam_size, total.numel()))  # room for <eos> endings
        keep_rows, keep_words, keep_scores = [], [], []
        for score, index in zip(top.tolist(), flat.tolist(), strict=True):
            row, word = divmod(index, V)
            if word == EOS or t == steps - 1:
                ids = [*prefixes[row, 1:].tolist(), word]
                finished.append((ids, score / length_penalty(len(ids), alpha)))
            else:
                keep_rows.append(row)
                keep_words.append(word)
                keep_scores.append(score)
            if len(keep_rows) == beam_size:
                break
        if len(finished) >= beam_size or not keep_rows:
            break
        rows = torch.tensor(keep_rows, device=src.device)  # (K',)
        words = torch.tensor(keep_words, device=src.device).unsqueeze(1)  # (K', 1)
        prefixes = torch.cat([prefixes[rows], words], dim=1)  # (K', t + 1)
        scores = torch.tensor(keep_scores, device=src.device)  # (K',)
    return max(finished, key=lambda f: f[1])


# ----------------------------------------------------------------------------------------------
# Many sentences at once, with a KV cache


@dataclass
class KVCache:
    """What the decoder keeps between steps, one row per hypothesis."""

    self_kv: list[tuple[Tensor, Tensor] | None]  # per layer: (N, h_kv, t, d) keys and values
    memory_kv: list[tuple[Tensor, Tensor]]  # per layer: (N, h_kv, S, d), the projected memory
    self_keep: Tensor  # (N, t) True where an earlier target word takes part (not <pad>)
    memory_keep: Tensor  # (N, S) True on real source words
    length: int = 0  # t: target positions so far

    def select(self, index: Tensor) -> "KVCache":
        """Rows `index`: the hypotheses that live on, each with its parent's past."""
        return KVCache(
            [None if kv is None else (kv[0][index], kv[1][index]) for kv in self.self_kv],
            [(k[index], v[index]) for k, v in self.memory_kv],
            self.self_keep[index],
            self.memory_keep[index],
            self.length,
        )


def start_cache(model: TransformerTranslator, memory: Tensor, src_pad: Tensor) -> KVCache:
    """Project the memory (B, S, d) for every layer's cross-attention, once per sentence."""
    layers = model.transformer.decoder.layers
    memory_kv = [layer.cross_attn.project_key_value(memory, memory) for layer in layers]
    empty = torch.zeros(memory.size(0), 0, dtype=torch.bool, device=memory.device)  # (B, 0)
    return KVCache([None] * len(layers), memory_kv, empty, ~src_pad)


def decode_step(model: TransformerTranslator, words: Tensor, cache: KVCache) -> Tensor:
    """The newest words (N,) -> next-word logits (N, V); the cache grows by one position."""
    x = model._embed(model.tgt_embed, words.unsqueeze(1), offset=cache.length)  # (N, 1, d)
    cache.self_keep = torch.cat([cache.self_keep, (words != model.pad_id).unsqueeze(1)], 1)
    self_mask = cache.self_keep[:, None, None, :]  # (N, 1, 1, t + 1)
    memory_mask = cache.memory_keep[:, None, None, :]  # (N, 1, 1, S)
    decoder = model.transformer.decoder
    for i, layer in enumerate(decoder.layers):
        x, cache.self_kv[i] = layer.forward_step(
            x, cache.self_kv[i], cache.memory_kv[i], self_mask, memory_mask
        )  # (N, 1, d)
    cache.length += 1
    h = decoder.norm(x) if decoder.norm is not None else x  # (N, 1, d)
    return model.output(h)[:, 0]  # (N, V)


@torch.no_grad()
def beam_search_batch(
    model: TransformerTranslator,
    sources: Sequence[Sequence[int]],
    beam_size: int = 5,
    alpha: float = 0.6,
    max_len: int = 100,
    device: torch.device | str | None = None,
) -> list[tuple[list[int], float]]:
    """`beam_search` for every id list in `sources` at once: (output ids, score) per sentence."""
    if not sources:
        return []
    memory, src_pad = model.encode(pad([list(s) for s in sources], device))  # (B, S, d), (B, S)
    state = {"cache": start_cache(model, memory, src_pad)}

    def step(prev: Tensor) -> tuple[Tensor, None]:
        logits = decode_step(model, prev, state["cache"])  # (N, V)
        return logits.float().log_softmax(dim=-1), None

    def reorder(index: Tensor) -> None:
        state["cache"] = state["cache"].select(index)

    steps = [max_output_length(len(s), max_len) for s in sources]
    best = batched_beam_search(step, reorder, steps, beam_size, alpha, device)
    return [(h.ids, h.score) for h in best]
