"""`t5 pretrain`: a Unigram vocabulary with sentinels, then a small T5 trained by span corruption.

    texts (Multi30k's training English and German, SST-2's training sentences by default)
      -> T5Tokenizer.train(texts, vocab_size, num_sentinels)   saved as <run>/tokenizer/
      -> every sentence's pieces, concatenated in a shuffled order and cut into rows of
         --chunk_length tokens (packing: no padding, and spans may cross sentences)
      -> span_corruption per row, fresh for every batch (15% of tokens in spans of mean 3)
             inputs  Zwei Hunde <extra_id_0> im Schnee . </s>
             targets <extra_id_0> spielen </s>
      -> T5: cross entropy on the targets; the same loss on held-out rows, corrupted the same
         way at every evaluation (val_loss: the "MLM-like" curve)
      -> <run>/checkpoints/final: `t5 finetune --init RUN` starts from it

Why packing: Multi30k's captions are about 15 pieces long; a row of one caption would hold
two noise tokens in one span, and most of a batch would be padding. Rows of 64 packed tokens
give T5's proportions (about 10 noise tokens in 3 spans) with no padding at all. The price: a
row runs German captions, English ones and SST-2 phrases together with no boundary between
them. `--rows sentences` gives each sentence a row of its own (EOS at the end, as a fine-tuning
input has; batches of similar lengths, so little padding) to measure what that costs.

Why span corruption rather than BERT's masking: the targets are short (15% of the text plus a
sentinel per span), so a step costs little decoder time, and the model learns to *write* text
of any length, which is what every text-to-text task then asks of it.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from shared.config import option
from shared.device import autocast
from shared.epochs import EpochSampler, length_grouped_batches
from shared.errors import UsageError
from shared.fit import FitSettings, FitState, fit
from shared.runs import Run, find_checkpoint
from shared.training import Decay, RunOptions, Setup, StopSignals, lr_factor, setup
from t5.model import T5, T5Config
from t5.span_corruption import span_corruption
from t5.tasks import pretraining_text
from t5.tokenizer import T5Tokenizer, require_sentinels
from t5.training import (
    ModelSize,
    OptimizerName,
    check_config,
    collate,
    count_targets,
    make_config,
    make_optimizer,
    resume_state,
    run_tokenizer,
    save_state,
)


@dataclass
class PretrainConfig(RunOptions):
    datasets: list[str] = option(
        ["multi30k", "sst2"], "registry datasets whose training sentences to pretrain on"
    )
    text_file: Path | None = option(None, "pretrain on this text file instead (one text a line)")
    vocab_size: int = option(8000, "vocabulary size, sentinels included", ge=32)
    num_sentinels: int = option(100, "sentinel tokens <extra_id_i> at the top (T5: 100)", ge=0)
    tokenizer_trainer: Literal["sentencepiece", "unigram"] = option(
        "sentencepiece", "sentencepiece (the library's C++ trainer) or unigram (ours, slower)"
    )
    model: ModelSize = field(default_factory=ModelSize)
    rows: Literal["packed", "sentences"] = option(
        "packed", "packed: sentences concatenated into rows of --chunk_length; sentences: one a row"
    )
    chunk_length: int = option(64, "tokens per packed row before corruption", ge=4)
    noise_density: float = option(0.15, "share of tokens dropped into spans", gt=0, lt=1)
    mean_noise_span_length: float = option(3.0, "mean tokens per dropped span", ge=1)
    batch_size: int = option(64, "rows per step", ge=1)
    lr: float = option(
        2e-2, "peak learning rate (Adafactor's is relative to each tensor's RMS)", gt=0
    )
    weight_decay: float = option(0.01, "weight decay on the matrices", ge=0)
    optimizer: OptimizerName = option(
        "adafactor", "adamw, or adafactor (T5's: steps relative to each tensor's size)"
    )
    warmup_steps: int = option(200, "linear warmup steps", ge=0)
    decay: Decay = option("linear", "how the rate falls after warmup")
    min_lr_ratio: float = option(0.0, "the rate's floor, as a fraction of the peak", ge=0, le=1)
    grad_clip: float = option(1.0, "clip the gradient's global norm (0: off)", ge=0)
    val_rows: int = option(200, "rows held out for the validation loss", ge=1)
    time_limit: float = option(300.0, "seconds of training, final evaluation included (0: none)",
                               ge=0)  # fmt: skip
    eval_interval: int = option(200, "evaluate every N steps", ge=1)
    resume: str | None = option(None, "continue an interrupted run (its folder or name)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vocab_size - self.num_sentinels < 16:
            raise ValueError(f"--vocab_size {self.vocab_size} leaves fewer than 16 pieces after "
                             f"--num_sentinels {self.num_sentinels}; raise it")  # fmt: skip


def spans_per_row(cfg: PretrainConfig, length: int | None = None) -> int:
    """How many spans random_spans_noise_mask makes in a row of `length` (--chunk_length)."""
    length = length or cfg.chunk_length
    noise = min(max(round(length * cfg.noise_density), 1), max(length - 1, 1))
    return max(round(noise / cfg.mean_noise_span_length), 1)


# ----------------------------------------------------------------------------------------------
# Data


def load_texts(cfg: PretrainConfig) -> list[str]:
    if cfg.text_file is not None:
        if not cfg.text_file.is_file():
            raise UsageError(f"--text_file {cfg.text_file} does not exist")
        texts = [t for t in cfg.text_file.read_text(encoding="utf-8").splitlines() if t.strip()]
    else:
        if not cfg.datasets:
            raise UsageError("--datasets is empty; name at least one, e.g. --datasets=multi30k")
        texts = pretraining_text(cfg.datasets)
    if not texts:
        raise UsageError("no text to pretrain on")
    return texts


def shuffled(rows: list[list[int]], seed: int) -> list[list[int]]:
    """One sentence a row, in a shuffled order (the first --val_rows are held out)."""
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    return [rows[i] for i in order if rows[i]]


def pack(rows: list[list[int]], length: int, seed: int) -> list[list[int]]:
    """Sentences' ids in a shuffled order, concatenated and cut into rows of `length`."""
    stream = [t for row in shuffled(rows, seed) for t in row]
    return [stream[i : i + length] for i in range(0, len(stream) - length + 1, length)]


