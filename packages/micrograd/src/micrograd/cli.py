"""`uv run --package micrograd train`: gradient descent you can watch.

Two small tasks, each a complete training loop written with nothing but micrograd:

- `--task=linear` (the default): fit `y = w*x + b` to noisy points and print `w` and `b` as they
  walk towards the true values. The smallest possible picture of what `backward()` is for.
- `--task=moons`: a two-layer network learns to separate two interleaving half-moons; the run
  folder gets a PNG of its decision boundary.

Both write the usual run folder (config.json, metrics.jsonl, a loss curve, a checkpoint).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from micrograd import Tensor, nn, no_grad, optim
from shared.checkpoint import save_checkpoint
from shared.config import option, parse_config
from shared.runs import Run, save_figure
from shared.seeding import seed_everything


@dataclass
class TrainConfig:
    task: Literal["linear", "moons"] = option("linear", "what to learn")
    steps: int = option(0, "optimizer steps (0: 100 for linear, 400 for moons)", ge=0)
    lr: float = option(0.0, "learning rate (0: 0.1 SGD for linear, 0.03 Adam for moons)", ge=0)
    samples: int = option(200, "number of generated training points", ge=1)
    noise: float = option(0.1, "standard deviation of the noise added to the data", ge=0)
    true_w: float = option(2.0, "linear task: the slope the data is generated with")
    true_b: float = option(-0.5, "linear task: the intercept the data is generated with")
    hidden: int = option(16, "moons task: width of the two hidden layers", ge=1)
    print_every: int = option(10, "linear task: print w and b every this many steps", ge=1)
    seed: int = option(0, "random seed for data and weights")
    run_name: str | None = option(None, "name of the run folder (default: the start time)")


def make_moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (like scikit-learn's make_moons): x (n, 2), labels (n,)."""
    n_top = n // 2
    angle_top = np.linspace(0, np.pi, n_top)
    angle_bottom = np.linspace(0, np.pi, n - n_top)
    top = np.stack([np.cos(angle_top), np.sin(angle_top)], axis=1)
    bottom = np.stack([1 - np.cos(angle_bottom), 0.5 - np.sin(angle_bottom)], axis=1)
    x = np.concatenate([top, bottom]) + rng.normal(0, noise, size=(n, 2))
    y = np.concatenate([np.zeros(n_top, dtype=np.int64), np.ones(n - n_top, dtype=np.int64)])
    order = rng.permutation(n)
    return x[order], y[order]


def train_linear(cfg: TrainConfig, run: Run) -> dict[str, float]:
    rng = np.random.default_rng(cfg.seed)
    x = rng.uniform(-1, 1, size=(cfg.samples, 1))  # (N, 1)
    y = cfg.true_w * x + cfg.true_b + rng.normal(0, cfg.noise, size=x.shape)  # (N, 1)
    w = Tensor(rng.normal(size=(1, 1)), requires_grad=True)
    b = Tensor(np.zeros((1,)), requires_grad=True)
    opt = optim.SGD([w, b], lr=cfg.lr or 0.1)
    steps = cfg.steps or 100
    print(
        f"learning y = w*x + b from {cfg.samples} points; truth: w = {cfg.true_w}, b = {cfg.true_b}"
    )
    with run.progress(steps, desc="linear", item_name="pts") as bar:
        for step in range(1, steps + 1):
            prediction = Tensor(x) @ w + b  # (N, 1) @ (1, 1) + (1,) -> (N, 1)
            loss = nn.mse_loss(prediction, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w_now, b_now = float(w.data[0, 0]), float(b.data[0])
            run.log(step, loss=float(loss.data), w=w_now, b=b_now)
            bar.advance(loss=float(loss.data), items=cfg.samples)
            if step % cfg.print_every == 0 or step == 1:
                bar.write(
                    f"step {step:4d}  w = {w_now:+.4f}  b = {b_now:+.4f}  loss {loss.data:.5f}"
                )
    save_checkpoint(run.checkpoints / "final", {"w": w.data, "b": b.data}, meta={"step": steps})
    run.plot_metrics("loss.png", ["loss"], title="linear regression: mean squared error", logy=True)
    run.plot_metrics("w_and_b.png", ["w", "b"], title=f"w -> {cfg.true_w}, b -> {cfg.true_b}")
    return {"w": float(w.data[0, 0]), "b": float(b.data[0]), "loss": float(loss.data)}


def moons_model(hidden: int, rng: np.random.Generator) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(2, hidden, rng=rng),
        nn.Tanh(),
        nn.Linear(hidden, hidden, rng=rng),
        nn.Tanh(),
        nn.Linear(hidden, 2, rng=rng),  # two logits, one per moon
    )


def train_moons(cfg: TrainConfig, run: Run) -> dict[str, float]:
    rng = np.random.default_rng(cfg.seed)
    x, y = make_moons(cfg.samples, cfg.noise, rng)  # (N, 2), (N,)
    model = moons_model(cfg.hidden, rng)
    opt = optim.Adam(model.parameters(), lr=cfg.lr or 0.03)
    steps = cfg.steps or 400
    with run.progress(steps, desc="moons", item_name="pts") as bar:
        for step in range(1, steps + 1):
            logits = model(Tensor(x))  # (N, 2)
            loss = nn.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            accuracy = float((logits.data.argmax(axis=1) == y).mean())
            run.log(step, loss=float(loss.data), accuracy=accuracy)
            bar.advance(loss=float(loss.data), items=cfg.samples, acc=accuracy)
    save_checkpoint(run.checkpoints / "final", model.state_dict(), meta={"step": steps})
    run.plot_metrics("loss.png", ["loss", "accuracy"], title="two moons: loss and accuracy")
    plot_decision_boundary(model, x, y, run.folder / "decision_boundary.png")
    print(f"training accuracy {accuracy:.1%} after {steps} steps")
    return {"accuracy": accuracy, "loss": float(loss.data)}


def plot_decision_boundary(model: nn.Module, x: np.ndarray, y: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = np.linspace(x[:, 0].min() - 0.5, x[:, 0].max() + 0.5, 200)
    ys = np.linspace(x[:, 1].min() - 0.5, x[:, 1].max() + 0.5, 200)
    grid_x, grid_y = np.meshgrid(xs, ys)  # (200, 200) each
    points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)  # (40000, 2)
    with no_grad():
        logits = model(Tensor(points)).data  # (40000, 2)
    margin = (logits[:, 1] - logits[:, 0]).reshape(grid_x.shape)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    ax.contourf(grid_x, grid_y, margin > 0, levels=1, colors=["#9ecae1", "#fdae6b"], alpha=0.6)
    ax.contour(grid_x, grid_y, margin, levels=[0], colors="k", linewidths=1)
    ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 1, "#e6550d", "#3182bd"), s=12, edgecolors="k")
    ax.set_title("micrograd MLP: decision boundary on two moons")
    fig.tight_layout()
    save_figure(fig, path)  # PNG written atomically, figure closed


def train(argv: list[str]) -> None:
    cfg = parse_config(
        TrainConfig, argv, prog="micrograd train", description=__doc__.split("\n\n")[0]
    )
    seed_everything(cfg.seed)
    run = Run.start("micrograd", cfg, name=cfg.run_name)
    if cfg.task == "linear":
        train_linear(cfg, run)
    else:
        train_moons(cfg, run)
    run.finish()
