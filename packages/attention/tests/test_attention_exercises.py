"""attention's exercises: one deliberate mistake per exercise fails, naming the first difference."""

import pytest

from attention.exercises import EXERCISES
from shared.testing import check_source, wrong_variant

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    "sdpa": ("(q @ k.transpose(-2, -1)) * scale", "(q @ k.transpose(-2, -1))"),  # no 1/sqrt(E)
    "split_heads": (  # a reshape where the heads need a transpose
        "return k.transpose(1, 2), v.transpose(1, 2)",
        "return k.reshape(B, self.num_kv_heads, S, -1), v.transpose(1, 2)",
    ),
    "attend": (  # the same mistake when merging the heads back
        "out.transpose(1, 2).reshape(B, L, self.embed_dim)",
        "out.reshape(B, L, self.embed_dim)",
    ),
    "additive_score": ("torch.tanh(pq.unsqueeze(2)", "(pq.unsqueeze(2)"),  # the tanh forgotten
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    result = check_source(ex, wrong_variant(ex, number, "attention", old, new), tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message
