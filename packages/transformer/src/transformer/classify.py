"""The sentiment task (SST-2): data, loss and dev accuracy for the loop in loop.py.

    uv run --package transformer train                       # SST-2, about 80% on GLUE dev
    uv run --package transformer train --model.pooling=cls --schedule=cosine --accumulate=2

`train_classifier` builds the vocabulary from the training sentences, the model from
`ClassifyConfig.model`, trains with `loop.fit` (dev accuracy after every epoch, best checkpoint
kept), then writes the report: errors.md (the most confidently wrong dev sentences and the
confusion matrix), confusion_matrix.png and the curves. By default it trains on all of GLUE's
SST-2 training rows and reports on GLUE's dev set (872 sentences); --train_file and --dev_file
take any `sentence<TAB>label` files instead.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from attention.vocab import Vocab
from shared.checkpoint import load_checkpoint
from shared.config import config_to_dict, option
from shared.errors import ConfigError
from shared.runs import Run
from shared.seeding import seed_everything
from transformer.classifier import ClassifierConfig, TransformerForSequenceClassification
from transformer.loop import LoopConfig, fit
from transformer.positions import plot_sinusoidal
from transformer.report import write_classification_report
from transformer.sst2 import (
    SentimentDataset,
    build_vocab,
    collate_fn,
    length_grouped_batches,
    read_tsv,
)


@dataclass
class ClassifyConfig(LoopConfig):
    """`train` (--task=classification): every loop technique plus the data and the network."""

    task: Literal["classification", "translation"] = option("classification", "what to train")
    train_file: Path | None = option(
        None, "sentence<TAB>label training file (default: SST-2, GLUE's 64,349 training rows)"
    )
    dev_file: Path | None = option(
        None, "sentence<TAB>label dev file (default: GLUE's SST-2 dev set, 872 sentences)"
    )
    min_freq: int = option(1, "keep words seen at least this often in training; others <unk>", ge=1)
    max_train: int = option(0, "use only the first N training sentences (0: all)", ge=0)
    eval_batch_size: int = option(256, "sentences per batch when scoring the dev split", ge=1)
    report_errors: int = option(
        20, "most confidently wrong dev sentences listed in errors.md", ge=0
    )
    model: ClassifierConfig = option(ClassifierConfig, "the network")

    def __post_init__(self) -> None:
        if self.task != "classification":
            raise ValueError("ClassifyConfig is for --task=classification")


def sst2_splits() -> dict[str, tuple[list[str], list[int]]]:
    """SST-2 from the registry: train = GLUE's training rows, dev = GLUE's dev set (872).

    GLUE's dev sentences are whole reviews that never occur in its training split; rows held out
    of that split would share phrases with the rows left in it and score too high.
    """
    from shared import datasets

    data = datasets.load("sst2")
    return {
        ours: (list(data[theirs]["sentence"]), list(data[theirs]["label"]))
        for ours, theirs in (("train", "train"), ("dev", "validation"))
    }


def load_sentences(cfg: ClassifyConfig) -> dict[str, tuple[list[str], list[int]]]:
    """{"train": (sentences, labels), "dev": ...} from the files given, else SST-2 (GLUE dev)."""
    if (cfg.train_file is None) != (cfg.dev_file is None):
        raise ConfigError("give both --train_file and --dev_file, or neither (for SST-2)")
    if cfg.train_file is not None:
        splits = {"train": read_tsv(cfg.train_file), "dev": read_tsv(cfg.dev_file)}
    else:
        splits = sst2_splits()
    if cfg.max_train:
        sentences, labels = splits["train"]
        splits["train"] = (sentences[: cfg.max_train], labels[: cfg.max_train])
    return splits


@torch.no_grad()
def predict(
    model: nn.Module, dataset: SentimentDataset, batch_size: int = 256, device: Any = "cpu"
) -> tuple[Tensor, float]:
    """Class probabilities (N, C) for every example, in order, and the mean cross-entropy."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
    probs, loss_sum = [], 0.0
    for batch in loader:
        logits = model(batch["input_ids"].to(device), batch["padding_mask"].to(device))  # (B, C)
        labels = batch["labels"].to(device)
        loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        probs.append(logits.float().softmax(dim=-1).cpu())  # (B, C)
    model.train(was_training)
    return torch.cat(probs), loss_sum / max(len(dataset), 1)


class SentimentTask:
    """What loop.fit needs: batches, the loss, and dev accuracy."""

    best_metric = "dev_accuracy"
    higher_is_better = True

    def __init__(self, cfg: ClassifyConfig, train: SentimentDataset, dev: SentimentDataset):
        self.cfg, self.train, self.dev = cfg, train, dev
        self.lengths = [len(ids) for ids in train.ids]
        self.device: Any = "cpu"

    def n_batches(self) -> int:
        return -(-len(self.train) // self.cfg.batch_size)

    def train_batches(self, epoch: int):
        for indices in length_grouped_batches(
            self.lengths, self.cfg.batch_size, self.cfg.seed, epoch
        ):
            yield collate_fn([self.train[i] for i in indices])

    def count(self, batch: dict[str, Tensor]) -> int:
        return len(batch["labels"])

    def to_device(self, batch: dict[str, Tensor], device: Any) -> dict[str, Tensor]:
        self.device = device
        return {k: v.to(device) for k, v in batch.items()}

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits = model(batch["input_ids"], batch["padding_mask"])  # (B, 2)
        return F.cross_entropy(logits.float(), batch["labels"])

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        probs, loss = predict(model, self.dev, self.cfg.eval_batch_size, self.device)
        labels = torch.tensor(self.dev.labels)
        accuracy = float((probs.argmax(dim=-1) == labels).float().mean())
        return {"dev_accuracy": accuracy, "dev_loss": loss}


def build_model(cfg: ClassifyConfig, vocab: Vocab) -> TransformerForSequenceClassification:
    return TransformerForSequenceClassification(cfg.model, len(vocab), num_classes=2)


def train_classifier(cfg: ClassifyConfig, run: Run, splits: dict) -> dict[str, Any]:
    """Train, keep the best checkpoint, write the report; returns the best dev metrics."""
    seed_everything(cfg.seed)
    vocab = build_vocab(splits["train"][0], cfg.min_freq)
    vocab.save(run.folder / "vocab.json")
    train = SentimentDataset(*splits["train"], vocab, cfg.model.max_len)
    dev = SentimentDataset(*splits["dev"], vocab, cfg.model.max_len)
    model = build_model(cfg, vocab)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{len(train):,} training and {len(dev):,} dev sentences, {len(vocab):,} words, "
        f"{n_params:,} parameters",
        flush=True,
    )
    if cfg.model.positions == "sinusoidal":
        plot_sinusoidal(run.folder / "positions.png", 50, cfg.model.d_model)
    task = SentimentTask(cfg, train, dev)
    meta = {"config": config_to_dict(cfg), "vocab_size": len(vocab)}
    result = fit(task, model, cfg, run, task.n_batches(), meta=meta, items_name="ex")

    # the report is about the best weights, the ones eval will load
    best = load_checkpoint(run.checkpoints / "best", framework="torch")
    model.load_state_dict(best.model)
    model.to(task.device)
    probs, _ = predict(model, dev, cfg.eval_batch_size, task.device)
    accuracy = write_classification_report(run, dev.sentences, dev.labels, probs, cfg.report_errors)
    print(
        f"best dev accuracy {accuracy:.2%} (epoch {result.best_epoch}), "
        f"trained {result.seconds / 60:.1f} min",
        flush=True,
    )
    return {**result.best, "epoch": result.best_epoch, "train_seconds": result.seconds}
