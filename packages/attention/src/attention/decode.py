"""Turning a trained translator into sentences: greedy decoding and beam search.

Greedy decoding takes the most likely word at every step. It is fast and batched, but a word
that looks best now can lead to a worse sentence. Beam search keeps the `beam_size` most likely
partial translations (by total log-probability), extends each by every word, and keeps the best
`beam_size` of those, until `beam_size` of them have ended with <eos>.

Summed log-probabilities favour short sentences (every word makes the sum smaller), so finished
hypotheses are compared by log p / lp(length) with GNMT's length penalty
lp = ((5 + length) / 6) ** alpha (Wu et al. 2016): alpha = 0 is no normalisation, alpha = 1
is close to the mean log-probability per word. With beam_size = 1 beam search is greedy
decoding (tested).

Both return the attention weights of the chosen words, one row per output word, for heatmaps.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from attention.seq2seq import Seq2Seq
from attention.vocab import BOS, EOS


@dataclass
class Hypothesis:
    ids: list[int]  # output word ids, without <bos>, ending in <eos> if it finished
    score: float  # the normalised log-probability
    weights: Tensor  # (len(ids), S) attention weights


def max_output_length(src_len: int, limit: int) -> int:
    """Captions translate to about as many words as they have; leave room, but stop runaways."""
    return min(limit, 2 * src_len + 10)


@torch.no_grad()
def greedy_decode(model: Seq2Seq, src: Tensor, max_len: int = 100) -> list[Hypothesis]:
    """src (B, S) padded ids -> one hypothesis per sentence (log-prob sum as its score)."""
    B, S = src.shape
    enc = model.encode(src)
    hidden = enc.hidden  # (1, B, H)
    prev = torch.full((B,), BOS, dtype=torch.long, device=src.device)  # (B,)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    scores = torch.zeros(B, device=src.device)
    ids, weights = [], []
    for _ in range(max_output_length(S, max_len)):
        logp, hidden, w = model.decode_step(prev, hidden, enc)  # (B, V), (1, B, H), (B, S)
        best, prev = logp.max(dim=-1)  # (B,), (B,)
        scores += torch.where(done, torch.zeros_like(best), best)
        ids.append(prev)
        weights.append(w)
        done |= prev == EOS
        if bool(done.all()):
            break
    all_ids = torch.stack(ids, dim=1).tolist()  # (B, T)
    all_w = torch.stack(weights, dim=1).float()  # (B, T, S)
    out = []
    for b in range(B):
        seq = all_ids[b]
        n = seq.index(EOS) + 1 if EOS in seq else len(seq)
        length = int(enc.mask[b].sum())
        out.append(Hypothesis(seq[:n], float(scores[b]), all_w[b, :n, :length].cpu()))
    return out


def length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: Seq2Seq, src: Tensor, beam_size: int = 5, alpha: float = 0.6, max_len: int = 100
) -> Hypothesis:
    """Beam search for one sentence, src (1, S) or (S,); returns the best finished hypothesis."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    src = src.view(1, -1)  # (1, S)
    S = src.size(1)
    enc = model.encode(src)
    # every alive hypothesis is a row of the batch; start with one row
    alive_ids = torch.full((1, 0), BOS, dtype=torch.long, device=src.device)  # (K, t)
    alive_w = torch.zeros(1, 0, S, device=src.device)  # (K, t, S)
    alive_logp = torch.zeros(1, device=src.device)  # (K,) summed log-probabilities
    prev = torch.full((1,), BOS, dtype=torch.long, device=src.device)  # (K,)
    hidden = enc.hidden  # (1, K, H)
    finished: list[Hypothesis] = []
    steps = max_output_length(S, max_len)
    copies = {1: enc}  # the encoded sentence repeated K times, one row per hypothesis
    for t in range(steps):
        K = alive_logp.size(0)
        if K not in copies:
            copies[K] = enc.select(torch.zeros(K, dtype=torch.long, device=src.device))
        logp, hidden, w = model.decode_step(prev, hidden, copies[K])  # (K, V), (1, K, H), (K, S)
        V = logp.size(-1)
        total = (alive_logp.unsqueeze(1) + logp).view(-1)  # (K * V,)
        top, flat = total.topk(min(2 * beam_size, total.numel()))  # room for <eos> endings
        rows, words = flat // V, flat % V  # (2k,) which hypothesis, which word
        next_rows, next_words, next_logp = [], [], []
        for score, row, word in zip(top.tolist(), rows.tolist(), words.tolist(), strict=True):
            if word == EOS or t == steps - 1:
                ids = [*alive_ids[row].tolist(), word]
                ws = torch.cat([alive_w[row], w[row : row + 1]]).float().cpu()  # (t + 1, S)
                finished.append(Hypothesis(ids, score / length_penalty(len(ids), alpha), ws))
            else:
                next_rows.append(row)
                next_words.append(word)
                next_logp.append(score)
            if len(next_rows) == beam_size:
                break
        if len(finished) >= beam_size or not next_rows:
            break
        index = torch.tensor(next_rows, device=src.device)  # (K',)
        prev = torch.tensor(next_words, device=src.device)  # (K',)
        alive_ids = torch.cat([alive_ids[index], prev.unsqueeze(1)], dim=1)  # (K', t + 1)
        alive_w = torch.cat([alive_w[index], w[index].unsqueeze(1)], dim=1)  # (K', t + 1, S)
        alive_logp = torch.tensor(next_logp, device=src.device)  # (K',)
        hidden = hidden.index_select(1, index)  # (1, K', H)
    return max(finished, key=lambda h: h.score)
