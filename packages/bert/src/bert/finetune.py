"""`bert finetune`: a pretrained encoder plus a fresh classifier head, trained on a GLUE task.

Fine-tuning trains every weight (but, by default, the word embeddings) for a short while at a
small learning rate: the encoder already knows the language from pretraining, and the task only
has to tilt it. The recipe is BERT's: AdamW with weight decay on the matrices but not on
norms and biases, a linear warmup then a linear decay to zero, a few thousand steps at batch 32.
One departure: no dropout by default (BERT used 0.1).

    init (MiniLM, a pretrain run, a folder, a hub name, or none) -> BertForSequenceClassification
    rows = tokenized [CLS] sentence [SEP] (pairs: [CLS] a [SEP] b [SEP]), cut to --max_length
    shared.fit: length-grouped batches, cross entropy, the schedule, evaluations, checkpoints
    the model with the best score on the selection rows -> <run>/model/ (transformers' format)

Selection without peeking: `--select_rows` rows are held out of the training split and are
what early stopping and the best checkpoint look at. The dev set (GLUE's, whose labels are the
ones we report on) is evaluated and logged at the same steps, for the curve, but never chooses
anything.

Why no dropout: thirty CPU minutes hold under two epochs of SST-2, too few to overfit, and
dropout's random masks cost a tenth of a step. Measured on the rows held out for selection
(AVX2, 2 threads, 25-minute runs): 95.6% without dropout against 94.6% with 0.1, whose run
also took fewer steps. `--dropout 0.1` brings BERT's recipe back.

Why freeze the word embeddings by default: they are half of MiniLM's 22.7M weights, and a
fine-tuning batch touches a few hundred of their 30,522 rows. Their dense gradient (47 MB)
and AdamW update cost a third of a step on a 2-core CPU and buy nothing measurable on SST-2.
"""

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from bert.batching import epoch_sampler
from bert.glue import GlueTask, compute_metrics, get_task, load_task, registry_dataset
from bert.hf import config_from_dict, load_folder, save_folder
from bert.model import BertConfig, BertForSequenceClassification
from bert.pretrained import resolve_init
from bert.tokenize import BertTokenizer, pad_rows
from shared.augment import AugmentConfig, augment_rows
from shared.checkpoint import load_checkpoint
from shared.config import config_to_dict, option
from shared.errors import CheckpointError, UsageError
from shared.fit import FitState, KeepBest
from shared.selection import held_out_like
from shared.sources import SOURCE_HELP
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained
from shared.training import Decay, RunOptions, Setup, lr_factor

STAGE = "bert"


@dataclass
class ScratchModel:
    """The encoder's size when `--init none` builds one from random weights."""

    hidden_size: int = option(256, "width of every token vector", ge=8)
    num_hidden_layers: int = option(4, "encoder layers", ge=1)
    num_attention_heads: int = option(4, "attention heads", ge=1)
    intermediate_size: int = option(1024, "feed-forward width", ge=8)


