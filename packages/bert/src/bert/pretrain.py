"""`bert pretrain`: a WordPiece vocabulary, then a small BERT trained by masked language modelling.

    texts (SST-2's and Multi30k's English training sentences by default)
      -> WordPieceTokenizer.train(texts, vocab_size)      stage 6; saved as <run>/model/vocab.txt
      -> rows [CLS] sentence [SEP], cut to --max_length, length-grouped batches
      -> mask_tokens: 15% chosen; of those 80% [MASK], 10% random, 10% kept (a fresh mask per batch)
      -> BertForMaskedLM: logits only at the chosen positions (N, vocab), cross entropy
      -> <run>/model/ in transformers' format: `bert finetune --init RUN` starts from it

What the model learns: to fill a gap it must use both sides of it, so every layer learns to
read the whole sentence in both directions (a GPT reads only the left). That is why a
pretrained encoder fine-tunes to a classifier with few labels: the reading is already learned.

Why no dropout by default: dropout fights overfitting, and ten minutes of masked LM on a laptop
underfits (the model never sees a sentence twice with the same mask); its random numbers also
cost a sixth of a step. Cramming (Geiping & Goldstein, 2022) drops it for budget pretraining for
the same reasons. `bert finetune` defaults to no dropout too (`--dropout 0.0`: thirty CPU minutes
hold under two epochs of SST-2, too few to overfit); `--dropout 0.1` restores BERT's.

Left out on purpose: next-sentence prediction (RoBERTa found it does not help). Packing several
sentences into one row is an option (`--pack`): 1.6x the tokens per second on SST-2's short
phrases, though not a better encoder in ten minutes (docs/measurements.md).
"""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bert.batching import epoch_sampler
from bert.hf import save_folder
from bert.masking import mask_tokens
from bert.model import BertConfig, BertForMaskedLM
from bert.tokenize import BertTokenizer, pad_rows
from shared import sources
from shared.config import config_to_dict, option
from shared.errors import UsageError
from shared.fit import FitState
from shared.sources import SOURCE_HELP
from shared.tasks import TrainingTask
from shared.trainer import Resume, Trained
from shared.training import RunOptions, Setup, lr_factor
from tokenizers_fromscratch.wordpiece import WordPieceTokenizer

STAGE = "bert"


@dataclass
class ModelSize:
    hidden_size: int = option(256, "width of every token vector", ge=8)
    num_hidden_layers: int = option(4, "encoder layers", ge=1)
    num_attention_heads: int = option(4, "attention heads", ge=1)
    intermediate_size: int = option(1024, "feed-forward width", ge=8)


@dataclass
class PretrainConfig(RunOptions):
    datasets: list[str] = option(
        ["sst2", "multi30k"], "registry datasets whose English text to train on "
        "(sst2, multi30k, tinyshakespeare)",
    )  # fmt: skip
    dataset: str | None = option(
        None, "pretrain on this source instead of --datasets (its train split): " + SOURCE_HELP
    )
    text_field: str = option("text", "the field holding the text, for jsonl/csv/parquet/hf")
    vocab_size: int = option(8000, "WordPiece vocabulary size", ge=100)
    model: ModelSize = field(default_factory=ModelSize)
    max_length: int = option(64, "tokens per row, [CLS] and [SEP] included", ge=8, le=512)
    batch_size: int = option(128, "rows per step", ge=1)
    lr: float = option(1e-3, "peak learning rate", gt=0)
    weight_decay: float = option(0.01, "AdamW weight decay on the matrices", ge=0)
    warmup_steps: int = option(200, "linear warmup steps", ge=0)
    grad_clip: float = option(1.0, "clip the gradient's global norm (0: off)", ge=0)
    dropout: float = option(
        0.0, "dropout on hidden states and attention weights while pretraining", ge=0, lt=1
    )
    mlm_probability: float = option(0.15, "share of tokens chosen for prediction", gt=0, lt=1)
    whole_word: bool = option(False, "choose whole words: all their ## pieces together")
    pack: bool = option(False, "fill every row with consecutive sentences up to --max_length")
    val_rows: int = option(2000, "rows held out to measure the masked-LM loss", ge=1)
    time_limit: float = option(600.0, "seconds of training, final evaluation included (0: none)",
                               ge=0)  # fmt: skip
    eval_interval: int = option(200, "evaluate every N steps", ge=1)


# ----------------------------------------------------------------------------------------------
# Data


def _english(name: str) -> list[str]:
    from shared import datasets

    splits = datasets.load(name)
    if name == "sst2":
        return list(splits["train"]["sentence"])  # never the dev set: we report on it
    if name == "multi30k":
        return list(splits["train"]["en"])
    if name == "tinyshakespeare":
        return [line for line in splits["train"].splitlines() if line.strip()]
    raise UsageError(
        f"--datasets: {name!r} has no English text this command knows; "
        "use sst2, multi30k or tinyshakespeare"
    )


