"""`t5 finetune`: one model, several text-to-text tasks mixed, trained by `shared.fit`.

    --tasks translate_de_en,sst2      each task's rows as (prefixed input, target) text
    --init RUN | none                 a pretrain run's weights and tokenizer, or random weights
                                      and a tokenizer trained here on the tasks' training text
    batches                           one task per batch, drawn at the mixing rates; within a
                                      task, rows of similar length (length-grouped epochs)
    loss                              cross entropy on the target tokens (label smoothing)
    every --eval_interval steps       greedy decoding of the selection rows: BLEU / accuracy;
                                      their mean (BLEU / 100) picks checkpoints/best (KeepBest)

Selection without peeking: `--select_rows` rows of each task are held out of its *training*
split; the kept checkpoint is chosen on them. The figures `t5 eval` reports come from
Multi30k's test_2016_flickr and SST-2's GLUE dev set, which nothing here looks at.

Why one task per batch rather than rows of every task in each: a batch of SST-2 rows has
one-word targets and short inputs; mixed with captions, every row would pad to the captions'
length. Drawing the task per batch keeps the mixture (in expectation, T5's) without the padding.

The order of batches is a function of the seed and the batch's number (which task) and of
each task's epoch and position (which rows), so a checkpoint holds a few integers and a
resumed run draws exactly the batches the uninterrupted one would have.
"""

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from shared.checkpoint import read_meta
from shared.config import config_to_dict, option
from shared.epochs import EpochSampler, length_grouped_batches
from shared.errors import UsageError
from shared.fit import KeepBest
from shared.runs import Run
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained
from shared.training import Decay, RunOptions, Setup
from t5.model import T5, T5Config
from t5.predict import evaluate_task
from t5.tasks import Example, TaskData, TextTask, load_task, mixing_rates
from t5.tokenizer import T5Tokenizer
from t5.training import (
    ModelSize,
    OptimizerName,
    T5Run,
    collate,
    config_from_meta,
    count_targets,
    kept_checkpoint,
    load_weights,
    make_config,
    make_optimizer,
    run_tokenizer,
    set_dropout,
)

STAGE = "t5"


