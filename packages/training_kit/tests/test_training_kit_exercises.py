"""training_kit's exercises: one deliberate mistake per exercise fails, naming the first
difference; the by-hand average is DDP's on 2 real processes; a learner whose processes do not
make the same calls fails in seconds, saying so. The generic checks (skeleton, pasted solution)
are in tests/test_workspace_exercises.py."""

import numpy as np
import pytest

from shared.testing import check_source, wrong_variant
from training_kit.exercises import EXERCISES, on_two_processes
from training_kit.loop import average_gradients

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    # the sum lands in a temporary copy: each process keeps half of its own gradient
    "average_gradients": ("dist.all_reduce(p.grad,", "dist.all_reduce(p.grad.clone(),"),
    # off by one: the gradients split only at stage 3
    "zero_memory": ("if stage >= 2:", "if stage >= 3:"),
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    result = check_source(ex, wrong_variant(ex, number, "training_kit", old, new), tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message


def test_the_gradients_averaged_by_hand_are_ddps_on_two_processes():
    for case in EXERCISES[0].cases():
        output = on_two_processes(average_gradients, case.args)
        for name, ddp in output["DDP"].items():
            for rank in (0, 1):
                mine = output[f"rank {rank}"][name]
                if ddp is None:  # the frozen embedding: no gradient anywhere
                    assert mine is None, (case.label, name)
                else:  # a sum of 2 then a halving, exact in binary floating point
                    np.testing.assert_array_equal(mine, ddp, err_msg=f"{case.label}: {name}")


def test_processes_that_make_different_calls_fail_in_seconds(tmp_path):
    ex = EXERCISES[0]
    only_rank_0 = "if p.grad is not None and dist.get_rank() == 0:"
    source = wrong_variant(ex, 1, "training_kit", "if p.grad is not None:", only_rank_0)
    result = check_source(ex, source, tmp_path)
    assert not result.passed
    assert "the same all_reduce calls" in result.message, result.message
    assert "average_gradients.py:" in result.message  # the learner's own line