# ----------------------------------------------------------------------------------------------
# The task


class SpanCorruptionTask:
    """Span corruption for `shared.fit`: a fresh corruption of every row at every draw."""

    def __init__(self, cfg: PretrainConfig, tokenizer: T5Tokenizer, rows: list[list[int]]):
        self.cfg, self.tokenizer = cfg, tokenizer
        longest = max(len(r) for r in rows)
        self.sentinels = tokenizer.require_sentinels(spans_per_row(cfg, longest))
        if len(rows) - cfg.val_rows < 1:
            raise UsageError(f"the text makes {len(rows)} rows: too few for --val_rows "
                             f"{cfg.val_rows}")  # fmt: skip
        self.val_rows, self.train_rows = rows[: cfg.val_rows], rows[cfg.val_rows :]
        lengths = [len(r) for r in self.train_rows]
        size = min(cfg.batch_size, len(self.train_rows))
        self.sampler = EpochSampler(
            lambda epoch: length_grouped_batches(lengths, size, cfg.seed, epoch)
        )
        self.eval_seconds = 5.0  # a guess until the first evaluation is timed

    def corrupt(self, rows: list[list[int]], generator: torch.Generator) -> dict[str, Tensor]:
        pairs = [span_corruption(r, self.sentinels, self.cfg.noise_density,
                                 self.cfg.mean_noise_span_length, generator,
                                 self.tokenizer.eos_id) for r in rows]  # fmt: skip
        return collate([i.tolist() for i, _ in pairs], [t.tolist() for _, t in pairs])

    def train_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        return self.corrupt([self.train_rows[i] for i in self.sampler.next()], generator)

    def count(self, batch: dict[str, Tensor]) -> int:
        return count_targets(batch)

    def loss(self, model: torch.nn.Module, batch: dict[str, Tensor]) -> Tensor:
        return self._loss_and_hits(model, batch)[0]

    def _loss_and_hits(self, model, batch) -> tuple[Tensor, int, int]:
        logits = model(batch["input_ids"], batch["decoder_input_ids"],
                       batch["attention_mask"])  # (B, T, V)  # fmt: skip
        labels = batch["labels"]  # (B, T), -100 on padding
        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        real = labels != -100
        hits = int(((logits.argmax(-1) == labels) & real).sum())
        return loss, hits, int(real.sum())

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, precision_ctx: Any) -> dict[str, float]:
        """Loss and token accuracy on the held-out rows, corrupted the same way every time."""
        started = time.perf_counter()
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        generator = torch.Generator().manual_seed(12345)
        total, hits, count = 0.0, 0, 0
        for start in range(0, len(self.val_rows), self.cfg.batch_size):
            batch = self.corrupt(self.val_rows[start : start + self.cfg.batch_size], generator)
            batch = {k: v.to(device) for k, v in batch.items()}
            with precision_ctx():
                loss, h, n = self._loss_and_hits(model, batch)
            total, hits, count = total + float(loss) * n, hits + h, count + n
        model.train(was_training)
        self.eval_seconds = time.perf_counter() - started
        return {"val_loss": total / max(count, 1), "val_accuracy": hits / max(count, 1)}


