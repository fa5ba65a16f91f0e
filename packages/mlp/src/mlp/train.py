"""The training loops: one for micrograd, one for torch, written to be read side by side.

Both loops do the same five things per batch, the heart of all of deep learning:

    logits = model(x)                 # forward:  x (B, 64) -> logits (B, 10)
    loss = loss_fn(logits, y)         # mean softmax cross-entropy, a scalar
    optimizer.zero_grad()             # forget the previous batch's gradients
    loss.backward()                   # d loss / d every weight, by reverse-mode autodiff
    optimizer.step()                  # move each weight a little against its gradient

Around them they keep the same books, with the run options every stage shares
(`shared.training.RunOptions`): each step's learning rate comes from `shared.training.lr_factor`,
the schedule of every stage (constant by default; `--warmup_steps`, `--decay` and
`--min_lr_ratio` shape it); training ends after `--epochs`, or sooner at `--max_steps` or
`--time_limit` (seconds); every `--eval_interval` steps (45 by default: one epoch of 1437
images in batches of 32) and after the last step they score the test split and log one line.
They also start from the same weights (the torch model copies the micrograd model's initial
arrays) and read the same batches (data.batches), so in float64 the two backends print the same
numbers to about 12 digits.

The torch loop is written out here rather than handed to `shared.fit.fit`, the loop gpt trains
with: in this stage the loop is the lesson, read line for line beside the micrograd one. It does
take its threads, device and seed from `shared.training.setup`, as every torch stage does. The
torch loop imports torch inside its function: the micrograd backend never loads it.

Left out: early stopping, checkpoints during training and resuming (a whole run takes about a
second; `--resume`, a run option of every stage, is refused with one line), Ctrl-C handling,
and a validation split.
"""

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from micrograd import nn, optim
from mlp.data import DigitsSplit, batches, n_batches
from mlp.model_micrograd import Activation, MLPConfig, build_mlp, evaluate, forward
from shared.config import option
from shared.runs import Progress, Run
from shared.training import Decay, RunOptions, lr_factor, setup


@dataclass
class TrainConfig(RunOptions):
    """Everything `mlp train` can be told; the defaults reach ~98% test accuracy in seconds.

    The run options (step cap, time limit, evaluation interval, device, threads, seed, run
    name) come from `shared.training.RunOptions`, with the names and meanings they have in
    every stage; the defaults differ where this stage's figures were measured with others.
    """

    backend: Literal["micrograd", "torch"] = option("micrograd", "which engine trains the MLP")
    hidden: tuple[int, ...] = option(
        (128,), "hidden layer widths, comma-separated (e.g. 128,64)", ge=1
    )
    activation: Activation = option("relu", "nonlinearity between layers")
    epochs: int = option(
        30,
        "passes over the 1437 training images (--max_steps or --time_limit may end sooner)",
        ge=1,
    )
    batch_size: int = option(32, "images per optimizer step", ge=1)
    optimizer: Literal["sgd", "adam"] = option("sgd", "update rule")
    lr: float = option(
        0.1, "peak learning rate (0.1 suits sgd with momentum; try 1e-3 for adam)", gt=0
    )
    momentum: float = option(0.9, "sgd only: fraction of the previous update kept", ge=0, lt=1)
    weight_decay: float = option(
        0.0, "L2 penalty added to the gradient (torch's weight_decay)", ge=0
    )
    warmup_steps: int = option(0, "steps of linear learning-rate warmup", ge=0)
    decay: Decay = option("constant", "shape of the decay after warmup, to lr * min_lr_ratio")
    min_lr_ratio: float = option(0.0, "the decay ends at lr * min_lr_ratio", ge=0, le=1)
    test_fraction: float = option(
        0.2, "share of the digits held out for testing (stratified)", gt=0, lt=1
    )
    dtype: Literal["float32", "float64"] = option("float64", "float64 makes the backends agree")
    # The shared run options, with this stage's defaults.
    max_steps: int = option(
        0, "stop after this many optimizer steps (0: when the epochs are done)", ge=0
    )
    time_limit: float = option(0.0, "seconds of training, evaluations included (0: none)", ge=0)
    eval_interval: int = option(
        45,
        "score the test split every N steps and after the last (45: each epoch at batch 32)",
        ge=1,
    )
    checkpoint_interval: int = option(
        0, "unused here: mlp saves checkpoints/final only (a run takes seconds)", ge=0
    )
    keep_checkpoints: int = option(
        2, "unused here: mlp saves checkpoints/final only (a run takes seconds)", ge=1
    )
    resume: str | None = option(
        None, "refused here: mlp saves checkpoints/final only, weights without the loop's state"
    )
    precision: Literal["fp32"] = option(
        "fp32", "no autocast here: both backends compute in --dtype (float64 or float32)"
    )
    device: str = option(
        "cpu", "torch backend: cpu, cuda, cuda:N, mps or auto (the network is too small for a GPU)"
    )
    threads: int = option(
        1, "torch backend: CPU threads (0: the idle cores); 1 suits this tiny network", ge=0
    )
    seed: int = option(0, "seeds the initial weights and the batch order")

    def __post_init__(self) -> None:
        # Not RunOptions' check for a step cap or a time limit: --epochs always ends a run here.
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
    plan = (i for e in range(cfg.epochs) for i in batches(n, cfg.batch_size, cfg.seed, e))
    books = Books(cfg, n)
    with run.progress(books.total, desc="micrograd", item_name="img") as bar:
        for idx in plan:
            opt.lr = books.learning_rate()
            x, y = data.x_train[idx], data.y_train[idx]  # (B, 64), (B,)
            logits = forward(model, x)  # (B, 10)
            loss = loss_fn(logits, y)  # ()
            opt.zero_grad()
            loss.backward()
            opt.step()

            books.add(float(loss.data), logits.data.argmax(axis=1) == y, bar)
            if books.evaluation_due():
                books.report(evaluate(model, data.x_test, data.y_test), run, bar)
            if books.out_of_budget():
                break
        if books.evaluation_due(last=True):
            books.report(evaluate(model, data.x_test, data.y_test), run, bar)
    return books.result(model.state_dict())


