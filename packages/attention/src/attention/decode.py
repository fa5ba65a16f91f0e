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

`beam_search` follows one sentence and is the one to read. `beam_search_batch` decodes many
sentences at once: the alive hypotheses of every sentence are rows of one batch, so each step
is one call of the network, and each sentence keeps its own bookkeeping (and stops on its own).
The bookkeeping is `batched_beam_search`, written once for any decoder that can take a step for
a batch of rows and reorder its state: the transformer stage drives it with a KV cache. It
picks the same words as the per-sentence search (tested).
"""

from collections.abc import Callable, Sequence
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


# ----------------------------------------------------------------------------------------------
# Many sentences at once


@dataclass
class Finished:
    ids: list[int]  # output ids, ending in <eos> unless the length limit stopped it
    score: float  # log p / lp(len(ids))
    extra: Tensor | None  # (len(ids), ...) what `step` reported per word (attention weights)


@torch.no_grad()
def batched_beam_search(
    step: Callable[[Tensor], tuple[Tensor, Tensor | None]],
    reorder: Callable[[Tensor], None],
    max_steps: Sequence[int],
    beam_size: int = 5,
    alpha: float = 0.6,
    device: torch.device | str | None = None,
) -> list[Finished]:
    """Beam search for B sentences whose alive hypotheses are the rows of one batch.

    `step(prev)` takes the newest word of every row, prev (N,), and returns the log-probs of
    the next word (N, V) and, optionally, a per-row tensor (N, ...) to keep per output word (or
    None). `reorder(index)` makes the caller's state follow the rows that live on: row i of the
    next step is row index[i] of this one. Rows of one sentence are contiguous, and at the start
    row b is sentence b. Sentence b may take at most max_steps[b] words. The choices per
    sentence are those of `beam_search`: of the best 2k extensions, those ending in <eos> finish,
    the best k others live on; a sentence stops with k finished hypotheses. Returns the best
    finished hypothesis of each sentence.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    B = len(max_steps)
    prev = torch.full((B,), BOS, dtype=torch.long, device=device)  # (N,)
    alive_logp = torch.zeros(B, device=device)  # (N,) summed log-probabilities
    alive_ids = torch.full((B, 0), BOS, dtype=torch.long, device=device)  # (N, t)
    alive_extra: Tensor | None = None  # (N, t, ...)
    groups = [(b, 1) for b in range(B)]  # (sentence, its number of rows), in row order
    finished: list[list[Finished]] = [[] for _ in range(B)]
    t = 0
    while groups:
        logp, extra = step(prev)  # (N, V), (N, ...) or None
        V = logp.size(-1)
        keep_rows: list[int] = []
        keep_words: list[int] = []
        keep_logp: list[float] = []
        next_groups = []
        start = 0
        for b, count in groups:
            total = alive_logp[start : start + count].unsqueeze(1) + logp[start : start + count]
            total = total.view(-1)  # (K * V,)
            top, flat = total.topk(min(2 * beam_size, total.numel()))  # room for <eos> endings
            rows, words, scores = [], [], []
            for score, index in zip(top.tolist(), flat.tolist(), strict=True):
                row, word = divmod(index, V)
                row += start
                if word == EOS or t == max_steps[b] - 1:
                    ids = [*alive_ids[row].tolist(), word]
                    ex = None
                    if extra is not None:
                        past = alive_extra[row] if alive_extra is not None else extra[:0]
                        ex = torch.cat([past, extra[row : row + 1]])  # (t + 1, ...)
                    finished[b].append(Finished(ids, score / length_penalty(len(ids), alpha), ex))
                else:
                    rows.append(row)
                    words.append(word)
                    scores.append(score)
                if len(rows) == beam_size:
                    break
            if len(finished[b]) < beam_size and rows:  # the sentence goes on
                keep_rows += rows
                keep_words += words
                keep_logp += scores
                next_groups.append((b, len(rows)))
            start += count
        groups = next_groups
        if not groups:
            break
        index = torch.tensor(keep_rows, device=device)  # (N',)
        prev = torch.tensor(keep_words, device=device)  # (N',)
        alive_ids = torch.cat([alive_ids[index], prev.unsqueeze(1)], dim=1)  # (N', t + 1)
        if extra is not None:
            new = extra[index].unsqueeze(1)  # (N', 1, ...)
            alive_extra = new if alive_extra is None else torch.cat([alive_extra[index], new], 1)
        alive_logp = torch.tensor(keep_logp, device=device)  # (N',)
        reorder(index)
        t += 1
    return [max(f, key=lambda h: h.score) for f in finished]


@torch.no_grad()
def beam_search_batch(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    beam_size: int = 5,
    alpha: float = 0.6,
    max_len: int = 100,
    device: torch.device | str | None = None,
) -> list[Hypothesis]:
    """`beam_search` for every id list in `sources` at once; one hypothesis per sentence."""
    from attention.translation_data import pad

    if not sources:
        return []
    lengths = [len(s) for s in sources]
    enc = model.encode(pad([list(s) for s in sources], device))  # one row per sentence
    state = {"enc": enc, "hidden": enc.hidden}  # (1, N, H)

    def step(prev: Tensor) -> tuple[Tensor, Tensor]:
        logp, state["hidden"], w = model.decode_step(prev, state["hidden"], state["enc"])
        return logp, w  # (N, V), (N, S)

    def reorder(index: Tensor) -> None:
        state["enc"] = state["enc"].select(index)
        state["hidden"] = state["hidden"].index_select(1, index)  # (1, N', H)

    steps = [max_output_length(n, max_len) for n in lengths]
    best = batched_beam_search(step, reorder, steps, beam_size, alpha, device)
    return [
        Hypothesis(h.ids, h.score, h.extra[:, :n].float().cpu())  # (len(ids), S) of its words
        for h, n in zip(best, lengths, strict=True)
    ]
