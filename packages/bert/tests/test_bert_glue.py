"""The GLUE table: each metric against an example worked by hand, task look-up, tsv reading."""

import math

import pytest
import torch

from bert.glue import (
    TASKS,
    compute_metrics,
    get_task,
    read_labelled_tsv,
    registry_dataset,
    task_texts,
)
from shared.errors import UsageError


def test_the_table_has_glues_nine_tasks_with_their_metrics():
    assert list(TASKS) == ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]
    assert get_task("cola").metrics == ("matthews",)
    assert get_task("stsb").is_regression and get_task("stsb").metrics == ("pearson", "spearman")
    assert get_task("mnli").num_labels == 3 and get_task("mnli").eval_split == "validation_matched"
    for task in TASKS.values():
        assert len(task.text_columns) in (1, 2)
        assert task.is_regression or len(task.label_names) == task.num_labels


def test_get_task_accepts_glues_spellings_and_names_the_known_tasks_otherwise():
    assert get_task("SST-2") is get_task("sst2")
    with pytest.raises(UsageError) as error:
        get_task("foo")
    assert str(error.value).startswith("task 'foo' is not in the GLUE table; known: cola, sst2")


def test_only_sst2_is_in_the_registry_and_the_others_say_so():
    assert registry_dataset(get_task("sst2")) == "sst2"
    with pytest.raises(UsageError, match="'cola' has no dataset in the registry yet.*--file"):
        registry_dataset(get_task("cola"))


def test_accuracy():
    """Predictions 1 0 1 1 against labels 1 1 1 0: positions 0 and 2 right, 2 of 4."""
    assert compute_metrics(get_task("sst2"), [1, 0, 1, 1], [1, 1, 1, 0]) == {"accuracy": 0.5}


def test_scores_are_argmaxed_and_tensors_accepted():
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])  # (N, C): classes 1 0 1
    assert compute_metrics(get_task("sst2"), scores, torch.tensor([1, 0, 0])) == {
        "accuracy": pytest.approx(2 / 3)
    }


def test_f1_of_the_positive_class():
    """Predictions 1 0 1 1, labels 1 1 1 0: TP = 2 (positions 0, 2), FP = 1 (3), FN = 1 (1).
    Precision 2/3, recall 2/3, F1 = 2 P R / (P + R) = 2/3; accuracy 2/4."""
    got = compute_metrics(get_task("mrpc"), [1, 0, 1, 1], [1, 1, 1, 0])
    assert got == {"f1": pytest.approx(2 / 3), "accuracy": 0.5}
    assert list(got) == ["f1", "accuracy"]


def test_matthews_correlation():
    """Predictions 1 1 0 0 1 0, labels 1 1 0 0 0 1: TP 2, TN 2, FP 1, FN 1.
    MCC = (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (4 - 1) / sqrt(81) = 1/3."""
    got = compute_metrics(get_task("cola"), [1, 1, 0, 0, 1, 0], [1, 1, 0, 0, 0, 1])
    assert got == {"matthews": pytest.approx(1 / 3)}


def test_matthews_gives_nothing_for_always_saying_the_majority_class():
    """CoLA's trap: 7 of 10 acceptable, a constant "acceptable" is 70% accurate and scores 0."""
    labels = [1] * 7 + [0] * 3
    assert compute_metrics(get_task("cola"), [1] * 10, labels) == {"matthews": 0.0}
    assert compute_metrics(get_task("sst2"), [1] * 10, labels) == {"accuracy": 0.7}


def test_pearson_and_spearman():
    """x = 1 2 3 4 against x^2 = 1 4 9 16: the same order, so Spearman is 1; Pearson, with
    deviations -1.5 -.5 .5 1.5 and -6.5 -3.5 1.5 8.5, is 25 / sqrt(5 * 129) = 0.98437."""
    got = compute_metrics(get_task("stsb"), [[1.0], [2.0], [3.0], [4.0]], [1, 4, 9, 16])
    assert got["spearman"] == pytest.approx(1.0)
    assert got["pearson"] == pytest.approx(25 / math.sqrt(645))
    assert got["pearson"] < 0.99


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="3 predictions"):
        compute_metrics(get_task("sst2"), [1, 0, 1], [1, 0])


def test_reads_a_sentence_tsv_with_a_header_and_blank_lines(tmp_path):
    path = tmp_path / "mine.tsv"
    path.write_text("sentence\tlabel\na fine film\t1\n\ndull , dull , dull\t0\n")
    columns = read_labelled_tsv(path, get_task("sst2"))
    assert columns == {"sentence": ["a fine film", "dull , dull , dull"], "label": [1, 0]}
    assert task_texts(get_task("sst2"), columns) == [("a fine film",), ("dull , dull , dull",)]


def test_reads_pairs_and_regression_scores_without_a_header(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("a man plays\ta man is playing\t4.6\na cat\ta dog\t0.5\n")
    columns = read_labelled_tsv(path, get_task("stsb"))
    assert columns == {
        "sentence1": ["a man plays", "a cat"],
        "sentence2": ["a man is playing", "a dog"],
        "label": [4.6, 0.5],
    }


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("good\t1\nbad\n", 2, "1 tab-separated fields, expected 2"),
        ("sentence\tlabel\ngood\t1\nbad\tnegative\n", 3, "label 'negative' is not 0..1"),
        ("good\t1\nfine\t2\n", 2, "label '2' is not 0..1"),
        ("good\t1\n\t0\n", 2, "an empty sentence"),
        ("good\t1\ta\tb\n", 1, "4 tab-separated fields"),
    ],
)
def test_a_bad_row_names_the_file_and_line(tmp_path, text, line, why):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(UsageError) as error:
        read_labelled_tsv(path, get_task("sst2"))
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: not a `sentence<TAB>label` row")
    assert why in message


def test_a_pair_task_wants_three_fields(tmp_path):
    path = tmp_path / "pair.tsv"
    path.write_text("one sentence only\t1\n")
    with pytest.raises(UsageError, match=r"pair.tsv:1: not a `sentence1<TAB>sentence2<TAB>label`"):
        read_labelled_tsv(path, get_task("rte"))


def test_a_missing_or_empty_file_is_one_clear_line(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_labelled_tsv(tmp_path / "absent.tsv", get_task("sst2"))
    (tmp_path / "empty.tsv").write_text("sentence\tlabel\n")
    with pytest.raises(UsageError, match="has no `sentence<TAB>label` rows"):
        read_labelled_tsv(tmp_path / "empty.tsv", get_task("sst2"))