def train_torch(cfg: TrainConfig, data: DigitsSplit, run: Run) -> TrainResult:
    """Train on torch: the same network, loss, optimizer and batches, in torch's vocabulary."""
    import torch

    from mlp import model_torch

    env = setup(cfg)  # threads (1 by default), device (cpu by default), seeds
    print(f"torch on {env.device}, {env.threads_note}, {cfg.dtype}")
    model = model_torch.build_torch_mlp(cfg.model_config(), cfg.dtype)
    model_torch.copy_micrograd_to_torch(initial_micrograd_model(cfg), model)  # same start
    model.to(env.device)
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

    books = Books(cfg, len(data.y_train))
    with run.progress(books.total, desc="torch", item_name="img") as bar:
        for x, y in model_torch.epochs_of(loader, cfg.epochs):  # (B, 64), (B,)
            lr = books.learning_rate()
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = x.to(env.device), y.to(env.device)
            logits = model(x)  # (B, 10)
            loss = loss_fn(logits, y)  # ()
            opt.zero_grad()
            loss.backward()
            opt.step()

            books.add(loss.item(), logits.argmax(dim=1) == y, bar)
            if books.evaluation_due():
                books.report(model_torch.evaluate(model, data.x_test, data.y_test), run, bar)
            if books.out_of_budget():
                break
        if books.evaluation_due(last=True):
            books.report(model_torch.evaluate(model, data.x_test, data.y_test), run, bar)
    return books.result(model_torch.state_dict_numpy(model))


class Books:
    """What both loops keep track of besides the model: the step, the clock, the schedule, the
    budget, the training loss and accuracy since the last evaluation, and the latest test scores.

    It knows nothing of either library, so the two loops above differ only where micrograd
    and torch do.
    """

    def __init__(self, cfg: TrainConfig, n_train: int) -> None:
        self.cfg = cfg
        self.per_epoch = n_batches(n_train, cfg.batch_size)  # steps in one epoch
        planned = cfg.epochs * self.per_epoch
        self.total = min(planned, cfg.max_steps) if cfg.max_steps else planned
        self.step = 0  # optimizer steps taken
        self.started = time.perf_counter()
        self.step_losses: list[float] = []
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0  # since the last evaluation
        self.test: tuple[float, float, np.ndarray] | None = None  # loss, accuracy, predictions

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def learning_rate(self) -> float:
        """This step's rate: `shared.training.lr_factor` over the planned steps (or the time
        limit, whichever runs out first). With the default constant schedule, exactly --lr."""
        cfg = self.cfg
        factor = lr_factor(
            self.step,
            self.elapsed(),
            warmup_steps=cfg.warmup_steps,
            max_steps=self.total,
            seconds=cfg.time_limit or None,
            decay=cfg.decay,
            min_ratio=cfg.min_lr_ratio,
        )
        return cfg.lr * factor

    def add(self, loss: float, hits: Any, bar: Progress) -> None:
        """Count one step: its loss and which of its B images it got right, (B,) bool (a numpy
        array or a torch tensor: both have len() and .sum())."""
        self.step += 1
        self.step_losses.append(loss)
        self.loss_sum += loss * len(hits)
        self.correct += int(hits.sum())
        self.seen += len(hits)
        bar.advance(loss=loss, items=len(hits))

    def out_of_budget(self) -> bool:
        """--max_steps or --time_limit reached (the epochs end the batch plan itself)."""
        cfg = self.cfg
        return bool(
            (cfg.max_steps and self.step >= cfg.max_steps)
            or (cfg.time_limit and self.elapsed() >= cfg.time_limit)
        )

    def evaluation_due(self, last: bool = False) -> bool:
        """Every --eval_interval steps; and after the last step, unless it was just scored."""
        if last:
            return self.seen > 0
        return self.step % self.cfg.eval_interval == 0

    def report(self, test: tuple[float, float, np.ndarray], run: Run, bar: Progress) -> None:
        """Log the training numbers since the last evaluation and the test scores, one line.

        The train numbers are averaged over those steps while the weights were still moving,
        so early on they trail the test numbers, which use the weights of this step.
        """
        self.test = test
        metrics = {
            "train_loss": self.loss_sum / self.seen,
            "train_accuracy": self.correct / self.seen,
        }
        metrics |= {"test_loss": test[0], "test_accuracy": test[1]}
        epoch = round(self.step / self.per_epoch, 2)  # 1.0 after the first epoch's last batch
        run.log(self.step, epoch=epoch, **metrics)
        bar.write(evaluation_line(self.step, epoch, self.cfg.epochs, metrics))
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0

    def result(self, state: dict[str, np.ndarray]) -> TrainResult:
        assert self.test is not None, "the loop ends with an evaluation"
        _, accuracy, predictions = self.test
        return TrainResult(state, accuracy, predictions, self.step_losses)


def evaluation_line(step: int, epoch: float, epochs: int, m: dict[str, float]) -> str:
    """One line per evaluation, printed above the progress bar; metrics.jsonl gets the same
    numbers, logged against the optimizer step (the plots' x axis)."""
    return (
        f"step {step:4d}  epoch {epoch:5.2f}/{epochs}  train loss {m['train_loss']:.4f} "
        f"acc {m['train_accuracy']:6.2%}  |  test loss {m['test_loss']:.4f} "
        f"acc {m['test_accuracy']:6.2%}"
    )
