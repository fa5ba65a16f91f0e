"""The training loops: one for micrograd, one for torch, written to be read side by side.

Both loops do the same five things per batch, the heart of all of deep learning:

    logits = model(x)                 # forward:  x (B, 64) -> logits (B, 10)
    loss = loss_fn(logits, y)         # mean softmax cross-entropy, a scalar
    optimizer.zero_grad()             # forget the previous batch's gradients
    loss.backward()                   # d loss / d every weight, by reverse-mode autodiff
    optimizer.step()                  # move each weight a little against its gradient

and after each epoch they score the test split and log one line of metrics. They also start
from the same weights (the torch model copies the micrograd model's initial arrays) and read
the same batches (data.batches), so in float64 the two backends print the same numbers to
about 12 digits. The torch loop imports torch inside its function: the micrograd backend never
loads it.

Left out: learning-rate schedules, early stopping, checkpoints during training (an epoch takes
a fraction of a second), and a validation split.
"""

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from micrograd import nn, optim
from mlp.data import DigitsSplit, batches, n_batches
from mlp.model_micrograd import Activation, MLPConfig, build_mlp, evaluate, forward
from shared.config import option
from shared.runs import Run


@dataclass
class TrainConfig:
    """Everything `mlp train` can be told; the defaults reach ~98% test accuracy in seconds."""

    backend: Literal["micrograd", "torch"] = option("micrograd", "which engine trains the MLP")
    hidden: tuple[int, ...] = option(
        (128,), "hidden layer widths, comma-separated (e.g. 128,64)", ge=1
    )
    activation: Activation = option("relu", "nonlinearity between layers")
    epochs: int = option(30, "passes over the 1437 training images", ge=1)
    batch_size: int = option(32, "images per optimizer step", ge=1)
    optimizer: Literal["sgd", "adam"] = option("sgd", "update rule")
    lr: float = option(0.1, "learning rate (0.1 suits sgd with momentum; try 1e-3 for adam)", gt=0)
    momentum: float = option(0.9, "sgd only: fraction of the previous update kept", ge=0, lt=1)
    weight_decay: float = option(
        0.0, "L2 penalty added to the gradient (torch's weight_decay)", ge=0
    )
    seed: int = option(0, "seeds the initial weights and the batch order")
    test_fraction: float = option(
        0.2, "share of the digits held out for testing (stratified)", gt=0, lt=1
    )
    dtype: Literal["float32", "float64"] = option("float64", "float64 makes the backends agree")
    run_name: str | None = option(None, "name of the run folder (default: the start time)")

    def __post_init__(self) -> None:
        self.model_config()  # checks --hidden and --activation

    def model_config(self) -> MLPConfig:
        return MLPConfig(hidden=tuple(self.hidden), activation=self.activation)


@dataclass
class TrainResult:
    """What a loop hands back: final weights (numpy, either backend) and what it measured."""

    state: dict[str, np.ndarray]  # "0.weight" (H1, 64), "0.bias" (H1,), ...
    test_accuracy: float
    test_predictions: np.ndarray  # (N_test,) predicted digit per test image
    step_losses: list[float] = field(default_factory=list)  # every batch's loss, for parity tests


def initial_micrograd_model(cfg: TrainConfig) -> nn.Sequential:
    """The starting weights of both backends: drawn by numpy from the seed."""
    return build_mlp(cfg.model_config(), np.random.default_rng(cfg.seed), cfg.dtype)


