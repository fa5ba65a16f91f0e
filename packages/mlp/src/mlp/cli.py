"""`uv run --package mlp train` and `uv run --package mlp eval`: digits with an MLP, two engines.

    uv run --package mlp train                      # micrograd, ~98% test accuracy in seconds
    uv run --package mlp train --backend=torch      # the same network and batches on torch.nn
    uv run --package mlp eval                       # re-score the latest run's checkpoint

`train` writes runs/mlp/<name>/: config.json, metrics.jsonl (one line per evaluation: every 45
steps by default, an epoch), loss.png, accuracy.png, confusion_matrix.png and checkpoints/final
(the weights, named like torch's nn.Sequential, so either backend can load them). `eval`
rebuilds the network from the run's config.json, loads that checkpoint, and prints the test
accuracy and the confusion matrix.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mlp.data import load_digits_split
from mlp.model_micrograd import build_mlp
from mlp.model_micrograd import evaluate as micrograd_evaluate
from mlp.report import confusion_matrix, format_confusion_matrix, plot_confusion_matrix
from mlp.train import TrainConfig, train_micrograd, train_torch
from shared.checkpoint import load_checkpoint, save_checkpoint
from shared.config import config_from_dict, config_to_dict, option, parse_config
from shared.errors import UsageError
from shared.runs import Run
from shared.seeding import seed_everything

__all__ = ["EvalConfig", "TrainConfig", "evaluate", "train"]


def train(argv: list[str]) -> None:
    cfg = parse_config(TrainConfig, argv, prog="mlp train", description=__doc__.split("\n\n")[0])
    if cfg.resume:  # every stage's run options offer it; this stage's loops cannot honour it
        raise UsageError(
            "mlp train cannot --resume: its loops save only checkpoints/final (the weights, "
            "not the optimizer or the batch order), and a whole run takes seconds; start anew"
        )
    seed_everything(cfg.seed)
    data = load_digits_split(cfg.test_fraction)  # before the run folder: a failure leaves none
    run = Run.start("mlp", cfg, name=cfg.run_name)
    print(f"{len(data.y_train)} training and {len(data.y_test)} test images, 64 pixels each")
    if cfg.backend == "micrograd":
        result = train_micrograd(cfg, data, run)
    else:
        result = train_torch(cfg, data, run)

    save_checkpoint(
        run.checkpoints / "final",
        result.state,
        meta={"config": config_to_dict(cfg), "test_accuracy": result.test_accuracy},
    )
    sizes = "-".join(map(str, cfg.model_config().layer_sizes()))  # "64-128-10"
    title = f"{cfg.backend}: MLP {sizes}, {cfg.activation}"
    run.plot_metrics("loss.png", ["train_loss", "test_loss"], title=f"{title}: cross-entropy")
    run.plot_metrics(
        "accuracy.png", ["train_accuracy", "test_accuracy"], title=f"{title}: accuracy"
    )
    counts = confusion_matrix(data.y_test, result.test_predictions)
    plot_confusion_matrix(
        counts,
        run.folder / "confusion_matrix.png",
        title=f"{cfg.backend}: test accuracy {result.test_accuracy:.2%}",
    )
    correct, total = int(np.trace(counts)), len(data.y_test)
    print(f"final test accuracy: {result.test_accuracy:.2%} ({correct}/{total}, {cfg.backend})")
    run.finish()


@dataclass
class EvalConfig:
    run: str | None = option(None, "a run folder, or a name under runs/mlp/ (default: the latest)")
    backend: Literal["micrograd", "torch"] | None = option(
        None, "engine to evaluate with (default: the one the run trained with)"
    )


def evaluate(argv: list[str]) -> None:
    cfg = parse_config(EvalConfig, argv, prog="mlp eval", description="Re-score a trained run.")
    run = Run.open("mlp", cfg.run)
    trained = config_from_dict(TrainConfig, run.config_dict(), source=f"{run.folder}/config.json")
    backend = cfg.backend or trained.backend
    data = load_digits_split(trained.test_fraction)

    # The model's own parameter shapes tell load_checkpoint what to expect, so a checkpoint
    # from another config fails with a message naming the mismatched weights.
    model = build_mlp(trained.model_config(), np.random.default_rng(0), trained.dtype)
    expected = {name: array.shape for name, array in model.state_dict().items()}
    checkpoint = load_checkpoint(run.checkpoints / "final", expected=expected)
    if backend == "micrograd":
        model.load_state_dict(checkpoint.model)
        loss, accuracy, predictions = micrograd_evaluate(model, data.x_test, data.y_test)
    else:
        from mlp import model_torch  # imports torch: only on this path

        torch_model = model_torch.build_torch_mlp(trained.model_config(), trained.dtype)
        model_torch.load_numpy_state(torch_model, checkpoint.model)
        loss, accuracy, predictions = model_torch.evaluate(torch_model, data.x_test, data.y_test)

    counts = confusion_matrix(data.y_test, predictions)
    print(f"run: {run.folder} (trained with {trained.backend}, evaluated with {backend})")
    print(
        f"test loss {loss:.4f}, test accuracy {accuracy:.2%} "
        f"({int(np.trace(counts))}/{len(data.y_test)})"
    )
    recorded = checkpoint.meta.get("test_accuracy")
    if recorded is not None:
        print(f"accuracy recorded at the end of training: {recorded:.2%}")
    print("confusion matrix (rows: true digit, columns: predicted digit)")
    print(format_confusion_matrix(counts))
