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

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from bert.batching import EpochBatches
from bert.glue import GlueTask, compute_metrics, get_task, load_task, registry_dataset
from bert.hf import BertModule, load_folder, save_folder
from bert.model import BertConfig, BertForSequenceClassification
from bert.pretrained import resolve_init
from bert.tokenize import BertTokenizer, pad_rows
from shared.checkpoint import load_checkpoint, save_checkpoint
from shared.config import option
from shared.device import autocast
from shared.errors import UsageError
from shared.fit import FitSettings, FitState, fit
from shared.runs import Run, find_checkpoint
from shared.training import Decay, RunOptions, Setup, StopSignals, lr_factor, setup


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
    train_rows: int = option(
        0,
        "train on this many labelled rows, drawn at random (0: all); for few-label studies",
        ge=0,
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
    resume: str | None = option(None, "continue an interrupted run (its folder or name)")


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
) -> dict[str, Rows]:
    """train (minus the selection rows; `train_rows` of them at random if not 0), select (held
    out of train), dev (GLUE's dev set)."""
    data = load_task(task)
    dev = tokenize_split(data[task.eval_split], task, tokenizer, max_length)
    n = len(data["train"])
    if select_rows >= n:
        raise UsageError(f"--select_rows {select_rows} leaves no training rows ({n})")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    held, kept = order[:select_rows], order[select_rows:]
    if train_rows:
        if train_rows > len(kept):
            raise UsageError(f"--train_rows {train_rows}: only {len(kept):,} rows are left "
                             f"after --select_rows {select_rows}")  # fmt: skip
        kept = kept[:train_rows]  # the order is already a random permutation

    def pick(indices: list[int]) -> Rows:  # only the rows used are tokenized
        return tokenize_split(data["train"].select(indices), task, tokenizer, max_length)

    return {"train": pick(kept), "select": pick(held), "dev": dev}


# ----------------------------------------------------------------------------------------------
# The task fit trains


class ClassificationTask:
    """Sentence (pair) classification or regression for `shared.fit`."""

    def __init__(self, cfg: FinetuneConfig, task: GlueTask, splits: dict[str, Rows],
                 pad_id: int) -> None:  # fmt: skip
        self.cfg, self.task, self.splits, self.pad_id = cfg, task, splits, pad_id
        lengths = [len(ids) for ids, _ in splits["train"].rows]
        self.sampler = EpochBatches(lengths, cfg.batch_size, cfg.seed)
        self.history: list[dict[str, float]] = []
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
        metrics["epoch"] = (
            self.sampler.epoch + self.sampler.position / self.sampler.batches_per_epoch
        )
        self.history.append(metrics)
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


def build_model(cfg: FinetuneConfig, task: GlueTask) -> tuple[BertModule, BertTokenizer, str]:
    """The classifier and its tokenizer from --init, and a line saying where they came from."""
    if cfg.init == "none":
        folder = resolve_init("minilm") if cfg.tokenizer is None else Path(cfg.tokenizer)
        tokenizer = BertTokenizer.from_folder(folder)
        s = cfg.scratch
        config = BertConfig(
            vocab_size=tokenizer.vocab_size, hidden_size=s.hidden_size,
            num_hidden_layers=s.num_hidden_layers, num_attention_heads=s.num_attention_heads,
            intermediate_size=s.intermediate_size, num_labels=task.num_labels,
            classifier_pooling=cfg.pooling,
        )  # fmt: skip
        return BertForSequenceClassification(config), tokenizer, "random weights (--init none)"
    folder = resolve_init(cfg.init)
    tokenizer = BertTokenizer.from_folder(folder)
    model = load_folder(folder, "BertForSequenceClassification", task.num_labels)
    if model.config.vocab_size != tokenizer.vocab_size:
        raise UsageError(
            f"{folder}: vocab.txt has {tokenizer.vocab_size} tokens but the model was trained "
            f"with {model.config.vocab_size}; give the vocabulary the checkpoint was trained with"
        )
    model.config.classifier_pooling = cfg.pooling
    positions = model.config.max_position_embeddings
    if cfg.max_length > positions:
        raise UsageError(
            f"--max_length {cfg.max_length} is longer than the {positions} positions {folder} "
            f"was trained with; give --max_length {positions} or less"
        )
    return model, tokenizer, f"{cfg.init} ({folder})"


def set_dropout(model: torch.nn.Module, p: float) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
    for layer in model.bert.layers:
        layer.self_attn.dropout = p
        layer.ff.dropout.p = 0.0  # BERT has none inside the feed-forward


# ----------------------------------------------------------------------------------------------
# The command


class Selection:
    """Keeps the best model by the selection rows' score, and says when patience ran out."""

    def __init__(self, key: str, patience: int) -> None:
        self.key, self.patience = key, patience
        self.best: dict[str, float] = {}
        self.evals_seen = 0  # evaluations already judged
        self.evals_since_best = 0

    def judge(self, history: list[dict[str, float]], step: int) -> bool:
        """Judge the evaluations since the last call; True when the newest one is the best."""
        improved = False
        for metrics in history[self.evals_seen :]:
            if metrics[self.key] > self.best.get(self.key, -float("inf")):
                self.best, self.evals_since_best, improved = {**metrics, "step": step}, 0, True
            else:
                self.evals_since_best += 1
        self.evals_seen = len(history)
        return improved

    @property
    def out_of_patience(self) -> bool:
        return bool(self.patience) and self.evals_since_best >= self.patience


