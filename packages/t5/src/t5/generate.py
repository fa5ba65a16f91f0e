"""Decoding with T5: encode the source once, then the decoder one token at a time.

    out = generate(model, input_ids, max_new_tokens=32, attention_mask=mask)       # greedy
    out = generate(model, input_ids, 32, num_beams=4, length_penalty=0.6)           # beam search
    out = generate(model, input_ids, 32, do_sample=True, temperature=0.8, top_k=40,
                   generator=torch.Generator().manual_seed(0))                      # sampling

The source (B, S) runs through the encoder once. The decoder starts every row from
`decoder_start_token_id` (T5: the padding id, 0) and adds one token per step; with the cache
(`use_cache=True`) a step feeds only the newest token, each layer appends its keys and values
to the self-attention buffers and reads the source's cross-attention keys and values computed
on the first step (cache.py). `use_cache=False` runs the decoder over the whole prefix every
step: slower, the same tokens (tested), kept to check the cache against.

Returned: a LongTensor (B, L) in transformers' layout: the start token, then each row's tokens
up to and including its EOS, then `pad_token_id`; L is the longest row. `cut_at_eos` turns it
into lists of the generated tokens.

Beam search (num_beams = k > 1) keeps the k best prefixes per source by summed log-probability.
Each step scores all k * V one-token extensions and keeps the best 2k: those ending in EOS (or
reaching the length limit) among the first k become finished hypotheses, scored by
sum log p / generated_length ** length_penalty (> 0 favours longer outputs), and the best k
unfinished ones live on; the cache follows them (`T5Cache.reorder`). The rules are transformers'
(its vectorised beam search, v4.50+), to the same arithmetic, so both pick the same beams
(tested): a source is done when `early_stopping=True` and k hypotheses have finished; with
False (the default) when the best live beam, scored at its current length, cannot beat the
worst of k finished ones; with "never" when no beam could, scored at the length limit (for
length_penalty > 0). The attention stage's `batched_beam_search` is a different search (GNMT's
length penalty, and it stops at k finished hypotheses), hence a search of its own here.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from t5.model import T5

NEG = -1.0e9  # "impossible" in score arithmetic (finite, so sums and comparisons stay defined)


def cut_at_eos(out: Tensor, eos_token_id: int = 1, keep_start: bool = False) -> list[list[int]]:
    """generate's output (B, L) -> per row, the tokens after the start up to and incl. EOS."""
    rows = []
    for row in out.tolist():
        row = row if keep_start else row[1:]
        rows.append(row[: row.index(eos_token_id) + 1] if eos_token_id in row else row)
    return rows


def _pad_rows(rows: Sequence[Sequence[int]], pad_token_id: int, device: torch.device) -> Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad_token_id, dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out


def _sample(
    logits: Tensor, temperature: float, top_k: int, generator: torch.Generator | None
) -> Tensor:
    """One token per row from scores (N, V): / temperature, keep the top k, sample."""
    # Adapted from gpt.generate.choose (t5 may not import gpt): the same order as transformers'
    # logits processors, temperature then top-k.
    logits = logits / temperature
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(dim=-1)  # (N, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (N,)