@dataclass
class FinetuneConfig(RunOptions):
    tasks: list[str] = option(["translate_de_en", "sst2"], "tasks to train one model on")
    data_dir: Path | None = option(
        None, "read each task from DIR/<task>.train.tsv and .test.tsv (input<TAB>target)"
    )
    rates: list[float] = option([], "each task's share of the batches (default: by size, capped)")
    rate_cap: int = option(30000, "examples-proportional mixing: count a task as at most this "
                           "many rows (0: no cap)", ge=0)  # fmt: skip
    init: str = option("none", "a t5 pretrain run (folder or name), or none: random weights")
    init_parts: Literal["all", "encoder", "tokenizer"] = option(
        "all",
        "with --init RUN: all its weights; only the encoder's and the embedding (the decoder "
        "starts random); or only its tokenizer (random weights: the control for --init RUN)",
    )
    vocab_size: int = option(8000, "with --init none: vocabulary size, sentinels included", ge=32)
    num_sentinels: int = option(100, "with --init none: sentinel tokens", ge=0)
    tokenizer_trainer: Literal["sentencepiece", "unigram"] = option(
        "sentencepiece", "with --init none: sentencepiece (C++) or unigram (ours, slower)"
    )
    model: ModelSize = field(default_factory=ModelSize)
    max_input_length: int = option(128, "tokens per input, EOS included; longer training rows "
                                   "are dropped, longer inputs to eval/generate refused",
                                   ge=2)  # fmt: skip
    max_target_length: int = option(128, "tokens per target, EOS included (longer rows dropped)",
                                    ge=2)  # fmt: skip
    batch_size: int = option(64, "rows per step (of one task)", ge=1)
    lr: float = option(
        2e-2, "peak learning rate (Adafactor's is relative to each tensor's RMS)", gt=0
    )
    weight_decay: float = option(0.01, "weight decay on the matrices", ge=0)
    optimizer: OptimizerName = option(
        "adafactor", "adamw, or adafactor (T5's: steps relative to each tensor's size)"
    )
    warmup_steps: int = option(400, "linear warmup steps", ge=0)
    decay: Decay = option("cosine", "how the rate falls after warmup, to its floor at the end")
    min_lr_ratio: float = option(0.05, "the rate's floor, as a fraction of the peak", ge=0, le=1)
    grad_clip: float = option(1.0, "clip the gradient's global norm (0: off)", ge=0)
    label_smoothing: float = option(0.1, "target probability spread over the vocabulary",
                                    ge=0, lt=1)  # fmt: skip
    select_rows: int = option(400, "rows of each task held out of training to keep the best "
                              "checkpoint on", ge=1)  # fmt: skip
    train_rows: int = option(0, "train on only this many labelled rows of each task, drawn at "
                             "random (0: all): what pretraining adds when labels are few",
                             ge=0)  # fmt: skip
    patience: int = option(0, "stop after this many evaluations without a better selection "
                           "score (0: never)", ge=0)  # fmt: skip
    eval_batch_size: int = option(128, "rows per decoding batch", ge=1)
    time_limit: float = option(1050.0, "seconds of training, final evaluation included (0: none)",
                               ge=0)  # fmt: skip
    eval_interval: int = option(500, "evaluate every N steps", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init == "none" and self.vocab_size - self.num_sentinels < 16:
            raise ValueError(f"--vocab_size {self.vocab_size} leaves fewer than 16 pieces after "
                             f"--num_sentinels {self.num_sentinels}; raise it")  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Rows and the mixture


@dataclass
class Rows:
    """One task's rows as ids: inputs and targets, both ending in EOS, and their texts."""

    task: TextTask
    inputs: list[list[int]]
    targets: list[list[int]]
    examples: list[Example]

    @property
    def longest_target(self) -> int:
        """Tokens of the longest target, EOS included: decoding never needs to go further
        (1 + 2 for SST-2's "positive", not --max_target_length's 128 for an untrained model
        that has not learned to stop)."""
        return max((len(t) for t in self.targets), default=1)


def encode_rows(task: TextTask, examples: Sequence[Example], tokenizer: T5Tokenizer,
                cfg: FinetuneConfig) -> tuple[Rows, int]:  # fmt: skip
    """The rows that fit the lengths, and how many did not."""
    inputs = tokenizer.encode_batch([s for s, _ in examples])
    targets = tokenizer.encode_batch([t for _, t in examples])
    keep = [i for i in range(len(examples))
            if len(inputs[i]) <= cfg.max_input_length
            and len(targets[i]) <= cfg.max_target_length]  # fmt: skip
    rows = Rows(task, [inputs[i] for i in keep], [targets[i] for i in keep],
                [examples[i] for i in keep])  # fmt: skip
    return rows, len(examples) - len(keep)


class MixtureSampler:
    """Batch b comes from task k ~ rates (drawn from (seed, b) alone), rows from k's epochs."""

    def __init__(self, lengths: Sequence[Sequence[int]], rates: Sequence[float],
                 batch_size: int, seed: int) -> None:  # fmt: skip
        self.rates, self.seed, self.drawn = list(rates), seed, 0
        self.samplers = [
            EpochSampler(lambda e, L=L, k=k: length_grouped_batches(
                L, min(batch_size, len(L)), seed + k, e))
            for k, L in enumerate(lengths)
        ]  # fmt: skip

    def next(self) -> tuple[int, list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.drawn)
        k = rng.choices(range(len(self.rates)), weights=self.rates)[0]
        self.drawn += 1
        return k, self.samplers[k].next()

    def epochs(self) -> list[float]:
        return [s.epochs_done for s in self.samplers]

    def state_dict(self) -> dict[str, Any]:
        return {"drawn": self.drawn, "samplers": [s.state_dict() for s in self.samplers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.drawn = int(state["drawn"])
        for sampler, saved in zip(self.samplers, state["samplers"], strict=True):
            sampler.load_state_dict(saved)


def main_score(task: TextTask, metrics: dict[str, float]) -> float:
    """A task's selection score in [0, 1]: BLEU / 100 or accuracy."""
    return metrics["bleu"] / 100 if task.metric == "bleu" else metrics["accuracy"]


# ----------------------------------------------------------------------------------------------
# The task fit trains


class TextToTextTask:
    """Mixed text-to-text tasks for `shared.fit`."""

    def __init__(self, cfg: FinetuneConfig, tokenizer: T5Tokenizer, train: list[Rows],
                 select: list[Rows], rates: list[float]) -> None:  # fmt: skip
        self.cfg, self.tokenizer, self.train, self.select = cfg, tokenizer, train, select
        lengths = [[len(a) + len(b) for a, b in zip(r.inputs, r.targets, strict=True)]
                   for r in train]  # fmt: skip
        self.sampler = MixtureSampler(lengths, rates, cfg.batch_size, cfg.seed)
        self.eval_seconds = 10.0  # a guess until the first evaluation is timed

    def train_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        k, indices = self.sampler.next()
        rows = self.train[k]
        return collate([rows.inputs[i] for i in indices], [rows.targets[i] for i in indices])

    def count(self, batch: dict[str, Tensor]) -> int:
        return count_targets(batch)

    def loss(self, model: torch.nn.Module, batch: dict[str, Tensor],
             smoothing: float | None = None) -> Tensor:  # fmt: skip
        logits = model(batch["input_ids"], batch["decoder_input_ids"],
                       batch["attention_mask"])  # (B, T, V)  # fmt: skip
        return F.cross_entropy(
            logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100,
            label_smoothing=self.cfg.label_smoothing if smoothing is None else smoothing,
        )  # fmt: skip

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, precision_ctx: Any) -> dict[str, float]:
        """Greedy decoding of each task's selection rows; their mean score picks the best."""
        started = time.perf_counter()
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        metrics: dict[str, float] = {}
        scores = []
        loss_sum, tokens = 0.0, 0
        for rows, trained in zip(self.select, self.train, strict=True):
            task = rows.task
            found, _, _ = evaluate_task(
                model, self.tokenizer, task, rows.examples, self.cfg.max_input_length,
                trained.longest_target, batch_size=self.cfg.eval_batch_size,
                precision_ctx=precision_ctx,
            )  # fmt: skip
            metrics.update({f"select_{task.name}_{k}": v for k, v in found.items()})
            scores.append(main_score(task, found))
            for start in range(0, len(rows.inputs), self.cfg.eval_batch_size):
                end = start + self.cfg.eval_batch_size
                batch = collate(rows.inputs[start:end], rows.targets[start:end])
                batch = {k: v.to(device) for k, v in batch.items()}
                n = count_targets(batch)
                with precision_ctx():
                    loss_sum += float(self.loss(model, batch, smoothing=0.0)) * n
                tokens += n
        metrics["select_loss"] = loss_sum / max(tokens, 1)
        metrics["select_score"] = sum(scores) / len(scores)
        model.train(was_training)
        self.eval_seconds = time.perf_counter() - started
        return metrics


# ----------------------------------------------------------------------------------------------
# Preparing: everything that can fail, before the run folder (`shared.trainer` runs the rest)


def load_data(cfg: FinetuneConfig) -> list[TaskData]:
    if not cfg.tasks:
        raise UsageError("--tasks is empty; name at least one, e.g. --tasks=translate_de_en")
    if len(set(cfg.tasks)) != len(cfg.tasks):
        raise UsageError(f"--tasks names a task twice: {cfg.tasks}")
    return [load_task(name, cfg.data_dir) for name in cfg.tasks]


def split_select(data: TaskData, rows: int, seed: int,
                 train_rows: int = 0) -> tuple[list[Example], list[Example]]:  # fmt: skip
    """(training rows, selection rows): `rows` held out of the training split at random, and
    of the rest the first `train_rows` of the same random order (0: all of them)."""
    if rows >= len(data.train):
        raise UsageError(f"--select_rows {rows} leaves no training rows for {data.task.name} "
                         f"({len(data.train)} rows)")  # fmt: skip
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))
    held, kept = order[:rows].tolist(), order[rows:].tolist()
    if train_rows:
        kept = kept[:train_rows]
    return [data.train[i] for i in kept], [data.train[i] for i in held]


