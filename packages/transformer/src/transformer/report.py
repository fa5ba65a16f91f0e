"""After training: what the classifier gets wrong, and the curves of the run.

errors.md lists the dev sentences the model was most sure about and wrong on, the best place
to start looking for what it has not learned (negation, sarcasm, "not bad", mislabelled rows),
followed by the confusion matrix. The curves: loss per step, dev accuracy per epoch, the
learning rate (warmup and decay made visible), and the gradient and weight norms.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from shared.atomic import write_text_atomic
from shared.runs import Run, save_figure

LABELS = ("negative", "positive")


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], n: int = 2) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((n, n), dtype=np.int64)
    for y, p in zip(labels, predictions, strict=True):
        counts[y, p] += 1
    return counts


def format_confusion_matrix(counts: np.ndarray, names: Sequence[str] = LABELS) -> str:
    width = max(len(n) for n in names) + 2
    lines = ["true \\ predicted".ljust(18) + "".join(n.rjust(width) for n in names)]
    for name, row in zip(names, counts, strict=True):
        lines.append(name.ljust(18) + "".join(str(c).rjust(width) for c in row))
    return "\n".join(lines)


def plot_confusion_matrix(counts: np.ndarray, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=120)
    image = ax.imshow(counts, cmap="Blues", vmin=0)
    for (i, j), c in np.ndenumerate(counts):
        # The text's colour follows the cell's own brightness, not a count threshold, so every
        # count stays legible: dark text on pale cells, white text on dark ones.
        red, green, blue, _ = image.cmap(image.norm(c))
        pale = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
        ax.text(j, i, f"{c:,}", ha="center", va="center", fontsize=12, fontweight="bold",
                color="#08306b" if pale else "white")  # fmt: skip
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)  # PNG written atomically, figure closed
    return path


def confident_errors(
    sentences: Sequence[str], labels: Sequence[int], probs: torch.Tensor, k: int
) -> list[tuple[float, str, int]]:
    """The k wrong predictions with the highest probability on the wrong class."""
    predicted = probs.argmax(dim=-1).tolist()
    wrong = [
        (float(probs[i, predicted[i]]), sentences[i], labels[i])
        for i in range(len(labels))
        if predicted[i] != labels[i]
    ]
    return sorted(wrong, key=lambda w: -w[0])[:k]


def write_classification_report(
    run: Run, sentences: Sequence[str], labels: Sequence[int], probs: torch.Tensor, k: int = 20
) -> float:
    """errors.md, confusion_matrix.png and the curves; returns the accuracy."""
    predictions = probs.argmax(dim=-1).tolist()
    counts = confusion_matrix(labels, predictions)
    accuracy = float(np.trace(counts) / max(counts.sum(), 1))
    lines = [
        "# Error analysis on the dev split",
        "",
        f"Accuracy {accuracy:.2%} ({int(np.trace(counts))}/{int(counts.sum())}).",
        "",
        "## Confusion matrix",
        "",
        "```",
        format_confusion_matrix(counts),
        "```",
        "",
        f"## The {k} most confidently wrong predictions",
        "",
        "| confidence | true label | sentence |",
        "|---:|---|---|",
    ]
    for confidence, sentence, label in confident_errors(sentences, labels, probs, k):
        lines.append(f"| {confidence:.3f} | {LABELS[label]} | {sentence.replace('|', '/')} |")
    write_text_atomic(run.folder / "errors.md", "\n".join(lines) + "\n")
    plot_confusion_matrix(
        counts, run.folder / "confusion_matrix.png", f"dev accuracy {accuracy:.2%}"
    )
    plot_curves(run, "dev_accuracy")
    return accuracy


def plot_curves(run: Run, metric: str) -> None:
    """loss.png, <metric>.png, lr.png, grad_norm.png and weight_norm.png from metrics.jsonl."""
    run.plot_metrics(
        "loss.png", ["loss", "loss_smooth"], title="training loss per optimizer step", logy=True
    )
    run.plot_metrics(f"{metric}.png", [metric], title=f"{metric} after each epoch")
    run.plot_metrics("lr.png", ["lr"], title="learning rate: warmup, then decay")
    run.plot_metrics(
        "grad_norm.png", ["grad_norm"], title="gradient norm (before clipping)", logy=True
    )
    run.plot_metrics("weight_norm.png", ["weight_norm"], title="weight norm")
