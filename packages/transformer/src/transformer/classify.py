"""The sentiment task (SST-2): data, loss and dev accuracy for the loop in loop.py.

    uv run --package transformer train                       # SST-2, about 80% on GLUE dev
    uv run --package transformer train --model.pooling=cls --schedule=cosine --accumulate=2

`prepare` builds the vocabulary from the training sentences (a resumed run reloads its own),
`SentimentTask` and the model from `ClassifyConfig.model`, as a `TrainingTask` that
`shared.trainer` runs with loop.py's recipe (shared.fit underneath). After every epoch it
scores the selection slice (`--select_fraction` of the training rows, held out before
training), which picks the checkpoint kept, and the dev set, which is only reported. Then
`SentimentRun.report` writes errors.md (the most confidently wrong dev sentences and the
confusion matrix), confusion_matrix.png and the curves. By default it trains on all of GLUE's
SST-2 training rows and reports on GLUE's dev set (872 sentences); `--dataset csv:FILE` (or
jsonl, tsv, parquet, hf: see shared.sources) takes any labelled rows instead, and the older
--train_file and --dev_file any `sentence<TAB>label` files.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from attention.vocab import Vocab
from shared import sources
from shared.augment import AugmentConfig, augment_rows
from shared.config import config_to_dict, option
from shared.epochs import EpochSampler
from shared.errors import ConfigError
from shared.fit import KeepBest
from shared.selection import held_out_like
from shared.sources import SOURCE_HELP
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained
from shared.training import Setup
from transformer.classifier import ClassifierConfig, TransformerForSequenceClassification
from transformer.loop import (
    LoopConfig,
    Recipe,
    best_epoch,
    epoch_task,
    fused_on,
    held_out,
    kept_weights,
)
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
    dataset: str = option(
        "sst2", "sst2 (GLUE's SST-2; reported on its dev set), or a source of labelled rows "
        "(labels 0 and 1; reported on its validation split): " + SOURCE_HELP,
    )  # fmt: skip
    sentence_field: str = option("sentence", "the field holding the text, for a source")
    label_field: str = option("label", "the field holding the label (0 or 1), for a source")
    train_file: Path | None = option(
        None, "sentence<TAB>label training file (default: SST-2, GLUE's 64,349 training rows)"
    )
    dev_file: Path | None = option(
        None, "sentence<TAB>label dev file (default: GLUE's SST-2 dev set, 872 sentences)"
    )
    select_fraction: float = option(
        0.015, "hold out this fraction of the training rows to pick the best epoch on (0: keep "
        "the last epoch's)", ge=0, lt=1,
    )  # fmt: skip
    select_like: Literal["dev", "random"] = option(
        "dev",
        "dev: the selection rows' lengths in words follow the dev split's (its text, never its "
        "labels), and training rows found inside them are left out; random: drawn at random",
    )
    min_freq: int = option(1, "keep words seen at least this often in training; others <unk>", ge=1)
    max_train: int = option(0, "use only the first N training sentences (0: all)", ge=0)
    eval_batch_size: int = option(256, "sentences per batch when scoring the dev split", ge=1)
    report_errors: int = option(
        20, "most confidently wrong dev sentences listed in errors.md", ge=0
    )
    model: ClassifierConfig = option(ClassifierConfig, "the network")
    augment: AugmentConfig = option(AugmentConfig, "changed copies of the training sentences")

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


def source_splits(
    spec: str, sentence_field: str, label_field: str
) -> dict[str, tuple[list[str], list[int]]]:
    """{"train", "dev"} from a local or hub source: its validation split, else its last 10%."""
    fields = [sentence_field, label_field]
    loaded = sources.load_source(spec, fields, labels=(0, 1), label_field=label_field)
    splits, eval_name = sources.with_eval_split(loaded)
    return {
        ours: (list(splits[theirs][sentence_field]), [int(y) for y in splits[theirs][label_field]])
        for ours, theirs in (("train", "train"), ("dev", eval_name))
    }


def load_sentences(cfg: ClassifyConfig) -> dict[str, tuple[list[str], list[int]]]:
    """{"train": (sentences, labels), "dev": ...} from the files given, else SST-2 (GLUE dev)."""
    if (cfg.train_file is None) != (cfg.dev_file is None):
        raise ConfigError("give both --train_file and --dev_file, or neither (for SST-2)")
    if cfg.train_file is not None:
        splits = {"train": read_tsv(cfg.train_file), "dev": read_tsv(cfg.dev_file)}
    elif sources.is_source(cfg.dataset):
        splits = source_splits(cfg.dataset, cfg.sentence_field, cfg.label_field)
    elif cfg.dataset == "sst2":
        splits = sst2_splits()
    else:
        raise ConfigError(f"--dataset {cfg.dataset!r}: give sst2 or a source ({SOURCE_HELP})")
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
    """A `shared.fit.Task`: batches from an epoch sampler, the loss, and the evaluation.

    `evaluate` scores the selection slice (which picks the kept checkpoint) and the dev set
    (which is reported, never used to choose)."""

    def __init__(
        self,
        cfg: ClassifyConfig,
        train: SentimentDataset,
        dev: SentimentDataset,
        select: SentimentDataset | None = None,
    ):
        self.cfg, self.train, self.dev, self.select = cfg, train, dev, select
        lengths = [len(ids) for ids in train.ids]
        self.sampler = EpochSampler(
            lambda epoch: length_grouped_batches(lengths, cfg.batch_size, cfg.seed, epoch)
        )

    def train_batch(self, generator: Any) -> dict[str, Tensor]:
        return collate_fn([self.train[i] for i in self.sampler.next()])

    def count(self, batch: dict[str, Tensor]) -> int:
        return len(batch["labels"])

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits = model(batch["input_ids"], batch["padding_mask"])  # (B, 2)
        return F.cross_entropy(logits.float(), batch["labels"])

    def evaluate(self, model: nn.Module, precision_ctx: Any = None) -> dict[str, float]:
        """Accuracy and loss on the selection slice, if any, and on the dev set (in fp32)."""
        device = next(model.parameters()).device
        metrics = {}
        named = [("select", self.select), ("dev", self.dev)]
        for name, data in [(n, d) for n, d in named if d is not None]:
            probs, loss = predict(model, data, self.cfg.eval_batch_size, device)
            accuracy = float((probs.argmax(dim=-1) == torch.tensor(data.labels)).float().mean())
            metrics.update({f"{name}_accuracy": accuracy, f"{name}_loss": loss})
        return metrics


def build_model(cfg: ClassifyConfig, vocab: Vocab) -> TransformerForSequenceClassification:
    return TransformerForSequenceClassification(cfg.model, len(vocab), num_classes=2)


def sentiment_datasets(
    cfg: ClassifyConfig, splits: dict, vocab: Vocab | None
) -> tuple[Vocab, SentimentDataset, SentimentDataset, SentimentDataset | None]:
    """(vocabulary, train, dev, selection slice or None): the selection rows held out of the
    training rows first, the vocabulary (unless given: a resumed run's) built from the rest."""
    sentences, labels = splits["train"]
    fit_rows, select_rows = held_out(len(sentences), cfg.select_fraction, cfg.seed)
    if select_rows and cfg.select_like == "dev":  # as many rows, with the dev split's lengths
        held, inside = held_out_like(sentences, splits["dev"][0], len(select_rows),
                                     cfg.seed + 7919)  # fmt: skip
        select_rows = sorted(held)  # and their phrases out of training, else it tests memory
        fit_rows = sorted(set(range(len(sentences))) - set(held) - inside)
    train_part = augment_rows([sentences[i] for i in fit_rows], [labels[i] for i in fit_rows],
                              cfg.augment, cfg.seed)  # fmt: skip
    vocab = vocab or build_vocab(train_part[0], cfg.min_freq)
    train = SentimentDataset(*train_part, vocab, cfg.model.max_len)
    dev = SentimentDataset(*splits["dev"], vocab, cfg.model.max_len)
    select = None
    if select_rows:
        held = ([sentences[i] for i in select_rows], [labels[i] for i in select_rows])
        select = SentimentDataset(*held, vocab, cfg.model.max_len)
    return vocab, train, dev, select


@dataclass
class SentimentRun:
    """What the classifier's run files, checkpoints and report need to know."""

    cfg: ClassifyConfig
    task: SentimentTask
    vocab: Vocab

    def build_model(self) -> TransformerForSequenceClassification:
        return build_model(self.cfg, self.vocab)

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"config": config_to_dict(self.cfg), "vocab_size": len(self.vocab)}

    def write_run_files(self, folder: Path) -> None:
        self.vocab.save(folder / "vocab.json")  # where `transformer eval` looks for it

    def shard_units(self, model: nn.Module) -> list[nn.Module]:
        return list(model.encoder.layers)  # one FSDP unit per encoder layer

    def report(self, trained: Trained) -> None:
        """The report on the kept weights, the ones eval will load: errors.md, the confusion
        matrix, the curves; the dev accuracy printed."""
        cfg, run, state, dev = self.cfg, trained.run, trained.state, self.task.dev
        if cfg.model.positions == "sinusoidal":
            plot_sinusoidal(run.folder / "positions.png", 50, cfg.model.d_model)
        kept_weights(run, trained.model, trained.env.device)
        probs, _ = predict(trained.model, dev, cfg.eval_batch_size, trained.env.device)
        accuracy = write_classification_report(
            run, dev.sentences, dev.labels, probs, cfg.report_errors
        )
        epoch = best_epoch(state, self.task.sampler.batches_per_epoch, cfg.accumulate)
        chosen = (
            f"epoch {epoch:.2f}, chosen by select accuracy {state.best['select_accuracy']:.2%}"
            if state.best is not None
            else f"the last weights, epoch {epoch:.2f}"
        )
        print(
            f"dev accuracy {accuracy:.2%} ({chosen}), trained {state.elapsed / 60:.1f} min",
            flush=True,
        )