@dataclass
class FinetuneConfig(RunOptions):
    task: str = option("sst2", "GLUE task to fine-tune on (see bert.glue.TASKS)")
    dataset: str | None = option(
        None, "the task's rows from a source instead of the registry, with the task's columns "
        "(sst2: sentence, label): " + SOURCE_HELP,
    )  # fmt: skip
    init: str = option(
        "minilm",
        "minilm (the packaged all-MiniLM-L6-v2), a bert pretrain run, a folder in transformers' "
        "format, a hub name (online), or none (random weights, for comparison)",
    )
    tokenizer: str | None = option(
        None, "with --init none: a folder with vocab.txt (default: MiniLM's vocabulary)"
    )
    scratch: ScratchModel = field(default_factory=ScratchModel)
    lr: float = option(1e-4, "peak learning rate", gt=0)
    weight_decay: float = option(
        0.01, "AdamW weight decay (not on norms, biases, embeddings)", ge=0
    )
    warmup_steps: int = option(200, "linear warmup steps", ge=0)
    decay: Decay = option("linear", "how the rate falls after warmup, to 0 at the budget's end")
    batch_size: int = option(32, "sentences per optimizer step", ge=1)
    max_length: int = option(66, "tokens per row, [CLS] and [SEP] included; longer rows are cut",
                             ge=3)  # fmt: skip
    grad_clip: float = option(1.0, "clip the gradient's global norm (0: off)", ge=0)
    pooling: Literal["cls", "mean"] = option(
        "cls", "what the classifier reads: cls (BERT's pooler on [CLS]) or mean (of the tokens)"
    )
    dropout: float = option(
        0.0, "dropout on hidden states and attention weights (BERT used 0.1)", ge=0, lt=1
    )
    freeze_embeddings: bool = option(
        True, "keep a pretrained model's word embedding matrix fixed (never with --init none)"
    )
    select_rows: int = option(
        1000, "training rows held out to pick the best checkpoint and stop early", ge=0
    )
    select_like: Literal["dev", "random"] = option(
        "dev",
        "dev: the selection rows' lengths in words follow the reported split's (its text, never "
        "its labels), and training rows found inside them are left out; random: drawn at random",
    )
    train_rows: int = option(
        0,
        "train on this many labelled rows, drawn at random (0: all); for few-label studies",
        ge=0,
    )
    augment: AugmentConfig = option(
        AugmentConfig, "changed copies of the training sentences (one-sentence tasks)"
    )
    patience: int = option(0, "stop after this many evaluations without a better score (0: off)",
                           ge=0)  # fmt: skip
    eval_batch_size: int = option(128, "sentences per evaluation batch", ge=1)
    time_limit: float = option(
        1500.0, "seconds of training, final evaluation included (0: none)", ge=0
    )
    max_steps: int = option(0, "stop after this many optimizer steps (0: only the time limit)",
                            ge=0)  # fmt: skip
    eval_interval: int = option(250, "evaluate every N steps", ge=1)


# ----------------------------------------------------------------------------------------------
# Data


@dataclass
class Rows:
    """Tokenized rows of one split: (ids, segments) per row, and the labels."""

    rows: list[tuple[list[int], list[int]]]
    labels: list[float]

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, indices: list[int], pad_id: int) -> dict[str, Tensor]:
        batch = pad_rows([self.rows[i] for i in indices], pad_id)
        labels = [self.labels[i] for i in indices]
        batch["labels"] = torch.tensor(labels)
        return batch


def tokenize_split(split: Any, task: GlueTask, tokenizer: BertTokenizer, max_length: int) -> Rows:
    texts = [split[c] for c in task.text_columns]
    pairs = texts[1] if len(texts) == 2 else [None] * len(texts[0])
    rows = [tokenizer.encode(a, b, max_length) for a, b in zip(texts[0], pairs, strict=True)]
    return Rows(rows, [float(y) for y in split[task.label_column]])


def load_splits(
    task: GlueTask,
    tokenizer: BertTokenizer,
    max_length: int,
    select_rows: int,
    seed: int,
    train_rows: int = 0,
    select_like: str = "dev",
    augment: AugmentConfig | None = None,
    dataset: str | None = None,
) -> dict[str, Rows]:
    """train (minus the selection rows; `train_rows` of them at random if not 0), select (held
    out of train; `select_like="dev"`: lengths like the dev set's), dev (GLUE's dev set)."""
    data = load_task(task, dataset)
    dev = tokenize_split(data[task.eval_split], task, tokenizer, max_length)
    n = len(data["train"])
    if select_rows >= n:
        raise UsageError(f"--select_rows {select_rows} leaves no training rows ({n})")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    if select_like == "dev":
        first = task.text_columns[0]  # a pair's first sentence carries its length well enough
        held, inside = held_out_like(data["train"][first], data[task.eval_split][first],
                                     select_rows, seed)  # fmt: skip
        taken = set(held) | inside  # their phrases too, else selection tests memory
        kept = [i for i in order if i not in taken]
    else:
        held, kept = order[:select_rows], order[select_rows:]
    if train_rows:
        if train_rows > len(kept):
            raise UsageError(f"--train_rows {train_rows}: only {len(kept):,} rows are left "
                             f"after --select_rows {select_rows}")  # fmt: skip
        kept = kept[:train_rows]  # the order is already a random permutation

    def pick(indices: list[int]) -> Rows:  # only the rows used are tokenized
        return tokenize_split(data["train"].select(indices), task, tokenizer, max_length)

    train = pick(kept) if augment is None or not augment.copies else augmented(
        data["train"].select(kept), task, tokenizer, max_length, augment, seed
    )  # fmt: skip
    return {"train": train, "select": pick(held), "dev": dev}


