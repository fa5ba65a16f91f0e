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
    (`shared.trainer` runs it: Ctrl-C saves checkpoints/interrupted, `--resume RUN` goes on)

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from shared import sources
from shared.config import config_to_dict, option
from shared.epochs import EpochSampler, length_grouped_batches
from shared.errors import UsageError
from shared.sources import SOURCE_HELP
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained
from shared.training import Decay, RunOptions, Setup
from t5.model import T5, T5Config
from t5.span_corruption import span_corruption
from t5.tasks import pretraining_text
from t5.tokenizer import T5Tokenizer, require_sentinels
from t5.training import (
    ModelSize,
    OptimizerName,
    T5Run,
    collate,
    count_targets,
    make_config,
    make_optimizer,
    run_tokenizer,
)

STAGE = "t5"


@dataclass
class PretrainConfig(RunOptions):
    datasets: list[str] = option(
        ["multi30k", "sst2"], "registry datasets whose training sentences to pretrain on"
    )
    dataset: str | None = option(
        None, "pretrain on this source instead of --datasets (its train split): " + SOURCE_HELP
    )
    text_field: str = option("text", "the field holding the text, for jsonl/csv/parquet/hf")
    text_file: Path | None = option(None, "the older spelling of --dataset text:PATH")
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
    source = f"text:{cfg.text_file}" if cfg.text_file is not None else cfg.dataset
    if source is not None:
        texts = sources.training_texts(source, cfg.text_field)
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
# The command's preparation


def make_rows(cfg: PretrainConfig, texts: list[str], tokenizer: T5Tokenizer) -> list[list[int]]:
    """Every text's ids, packed into rows of --chunk_length or one sentence a row (--rows)."""
    rows = tokenizer.encode_batch(texts, eos=False)
    if cfg.rows == "packed":
        task_rows = pack(rows, cfg.chunk_length, cfg.seed)
        shape = f"{len(task_rows):,} rows of {cfg.chunk_length} tokens"
    else:
        task_rows = shuffled(rows, cfg.seed)
        mean = sum(map(len, task_rows)) / len(task_rows)
        shape = f"{len(task_rows):,} rows of one sentence, {mean:.1f} tokens on average"
    print(f"{tokenizer} from {len(texts):,} texts; {shape}")
    return task_rows


@dataclass
class PretrainRun(T5Run):
    """What `t5 pretrain` declares to `shared.trainer`: the model, its meta, its after-work."""

    cfg: PretrainConfig
    tokenizer: T5Tokenizer
    task: SpanCorruptionTask
    config: T5Config
    prep_seconds: float  # the tokenizer's training and the encoding: the time limit covers them

    def build_model(self) -> T5:
        return T5(self.config)  # seeded by the caller

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"config": config_to_dict(self.cfg), "t5_config": asdict(self.config),
                "kind": "pretrain", "prep_seconds": self.prep_seconds}  # fmt: skip

    def finish(self, trained: Trained) -> dict[str, float]:
        """The final evaluation, logged; `checkpoints/final` (what `finetune --init` reads)
        follows. No checkpoint is chosen by its score: the val loss only draws the curve, and
        a lower span-corruption loss is not what the fine-tuned tasks are judged by."""
        final = self.task.evaluate(trained.model, trained.precision_ctx)
        trained.run.log(trained.state.step, **final)
        return final

    def report(self, trained: Trained) -> None:
        final = trained.final
        print(f"final: val loss {final['val_loss']:.4f}, target-token accuracy "
              f"{final['val_accuracy']:.2%} after {trained.state.step} steps")  # fmt: skip
        trained.run.plot_metrics("loss.png", ["loss", "val_loss"], title="span corruption loss",
                                 logy=True)  # fmt: skip
        print(f"fine-tune from it: uv run --package t5 finetune --init {trained.run.folder}")


def prepare(
    cfg: PretrainConfig, env: Setup | None = None, resume: Resume | None = None
) -> TrainingTask:
    """Text, tokenizer (trained, or the resumed run's), the rows (--rows), the task, the config."""
    if resume is None:  # before the data loads: the error a tokenizer without sentinels gives
        require_sentinels(cfg.num_sentinels, spans_per_row(cfg) if cfg.rows == "packed" else 1)
    texts = load_texts(cfg)
    started = time.perf_counter()
    if resume is not None:
        tokenizer = run_tokenizer(resume.run_folder)
    else:
        tokenizer = T5Tokenizer.train(texts, cfg.vocab_size, cfg.num_sentinels,
                                      cfg.tokenizer_trainer)  # fmt: skip
    task = SpanCorruptionTask(cfg, tokenizer, make_rows(cfg, texts, tokenizer))
    config = make_config(cfg.model, tokenizer.vocab_size)
    prep = time.perf_counter() - started
    if resume is not None:  # the first process's preparation is what counts
        prep = resume.meta.get("prep_seconds", prep)
    job = PretrainRun(cfg, tokenizer, task, config, prep)
    return TrainingTask(
        stage=STAGE,
        config=cfg,
        task=task,
        build_model=job.build_model,
        build_optimizer=lambda model: make_optimizer(
            model, cfg.lr, cfg.weight_decay, cfg.optimizer
        ),  # fmt: skip
        schedule=job.schedule,
        checkpoint_meta=job.checkpoint_meta,
        write_run_files=job.write_run_files,
        shard_units=lambda model: [model.encoder, model.decoder],
        grad_clip=cfg.grad_clip,
        item_name="tok",
        description=(
            f"T5 by span corruption on {len(task.train_rows):,} rows, vocabulary "
            f"{config.vocab_size}"
        ),
        sampler=task.sampler,
        reserve_seconds=job.reserve_seconds,
        check_resume=job.check_resume,
        resume_command="uv run --package t5 pretrain",
        finish=job.finish,
        report=job.report,
    )
