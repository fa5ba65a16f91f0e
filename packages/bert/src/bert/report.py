"""Error analysis for a classifier: what it gets wrong, how often, and how sure it was.

One accuracy figure hides what kind of model it is. This report adds three views:

- **F1** (of class 1 for two classes, the macro mean over classes otherwise): low when the model
  is good on the common class and poor on the rare one, which accuracy does not show.
- **The confusion matrix**: row = the true label, column = the prediction, so the diagonal is
  right and each off-diagonal count is one kind of mistake (on SST-2, is the model too positive
  or too negative?). As text, and as a PNG colored by the share of each true class.
- **The most confident mistakes**: the sentences the model got wrong while most sure of itself.
  On SST-2 they are often sarcasm, negation ("not bad at all"), contrast ("the actors try hard,
  but ...") or a label a reader would argue with: the list shows what the model cannot read yet,
  and sometimes where the data is wrong.

    report = classification_report(sentences, labels, probabilities, label_names=("neg", "pos"))
    print(report.text())
    plot_confusion(report.confusion, report.label_names, run_dir / "confusion.png")
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.atomic import temporary_beside


@dataclass(frozen=True)
class Mistake:
    """One wrongly classified sentence and how sure the model was of its wrong answer."""

    sentence: str
    true_label: str
    predicted_label: str
    confidence: float  # the probability the model gave its (wrong) prediction


@dataclass
class ClassificationReport:
    """The numbers of one evaluation; `text()` prints them."""

    accuracy: float
    f1: float
    confusion: np.ndarray  # (C, C) counts: [true, predicted]
    label_names: tuple[str, ...]
    mistakes: list[Mistake] = field(default_factory=list)  # most confident first
    n_mistakes: int = 0  # all of them, not only the ones listed

    def text(self, width: int = 100) -> str:
        n = int(self.confusion.sum())
        f1_kind = "F1 (class 1)" if len(self.label_names) == 2 else "macro F1"
        return "\n".join(
            [
                f"accuracy {self.accuracy:.4f} ({n - self.n_mistakes} of {n}), "
                f"{f1_kind} {self.f1:.4f}",
                "",
                confusion_table(self.confusion, self.label_names),
                "",
                format_mistakes(self.mistakes, self.n_mistakes, width=width),
            ]
        )


def _check(sentences: Sequence[str], labels, probabilities) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)  # (N,)
    probabilities = np.asarray(probabilities, dtype=np.float64)  # (N, C)
    if probabilities.ndim != 2 or not len(sentences) == len(labels) == len(probabilities):
        raise ValueError(
            f"{len(sentences)} sentences, {len(labels)} labels and probabilities of shape "
            f"{probabilities.shape}: expected N, N and (N, C)"
        )
    n_classes = probabilities.shape[1]
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels run from {labels.min()} to {labels.max()}, not 0..{n_classes - 1}"
        )
    return labels, probabilities


def confident_mistakes(
    sentences: Sequence[str],
    labels,
    probabilities,
    k: int = 10,
    label_names: Sequence[str] | None = None,
) -> list[Mistake]:
    """The k wrong predictions with the highest predicted probability, most confident first.

    probabilities: (N, C), each row the model's distribution over the classes.
    """
    labels, probabilities = _check(sentences, labels, probabilities)
    names = _names(label_names, probabilities.shape[1])
    predicted = probabilities.argmax(axis=1)  # (N,)
    confidence = probabilities.max(axis=1)  # (N,)
    wrong = np.flatnonzero(predicted != labels)  # (M,)
    # stable sort on -confidence: ties keep the data's order, so the list is reproducible
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:k]
    return [
        Mistake(sentences[i], names[labels[i]], names[predicted[i]], float(confidence[i]))
        for i in order
    ]


def classification_report(
    sentences: Sequence[str],
    labels,
    probabilities,
    *,
    label_names: Sequence[str] | None = None,
    k: int = 10,
) -> ClassificationReport:
    """Accuracy, F1, the confusion matrix and the k most confident mistakes of one evaluation.

    sentences: N strings (a pair task can pass "first [SEP] second"); labels: N class ids;
    probabilities: (N, C) predicted distributions (softmax of the logits).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    labels, probabilities = _check(sentences, labels, probabilities)
    n_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)  # (N,)
    average = "binary" if n_classes == 2 else "macro"
    return ClassificationReport(
        accuracy=float(accuracy_score(labels, predicted)),
        f1=float(f1_score(labels, predicted, average=average, zero_division=0)),
        confusion=confusion_matrix(labels, predicted, labels=list(range(n_classes))),  # (C, C)
        label_names=_names(label_names, n_classes),
        mistakes=confident_mistakes(sentences, labels, probabilities, k, label_names),
        n_mistakes=int((predicted != labels).sum()),
    )


