"""BERT's dynamic masking: the 15% and 80/10/10 proportions, what is never chosen, whole words,
a loss that ignores the unchosen positions, and masks reproducible from the generator's seed.

Proportions are checked on a large batch against the binomial standard deviation: n independent
draws with probability p give a fraction with std sqrt(p (1 - p) / n). A test allows 4 of them
(a chance of about 6e-5 of failing for a correct implementation with a new seed), while a wrong
recipe (100% [MASK], or 20% chosen) lands dozens of standard deviations away.
"""

import math

import pytest
import torch

from bert.masking import (
    IGNORE_INDEX,
    candidate_mask,
    choose_positions,
    mask_tokens,
    masked_positions,
    mlm_accuracy,
    mlm_loss,
    select_masked,
    word_index,
    word_index_naive,
)

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = [PAD, UNK, CLS, SEP, MASK]
V = 1000
CONTINUES = torch.arange(V) >= 600  # ids 600..999 stand for "##" pieces


def _batch(B: int = 128, T: int = 256, seed: int = 0) -> torch.Tensor:
    """[CLS] words [SEP] [PAD]...: random lengths, ordinary ids in 5..999 (40% "##" pieces)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(SPECIAL), V, (B, T), generator=g)  # (B, T)
    lengths = torch.randint(T // 4, T + 1, (B,), generator=g)  # (B,)
    positions = torch.arange(T).expand(B, T)  # (B, T)
    ids[:, 0] = CLS
    ids[positions == (lengths - 1)[:, None]] = SEP
    ids[positions >= lengths[:, None]] = PAD
    return ids


def _mask(ids: torch.Tensor, seed: int = 1, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    return mask_tokens(
        ids,
        vocab_size=V,
        mask_id=MASK,
        special_ids=SPECIAL,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


def _within(fraction: float, p: float, n: int, sigmas: float = 4.0) -> bool:
    return abs(fraction - p) <= sigmas * math.sqrt(p * (1 - p) / n)


def test_fifteen_percent_of_the_candidates_are_chosen():
    ids = _batch()
    _, labels = _mask(ids)
    candidates = candidate_mask(ids, SPECIAL)
    n = int(candidates.sum())
    chosen = int((labels != IGNORE_INDEX).sum())
    assert n > 15_000
    assert _within(chosen / n, 0.15, n), chosen / n


def test_chosen_tokens_split_80_10_10():
    """Of the chosen: [MASK] 80%, a random token 10%, unchanged 10%.

    A random draw equal to the original id (probability 1/995) counts as unchanged, which moves
    the expected fractions by about 1e-4, far inside the tolerance.
    """
    ids = _batch()
    inputs, labels = _mask(ids)
    chosen = labels != IGNORE_INDEX
    n = int(chosen.sum())
    masked = (inputs[chosen] == MASK).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    random = 1.0 - masked - kept
    assert _within(masked, 0.8, n), masked
    assert _within(random, 0.1, n), random
    assert _within(kept, 0.1, n), kept


def test_labels_hold_the_original_ids_and_only_chosen_positions_change():
    ids = _batch(32, 64)
    original = ids.clone()
    inputs, labels = _mask(ids)
    chosen = labels != IGNORE_INDEX
    assert torch.equal(ids, original), "mask_tokens must not change its input"
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])
    assert torch.equal(masked_positions(labels), chosen.nonzero())


def test_special_tokens_and_padding_are_never_chosen_nor_drawn_as_random_tokens():
    ids = _batch()
    inputs, labels = _mask(ids, mlm_probability=0.9)  # choose nearly everything
    chosen = labels != IGNORE_INDEX
    assert not chosen[torch.isin(ids, torch.tensor(SPECIAL))].any()
    random = chosen & (inputs != MASK) & (inputs != ids)
    assert random.sum() > 1000
    assert not torch.isin(inputs[random], torch.tensor(SPECIAL)).any()


def test_a_special_mask_excludes_positions_by_place():
    """Padding given as attention_mask == 0 (ids 7 there, not [PAD]) is still never chosen."""
    ids = torch.full((4, 50), 7)
    attention_mask = (torch.arange(50) < 30).expand(4, 50)
    g = torch.Generator().manual_seed(0)
    chosen = choose_positions(
        ids, generator=g, special_mask=attention_mask == 0, mlm_probability=1.0
    )
    assert chosen[:, :30].all() and not chosen[:, 30:].any()
    with pytest.raises(ValueError, match="special_ids or special_mask"):
        choose_positions(ids, generator=g)


def _words(row: torch.Tensor, candidates: torch.Tensor) -> list[list[int]]:
    """The columns of each word of one row, grouped by hand: a candidate token, then its
    "##" pieces."""
    words: list[list[int]] = []
    for t in range(len(row)):
        if not candidates[t]:
            continue
        if CONTINUES[row[t]] and t > 0 and candidates[t - 1] and words:
            words[-1].append(t)
        else:
            words.append([t])
    return words


def test_whole_word_masking_never_splits_a_word_and_chooses_15_percent_of_words():
    ids = _batch(64, 128)
    inputs, labels = _mask(ids, whole_word=True, continues_word=CONTINUES)
    chosen = labels != IGNORE_INDEX
    candidates = candidate_mask(ids, SPECIAL)
    n_words = n_chosen = n_multi = 0
    for b in range(len(ids)):
        for word in _words(ids[b], candidates[b]):
            flags = chosen[b, word]
            assert flags.all() or not flags.any(), f"row {b} word {word} split: {flags.tolist()}"
            n_words += 1
            n_chosen += int(flags[0])
            n_multi += len(word) > 1 and bool(flags[0])
    assert n_multi > 100  # words of several pieces were chosen, so the check above had teeth
    assert _within(n_chosen / n_words, 0.15, n_words), n_chosen / n_words
    # token-level masking does split words: the same check fails without whole_word
    _, token_labels = _mask(ids)
    token_chosen = token_labels != IGNORE_INDEX
    splits = sum(
        0 < int(token_chosen[b, w].sum()) < len(w)
        for b in range(len(ids))
        for w in _words(ids[b], candidates[b])
    )
    assert splits > 0


def test_word_index_equals_the_naive_loop():
    ids = _batch(8, 40, seed=3)
    candidates = candidate_mask(ids, SPECIAL)
    assert torch.equal(
        word_index(ids, candidates, CONTINUES), word_index_naive(ids, candidates, CONTINUES)
    )


def test_whole_word_needs_the_continuation_table():
    with pytest.raises(ValueError, match="continues_word"):
        _mask(_batch(2, 8), whole_word=True)


def test_the_loss_ignores_every_position_that_was_not_chosen():
    torch.manual_seed(0)
    ids = _batch(4, 32)
    _, labels = _mask(ids)
    chosen = labels != IGNORE_INDEX
    logits = torch.randn(4, 32, V, requires_grad=True)  # (B, T, V)
    loss = mlm_loss(logits, labels)
    loss.backward()
    assert (logits.grad[~chosen] == 0).all() and (logits.grad[chosen] != 0).any()

    changed = logits.detach().clone()
    changed[~chosen] = torch.randn_like(changed[~chosen]) * 100  # anything at all elsewhere
    torch.testing.assert_close(mlm_loss(changed, labels), loss.detach())

    want = torch.nn.functional.cross_entropy(logits[chosen], ids[chosen])
    torch.testing.assert_close(loss, want)  # the mean over the chosen positions only

    hidden_at, labels_at = select_masked(logits.detach(), labels)  # (N, V), (N,)
    assert hidden_at.shape == (int(chosen.sum()), V)
    torch.testing.assert_close(mlm_loss(hidden_at, labels_at), loss.detach())


def test_a_batch_with_nothing_chosen_has_zero_loss_not_nan():
    logits = torch.randn(2, 5, V, requires_grad=True)
    labels = torch.full((2, 5), IGNORE_INDEX)
    loss = mlm_loss(logits, labels)
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph


def test_mlm_accuracy_counts_only_chosen_positions():
    labels = torch.tensor([[5, IGNORE_INDEX, 7]])
    logits = torch.zeros(1, 3, 10)
    logits[0, 0, 5] = logits[0, 1, 9] = logits[0, 2, 8] = 1.0  # right, ignored, wrong
    assert mlm_accuracy(logits, labels) == (1, 2)


def test_the_same_seed_draws_the_same_mask_and_another_seed_a_new_one():
    ids = _batch(16, 64)
    a_inputs, a_labels = _mask(ids, seed=5)
    b_inputs, b_labels = _mask(ids, seed=5)
    assert torch.equal(a_inputs, b_inputs) and torch.equal(a_labels, b_labels)
    c_inputs, c_labels = _mask(ids, seed=6)
    assert not torch.equal(a_labels, c_labels)
    g = torch.Generator().manual_seed(5)  # one generator, two batches: dynamic, a fresh mask
    first = mask_tokens(ids, vocab_size=V, mask_id=MASK, special_ids=SPECIAL, generator=g)[1]
    second = mask_tokens(ids, vocab_size=V, mask_id=MASK, special_ids=SPECIAL, generator=g)[1]
    assert torch.equal(first, a_labels) and not torch.equal(first, second)


def test_packing_fills_rows_with_whole_sentences_up_to_the_length():
    from bert.pretrain import pack_rows

    sentences = [[5, 6, 7], [8, 9], [10] * 10, [11, 12, 13, 14], [15] * 40]
    rows = pack_rows(sentences, max_length=12, cls_id=1, sep_id=2)
    ids = [r for r, _ in rows]
    assert ids[0] == [1, 5, 6, 7, 2, 8, 9, 2]  # the next sentence (11 tokens) did not fit
    assert ids[1] == [1, *[10] * 10, 2]
    assert ids[2] == [1, 11, 12, 13, 14, 2]
    assert ids[3] == [1, *[15] * 10, 2]  # one longer than a row is cut
    assert all(len(r) <= 12 and types == [0] * len(r) for r, types in rows)
