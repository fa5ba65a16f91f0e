"""The confusion matrix: which digits the network mistakes for which, as numbers and as a PNG.

Accuracy says how often the network is wrong; the confusion matrix says how. Row i, column j
counts the test images of digit i that the network called j, so the diagonal holds the correct
answers and every off-diagonal count is a specific mistake. In the default run 5 of the 8
mistakes are between 1 and 8 (thin strokes that look alike at 8x8 pixels).
"""

from pathlib import Path

import numpy as np

from mlp.data import N_CLASSES
from shared.runs import save_figure


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = N_CLASSES
) -> np.ndarray:
    """counts[i, j] = how many images of class i were predicted as class j; (C, C) int64."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)  # add.at: a repeated (i, j) pair adds up
    return counts


def format_confusion_matrix(counts: np.ndarray) -> str:
    """The matrix as aligned text: one row per true digit, one column per predicted digit.

    Zeros print as "." so the mistakes stand out.
    """
    width = max(3, len(str(counts.max())) + 1)
    lines = ["true  " + "".join(str(j).rjust(width) for j in range(len(counts))) + "  <- predicted"]
    for i, row in enumerate(counts):
        lines.append(f"  {i}   " + "".join((str(c) if c else ".").rjust(width) for c in row))
    return "\n".join(lines)


def plot_confusion_matrix(counts: np.ndarray, path: Path, title: str = "") -> Path:
    """A heat map of the counts with each count written in its cell; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(counts)
    fig, ax = plt.subplots(figsize=(6, 5.4), dpi=120)
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    threshold = counts.max() / 2
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                color = "white" if counts[i, j] > threshold else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)  # PNG written atomically, figure closed
    return path
