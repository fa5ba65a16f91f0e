"""mlp's exercises: one deliberate mistake per exercise fails, naming the first difference."""

import pytest

from mlp.exercises import EXERCISES
from shared.testing import check_source, wrong_variant

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    "batches": ("default_rng([seed, epoch])", "default_rng(seed)"),  # every epoch the same order
    "build_mlp": ("if i < len(sizes) - 2:", "if i < len(sizes) - 1:"),  # an activation on logits
    "log_softmax": (
        "z = self.data - self.data.max(axis=axis, keepdims=True)",
        "z = self.data",  # no max subtracted: exp(1000) overflows
    ),
    "cross_entropy": ("return -picked.mean()", "return -picked.sum()"),  # the 1/N scale missing
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    result = check_source(ex, wrong_variant(ex, number, "mlp", old, new), tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message
