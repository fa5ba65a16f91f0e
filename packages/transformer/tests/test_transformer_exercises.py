"""The transformer's exercises: one deliberate mistake per exercise fails, naming the first
difference (the generic checks of every exercise are in tests/test_workspace_exercises.py)."""

import pytest

from shared.testing import check_source, wrong_variant
from transformer.exercises import EXERCISES

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    "layernorm": ("correction=0", "correction=1"),  # the unbiased variance, n - 1
    "rmsnorm": ("h.pow(2).mean(", "h.pow(2).sum("),  # the sum of squares, not their mean
    "sinusoidal_table": (
        "torch.arange(0, d_model, 2,",
        "torch.arange(0, d_model // 2,",
    ),  # i, not 2i
    "encoder_layer": ("src_mask, padding, is_causal", "src_mask, None, is_causal"),  # padding seen
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    result = check_source(ex, wrong_variant(ex, number, "transformer", old, new), tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message