def pack_rows(sentences: list[list[int]], max_length: int, cls_id: int,
              sep_id: int) -> list[tuple[list[int], list[int]]]:  # fmt: skip
    """Rows of [CLS] s1 [SEP] s2 [SEP] ... each up to max_length tokens (RoBERTa's FULL-SENTENCES).

    Short sentences make short rows, and a step of short rows is mostly overhead: the matrices
    are thin. Packed, every row carries max_length tokens, every masked token has neighbours on
    both sides, and a step moves several times the tokens for about the same cost. A sentence
    that does not fit starts the next row; one longer than a row is cut.
    """
    rows, row = [], [cls_id]
    for pieces in sentences:
        pieces = [*pieces[: max_length - 2], sep_id]
        if len(row) + len(pieces) > max_length:
            rows.append(row)
            row = [cls_id]
        row += pieces
    if len(row) > 1:
        rows.append(row)
    return [(r, [0] * len(r)) for r in rows]


def load_corpus(cfg: PretrainConfig) -> list[str]:
    if cfg.dataset is not None:
        return sources.training_texts(cfg.dataset, cfg.text_field)
    if not cfg.datasets:
        raise UsageError("--datasets is empty; name at least one, e.g. --datasets=sst2")
    return [text for name in cfg.datasets for text in _english(name)]


# ----------------------------------------------------------------------------------------------
# The task


class MaskedLMTask:
    """Masked language modelling for `shared.fit`: a fresh mask for every batch."""

    def __init__(self, cfg: PretrainConfig, tokenizer: BertTokenizer,
                 rows: list[tuple[list[int], list[int]]]) -> None:  # fmt: skip
        self.cfg, self.tokenizer = cfg, tokenizer
        split = len(rows) - cfg.val_rows
        if split < cfg.batch_size:
            raise UsageError(f"the corpus has {len(rows)} rows: too few for --val_rows "
                             f"{cfg.val_rows} and --batch_size {cfg.batch_size}")  # fmt: skip
        self.train_rows, self.val_rows = rows[:split], rows[split:]
        self.sampler = epoch_sampler([len(r[0]) for r in self.train_rows], cfg.batch_size, cfg.seed)
        self.eval_seconds = 5.0  # a guess until the first evaluation is timed

    def mask(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        tok = self.tokenizer
        inputs, labels = mask_tokens(
            batch["input_ids"], special_ids=tok.special_ids, vocab_size=tok.vocab_size,
            mask_id=tok.mask_id, generator=generator, mlm_probability=self.cfg.mlm_probability,
            whole_word=self.cfg.whole_word, continues_word=tok.continues_word,
        )  # fmt: skip
        return {**batch, "input_ids": inputs, "labels": labels}

    def train_batch(self, generator: torch.Generator) -> dict[str, Tensor]:
        rows = [self.train_rows[i] for i in self.sampler.next()]
        return self.mask(pad_rows(rows, self.tokenizer.pad_id), generator)

    def count(self, batch: dict[str, Tensor]) -> int:
        return int(batch["attention_mask"].sum())

    def loss(self, model: torch.nn.Module, batch: dict[str, Tensor]) -> Tensor:
        return self._loss_and_hits(model, batch)[0]

    def _loss_and_hits(self, model, batch) -> tuple[Tensor, int, int]:
        chosen = batch["labels"] != -100  # (B, T) the positions to predict
        positions = chosen.nonzero()  # (N, 2) rows and columns
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                       positions=positions)  # (N, vocab)  # fmt: skip
        targets = batch["labels"][chosen]  # (N,)
        loss = F.cross_entropy(logits.float(), targets)
        hits = int((logits.argmax(-1) == targets).sum())
        return loss, hits, targets.numel()

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, precision_ctx) -> dict[str, float]:
        """Loss and accuracy on the held-out rows, masked the same way at every evaluation."""
        started = time.perf_counter()
        model.eval()
        device = next(model.parameters()).device
        generator = torch.Generator().manual_seed(12345)  # the same masks every time
        total_loss, hits, count = 0.0, 0, 0
        size = self.cfg.batch_size
        for start in range(0, len(self.val_rows), size):
            batch = self.mask(pad_rows(self.val_rows[start : start + size],
                                       self.tokenizer.pad_id), generator)  # fmt: skip
            batch = {k: v.to(device) for k, v in batch.items()}
            with precision_ctx():
                loss, h, n = self._loss_and_hits(model, batch)
            total_loss, hits, count = total_loss + float(loss) * n, hits + h, count + n
        model.train()
        self.eval_seconds = time.perf_counter() - started
        return {"val_loss": total_loss / max(count, 1), "val_accuracy": hits / max(count, 1)}


# ----------------------------------------------------------------------------------------------
# The command's preparation


def train_tokenizer(texts: list[str], vocab_size: int) -> BertTokenizer:
    return BertTokenizer(WordPieceTokenizer.train(texts, vocab_size))


def make_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embeddings" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embeddings" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6,
    )  # fmt: skip
    for group in optimizer.param_groups:
        group["peak_lr"] = cfg.lr
    return optimizer


def model_config(cfg: PretrainConfig, vocab_size: int) -> BertConfig:
    m = cfg.model
    return BertConfig(
        vocab_size=vocab_size, hidden_size=m.hidden_size,
        num_hidden_layers=m.num_hidden_layers, num_attention_heads=m.num_attention_heads,
        intermediate_size=m.intermediate_size, max_position_embeddings=max(cfg.max_length, 128),
        hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
    )  # fmt: skip


