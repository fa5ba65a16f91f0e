"""A run folder: what a command writes, and how it reports progress.

Every training command follows the same shape, so a learner always knows where to look:

    run = Run.start("gpt", cfg)              # prints the resolved config, makes the folder
    with run.progress(total=cfg.steps) as bar:
        for step in range(cfg.steps):
            ...
            bar.advance(loss=loss, items=tokens_in_batch)   # loss and tokens/s on the bar
            run.log(step, loss=loss, lr=lr)                  # one JSON line in metrics.jsonl
    run.plot_metrics("loss.png", ["loss", "val_loss"])
    run.finish()                                             # says where everything is

    runs/<stage>/<name>/
      config.json      the resolved config
      metrics.jsonl    one JSON object per logged step
      checkpoints/     see shared.checkpoint
      *.png            plots

The folder name defaults to the start time, so runs sort by age and never overwrite each other.
Every stage finds its runs and checkpoints the same way:

    latest_run("gpt")                      the run folder started last
    latest_checkpoint(run_folder)          the checkpoint with the highest step in it
    find_checkpoint("gpt", ref)            ref: a checkpoint, a run name or folder, or None
"""

import json
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.atomic import temporary_beside, write_text_atomic
from shared.checkpoint import read_meta
from shared.config import config_to_dict, format_config
from shared.errors import CheckpointError, UsageError
from shared.paths import runs_dir