class StopWhen:
    """Stop on Ctrl-C/SIGTERM (via `signals`) or when `selection` has run out of patience."""

    def __init__(self, signals: StopSignals, selection: Selection) -> None:
        self.signals, self.selection = signals, selection

    @property
    def requested(self) -> bool:
        return self.signals.requested or self.selection.out_of_patience


@dataclass
class Prepared:
    """Everything `train` needs, made before the run folder so a failure leaves nothing."""

    task: GlueTask
    env: Setup
    model: BertForSequenceClassification
    tokenizer: BertTokenizer
    splits: dict[str, Rows]


def prepare(cfg: FinetuneConfig) -> Prepared:
    """The task, the machine's setup, the model from --init and the tokenized data."""
    task = get_task(cfg.task)
    registry_dataset(task)  # a task without data fails now, before the model loads
    env = setup(cfg)
    model, tokenizer, source = build_model(cfg, task)
    total = sum(p.numel() for p in model.parameters())
    print(f"init: {source}; {total / 1e6:.1f}M weights")
    print(f"device {env.device}, {env.precision_note}, {env.threads_note}")
    splits = load_splits(task, tokenizer, cfg.max_length, cfg.select_rows, cfg.seed, cfg.train_rows)
    print(
        f"{task.name}: {len(splits['train']):,} training rows, {len(splits['select']):,} held "
        f"out to select the checkpoint, {len(splits['dev']):,} dev rows (reported only)"
    )
    return Prepared(task, env, model, tokenizer, splits)


def train(
    cfg: FinetuneConfig,
    run: Run,
    task: GlueTask,
    model: BertForSequenceClassification,
    tokenizer: BertTokenizer,
    splits: dict[str, Rows],
    env: Setup,
) -> dict[str, float]:
    """Fine-tune `model` on `splits`; keep the best model in <run>/model/; return its scores."""
    set_dropout(model, cfg.dropout)
    if cfg.freeze_embeddings and cfg.init != "none":
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    model.to(env.device)
    job = ClassificationTask(cfg, task, splits, tokenizer.pad_id)
    optimizer = make_optimizer(model, cfg)
    state = FitState(generator=torch.Generator().manual_seed(cfg.seed))
    split = "select" if len(splits["select"]) else "dev"
    selection = Selection(f"{split}_{task.metrics[0]}", cfg.patience)
    if cfg.resume:
        resume_from(cfg.resume, cfg.lr, model, optimizer, state, job, selection)

    def save(s: FitState, name: str | None = None) -> Path:
        """The latest state (for --resume) and, when the newest evaluation is best, the model."""
        if selection.judge(job.history, s.step):
            save_folder(model, run.folder / "model", tokenizer)
        folder = run.checkpoints / (name or f"step_{s.step:06d}")
        return save_state(folder, model, optimizer, s, job, selection)

    settings = FitSettings(
        schedule=lambda step, elapsed, seconds: lr_factor(
            step, elapsed, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps,
            seconds=seconds, decay=cfg.decay),
        grad_clip=cfg.grad_clip, item_name="sent",
        reserve_seconds=lambda s: job.eval_seconds,  # the final evaluation's time
    )  # fmt: skip
    with StopSignals() as signals:
        fit(job, model, optimizer, cfg, settings, run, state, env.device, env.precision,
            save=save, stop=StopWhen(signals, selection))  # fmt: skip
        if signals.requested:
            folder = save(state, "interrupted")
            print(f"saved {folder}; resume with: uv run --package bert finetune "
                  f"--resume {run.folder} (and the same options)")  # fmt: skip
            raise SystemExit(signals.exit_code)
        if state.step % cfg.eval_interval:  # the last steps have not been evaluated yet
            job.evaluate(model, lambda: autocast(env.device, env.precision))
            run.log(state.step, **job.history[-1])
        save(state, "final")
    return selection.best


def save_state(folder: Path, model, optimizer, state: FitState, job: ClassificationTask,
               selection: Selection) -> Path:  # fmt: skip
    meta = {"step": state.step, "elapsed": state.elapsed, "sampler": job.sampler.state_dict(),
            "history": job.history, "best": selection.best,
            "evals_since_best": selection.evals_since_best,
            "generator": state.generator.get_state().tolist(),
            "torch_rng": torch.get_rng_state().tolist()}  # dropout draws from it  # fmt: skip
    return save_checkpoint(folder, model.state_dict(), optimizer.state_dict(), meta)


def resume_from(ref: str, lr: float, model, optimizer, state: FitState,
                job: ClassificationTask, selection: Selection) -> None:  # fmt: skip
    """Load the latest checkpoint of the run `ref` into everything that changes as it trains."""
    checkpoint_folder = find_checkpoint("bert", ref)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    checkpoint = load_checkpoint(checkpoint_folder, expected, framework="torch")
    model.load_state_dict(checkpoint.model)
    optimizer.load_state_dict(checkpoint.optimizer)
    for group in optimizer.param_groups:
        group["peak_lr"] = lr  # this command's rate, as gpt's resume does
    meta = checkpoint.meta
    state.step, state.elapsed = meta["step"], meta["elapsed"]
    state.generator.set_state(torch.tensor(meta["generator"], dtype=torch.uint8))
    torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
    job.sampler.load_state_dict(meta["sampler"])
    job.history = list(meta["history"])
    selection.best, selection.evals_seen = dict(meta["best"]), len(job.history)
    selection.evals_since_best = meta["evals_since_best"]
    print(f"resumed from {checkpoint_folder} at step {state.step}")
