"""micrograd's exercises: one deliberate mistake per exercise fails, naming the first difference;
the command's verbs work end to end on the learner's files (shared/learn.py)."""

import json

import pytest

from micrograd.exercises import EXERCISES, exercise
from shared.testing import check_source, solved_source, wrong_variant

# One mistake a learner makes, per exercise: (text in the solution, what it becomes).
MISTAKES = {
    "unbroadcast": ("keepdims=True", "keepdims=False"),  # a stretched axis disappears
    "mul": ("_unbroadcast(g * b, a.shape)", "_unbroadcast(g * a, a.shape)"),  # the wrong factor
    "pow": ("a ** (exponent - 1)", "a**exponent"),  # off by one in the power
    "matmul": ("ga = g @ b.T", "ga = 2 * g @ b.T"),  # a factor the product rule lacks
    "sum": ("return (_expand(g, shape),)", "return (_expand(g, shape) / 2,)"),  # a stray scale
}


@pytest.mark.parametrize("number", range(1, len(EXERCISES) + 1))
def test_a_deliberate_mistake_fails_naming_the_first_difference(number, tmp_path):
    ex = EXERCISES[number - 1]
    old, new = MISTAKES[ex.slug]
    result = check_source(ex, wrong_variant(ex, number, "micrograd", old, new), tmp_path)
    assert not result.passed
    assert "first difference at" in result.message, result.message
    assert "expected" in result.message and "got" in result.message
    assert "hint: " + ex.hint.splitlines()[0] in result.message


def test_the_command_starts_checks_records_and_resets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXERCISES_DIR", str(tmp_path))
    assert exercise(["start", "2"]) == 0
    path = tmp_path / "micrograd" / "02_mul.py"
    assert "raise NotImplementedError" in path.read_text()
    assert exercise(["check", "2"]) == 1
    assert "not written yet" in capsys.readouterr().out

    path.write_text(solved_source(EXERCISES[1], 2, "micrograd"))
    assert exercise(["check", "2"]) == 0
    assert "passed" in capsys.readouterr().out
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["stages"]["micrograd"]["mul"]["passed"] is True

    assert exercise(["list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].split()[0] == "2" and "passed" in listing[1]
    assert "not started" in listing[0]

    assert exercise(["reset", "2"]) == 0
    assert "raise NotImplementedError" in path.read_text()
    assert len(list(path.parent.glob("02_mul.py.*.bak"))) == 1  # the learner's version is kept
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert "mul" not in progress["stages"]["micrograd"]  # the old verdict is gone with the code
    path.write_text("# a second attempt\n")
    assert exercise(["reset", "2"]) == 0  # within the same second: a second backup, not over it
    assert exercise(["reset", "2"]) == 0  # an untouched skeleton needs no backup
    backups = sorted(p.read_text() for p in path.parent.glob("02_mul.py.*.bak"))
    assert len(backups) == 2 and "# a second attempt\n" in backups


def test_a_learner_exception_is_shown_at_the_learners_line(tmp_path):
    ex = EXERCISES[1]
    source = wrong_variant(ex, 2, "micrograd", "g * b, a.shape", "g @ b, a.shape")
    result = check_source(ex, source, tmp_path)
    assert not result.passed
    assert "ValueError" in result.message
    assert "mul.py:" in result.message and "_unbroadcast(g @ b, a.shape)" in result.message
    assert "Traceback" not in result.message


def test_bad_command_lines_exit_2_with_one_line(tmp_path, monkeypatch, capsys):
    from shared.commands import report_errors

    monkeypatch.setenv("EXERCISES_DIR", str(tmp_path))
    assert report_errors(lambda: exercise(["check", "9"])) == 2
    assert report_errors(lambda: exercise(["start"])) == 2
    assert exercise(["start", "1"]) == 0
    assert report_errors(lambda: exercise(["start", "1"])) == 2  # never overwrites the learner's
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "has no exercise 9" in err[0] and "exists already" in err[2]