def augmented(split: Any, task: GlueTask, tokenizer: BertTokenizer, max_length: int,
              augment: AugmentConfig, seed: int) -> Rows:  # fmt: skip
    """The training rows and their changed copies (shared.augment), tokenized."""
    if len(task.text_columns) != 1:
        raise UsageError(f"--augment.copies works on one-sentence tasks; {task.name} has pairs")
    column = task.text_columns[0]
    texts, labels = augment_rows(split[column], split[task.label_column], augment, seed)
    rows = [tokenizer.encode(text, None, max_length) for text in texts]
    return Rows(rows, [float(y) for y in labels])


# ----------------------------------------------------------------------------------------------
# The task fit trains


class ClassificationTask:
    """Sentence (pair) classification or regression for `shared.fit`."""

    def __init__(self, cfg: FinetuneConfig, task: GlueTask, splits: dict[str, Rows],
                 pad_id: int) -> None:  # fmt: skip
        self.cfg, self.task, self.splits, self.pad_id = cfg, task, splits, pad_id
        lengths = [len(ids) for ids, _ in splits["train"].rows]
        self.sampler = epoch_sampler(lengths, cfg.batch_size, cfg.seed)
        self.eval_seconds = 15.0  # a guess until the first evaluation is timed

    def train_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        # The order comes from the sampler (seed, epoch, position), not the generator: its two
        # numbers are all a checkpoint needs to resume the same batches.
        return self.splits["train"].batch(self.sampler.next(), self.pad_id)

    def count(self, batch: dict[str, Tensor]) -> int:
        return batch["labels"].numel()

    def loss(self, model: torch.nn.Module, batch: dict[str, Tensor]) -> Tensor:
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        return task_loss(self.task, logits, batch["labels"])

    def evaluate(self, model: torch.nn.Module, precision_ctx) -> dict[str, float]:
        started = time.perf_counter()
        metrics = {}
        for split in ("select", "dev"):
            if len(self.splits[split]):
                scores = score(model, self.splits[split], self.task, self.cfg.eval_batch_size,
                               self.pad_id, precision_ctx)  # fmt: skip
                metrics.update({f"{split}_{k}": v for k, v in scores.items()})
        metrics["epoch"] = self.sampler.epochs_done
        self.eval_seconds = time.perf_counter() - started
        return metrics


def task_loss(task: GlueTask, logits: Tensor, labels: Tensor) -> Tensor:
    """Cross entropy for classes; mean squared error for a regression task (STS-B)."""
    if task.num_labels == 1:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    return F.cross_entropy(logits.float(), labels.long())


@torch.no_grad()
def predict(model: torch.nn.Module, rows: Rows, batch_size: int, pad_id: int,
            precision_ctx=None) -> tuple[Tensor, float]:  # fmt: skip
    """Logits (N, num_labels) in the rows' order, and the mean loss; batches sorted by length."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: len(rows.rows[i][0]))
    outputs = [None] * len(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in rows.batch(chunk, pad_id).items()}
        with precision_ctx() if precision_ctx else torch.autocast("cpu", enabled=False):
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        for i, row in zip(chunk, logits.float().cpu(), strict=True):
            outputs[i] = row
    model.train(was_training)
    logits = torch.stack(outputs)  # (N, num_labels)
    return logits, 0.0


def score(model, rows: Rows, task: GlueTask, batch_size: int, pad_id: int,
          precision_ctx=None) -> dict[str, float]:  # fmt: skip
    logits, _ = predict(model, rows, batch_size, pad_id, precision_ctx)
    labels = torch.tensor(rows.labels)
    loss = float(task_loss(task, logits, labels))
    predictions = logits.squeeze(-1) if task.num_labels == 1 else logits.argmax(-1)
    return {"loss": loss, **compute_metrics(task, predictions.tolist(), labels.tolist())}


# ----------------------------------------------------------------------------------------------
# Optimizer


def make_optimizer(model: torch.nn.Module, cfg: FinetuneConfig) -> torch.optim.AdamW:
    """AdamW; decay on weight matrices only (norms, biases and embeddings keep their scale)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        plain = p.dim() < 2 or "embeddings" in name
        (no_decay if plain else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]  # fmt: skip
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-6)
    for group in optimizer.param_groups:
        group["peak_lr"] = cfg.lr
    return optimizer


