"""The judge of every exercise (shared/exercises.py): how a difference is named, and a check's
verdicts on a tiny exercise made here (the square of an array), so no stage is needed."""

import numpy as np

from shared.exercises import Case, Exercise, check, first_difference, skeleton, solution


def square(x: np.ndarray) -> np.ndarray:
    """x (n,) -> x**2 (n,)."""
    return x * x


SQUARE = Exercise(
    slug="square",
    title="the square",
    reference=square,
    cases=lambda: [Case("x (4,)", (np.arange(4.0),), 3)],
    hint="Multiply x by itself.\nSecond line.",
    imports="import numpy as np",
)


def test_arrays_name_the_first_differing_element_and_count_the_rest():
    got = np.array([[1.0, 2.0], [3.0, 5.0]])
    message = first_difference(np.array([[1.0, 2.0], [3.0, 4.0]]), got, "output", 1e-5, 1e-6)
    assert message == (
        "output, element [1, 1] (shape (2, 2), 1 of 4 elements differ): expected 4, got 5"
    )
    assert "expected shape (2,), got shape (2, 1)" in first_difference(
        np.zeros(2), np.zeros((2, 1)), "output", 1e-5, 1e-6
    )
    assert first_difference(np.ones(3), np.ones(3) + 1e-9, "output", 1e-5, 1e-6) is None


def test_nested_outputs_lists_and_dicts():
    assert first_difference((1, [2, 3]), (1, [2, 4]), "output", 0, 0).startswith("output[1][1]")
    assert first_difference([1, 2, 3], [1, 2], "output", 0, 0) == (
        "output[2]: expected 3, got nothing (3 items expected, 2 got)"
    )
    assert "keys" in first_difference({"a": 1}, {"b": 1}, "output", 0, 0)
    assert first_difference({"a": 1.0}, {"a": 1.0 + 1e-12}, "output", 1e-9, 0) is None


def test_check_passes_the_reference_and_explains_a_wrong_answer():
    assert check(SQUARE, square).passed
    wrong = check(SQUARE, lambda x: x + x)
    assert not wrong.passed and not wrong.not_written
    assert "on input x (4,) (seed 3)" in wrong.message
    assert "first difference at output, element [1]" in wrong.message  # 0 + 0 == 0 * 0
    assert "expected 1, got 2" in wrong.message
    assert wrong.message.endswith("hint: Multiply x by itself.")


def test_not_written_and_an_exception_at_the_learners_line(tmp_path):
    from shared.exercises import check_file

    path = tmp_path / "square.py"
    path.write_text(skeleton(SQUARE, 1, "demo"))
    result = check_file(SQUARE, path)
    assert result.not_written and result.message.startswith("not written yet")

    path.write_text("import numpy as np\n\n\ndef square(x):\n    return x @ np.ones((2, 2))\n")
    result = check_file(SQUARE, path)
    assert "ValueError" in result.message
    assert "at square.py:5: return x @ np.ones((2, 2))" in result.message

    path.write_text("def square(x)\n    return x\n")
    assert "syntax error" in check_file(SQUARE, path).message
    path.write_text("def cube(x):\n    return x\n")
    assert "defines no function `square`" in check_file(SQUARE, path).message


def test_the_solution_is_the_reference_source_and_the_skeleton_its_signature():
    assert solution(SQUARE).splitlines()[1] == "def square(x: np.ndarray) -> np.ndarray:"
    text = skeleton(SQUARE, 1, "demo")
    assert "uv run --package demo exercise check 1" in text
    assert '"""x (n,) -> x**2 (n,)."""' in text and "return x * x" not in text


def test_dtype_and_kind_must_match_and_a_number_is_not_an_array():
    import torch

    mask = torch.tensor([[True, False], [True, True]])
    assert first_difference(mask, mask.float(), "output", 0, 0) == (
        "output: expected dtype torch.bool, got dtype torch.float32"
    )
    assert first_difference(np.zeros(2, np.float32), np.zeros(2), "output", 0, 0) == (
        "output: expected dtype float32, got dtype float64"
    )
    assert first_difference(torch.zeros(2), np.zeros(2, np.float32), "output", 0, 0) == (
        "output: expected a torch tensor, got a numpy array"
    )
    assert first_difference(1.5, np.array([1.5, 1.5]), "output", 0, 0) == (
        "output: expected 1.5, got an array of shape (2,)"
    )
    assert first_difference(3, torch.tensor([3, 3]), "output", 0, 0) == (
        "output: expected 3, got an array of shape (2,)"
    )


def test_an_edit_within_the_same_second_is_what_runs(tmp_path):
    """The learner's file is compiled from its text each time, never from a stale __pycache__."""
    from shared.exercises import check_file

    path = tmp_path / "square.py"
    path.write_text("def square(x):\n    return x + x\n")  # same size as the right answer
    assert not check_file(SQUARE, path).passed
    path.write_text("def square(x):\n    return x * x\n")
    assert check_file(SQUARE, path).passed
    assert not (tmp_path / "__pycache__").exists()
