"""The length histograms: each split's rows in characters and in the stage's tokens, overlaid.

Overlaid as shares of each split's rows (not counts), so a dev set of 872 rows sits on the same
scale as a training split of 64,000: what the eye compares is the shape. SST-2 shows why it
matters: its training rows are mostly short phrases and its dev rows whole sentences, two
humps that a model selected on training-like rows never sees side by side.

The x axis stops at the 99.5th percentile of the longest split; the rare longer rows are drawn
in the last bin, so one 5,000-character row does not squeeze everything else into one bar.
"""

from pathlib import Path

import numpy as np

from shared.runs import save_figure

# {text field: {series (a split, or "select"): (lengths in characters, lengths in tokens)}}
Lengths = dict[str, dict[str, tuple[list[int], list[int]]]]


def _panel(ax, series: dict[str, list[int]], unit: str) -> None:  # noqa: ANN001 (matplotlib Axes)
    present = {name: np.asarray(v) for name, v in series.items() if len(v)}
    if not present:
        ax.set_axis_off()
        return
    top = max(max(float(np.percentile(v, 99.5)) for v in present.values()), 1.0)
    width = int(np.ceil(top / 40))  # whole numbers a bin, or the bars alias into spikes
    bins = np.arange(0, top + 2 * width, width) - 0.5
    for name, values in present.items():
        clipped = np.clip(values, bins[0], bins[-1])
        weights = np.full(len(values), 1 / len(values))
        ax.hist(clipped, bins=bins, weights=weights, histtype="step", linewidth=1.6,
                label=f"{name} ({len(values):,}, median {np.median(values):.0f})")  # fmt: skip
    ax.set_xlabel(unit)
    ax.set_ylabel("share of rows")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def length_figure(path: Path, lengths: Lengths, title: str, token_name: str) -> Path:
    """One row of two panels (characters, tokens) per text field, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = list(lengths)
    fig, axes = plt.subplots(len(fields), 2, figsize=(11, 3.6 * len(fields)), dpi=110,
                             squeeze=False)  # fmt: skip
    for row, name in enumerate(fields):
        prefix = f"{name}: " if len(fields) > 1 else ""
        chars = {split: c for split, (c, _) in lengths[name].items()}
        tokens = {split: t for split, (_, t) in lengths[name].items()}
        _panel(axes[row][0], chars, f"{prefix}characters a row")
        _panel(axes[row][1], tokens, f"{prefix}tokens a row ({token_name})")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