def init_source(cfg: FinetuneConfig) -> tuple[Path | None, Path, str]:
    """--init's weights folder (None: random weights), the vocabulary's folder, and a line
    saying where the weights come from."""
    if cfg.init == "none":
        vocab = resolve_init("minilm") if cfg.tokenizer is None else Path(cfg.tokenizer)
        return None, vocab, "random weights (--init none)"
    folder = resolve_init(cfg.init)
    return folder, folder, f"{cfg.init} ({folder})"


def classifier_config(cfg: FinetuneConfig, task: GlueTask, folder: Path | None,
                      tokenizer: BertTokenizer) -> BertConfig:  # fmt: skip
    """The classifier's config: --scratch's sizes, or the --init folder's, checked against the
    vocabulary and --max_length before anything is trained."""
    if folder is None:
        s = cfg.scratch
        return BertConfig(
            vocab_size=tokenizer.vocab_size, hidden_size=s.hidden_size,
            num_hidden_layers=s.num_hidden_layers, num_attention_heads=s.num_attention_heads,
            intermediate_size=s.intermediate_size, num_labels=task.num_labels,
            classifier_pooling=cfg.pooling,
        )  # fmt: skip
    config = config_from_dict(json.loads((folder / "config.json").read_text()), task.num_labels)
    if config.vocab_size != tokenizer.vocab_size:
        raise UsageError(
            f"{folder}: vocab.txt has {tokenizer.vocab_size} tokens but the model was trained "
            f"with {config.vocab_size}; give the vocabulary the checkpoint was trained with"
        )
    positions = config.max_position_embeddings
    if cfg.max_length > positions:
        raise UsageError(
            f"--max_length {cfg.max_length} is longer than the {positions} positions {folder} "
            f"was trained with; give --max_length {positions} or less"
        )
    config.classifier_pooling = cfg.pooling
    return config


def set_dropout(model: torch.nn.Module, p: float) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
    for layer in model.bert.layers:
        layer.self_attn.dropout = p
        layer.ff.dropout.p = 0.0  # BERT has none inside the feed-forward


# ----------------------------------------------------------------------------------------------
# The command's preparation