def _names(label_names: Sequence[str] | None, n_classes: int) -> tuple[str, ...]:
    if not label_names:
        return tuple(str(i) for i in range(n_classes))
    if len(label_names) != n_classes:
        raise ValueError(f"{len(label_names)} label names for {n_classes} classes")
    return tuple(label_names)


def confusion_table(counts: np.ndarray, label_names: Sequence[str]) -> str:
    """The matrix as aligned text, a row per true label and a column per predicted one.

    true \\ predicted  negative  positive
    negative               378        50
    positive                38       406
    """
    corner = "true \\ predicted"
    first = max(len(corner), *(len(name) for name in label_names))
    width = max(max(len(name) for name in label_names), len(str(counts.max()))) + 2
    lines = [corner.ljust(first) + "".join(name.rjust(width) for name in label_names)]
    for name, row in zip(label_names, counts, strict=True):
        lines.append(name.ljust(first) + "".join(str(int(c)).rjust(width) for c in row))
    return "\n".join(lines)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_mistakes(mistakes: Sequence[Mistake], n_mistakes: int, width: int = 100) -> str:
    """The mistakes as a table: confidence, true label, prediction, the sentence (cut to fit)."""
    if not mistakes:
        return "no mistakes"
    true_w = max(4, *(len(m.true_label) for m in mistakes))
    pred_w = max(9, *(len(m.predicted_label) for m in mistakes))
    lines = [
        f"the {len(mistakes)} most confident mistakes (of {n_mistakes}):",
        f"  conf   {'true'.ljust(true_w)}  {'predicted'.ljust(pred_w)}  sentence",
    ]
    room = max(20, width - 13 - true_w - pred_w)
    for m in mistakes:
        lines.append(
            f"  {m.confidence:.3f}  {m.true_label.ljust(true_w)}  "
            f"{m.predicted_label.ljust(pred_w)}  {_shorten(m.sentence, room)}"
        )
    return "\n".join(lines)


def text_color(rgba: Sequence[float]) -> str:
    """White on a dark background, black on a pale one, by the color's luminance (0 to 1)."""
    red, green, blue = rgba[:3]
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue  # ITU-R BT.601 weights
    return "white" if luminance < 0.5 else "black"


def plot_confusion(
    counts: np.ndarray, label_names: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """A PNG of the confusion matrix, written atomically; returns its path.

    Each cell's color is its share of the true class (its row), so a rare class's mistakes show
    as clearly as a common one's; the cell's text gives the count and that share. The text is
    white on dark cells and black on pale ones, chosen by the cell color's luminance.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(counts)
    n = len(counts)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # (C, C) rows sum to 1
    cmap = plt.get_cmap("Blues")
    size = 2.2 + 1.1 * n
    fig, ax = plt.subplots(figsize=(size + 1.2, size), dpi=120)
    image = ax.imshow(shares, cmap=cmap, vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{int(counts[i, j])}\n{shares[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=11 if n <= 4 else 8,
                color=text_color(cmap(shares[i, j])),
            )
    ax.set_xticks(range(n), list(label_names), rotation=30 if n > 3 else 0, ha="center")
    ax.set_yticks(range(n), list(label_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    # written beside the target, then renamed over it: a reader never sees half a PNG.
    # bbox_inches="tight" grows the canvas to fit long label names ("contradiction").
    path = Path(path)
    tmp = temporary_beside(path)
    try:
        fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.15)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
