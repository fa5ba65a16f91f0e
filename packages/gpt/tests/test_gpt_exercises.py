"""gpt's exercises: one deliberate mistake per exercise fails, naming the first difference
(the skeleton and the pasted solution are tested for every stage in tests/)."""

import pytest

from gpt.exercises import EXERCISES
from shared.testing import check_source, wrong_variant

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    # a single new token after the cache gets torch's top-left causal mask: it sees key 0 only
    "causal_self_attention": ("is_causal=mask is None and T > 1", "is_causal=mask is None"),
    "causal_mask": ("(cols <= rows)", "(cols < rows)"),  # off by one: a token cannot see itself
    "top_p": ("probs.cumsum(dim=-1) - probs", "probs.cumsum(dim=-1)"),  # drops the token reaching p
    "lora_forward": ("self.lora_B.to(x.dtype).T) * self.scaling", "self.lora_B.to(x.dtype).T)"),
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    result = check_source(ex, wrong_variant(ex, number, "gpt", old, new), tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message
