"""Every exercise of every stage works as the learner will meet it (shared/exercises.py):

- the untouched skeleton fails its check with "not written yet";
- the skeleton with `exercise solution N` pasted over its stub passes (so the skeleton's imports
  are enough for the stage's own code, and the reference agrees with itself on every input);
- each stage has 2-5 exercises, at least 30 in all, and the `exercise` command and `learn` run.

Each stage's own tests add a deliberately wrong variant per exercise that must fail with a message
naming the first differing element (packages/<stage>/tests/test_<stage>_exercises.py).
"""

import pytest

from shared.learn import STAGE_ORDER, installed_exercises, main
from shared.testing import check_source, solved_source

ALL = installed_exercises()
CASES = [
    pytest.param(stage, number, exercise, id=f"{stage}-{number}-{exercise.slug}")
    for stage, exercises in ALL.items()
    for number, exercise in enumerate(exercises, 1)
]


def test_every_stage_has_two_to_five_exercises_and_thirty_in_all():
    assert list(ALL) == [s for s in STAGE_ORDER if s in ALL]
    assert set(ALL) == set(STAGE_ORDER), f"stages without exercises: {set(STAGE_ORDER) - set(ALL)}"
    for stage, exercises in ALL.items():
        assert 2 <= len(exercises) <= 5, (stage, len(exercises))
        slugs = [e.slug for e in exercises]
        assert len(set(slugs)) == len(slugs), f"{stage} repeats a slug: {slugs}"
    assert sum(len(e) for e in ALL.values()) >= 30


@pytest.mark.parametrize("stage, number, exercise", CASES)
def test_skeleton_is_not_written_yet_and_the_pasted_solution_passes(
    stage, number, exercise, tmp_path
):
    from shared.exercises import skeleton

    untouched = check_source(exercise, skeleton(exercise, number, stage), tmp_path)
    assert not untouched.passed and untouched.not_written, untouched.message
    assert untouched.message.startswith("not written yet")

    solved = check_source(exercise, solved_source(exercise, number, stage), tmp_path)
    assert solved.passed, solved.message


def test_learn_lists_every_stage_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXERCISES_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as stop:
        main([])
    assert stop.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    stages = [line.split()[1] for line in lines[1:-1]]
    assert stages == list(STAGE_ORDER)
    assert lines[-1].startswith("next: uv run --package shared exercise start 1")
