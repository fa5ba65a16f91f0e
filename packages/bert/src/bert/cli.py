"""`uv run --package bert pretrain | finetune | eval | embed`: the stage's commands.

    uv run --package bert pretrain                                 # WordPiece + a small BERT, MLM
    uv run --package bert finetune --task sst2 --init minilm       # fine-tune the packaged MiniLM
    uv run --package bert finetune --task sst2 --init RUN          # ... or your pretrain run
    uv run --package bert pretrain --resume RUN --max_steps 4000   # continue a run exactly
    uv run --package bert eval --run RUN                           # GLUE dev: accuracy, F1, errors
    uv run --package bert eval --run RUN --file my.tsv             # any sentence<TAB>label file
    uv run --package bert embed "a man plays guitar" --corpus lines.txt   # similarity search

`pretrain` and `finetune` run through `shared.trainer` (`train_command`): each stage module
declares its task with `prepare(cfg, env, resume)`; Ctrl-C saves `checkpoints/interrupted` and
`--resume RUN` continues exactly. Options are parsed and the data loaded before a run folder is
made, so a command that fails on either leaves nothing behind.
"""

from dataclasses import dataclass
from pathlib import Path

from shared.config import option, parse_config
from shared.errors import UsageError
from shared.runs import Run
from shared.trainer import train_command

STAGE = "bert"


def finetune(argv: list[str]) -> None:
    """Fine-tune: `bert.finetune.prepare` declares the task, `shared.trainer` runs it."""
    from bert.finetune import FinetuneConfig, prepare

    train_command(STAGE, FinetuneConfig, argv, prepare, prog="bert finetune",
                  description="Fine-tune a BERT on a GLUE task (SST-2 by default).")  # fmt: skip


def pretrain(argv: list[str]) -> None:
    """Pretrain: `bert.pretrain.prepare` declares the task, `shared.trainer` runs it."""
    from bert.pretrain import PretrainConfig, prepare

    train_command(STAGE, PretrainConfig, argv, prepare, prog="bert pretrain",
                  description="Train a WordPiece vocabulary and a small BERT with masked "
                  "language modelling.")  # fmt: skip


@dataclass
class EvalConfig:
    run: str | None = option(None, "a finetune run (folder or name; default: the latest)")
    task: str | None = option(None, "the GLUE task (default: the run's)")
    file: Path | None = option(
        None, "score a tsv file (sentence<TAB>label) instead of the task's dev set"
    )
    mistakes: int = option(10, "how many of the most confident mistakes to show", ge=0)
    batch_size: int = option(128, "sentences per batch", ge=1)
    device: str = option("cpu", "auto, cpu, cuda, cuda:N or mps")


def evaluate(argv: list[str]) -> None:
    from bert.evaluate import evaluate_run

    cfg = parse_config(EvalConfig, argv, prog="bert eval",
                       description="Score a fine-tuned run: accuracy, F1, confusion matrix and "
                       "its most confident mistakes.")  # fmt: skip
    run = Run.open(STAGE, cfg.run)
    evaluate_run(run, cfg)


@dataclass
class EmbedConfig:
    text: str = option("A man is playing a guitar.", "the query sentence", positional=True)
    corpus: Path | None = option(None, "a text file, one sentence a line, to search")
    model: str = option("minilm", "minilm, a bert run, or a folder in transformers' format")
    top_k: int = option(5, "how many of the corpus's nearest sentences to show", ge=1)
    out: Path | None = option(None, "write the corpus's embeddings here (.npy), with the query's")
    batch_size: int = option(64, "sentences per batch", ge=1)


def embed(argv: list[str]) -> None:
    from bert.embed import run_embed

    cfg = parse_config(EmbedConfig, argv, prog="bert embed",
                       description="Sentence embeddings (mean-pooled, unit length) and a "
                       "similarity search.")  # fmt: skip
    if cfg.corpus is not None and not cfg.corpus.is_file():
        raise UsageError(f"--corpus {cfg.corpus} does not exist; give a text file, one line each")
    run_embed(cfg)
