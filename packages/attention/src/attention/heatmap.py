"""A picture of where the decoder looked: one row per output word, one column per source word.

Cell (i, j) is the attention weight output word i gave to source word j; each row sums to 1. For
German to English most of the weight lies near the diagonal, with visible detours where the word
order differs (German puts the verb last in subordinate clauses, and compounds such as
"Fahrrad" sometimes map to two English words).
"""

import textwrap
from pathlib import Path

import numpy as np

from shared.runs import save_figure


def plot_attention(
    weights: np.ndarray,
    source: list[str],
    output: list[str],
    path: Path,
    title: str = "",
) -> Path:
    """Write a PNG heatmap of `weights` (len(output), len(source)); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape != (len(output), len(source)):
        raise ValueError(
            f"weights have shape {weights.shape}, expected ({len(output)} output words, "
            f"{len(source)} source words)"
        )
    fig, ax = plt.subplots(
        figsize=(1.0 + 0.55 * max(len(source), 4), 1.0 + 0.45 * max(len(output), 4)), dpi=120
    )
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=45, ha="right")
    ax.set_yticks(range(len(output)), output)
    ax.set_xlabel("source (German)")
    ax.set_ylabel("output (English)")
    if title:  # wrapped to the figure's width: a long sentence pair would be cut off
        width_chars = int(fig.get_figwidth() * 13)
        ax.set_title(textwrap.fill(title, width=max(width_chars, 30)), fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    save_figure(fig, path)  # PNG written atomically, figure closed
    return path
