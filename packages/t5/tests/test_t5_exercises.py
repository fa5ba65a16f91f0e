"""t5's exercises: one deliberate mistake per exercise fails, naming the first difference
(the skeleton and the pasted solution are tested for every stage in tests/)."""

import pytest

from shared.testing import check_source, wrong_variant
from t5.exercises import EXERCISES

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    # the halves swapped: keys before the query get the upper buckets
    "position_bucket": ("(relative_position > 0).long()", "(relative_position < 0).long()"),
    "position_bias": ("key - query, self.bidirectional", "query - key, self.bidirectional"),
    # noise first: the text starts with a span
    "noise_mask": ("[kept_lengths, noise_lengths]", "[noise_lengths, kept_lengths]"),
    "span_corruption": ("inputs[~noise | starts]", "inputs[~noise]"),  # the sentinels dropped
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    result = check_source(ex, wrong_variant(ex, number, "t5", old, new), tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message