@dataclass
class FinetuneRun:
    """What `bert finetune` declares to `shared.trainer`: the classifier from --init, the data,
    the selection on held-out training rows, and the after-work (the kept model, exported)."""

    cfg: FinetuneConfig
    glue: GlueTask
    tokenizer: BertTokenizer
    splits: dict[str, Rows]
    config: BertConfig  # the classifier's (from --init's folder, or --scratch's sizes)
    folder: Path | None  # --init's weights (None: random weights)
    source: str  # where the weights come from, for the log

    def __post_init__(self) -> None:
        self.task = ClassificationTask(self.cfg, self.glue, self.splits, self.tokenizer.pad_id)

    @property
    def selected_by(self) -> str:
        """The metric that keeps the checkpoint: the held-out training rows' (dev's if none)."""
        split = "select" if len(self.splits["select"]) else "dev"
        return f"{split}_{self.glue.metrics[0]}"

    def build_model(self) -> BertForSequenceClassification:
        """The pretrained encoder (or random weights) and a fresh head; seeded by the caller."""
        cfg = self.cfg
        if self.folder is None:
            model = BertForSequenceClassification(self.config)
        else:
            model = load_folder(self.folder, "BertForSequenceClassification", self.glue.num_labels)
            model.config.classifier_pooling = cfg.pooling
        set_dropout(model, cfg.dropout)
        if cfg.freeze_embeddings and self.folder is not None:
            model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
        return model

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"config": config_to_dict(self.cfg), "bert_config": asdict(self.config)}

    def write_run_files(self, folder: Path) -> None:
        self.tokenizer.save(folder / "tokenizer")  # what --resume reloads

    def check_resume(self, resume: Resume) -> None:
        if "fit" not in resume.meta:  # bert's own layout, before shared.trainer
            raise CheckpointError(
                f"{resume.checkpoint} was saved in bert's layout from before shared.trainer; "
                "an older bert resumes it, or start the run again"
            )

    def schedule(self, step: int, elapsed: float, seconds: float | None) -> float:
        cfg = self.cfg
        return lr_factor(step, elapsed, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps,
                         seconds=seconds, decay=cfg.decay)  # fmt: skip

    def reserve_seconds(self, state: FitState) -> float:
        return self.task.eval_seconds  # the final evaluation's time

    def finish(self, trained: Trained) -> None:
        """<run>/model/ in transformers' format: the kept (best) weights, for `bert eval`."""
        kept = load_checkpoint(trained.run.checkpoints / "best", framework="torch")
        model = copy.deepcopy(trained.model)  # the final checkpoint keeps the last weights
        model.load_state_dict(kept.model)
        save_folder(model, trained.run.folder / "model", self.tokenizer)

    def report(self, trained: Trained) -> dict[str, Path]:
        best, run = trained.state.best or {}, trained.run
        reported = {k: v for k, v in best.items() if k.startswith(("select", "dev"))}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in reported.items())
        print(f"best model (chosen on the held-out training rows) at step "
              f"{trained.state.best_step}: {shown}")  # fmt: skip
        accuracies = [k for k in best if k.endswith("accuracy")]
        title = f"{self.cfg.task}: accuracy while fine-tuning"
        run.plot_metrics("accuracy.png", accuracies, title=title)
        run.plot_metrics("loss.png", ["loss", "dev_loss", "select_loss"], title="loss", logy=True)
        return {"model (transformers' format)": run.folder / "model"}

    def training_task(self) -> TrainingTask:
        cfg = self.cfg
        return TrainingTask(
            stage=STAGE,
            config=cfg,
            task=self.task,
            build_model=self.build_model,
            build_optimizer=lambda model: make_optimizer(model, cfg),
            schedule=self.schedule,
            checkpoint_meta=self.checkpoint_meta,
            write_run_files=self.write_run_files,
            shard_units=lambda model: list(model.bert.layers),  # one FSDP unit per layer
            grad_clip=cfg.grad_clip,
            item_name="sent",
            description=f"bert on {self.glue.name} from {self.source}",
            sampler=self.task.sampler,
            keep_best=KeepBest(self.selected_by, "max", cfg.patience),
            evaluate_at_end=True,
            reserve_seconds=self.reserve_seconds,
            check_resume=self.check_resume,
            resume_command="uv run --package bert finetune",
            finish=self.finish,
            report=self.report,
        )


def run_tokenizer(vocab: Path, resume: Resume | None) -> BertTokenizer:
    """--init's vocabulary, or (resuming) the run's own copy of it."""
    if resume is not None and (resume.run_folder / "tokenizer" / "vocab.txt").is_file():
        return BertTokenizer.from_folder(resume.run_folder / "tokenizer")
    return BertTokenizer.from_folder(vocab)


def prepare(
    cfg: FinetuneConfig, env: Setup | None = None, resume: Resume | None = None
) -> TrainingTask:
    """`bert finetune`'s task: the GLUE task, --init's vocabulary and config, the tokenized
    splits. The weights load in `build_model`, after the trainer seeds."""
    task = get_task(cfg.task)
    if cfg.dataset is None:
        registry_dataset(task)  # a task without data fails now, before the model loads
    folder, vocab, source = init_source(cfg)
    tokenizer = run_tokenizer(vocab, resume)
    config = classifier_config(cfg, task, folder, tokenizer)
    splits = load_splits(task, tokenizer, cfg.max_length, cfg.select_rows, cfg.seed,
                         cfg.train_rows, cfg.select_like, cfg.augment, cfg.dataset)  # fmt: skip
    print(
        f"{task.name}: {len(splits['train']):,} training rows, {len(splits['select']):,} held "
        f"out to select the checkpoint, {len(splits['dev']):,} dev rows (reported only)"
    )
    return FinetuneRun(cfg, task, tokenizer, splits, config, folder, source).training_task()
