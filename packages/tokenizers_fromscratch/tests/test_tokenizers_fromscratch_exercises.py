"""The tokenizers' exercises: one deliberate mistake per exercise fails, naming the first
difference (the generic checks of every exercise are in tests/test_workspace_exercises.py)."""

import pytest

from shared.testing import check_source, wrong_variant
from tokenizers_fromscratch.exercises import EXERCISES

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    # ties go to the pair counted first, not to the smallest pair
    "bpe_train": ("min(pairs, key=lambda p: (-pairs[p], p))", "max(pairs, key=pairs.get)"),
    # the leftmost mergeable pair first, not the earliest learned
    "bpe_merge": ("found is not None and found[0] < best_rank", "found is not None and not best"),
    # continuations looked up without their "##"
    "wordpiece": ("word[start:end] if start == 0 else prefix + word[start:end]", "word[start:end]"),
    # off by one: a piece that ends at the window's last position is never tried
    "unigram_viterbi": ("min(n, i + max_len) + 1)", "min(n, i + max_len))"),
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    source = wrong_variant(ex, number, "tokenizers_fromscratch", old, new)
    result = check_source(ex, source, tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message
