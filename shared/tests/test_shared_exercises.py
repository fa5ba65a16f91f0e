"""Stage 0's exercises (shared/core_exercises.py): one deliberate mistake per exercise fails,
naming the first difference; the generic checks (skeleton, pasted solution) are in
tests/test_workspace_exercises.py."""

import pytest

from shared.core_exercises import EXERCISES
from shared.testing import check_source, wrong_variant

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    # off by one: the first step trains with a rate of 0
    "lr_schedule": ("return (step + 1) / warmup_steps", "return step / warmup_steps"),
    # numpy's state without its cached Gaussian: the next randn after an odd count differs
    "rng_restore": ("pos, has_gauss, cached))", "pos))"),
    # the refused download is left lying beside the destination
    "verified_download": ("tmp.unlink(missing_ok=True)", "pass"),
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    result = check_source(ex, wrong_variant(ex, number, "shared", old, new), tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message