def make_rows(cfg: PretrainConfig, texts: list[str],
              tokenizer: BertTokenizer) -> list[tuple[list[int], list[int]]]:  # fmt: skip
    """The sentences in a seeded random order, one row each or packed (`--pack`)."""
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(cfg.seed))
    if not cfg.pack:
        return [tokenizer.encode(texts[i], max_length=cfg.max_length) for i in order.tolist()]
    pieces = [tokenizer.wordpiece.encode(texts[i]) for i in order.tolist()]
    rows = pack_rows(pieces, cfg.max_length, tokenizer.cls_id, tokenizer.sep_id)
    print(f"packed {len(texts):,} sentences into {len(rows):,} rows of up to "
          f"{cfg.max_length} tokens")  # fmt: skip
    return rows


def run_tokenizer(cfg: PretrainConfig, texts: list[str], resume: Resume | None) -> BertTokenizer:
    """A WordPiece vocabulary trained on the corpus, or (resuming) the run's own."""
    if resume is not None:
        return BertTokenizer.from_folder(resume.run_folder / "tokenizer")
    started = time.perf_counter()
    tokenizer = train_tokenizer(texts, cfg.vocab_size)
    print(f"WordPiece: {tokenizer.vocab_size} tokens from {len(texts):,} sentences "
          f"in {time.perf_counter() - started:.1f}s")  # fmt: skip
    return tokenizer


@dataclass
class PretrainRun:
    """What `bert pretrain` declares to `shared.trainer`: the model, its files, its after-work."""

    cfg: PretrainConfig
    tokenizer: BertTokenizer
    task: MaskedLMTask
    prepared_seconds: float  # the tokenizer's and the rows' time: the time limit covers it

    @property
    def model_config(self) -> BertConfig:
        return model_config(self.cfg, self.tokenizer.vocab_size)

    def build_model(self) -> BertForMaskedLM:
        return BertForMaskedLM(self.model_config)

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"config": config_to_dict(self.cfg), "bert_config": asdict(self.model_config),
                "prepared_seconds": self.prepared_seconds}  # fmt: skip

    def write_run_files(self, folder: Path) -> None:
        self.tokenizer.save(folder / "tokenizer")  # what --resume reloads

    def reserve_seconds(self, state: FitState) -> float:
        return self.prepared_seconds + self.task.eval_seconds  # and the final evaluation's

    def schedule(self, step: int, elapsed: float, seconds: float | None) -> float:
        cfg = self.cfg
        return lr_factor(step, elapsed, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps,
                         seconds=seconds, decay="linear")  # fmt: skip

    def finish(self, trained: Trained) -> dict[str, float]:
        """The final evaluation, logged, and the model in transformers' format for finetune."""
        final = self.task.evaluate(trained.model, trained.precision_ctx)
        trained.run.log(trained.state.step, **final)
        save_folder(trained.model, trained.run.folder / "model", self.tokenizer)
        return final

    def report(self, trained: Trained) -> dict[str, Path]:
        final, run = trained.final, trained.run
        print(f"final: val loss {final['val_loss']:.4f}, masked-token accuracy "
              f"{final['val_accuracy']:.2%} after {trained.state.step} steps")  # fmt: skip
        run.plot_metrics("mlm_loss.png", ["loss", "val_loss"], title="masked-LM loss", logy=True)
        return {"model (transformers' format)": run.folder / "model"}


def prepare(
    cfg: PretrainConfig, env: Setup | None = None, resume: Resume | None = None
) -> TrainingTask:
    """`bert pretrain`'s task: the corpus, the WordPiece vocabulary, the rows, the MLM task."""
    texts = load_corpus(cfg)
    started = time.perf_counter()
    tokenizer = run_tokenizer(cfg, texts, resume)
    rows = make_rows(cfg, texts, tokenizer)
    task = MaskedLMTask(cfg, tokenizer, rows)
    prepared = time.perf_counter() - started
    if resume is not None:  # the first process's preparation (WordPiece's training) counts
        prepared = resume.meta.get("prepared_seconds", prepared)
    job = PretrainRun(cfg, tokenizer, task, prepared)
    return TrainingTask(
        stage=STAGE,
        config=cfg,
        task=task,
        build_model=job.build_model,
        build_optimizer=lambda model: make_optimizer(model, cfg),
        schedule=job.schedule,
        checkpoint_meta=job.checkpoint_meta,
        write_run_files=job.write_run_files,
        shard_units=lambda model: list(model.bert.layers),
        grad_clip=cfg.grad_clip,
        item_name="tok",
        description=(
            f"BertForMaskedLM on {len(task.train_rows):,} rows ({len(task.val_rows):,} held "
            f"out), vocabulary {tokenizer.vocab_size}"
        ),
        sampler=task.sampler,
        reserve_seconds=job.reserve_seconds,
        resume_command="uv run --package bert pretrain",
        finish=job.finish,
        report=job.report,
    )
