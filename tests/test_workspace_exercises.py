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
    assert lines[-1].startswith("next: uv run --package micrograd exercise start 1")


def test_the_learners_first_exercise_through_the_real_console_scripts(tmp_path):
    """The README's "Start here", as a new learner types it: start, a failing check, the pasted
    solution, a passing check, and `learn` showing it. Subprocesses: only the real `uv run` shows
    the dispatcher reading the stage from `--package`."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "EXERCISES_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [uv, "run", "--no-sync", *args], cwd=root, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    started = run("--package", "micrograd", "exercise", "start", "1")
    assert started.returncode == 0, started.stderr
    failing = run("--package", "micrograd", "exercise", "check", "1")
    assert failing.returncode == 1 and "not written yet" in failing.stdout
    answer = run("--package", "micrograd", "exercise", "solution", "1").stdout
    path = tmp_path / "micrograd" / "01_unbroadcast.py"
    text = path.read_text()
    path.write_text(text[: text.index("\ndef ") + 1] + answer)
    passing = run("--package", "micrograd", "exercise", "check", "1")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    table = run("learn")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if " micrograd " in line)
    assert "1 / 5" in row


@pytest.mark.parametrize("stage", list(ALL))
def test_each_guide_lists_its_checked_exercises(stage):
    """The guide's table of checked exercises says what `exercise list` says, in its order."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    guide = root / ("shared" if stage == "shared" else f"packages/{stage}") / "README.md"
    section = guide.read_text(encoding="utf-8").split("## Exercises\n", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    expected = [
        f"| {n} | {e.title} | `{e.reference.__module__}.{e.reference.__qualname__}` |"
        for n, e in enumerate(ALL[stage], 1)
    ]
    assert rows[: len(expected)] == expected, f"update the table under {guide}'s ## Exercises"
