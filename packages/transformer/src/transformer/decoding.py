"""Greedy decoding and beam search for `TransformerTranslator`.

The decoder is re-run on the whole prefix at every step (no KV cache: the GPT stage adds one).
Captions are short, so this costs little, and the code stays the plain definition:

    greedy:  y_t = argmax_w p(w | x, y_<t), for the whole batch at once, until every row has <eos>
    beam:    keep the `beam_size` best prefixes by summed log-probability; extend each by every
             word; keep the best `beam_size` of those; a prefix ending in <eos> is finished and
             scored by log p / lp(length), GNMT's length penalty lp = ((5 + len) / 6) ** alpha,
             so that long translations are not punished for having more words.

With beam_size = 1 beam search picks the argmax at every step: it is greedy decoding (tested).
The length penalty and the output length limit come from the attention stage's decode.py.
"""

import torch
from torch import Tensor

from attention.decode import length_penalty, max_output_length
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