def resolve_init(cfg: FinetuneConfig) -> tuple[T5Tokenizer | None, T5Config | None, Path | None]:
    """(tokenizer, config, checkpoint) of --init RUN; all None for --init none."""
    if cfg.init == "none":
        return None, None, None
    try:
        run = Run.open("t5", cfg.init)
    except UsageError:
        raise UsageError(f"--init {cfg.init}: no such t5 run (give a pretrain run's folder or "
                         "name, or none)") from None  # fmt: skip
    tokenizer = run_tokenizer(run.folder)
    folder = kept_checkpoint(run.folder)
    config = config_from_meta(read_meta(folder), str(folder))
    config.dropout_rate = cfg.model.dropout
    print(f"init: {folder}: d_model {config.d_model}, {config.num_layers} + "
          f"{config.num_decoder_layers} layers, its own tokenizer ({tokenizer.vocab_size}); "
          "the --model options other than dropout do not apply")  # fmt: skip
    return tokenizer, config, folder


def run_tokenizer_for(cfg: FinetuneConfig, splits: list[tuple[list[Example], list[Example]]],
                      init: T5Tokenizer | None, resume: Resume | None) -> T5Tokenizer:  # fmt: skip
    """The resumed run's tokenizer, --init's, or one trained here on the tasks' training text."""
    if resume is not None:  # never a retrained one
        return run_tokenizer(resume.run_folder)
    if init is not None:
        return init
    started = time.perf_counter()
    texts = [text for train, _ in splits for pair in train for text in pair]
    tokenizer = T5Tokenizer.train(texts, cfg.vocab_size, cfg.num_sentinels,
                                  cfg.tokenizer_trainer)  # fmt: skip
    print(f"{tokenizer} trained on the tasks' training text in "
          f"{time.perf_counter() - started:.1f}s")  # fmt: skip
    return tokenizer


