"""`uv run --package training_kit compare RUN RUN ...`: runs side by side, as a table and a plot.

    uv run --package training_kit compare runs/gpt/ddp2 runs/gpt/zero3 --out compare.png

A run is a folder, or a name looked up under every stage's runs/<stage>/. The table has one
row a run: its stage, how it ran (the kit's strategy, or the stage's own loop), steps, the
last training loss, the best and last validation loss, and the wall time its metrics span.
The PNG overlays the training loss (a moving average, for legibility) and the evaluations.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import option, parse_config
from shared.errors import UsageError
from shared.paths import runs_dir
from shared.runs import Run, save_figure


@dataclass
class CompareOptions:
    runs: str = option("", "run folders or names (space- or comma-separated)", positional=True)
    metric: str = option("val_loss", "the evaluated metric to compare")
    smooth: int = option(10, "moving average of the training loss over this many steps", ge=1)
    out: Path | None = option(None, "the plot (default: runs/compare/<first>_vs_<n>.png)")


def find_run(ref: str) -> Path:
    """A run folder from a path or a name under any stage's runs folder."""
    path = Path(ref)
    if (path / "config.json").is_file():
        return path
    found = sorted(p.parent for p in runs_dir().glob(f"*/{ref}/config.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(f"no run {ref!r}: give its folder, or a name under {runs_dir()}/<stage>/")
    where = ", ".join(str(p) for p in found)
    raise UsageError(f"run name {ref!r} is in several stages ({where}); give the folder")


def how_it_ran(folder: Path) -> str:
    kit_file = folder / "training_kit.json"
    if not kit_file.is_file():
        return "the stage's loop"
    kit = json.loads(kit_file.read_text())
    strategy = kit["strategy"]
    if strategy == "deepspeed":
        strategy = f"ZeRO-{kit['zero_stage']}"
    return f"{strategy} x {kit['num_processes']}"


def summary(folder: Path, metric: str) -> dict[str, Any]:
    rows = Run(folder).metrics()
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    evals = [r[metric] for r in rows if r.get(metric) is not None]
    return {
        "run": folder.name,
        "stage": folder.parent.name,
        "how": how_it_ran(folder),
        "steps": max((r["step"] for r in rows), default=0),
        "loss": losses[-1] if losses else None,
        f"best {metric}": min(evals) if evals else None,
        f"last {metric}": evals[-1] if evals else None,
        "seconds": max((r.get("time", 0.0) for r in rows), default=0.0),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table: numbers to 4 decimals, missing values as '-'."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    keys = list(rows[0])
    table = [keys, *[[cell(r[k]) for k in keys] for r in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(keys))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)) for line in table
    )


def moving_average(values: list[float], n: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - n] if i >= n else 0.0)
        out.append(total / min(i + 1, n))
    return out


def plot(folders: list[Path], metric: str, smooth: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, folder in enumerate(folders):
        rows = Run(folder).metrics()
        color = f"C{i}"
        train = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]
        if train:
            steps, losses = zip(*train, strict=True)
            ax.plot(steps, moving_average(list(losses), smooth), color=color, alpha=0.5,
                    label=f"{folder.name} ({how_it_ran(folder)}): loss")  # fmt: skip
        evals = [(r["step"], r[metric]) for r in rows if r.get(metric) is not None]
        if evals:
            steps, values = zip(*evals, strict=True)
            ax.plot(steps, values, "o-", color=color, label=f"{folder.name}: {metric}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{len(folders)} runs")
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path)


def compare(argv: list[str]) -> int:
    opts = parse_config(CompareOptions, argv, prog="training_kit compare",
                        description=__doc__.split("\n\n")[0])  # fmt: skip
    refs = [r for r in opts.runs.replace(",", " ").split() if r]
    if len(refs) < 1:
        raise UsageError("give at least one run to show: compare RUN [RUN ...]")
    folders = [find_run(r) for r in refs]
    print(format_table([summary(f, opts.metric) for f in folders]))
    out = opts.out or runs_dir() / "compare" / f"{folders[0].name}_vs_{len(folders) - 1}.png"
    print(f"plot: {plot(folders, opts.metric, opts.smooth, out)}")
    return 0