def prepare(
    cfg: ClassifyConfig, env: Setup | None = None, resume: Resume | None = None
) -> TrainingTask:
    """The classifier's `TrainingTask` (for `transformer train` and training_kit): the data,
    the vocabulary (a resumed run's own), `SentimentTask` and the recipe. The selection slice,
    if any, picks the checkpoint kept; the dev set is only reported."""
    splits = load_sentences(cfg)
    saved = Vocab.load(resume.run_folder / "vocab.json") if resume is not None else None
    vocab, train, dev, select = sentiment_datasets(cfg, splits, saved)
    task = SentimentTask(cfg, train, dev, select)
    sentiment = SentimentRun(cfg, task, vocab)
    recipe = Recipe(cfg, task.sampler.batches_per_epoch, sentiment.build_model, fused_on(env))
    held = len(select) if select is not None else 0
    return epoch_task(
        recipe,
        task,
        KeepBest("select_accuracy", "max", cfg.patience) if select is not None else None,
        checkpoint_meta=sentiment.checkpoint_meta,
        write_run_files=sentiment.write_run_files,
        shard_units=sentiment.shard_units,
        item_name="ex",
        description=(
            f"transformer on {cfg.dataset}: {len(train):,} training sentences ({held:,} more held "
            f"out to pick the best epoch), {len(dev):,} dev sentences, {len(vocab):,} words; "
            f"{recipe.total} optimizer steps ({recipe.per_epoch} an epoch)"
        ),
        report=sentiment.report,
    )