def encode_tasks(cfg: FinetuneConfig, data: list[TaskData],
                 splits: list[tuple[list[Example], list[Example]]],
                 tokenizer: T5Tokenizer) -> tuple[list[Rows], list[Rows]]:  # fmt: skip
    """Each task's training and selection rows as ids (rows over the length limits dropped)."""
    train, select = [], []
    for d, (train_examples, select_examples) in zip(data, splits, strict=True):
        rows, dropped = encode_rows(d.task, train_examples, tokenizer, cfg)
        held, _ = encode_rows(d.task, select_examples, tokenizer, cfg)
        if not rows.inputs:
            raise UsageError(f"{d.task.name}: no training row fits --max_input_length "
                             f"{cfg.max_input_length} and --max_target_length "
                             f"{cfg.max_target_length}")  # fmt: skip
        train.append(rows)
        select.append(held)
        note = f" ({dropped} longer than the length limits dropped)" if dropped else ""
        print(f"{d.task.name}: {len(rows.inputs):,} training rows{note}, {len(held.inputs):,} "
              f"held out to keep the best checkpoint, {len(d.report):,} report rows "
              f"({d.task.report_split}, not looked at here)")  # fmt: skip
    return train, select


@dataclass
class FinetuneRun(T5Run):
    """What `t5 finetune` declares to `shared.trainer`: the model from --init, the mixture,
    what a checkpoint carries for `t5 eval`, and the after-work."""

    cfg: FinetuneConfig
    tokenizer: T5Tokenizer
    config: T5Config
    init_from: Path | None  # a pretrain checkpoint to start from (not read when resuming)
    task: TextToTextTask
    prep_seconds: float  # a tokenizer trained here and the encoding: the time limit covers them

    def build_model(self) -> T5:
        """Random weights (seeded by the caller), then --init's where --init_parts says."""
        model = T5(self.config)
        if self.init_from is not None and self.cfg.init_parts != "tokenizer":
            random_decoder = None
            if self.cfg.init_parts == "encoder":  # kept aside: loading the checkpoint overwrites it
                random_decoder = {k: v.clone() for k, v in model.state_dict().items()
                                  if k.startswith("decoder.")}  # fmt: skip
            load_weights(model, self.init_from)
            if random_decoder is not None:
                model.load_state_dict(random_decoder, strict=False)
        set_dropout(model, self.cfg.model.dropout)
        return model

    def checkpoint_meta(self) -> dict[str, Any]:
        """What `t5 eval` and `t5 generate` read (the tasks, their prefixes and target lengths),
        and the mixture's position, which `prepare` puts back when resuming."""
        train = self.task.train
        return {
            "config": config_to_dict(self.cfg), "t5_config": asdict(self.config),
            "kind": "finetune", "mixture": self.task.sampler.state_dict(),
            "tasks": [r.task.name for r in train], "prefixes": [r.task.prefix for r in train],
            "longest_targets": [r.longest_target for r in train],
            "prep_seconds": self.prep_seconds,
        }  # fmt: skip

    def report(self, trained: Trained) -> None:
        """The kept step's selection scores, and the curves."""
        state, run = trained.state, trained.run
        best = state.best or {}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in best.items() if k.startswith("select"))
        print(f"kept step {state.best_step} (chosen on the held-out training rows): {shown}")
        run.plot_metrics("loss.png", ["loss", "select_loss"], title="loss", logy=True)
        scores = sorted({k for row in run.metrics() for k in row
                         if k.startswith("select_") and k != "select_loss"})  # fmt: skip
        run.plot_metrics("select.png", scores, title="held-out training rows (chooses the best)")
        print(f"score it: uv run --package t5 eval --run {run.folder}")

    def training_task(self) -> TrainingTask:
        cfg, train, rates = self.cfg, self.task.train, self.task.sampler.rates
        names = " + ".join(f"{r.task.name} {p:.2f}" for r, p in zip(train, rates, strict=True))
        return TrainingTask(
            stage=STAGE,
            config=cfg,
            task=self.task,
            build_model=self.build_model,
            build_optimizer=lambda model: make_optimizer(
                model, cfg.lr, cfg.weight_decay, cfg.optimizer
            ),  # fmt: skip
            schedule=self.schedule,
            checkpoint_meta=self.checkpoint_meta,
            write_run_files=self.write_run_files,
            # One FSDP unit per stack, not per block: a stack computes its position bias with
            # its first block's table before running the blocks, outside that block's forward.
            shard_units=lambda model: [model.encoder, model.decoder],
            grad_clip=cfg.grad_clip,
            item_name="tok",
            description=f"t5 from {cfg.init} on {names}",
            keep_best=KeepBest("select_score", "max", cfg.patience),
            evaluate_at_end=True,
            reserve_seconds=self.reserve_seconds,
            check_resume=self.check_resume,
            resume_command="uv run --package t5 finetune",
            report=self.report,
        )