def train_micrograd(cfg: TrainConfig, data: DigitsSplit, run: Run) -> TrainResult:
    """Train on micrograd: Tensors, our autograd, our optimizers."""
    model = initial_micrograd_model(cfg)
    loss_fn = nn.CrossEntropyLoss()
    if cfg.optimizer == "sgd":
        opt = optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    else:
        opt = optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    n = len(data.y_train)
    step_losses: list[float] = []
    total_steps = cfg.epochs * n_batches(n, cfg.batch_size)
    with run.progress(total_steps, desc="micrograd", item_name="img") as bar:
        for epoch in range(cfg.epochs):
            loss_sum, correct = 0.0, 0
            for idx in batches(n, cfg.batch_size, cfg.seed, epoch):
                x, y = data.x_train[idx], data.y_train[idx]  # (B, 64), (B,)
                logits = forward(model, x)  # (B, 10)
                loss = loss_fn(logits, y)  # ()
                opt.zero_grad()
                loss.backward()
                opt.step()

                step_losses.append(float(loss.data))
                loss_sum += step_losses[-1] * len(y)
                correct += int((logits.data.argmax(axis=1) == y).sum())
                bar.advance(loss=step_losses[-1], items=len(y))

            test_loss, test_acc, predictions = evaluate(model, data.x_test, data.y_test)
            metrics = {"train_loss": loss_sum / n, "train_accuracy": correct / n}
            metrics |= {"test_loss": test_loss, "test_accuracy": test_acc}
            run.log(len(step_losses), epoch=epoch + 1, **metrics)
            bar.write(epoch_line(epoch + 1, cfg.epochs, metrics))
    return TrainResult(model.state_dict(), test_acc, predictions, step_losses)


def train_torch(cfg: TrainConfig, data: DigitsSplit, run: Run) -> TrainResult:
    """Train on torch: the same network, loss, optimizer and batches, in torch's vocabulary."""
    import torch

    from mlp import model_torch

    model = model_torch.build_torch_mlp(cfg.model_config(), cfg.dtype)
    model_torch.copy_micrograd_to_torch(initial_micrograd_model(cfg), model)  # same start
    loss_fn = torch.nn.CrossEntropyLoss()
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loader = model_torch.digits_loader(
        data.x_train, data.y_train, cfg.batch_size, cfg.seed, cfg.dtype
    )

    n = len(data.y_train)
    step_losses: list[float] = []
    total_steps = cfg.epochs * len(loader)
    with model_torch.one_thread(), run.progress(total_steps, desc="torch", item_name="img") as bar:
        for epoch in range(cfg.epochs):
            loader.batch_sampler.set_epoch(epoch)  # the batches data.batches(..., epoch) gives
            loss_sum, correct = 0.0, 0
            for x, y in loader:  # (B, 64), (B,)
                logits = model(x)  # (B, 10)
                loss = loss_fn(logits, y)  # ()
                opt.zero_grad()
                loss.backward()
                opt.step()

                step_losses.append(loss.item())
                loss_sum += step_losses[-1] * len(y)
                correct += int((logits.argmax(dim=1) == y).sum())
                bar.advance(loss=step_losses[-1], items=len(y))

            test_loss, test_acc, predictions = model_torch.evaluate(model, data.x_test, data.y_test)
            metrics = {"train_loss": loss_sum / n, "train_accuracy": correct / n}
            metrics |= {"test_loss": test_loss, "test_accuracy": test_acc}
            run.log(len(step_losses), epoch=epoch + 1, **metrics)
            bar.write(epoch_line(epoch + 1, cfg.epochs, metrics))
    return TrainResult(model_torch.state_dict_numpy(model), test_acc, predictions, step_losses)


def epoch_line(epoch: int, epochs: int, m: dict[str, float]) -> str:
    """One line per epoch, printed above the progress bar.

    The train numbers are averaged over the epoch's batches while the weights were still
    moving, so early on they trail the test numbers, which use the end-of-epoch weights.
    metrics.jsonl gets the same numbers, logged against the optimizer step (the plots' x axis).
    """
    return (
        f"epoch {epoch:3d}/{epochs}  train loss {m['train_loss']:.4f} "
        f"acc {m['train_accuracy']:6.2%}  |  test loss {m['test_loss']:.4f} "
        f"acc {m['test_accuracy']:6.2%}"
    )
