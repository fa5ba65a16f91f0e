"""Span corruption: the noise statistics T5 asks for, nothing lost between inputs and targets."""

import pytest
import torch

from t5 import random_spans_noise_mask, span_corruption
from t5.span_corruption import merge_spans

SENTINELS = list(range(1299, 999, -1))  # sentinels count down, as T5's <extra_id_i> do


def _spans(mask: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a boolean mask."""
    lengths, run = [], 0
    for noisy in mask.tolist() + [False]:
        if noisy:
            run += 1
        elif run:
            lengths.append(run)
            run = 0
    return lengths


def test_noise_fraction_and_mean_span_length_over_many_draws():
    g = torch.Generator().manual_seed(0)
    noise = total = 0
    span_lengths: list[int] = []
    for _ in range(400):
        length = int(torch.randint(50, 400, (1,), generator=g))
        mask = random_spans_noise_mask(length, 0.15, 3.0, generator=g)
        assert mask.shape == (length,)
        assert int(mask.sum()) == round(length * 0.15)  # exactly T5's count, every draw
        assert not mask[0] and mask[-1]  # kept text first, a noise span last
        noise += int(mask.sum())
        total += length
        span_lengths += _spans(mask)
    assert abs(noise / total - 0.15) < 0.005
    mean = sum(span_lengths) / len(span_lengths)
    assert abs(mean - 3.0) < 0.1
    assert len(set(span_lengths)) > 5  # lengths vary: the spans are cut at random


def test_each_draw_has_round_noise_over_mean_spans():
    """100 tokens: round(15) noise tokens in round(15 / 3) = 5 spans, whatever the seed."""
    for seed in range(20):
        mask = random_spans_noise_mask(100, generator=torch.Generator().manual_seed(seed))
        assert int(mask.sum()) == 15 and len(_spans(mask)) == 5


@pytest.mark.parametrize("length", [1, 2, 3, 10, 57, 512])
def test_merging_inputs_and_targets_gives_back_the_ids(length):
    g = torch.Generator().manual_seed(length)
    ids = torch.randint(2, 999, (length,), generator=g)
    for density, mean in ((0.15, 3.0), (0.5, 1.0), (0.3, 8.0)):
        inputs, targets = span_corruption(ids, SENTINELS, density, mean, generator=g)
        assert merge_spans(inputs, targets, SENTINELS) == ids.tolist()
        k = sum(1 for t in targets.tolist() if t in SENTINELS)
        if length == 1:  # nothing to corrupt: T5 keeps a lone token
            assert inputs.tolist() == ids.tolist() and len(targets) == 0
            continue
        assert targets[0] == SENTINELS[0]  # the targets open with the first sentinel
        assert inputs.tolist().count(SENTINELS[k - 1]) == 1  # one sentinel per span, in order
        assert len(inputs) + len(targets) == length + 2 * k  # every token in exactly one of them


def test_the_drawing_is_reproducible_with_a_generator_and_eos_is_appended():
    ids = list(range(10, 60))
    a = span_corruption(ids, SENTINELS, generator=torch.Generator().manual_seed(7), eos_token_id=1)
    b = span_corruption(ids, SENTINELS, generator=torch.Generator().manual_seed(7), eos_token_id=1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0][-1] == 1 and a[1][-1] == 1
    assert merge_spans(a[0], a[1], SENTINELS, eos_token_id=1) == ids


def test_a_worked_example():
    """Draw on 11 tokens with density 0.3: round(3.3) = 3 noise tokens, round(3 / 3) = 1 span."""
    ids = list(range(100, 111))
    inputs, targets = span_corruption(ids, SENTINELS, 0.3, 3.0, torch.Generator().manual_seed(0))
    assert len(targets) == 1 + 3 and targets[0] == SENTINELS[0]
    start = inputs.tolist().index(SENTINELS[0])
    assert targets[1:].tolist() == ids[start : start + 3]
    assert start + 3 == len(ids)  # the one span ends the text (T5's layout)


def test_too_few_sentinels_is_refused():
    with pytest.raises(ValueError, match="sentinels"):
        span_corruption(list(range(100)), SENTINELS[:2])  # 100 tokens make 5 spans