@torch.no_grad()
def generate(
    model: T5,
    input_ids: Tensor,
    max_new_tokens: int = 20,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    attention_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    decoder_start_token_id: int | None = None,
) -> Tensor:
    """Decoder ids (B, L) for sources (B, S): greedy, sampled, or the best beam; see above.

    attention_mask (B, S): 1 = real source token. The special ids default to the model's
    config. Beams do not sample (num_beams > 1 with do_sample is refused).
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, S), got shape {tuple(input_ids.shape)}")
    if max_new_tokens < 0 or num_beams < 1:
        raise ValueError(f"need max_new_tokens >= 0 and num_beams >= 1, got "
                         f"{max_new_tokens} and {num_beams}")  # fmt: skip
    if do_sample and num_beams > 1:
        raise ValueError("beam sampling is not implemented: use do_sample or num_beams > 1")
    if do_sample and temperature <= 0:
        raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    c = model.config
    eos = c.eos_token_id if eos_token_id is None else eos_token_id
    pad = c.pad_token_id if pad_token_id is None else pad_token_id
    start = c.decoder_start_token_id if decoder_start_token_id is None else decoder_start_token_id
    was_training = model.training
    model.eval()
    try:
        memory = model.encode(input_ids, attention_mask)  # (B, S, d), once per source
        if num_beams == 1:
            return _greedy_or_sample(model, memory, attention_mask, max_new_tokens, do_sample,
                                     temperature, top_k, generator, use_cache, eos, pad,
                                     start)  # fmt: skip
        return _beam_search(model, memory, attention_mask, max_new_tokens, num_beams,
                            length_penalty, early_stopping, use_cache, eos, pad,
                            start)  # fmt: skip
    finally:
        model.train(was_training)


def _greedy_or_sample(
    model: T5,
    memory: Tensor,
    attention_mask: Tensor | None,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
    top_k: int,
    generator: torch.Generator | None,
    use_cache: bool,
    eos: int,
    pad: int,
    start: int,
) -> Tensor:
    B = memory.size(0)
    out = torch.full((B, 1), start, dtype=torch.long, device=memory.device)  # (B, 1)
    cache = model.new_cache(1 + max_new_tokens) if use_cache else None
    active = torch.ones(B, dtype=torch.bool, device=memory.device)
    for _ in range(max_new_tokens):
        decoder_input = out[:, -1:] if use_cache else out  # (B, 1) or (B, t)
        logits = model.decode(decoder_input, memory, attention_mask, cache)[:, -1].float()  # (B, V)
        token = _sample(logits, temperature, top_k, generator) if do_sample else logits.argmax(-1)
        token = torch.where(active, token, torch.full_like(token, pad))  # finished rows: padding
        out = torch.cat([out, token[:, None]], dim=1)  # (B, t + 1)
        active &= token != eos
        if not active.any():
            break
    return out


def _beam_search(
    model: T5,
    memory: Tensor,
    attention_mask: Tensor | None,
    max_new_tokens: int,
    k: int,
    length_penalty: float,
    early_stopping: bool | str,
    use_cache: bool,
    eos: int,
    pad: int,
    start: int,
) -> Tensor:
    B, device = memory.size(0), memory.device
    max_length = 1 + max_new_tokens  # the start token and the new ones
    if max_new_tokens == 0:
        return torch.full((B, 1), start, dtype=torch.long, device=device)
    width = 2 * k  # candidates kept per step: room for k to end in EOS and k to live on
    first_k = torch.arange(width, device=device) < k  # (2k,) only these may finish
    # live beams: (B, k, max_length) ids, filled up to cur_len; summed log-probabilities.
    # At the start every beam is the start token; all but one score NEG, so the first step
    # does not pick the same continuation k times.
    live = torch.full((B, k, max_length), pad, dtype=torch.long, device=device)
    live[:, :, 0] = start
    live_scores = torch.zeros(B, k, device=device)
    live_scores[:, 1:] = NEG
    # finished hypotheses, the best k per source so far; NEG marks an empty slot
    done = live.clone()
    done_scores = torch.full((B, k), NEG, device=device)
    done_flag = torch.zeros(B, k, dtype=torch.bool, device=device)
    improvable = torch.ones(B, 1, dtype=torch.bool, device=device)  # can a live beam still win?
    cache = model.new_cache(max_length) if use_cache else None
    rows = torch.arange(B, device=device)[:, None] * k  # (B, 1) first row of each source
    cur_len = 1
    while True:
        prefix = live[:, :, cur_len - 1 : cur_len] if use_cache else live[:, :, :cur_len]
        logits = model.decode(prefix.reshape(B * k, -1), memory, attention_mask, cache)[:, -1]
        logp = F.log_softmax(logits.float(), dim=-1)  # (B * k, V)
        V = logp.size(-1)
        total = (logp.view(B, k, V) + live_scores[:, :, None]).view(B, k * V)  # (B, k * V)
        top_scores, top_index = torch.topk(total, width)  # (B, 2k)
        beam, token = top_index // V, top_index % V  # which live beam, which token
        candidates = torch.take_along_dim(live, beam[:, :, None], dim=1)  # (B, 2k, max_length)
        candidates[:, :, cur_len] = token
        ended = (token == eos) | (cur_len + 1 >= max_length)  # (B, 2k)

        # the best k candidates that go on
        go_on_scores = top_scores + ended.float() * NEG
        keep = torch.topk(go_on_scores, k).indices  # (B, k)
        live = torch.take_along_dim(candidates, keep[:, :, None], dim=1)  # (B, k, max_length)
        live_scores = torch.take_along_dim(go_on_scores, keep, dim=1)  # (B, k)
        parent = torch.take_along_dim(beam, keep, dim=1)  # (B, k) the beam each came from

        # the candidates that finish, length-normalised, merged with those finished before
        just_ended = ended & first_k  # (B, 2k)
        done, done_scores, done_flag = _merge_finished(
            (done, done_scores, done_flag), candidates, top_scores, just_ended, improvable,
            cur_len, length_penalty, early_stopping,
        )  # fmt: skip

        if cache is not None:  # the cache follows the beams that live on
            cache.reorder((rows + parent).reshape(-1))
        cur_len += 1

        improvable = improvable & _can_improve(
            live_scores, done_scores, done_flag, cur_len, max_length, length_penalty,
            early_stopping,
        )  # fmt: skip
        all_full = bool(done_flag.all()) and early_stopping is True
        if not improvable.any() or all_full or bool(ended.all()):
            break

    return _best_finished(done, eos, pad)


def _merge_finished(
    finished: tuple[Tensor, Tensor, Tensor],
    candidates: Tensor,
    top_scores: Tensor,
    just_ended: Tensor,
    improvable: Tensor,
    cur_len: int,
    length_penalty: float,
    early_stopping: bool | str,
) -> tuple[Tensor, Tensor, Tensor]:
    """The best k finished hypotheses per source after this step: those finished before
    (`finished`: ids (B, k, L), scores (B, k), flags (B, k)) and the candidates that end now,
    length-normalised. A source that is full (early stopping) or cannot improve takes none."""
    done, done_scores, done_flag = finished
    k = done_scores.size(1)
    scores = top_scores / ((cur_len + 1 - 1) ** length_penalty)  # generated length, EOS incl.
    full = done_flag.all(dim=1, keepdim=True) & (early_stopping is True)  # (B, 1)
    scores = scores + full.float() * NEG  # a full source takes no more (early stopping)
    scores = scores + (~improvable).float() * NEG  # nor a source that cannot improve
    scores = scores + (~just_ended).float() * NEG  # nor a candidate that goes on
    merged_scores = torch.cat([done_scores, scores], dim=1)  # (B, 3k)
    best = torch.topk(merged_scores, k).indices  # (B, k)
    done = torch.take_along_dim(torch.cat([done, candidates], 1), best[:, :, None], dim=1)
    done_scores = torch.take_along_dim(merged_scores, best, dim=1)
    done_flag = torch.take_along_dim(torch.cat([done_flag, just_ended], 1), best, dim=1)
    return done, done_scores, done_flag


def _can_improve(
    live_scores: Tensor,
    done_scores: Tensor,
    done_flag: Tensor,
    cur_len: int,
    max_length: int,
    length_penalty: float,
    early_stopping: bool | str,
) -> Tensor:
    """(B, 1): can the best live beam still beat the worst finished one? (transformers'
    heuristic: with early_stopping "never" and a positive penalty, at the longest length)."""
    if early_stopping == "never" and length_penalty > 0.0:
        best_length = max_length - 1
    else:
        best_length = cur_len - 1
    best_possible = live_scores[:, :1] / (best_length**length_penalty)  # (B, 1)
    worst_done = torch.where(done_flag, done_scores.min(dim=1, keepdim=True).values, NEG)
    return (best_possible > worst_done).any(dim=-1, keepdim=True)


def _best_finished(done: Tensor, eos: int, pad: int) -> Tensor:
    """The best finished hypothesis of each source (slot 0 of `done`, (B, k, L)), cut at its
    EOS, padded: (B, longest)."""
    best_rows = []
    for row in done[:, 0].tolist():  # (B, max_length), slots sorted best first
        best_rows.append(row[: row.index(eos, 1) + 1] if eos in row[1:] else row)
    return _pad_rows(best_rows, pad, done.device)
