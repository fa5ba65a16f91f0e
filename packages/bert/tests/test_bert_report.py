"""The error-analysis report: confusion counts, the most confident mistakes, the PNG."""

import numpy as np
import pytest

from bert.report import (
    classification_report,
    confident_mistakes,
    confusion_table,
    plot_confusion,
    text_color,
)

SENTENCES = ["great", "awful", "not bad at all", "fine", "a mess", "so good", "meh"]
LABELS = [1, 0, 1, 1, 0, 1, 0]
#                    negative, positive        prediction  right?
PROBABILITIES = [
    [0.10, 0.90],  # positive    yes
    [0.80, 0.20],  # negative    yes
    [0.95, 0.05],  # negative    no: true positive, confidence 0.95
    [0.40, 0.60],  # positive    yes
    [0.30, 0.70],  # positive    no: true negative, confidence 0.70
    [0.20, 0.80],  # positive    yes
    [0.45, 0.55],  # positive    no: true negative, confidence 0.55
]
NAMES = ("negative", "positive")


def test_counts_accuracy_and_f1_on_a_small_example():
    """True negatives: 1 right, 2 called positive. True positives: 3 right, 1 called negative.
    Accuracy 4/7; for class 1, precision 3/5 and recall 3/4, so F1 = 2 * .6 * .75 / 1.35 = 2/3.
    """
    report = classification_report(SENTENCES, LABELS, PROBABILITIES, label_names=NAMES)
    assert report.confusion.tolist() == [[1, 2], [1, 3]]
    assert report.accuracy == pytest.approx(4 / 7)
    assert report.f1 == pytest.approx(2 / 3)
    assert report.n_mistakes == 3


def test_the_text_table_has_rows_true_and_columns_predicted():
    table = confusion_table(np.array([[1, 2], [1, 3]]), NAMES)
    assert table.splitlines() == [
        "true \\ predicted  negative  positive",
        "negative                 1         2",
        "positive                 1         3",
    ]


def test_most_confident_mistakes_are_only_mistakes_most_confident_first():
    mistakes = confident_mistakes(SENTENCES, LABELS, PROBABILITIES, k=10, label_names=NAMES)
    assert [m.sentence for m in mistakes] == ["not bad at all", "a mess", "meh"]
    assert [m.confidence for m in mistakes] == pytest.approx([0.95, 0.70, 0.55])
    assert (mistakes[0].true_label, mistakes[0].predicted_label) == ("positive", "negative")
    assert [m.sentence for m in confident_mistakes(SENTENCES, LABELS, PROBABILITIES, k=2)] == [
        "not bad at all",
        "a mess",
    ]


def test_the_printed_report_shows_every_part():
    text = classification_report(SENTENCES, LABELS, PROBABILITIES, label_names=NAMES, k=2).text()
    assert text.startswith("accuracy 0.5714 (4 of 7), F1 (class 1) 0.6667")
    assert "negative                 1         2" in text
    assert "the 2 most confident mistakes (of 3):" in text
    assert "  0.950  positive  negative   not bad at all" in text
    assert "meh" not in text


def test_three_classes_use_macro_f1_and_default_names():
    probabilities = np.eye(3)[[0, 1, 2, 2]]  # predictions 0 1 2 2
    report = classification_report(["a", "b", "c", "d"], [0, 1, 2, 1], probabilities)
    assert report.confusion.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert report.label_names == ("0", "1", "2")
    assert report.f1 == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)  # per class: 1, 2/3, 2/3


def test_inconsistent_inputs_are_refused():
    with pytest.raises(ValueError, match="6 sentences, 7 labels"):
        classification_report(SENTENCES[:6], LABELS, PROBABILITIES)
    with pytest.raises(ValueError, match="3 label names for 2 classes"):
        classification_report(SENTENCES, LABELS, PROBABILITIES, label_names=("a", "b", "c"))
    with pytest.raises(ValueError, match="labels run from 0 to 2"):
        classification_report(SENTENCES, [0, 1, 2, 0, 0, 0, 0], PROBABILITIES)


def test_text_is_white_on_dark_cells_and_black_on_pale_ones():
    import matplotlib

    blues = matplotlib.colormaps["Blues"]
    assert text_color(blues(1.0)) == "white"
    assert text_color(blues(0.0)) == "black"


def test_the_png_is_written_whole_and_nothing_else_is_left(tmp_path):
    path = plot_confusion(np.array([[378, 50], [38, 406]]), NAMES, tmp_path / "cm.png", "SST-2")
    assert path == tmp_path / "cm.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]  # no temporary file left behind