def prepare(cfg: FinetuneConfig, env: Setup | None = None, resume: Resume | None = None,
            data: list[TaskData] | None = None) -> TrainingTask:  # fmt: skip
    """Data, tokenizer, model config, the mixture (where a resumed run left it) and the
    checkpoint --init names; the weights load in `build_model`, after the trainer seeds."""
    data = load_data(cfg) if data is None else data
    mixing_rates([len(d.train) for d in data], cfg.rates, cfg.rate_cap)  # checks --rates now
    started = time.perf_counter()
    splits = [split_select(d, cfg.select_rows, cfg.seed, cfg.train_rows) for d in data]
    init_tokenizer, config, init_from = resolve_init(cfg)
    tokenizer = run_tokenizer_for(cfg, splits, init_tokenizer, resume)
    if config is None:
        config = make_config(cfg.model, tokenizer.vocab_size)
    train, select = encode_tasks(cfg, data, splits, tokenizer)
    rates = mixing_rates([len(r.inputs) for r in train], cfg.rates, cfg.rate_cap)
    print("mixing rates: " + ", ".join(f"{r.task.name} {p:.2f}"
                                       for r, p in zip(train, rates, strict=True)))  # fmt: skip
    task = TextToTextTask(cfg, tokenizer, train, select, rates)
    prep = time.perf_counter() - started
    if resume is not None:  # the first process's preparation is what counts
        task.sampler.load_state_dict(resume.meta["mixture"])
        prep, init_from = resume.meta["prep_seconds"], None  # the weights come from the resume
    elif init_from is not None and cfg.init_parts == "tokenizer":
        print(f"took the tokenizer of {init_from.parent.parent}; the weights start random")
    elif init_from is not None:
        note = " (encoder and embedding only)" if cfg.init_parts == "encoder" else ""
        print(f"loaded {init_from}{note}")
    return FinetuneRun(cfg, tokenizer, config, init_from, task, prep).training_task()