class Progress:
    """A progress display with the latest loss and the throughput (items per second).

    On a terminal it is a tqdm bar, redrawn in place with carriage returns. Piped into a file
    or a log (`train > log.txt 2>&1`, CI), those carriage returns would leave one endless line
    with every other printed line glued to its end, so there it prints a plain, complete line
    every `log_every` seconds instead, and once at the end.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "step",
        item_name: str = "tok",
        log_every: float = 10.0,
    ):
        self.total, self.desc, self.unit, self.item_name = total, desc, unit, item_name
        self.log_every = log_every
        self.count = self._items = 0
        self._postfix: dict[str, str] = {}
        self._start = self._last_line = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)

    def advance(self, n: int = 1, loss: float | None = None, items: int = 0, **extra: Any) -> None:
        self.count += n
        self._items += items
        postfix: dict[str, str] = {}
        if loss is not None:
            postfix["loss"] = f"{loss:.4f}"
        if self._items:
            rate = self._items / max(time.perf_counter() - self._start, 1e-9)
            postfix[f"{self.item_name}/s"] = f"{rate:,.0f}"
        postfix.update(
            {k: f"{v:.4g}" if isinstance(v, float) else str(v) for k, v in extra.items()}
        )
        self._postfix = postfix
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
        elif time.perf_counter() - self._last_line >= self.log_every:
            self._print_line()

    def _print_line(self) -> None:
        """One complete line for a log: `train: 120/400 step, 21s, loss=2.0412, tok/s=20,410`."""
        done = f"{self.count}/{self.total}" if self.total else str(self.count)
        seconds = time.perf_counter() - self._start
        fields = ", ".join(f"{k}={v}" for k, v in self._postfix.items())
        print(f"{self.desc}: {done} {self.unit}, {seconds:.0f}s, {fields}", file=sys.stderr,
              flush=True)  # fmt: skip
        self._last_line = time.perf_counter()

    def write(self, message: str) -> None:
        """Print a line (to stdout) above the bar (on stderr) without breaking it."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stdout)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.count:
            self._print_line()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Run:
    def __init__(self, folder: Path):
        self.folder = folder
        self.metrics_path = folder / "metrics.jsonl"
        self.checkpoints = folder / "checkpoints"
        self._start = time.perf_counter()

    @classmethod
    def start(cls, stage: str, config: Any, name: str | None = None, quiet: bool = False) -> "Run":
        """Make runs/<stage>/<name>/, write config.json, and print the resolved config."""
        if name is None:
            name = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        if not name or "/" in name or name.startswith("."):
            raise UsageError(f"run name {name!r} must be a plain folder name")
        base = runs_dir() / stage
        folder = base / name
        suffix = 1
        while folder.exists():  # two runs started in the same second
            suffix += 1
            folder = base / f"{name}-{suffix}"
        folder.mkdir(parents=True)
        write_text_atomic(folder / "config.json", json.dumps(config_to_dict(config), indent=2))
        if not quiet:
            print(f"{stage}: {type(config).__name__}", flush=True)
            print(format_config(config), flush=True)
            print(f"run folder: {folder}", flush=True)
        return cls(folder)

    @classmethod
    def open(cls, stage: str, run: str | Path | None = None) -> "Run":
        """An existing run: a path, a name under runs/<stage>/, or the latest one if None."""
        if run is None:
            return cls(latest_run(stage))
        for candidate in (Path(run), runs_dir() / stage / str(run)):
            if (candidate / "config.json").is_file():
                return cls(candidate)
        raise UsageError(f"no run {str(run)!r} (looked in {runs_dir() / stage}/); see --help")

    def config_dict(self) -> dict[str, Any]:
        return json.loads((self.folder / "config.json").read_text(encoding="utf-8"))

    def progress(self, total: int | None, desc: str = "train", **kwargs: Any) -> Progress:
        return Progress(total, desc, **kwargs)

    def log(self, step: int, **metrics: Any) -> None:
        """Append one JSON line; NaN and infinities become null so the file stays valid JSON."""
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in metrics.items()
        }
        line = json.dumps({"step": step, "time": round(self.elapsed(), 3), **clean})
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        with open(self.metrics_path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def plot_metrics(
        self, filename: str, keys: list[str], title: str = "", logy: bool = False
    ) -> Path:
        """Plot metrics.jsonl columns against step into one PNG."""
        rows = self.metrics()
        series = {}
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                series[key] = ([s for s, _ in points], [v for _, v in points])
        return save_line_plot(self.folder / filename, series, title=title, logy=logy)

    def finish(self, extra: dict[str, Path] | None = None) -> None:
        """Say where everything went."""
        print(f"done in {self.elapsed():.1f}s; wrote {self.folder}/", flush=True)
        for path in sorted(self.folder.iterdir()):
            if not path.name.startswith("."):
                print(f"  {path.name}{'/' if path.is_dir() else ''}", flush=True)
        for label, path in (extra or {}).items():
            print(f"  {label}: {path}", flush=True)


# ----------------------------------------------------------------------------------------------
# Finding runs and checkpoints


def latest_run(stage: str) -> Path:
    """The folder of the stage's run started last (by its config.json, written at the start)."""
    base = runs_dir() / stage
    found = sorted(
        (p for p in base.glob("*/config.json") if not p.parent.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
    )
    if not found:
        raise UsageError(
            f"no {stage} runs in {base}/ yet; train one first: uv run --package {stage} train"
        )
    return found[-1].parent


def latest_checkpoint(run_folder: str | Path) -> Path:
    """The checkpoint of a run with the highest step in its meta.json; the later one on a tie.

    A tie is normal: the `final` checkpoint is written at the step of the last periodic one.
    Folders whose name starts with a dot are half-written or on their way out (shared.checkpoint).
    """
    folder = Path(run_folder) / "checkpoints"
    found = [
        p for p in folder.glob("*") if not p.name.startswith(".") and (p / "meta.json").is_file()
    ]
    if not found:
        raise CheckpointError(
            f"run {run_folder} has no checkpoint yet (was it interrupted before the first one?)"
        )
    return max(
        found, key=lambda p: (read_meta(p).get("step", 0), (p / "meta.json").stat().st_mtime)
    )


def find_checkpoint(stage: str, ref: str | Path | None = None) -> Path:
    """A checkpoint folder from `ref`: a checkpoint itself, a run (name or folder), or None for
    the latest run; from a run, its latest checkpoint."""
    if ref is not None and (Path(ref) / "meta.json").is_file():
        return Path(ref)
    return latest_checkpoint(Run.open(stage, ref).folder)


def save_line_plot(
    path: Path,
    series: dict[str, tuple[list[float], list[float]]],
    title: str = "",
    xlabel: str = "step",
    ylabel: str = "",
    logy: bool = False,
) -> Path:
    """A PNG with one line per series, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, label=label, marker="." if len(xs) < 30 else None)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    if series:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write a matplotlib figure as PNG, atomically (never a half-written file), and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = temporary_beside(path)
    try:
        fig.savefig(tmp, format="png")
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