# ----------------------------------------------------------------------------------------------
# The command


@dataclass
class Prepared:
    """Everything made before the run folder, so that a failure leaves nothing behind."""

    env: Setup
    tokenizer: T5Tokenizer
    task: SpanCorruptionTask
    config: T5Config
    resume_from: Path | None
    prep_seconds: float  # the tokenizer's training and the encoding: the time limit covers them


def prepare(cfg: PretrainConfig, run: Run | None = None) -> Prepared:
    """Text, tokenizer (trained, or the resumed run's), the rows (--rows), the task, the config."""
    if run is None:  # before the data loads: the error a tokenizer without sentinels gives
        require_sentinels(cfg.num_sentinels, spans_per_row(cfg) if cfg.rows == "packed" else 1)
    texts = load_texts(cfg)
    env = setup(cfg)
    print(f"device {env.device}, {env.precision_note}, {env.threads_note}")
    started = time.perf_counter()
    if run is not None:
        tokenizer = run_tokenizer(run.folder)
    else:
        tokenizer = T5Tokenizer.train(texts, cfg.vocab_size, cfg.num_sentinels,
                                      cfg.tokenizer_trainer)  # fmt: skip
    rows = tokenizer.encode_batch(texts, eos=False)
    if cfg.rows == "packed":
        task_rows = pack(rows, cfg.chunk_length, cfg.seed)
        shape = f"{len(task_rows):,} rows of {cfg.chunk_length} tokens"
    else:
        task_rows = shuffled(rows, cfg.seed)
        mean = sum(map(len, task_rows)) / len(task_rows)
        shape = f"{len(task_rows):,} rows of one sentence, {mean:.1f} tokens on average"
    print(f"{tokenizer} from {len(texts):,} texts in {time.perf_counter() - started:.1f}s; {shape}")
    task = SpanCorruptionTask(cfg, tokenizer, task_rows)
    config = make_config(cfg.model, tokenizer.vocab_size)
    resume_from = None
    if run is not None:
        resume_from = find_checkpoint("t5", str(run.folder))
        check_config(resume_from, config)
    prep_seconds = time.perf_counter() - started
    return Prepared(env, tokenizer, task, config, resume_from, prep_seconds)


def run_pretrain(cfg: PretrainConfig, run: Run, ready: Prepared) -> dict[str, float]:
    """Train by span corruption until the budget ends; `checkpoints/final` is what `finetune
    --init` reads. No checkpoint is chosen by its score here: the val loss only draws the
    curve, and a lower span-corruption loss is not what the fine-tuned tasks are judged by."""
    env, task = ready.env, ready.task
    if ready.resume_from is None:
        ready.tokenizer.save(run.folder / "tokenizer")
    torch.manual_seed(cfg.seed)
    model = T5(ready.config).to(env.device)
    print(f"T5: {model.num_parameters() / 1e6:.1f}M weights, vocabulary {ready.config.vocab_size}")
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.optimizer)
    state = FitState(generator=torch.Generator().manual_seed(cfg.seed), sampler=task.sampler)
    prep = ready.prep_seconds
    if ready.resume_from is not None:  # the first process's preparation is what counts
        prep = resume_state(ready.resume_from, model, optimizer, state, cfg.lr)["prep_seconds"]

    def save(s: FitState, name: str | None = None) -> Path:
        folder = run.checkpoints / (name or f"step_{s.step:06d}")
        return save_state(folder, model, optimizer, s, {"kind": "pretrain", "prep_seconds": prep})

    settings = FitSettings(
        schedule=lambda step, elapsed, seconds: lr_factor(
            step, elapsed, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps,
            seconds=seconds, decay=cfg.decay, min_ratio=cfg.min_lr_ratio),
        grad_clip=cfg.grad_clip, item_name="tok",
        reserve_seconds=lambda s: prep + task.eval_seconds,
    )  # fmt: skip
    with StopSignals() as stop:
        fit(task, model, optimizer, cfg, settings, run, state, env.device, env.precision,
            save=save, stop=stop)  # fmt: skip
        if stop.requested:
            print(f"saved {save(state, 'interrupted')}; resume with: uv run --package t5 "
                  f"pretrain --resume {run.folder}")  # fmt: skip
            raise SystemExit(stop.exit_code)
        final = task.evaluate(model, lambda: autocast(env.device, env.precision))
        run.log(state.step, **final)
        save(state, "final")
    print(f"final: val loss {final['val_loss']:.4f}, target-token accuracy "
          f"{final['val_accuracy']:.2%} after {state.step} steps")  # fmt: skip
    return final
