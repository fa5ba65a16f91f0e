"""seq_models' exercises: one deliberate mistake per exercise fails, naming the first difference."""

import pytest

from seq_models.exercises import EXERCISES
from shared.testing import check_source, wrong_variant

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    "rnn_step": ("linear(h, w_hh, b_hh)", "linear(h, w_hh.T, b_hh)"),  # a transposed matrix
    "lstm_step": ("i, f, g, o = gates.chunk", "f, i, g, o = gates.chunk"),  # the gate order
    "gru_step": ("(1 - z) * n + z * h", "z * n + (1 - z) * h"),  # the paper's convention
    "naive_direction": ("valid = (t < lengths)", "valid = (t <= lengths)"),  # an off-by-one mask
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    result = check_source(ex, wrong_variant(ex, number, "seq_models", old, new), tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message
