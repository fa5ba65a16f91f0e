"""bert's exercises: one deliberate mistake per exercise fails, naming the first difference
(the skeleton and the pasted solution are tested for every stage in tests/)."""

import pytest

from bert.exercises import EXERCISES
from shared.testing import check_source, wrong_variant

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    # positions counted from 1: every token gets its neighbour's position vector
    "embeddings": ("torch.arange(T, device", "torch.arange(1, T + 1, device"),
    "choose_positions": ("return coin & candidates", "return coin"),  # [CLS] and [PAD] chosen
    # the kept 10% get random tokens too: no chosen token is ever left as it was
    "mask_tokens": (
        "(fate >= mask_fraction) & (fate < mask_fraction + random_fraction)",
        "(fate >= mask_fraction)",
    ),
    "mlm_loss": ("ignore_index=IGNORE_INDEX)", "ignore_index=IGNORE_INDEX, reduction='sum')"),
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    result = check_source(ex, wrong_variant(ex, number, "bert", old, new), tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message
