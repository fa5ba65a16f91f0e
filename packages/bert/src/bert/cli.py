"""`uv run --package bert pretrain | finetune | eval | embed`: the stage's commands.

    uv run --package bert pretrain                                 # WordPiece + a small BERT, MLM
    uv run --package bert finetune --task sst2 --init minilm       # fine-tune the packaged MiniLM
    uv run --package bert finetune --task sst2 --init RUN          # ... or your pretrain run
    uv run --package bert eval --run RUN                           # GLUE dev: accuracy, F1, errors
    uv run --package bert eval --run RUN --file my.tsv             # any sentence<TAB>label file
    uv run --package bert embed "a man plays guitar" --corpus lines.txt   # similarity search

Options are parsed and the data loaded before a run folder is made, so a command that fails on
either leaves nothing behind.
"""

from dataclasses import dataclass
from pathlib import Path

from shared.config import option, parse_config
from shared.errors import UsageError
from shared.runs import Run

STAGE = "bert"


def finetune(argv: list[str]) -> None:
    from bert.finetune import FinetuneConfig, prepare, train

    cfg = parse_config(
        FinetuneConfig, argv, prog="bert finetune",
        description="Fine-tune a BERT on a GLUE task (SST-2 by default).",
    )  # fmt: skip
    run = None
    if cfg.resume:  # the run's own settings, then what this command line changes
        run = Run.open(STAGE, cfg.resume)
        cfg = parse_config(FinetuneConfig, argv, prog="bert finetune", saved=run.config_dict())
    ready = prepare(cfg)
    run = run or Run.start(STAGE, cfg, name=cfg.run_name)
    best = train(cfg, run, ready.task, ready.model, ready.tokenizer, ready.splits, ready.env)
    shown = "  ".join(f"{k} {v:.4f}" for k, v in best.items() if k.startswith(("select", "dev")))
    print(f"best model (chosen on the held-out training rows) at step {best.get('step')}: {shown}")
    accuracies = [k for k in best if k.endswith("accuracy")]
    run.plot_metrics("accuracy.png", accuracies, title=f"{cfg.task}: accuracy while fine-tuning")
    run.plot_metrics("loss.png", ["loss", "dev_loss", "select_loss"], title="loss", logy=True)
    run.finish({"model (transformers' format)": run.folder / "model"})


def pretrain(argv: list[str]) -> None:
    from bert.pretrain import PretrainConfig, load_corpus, run_pretrain

    cfg = parse_config(PretrainConfig, argv, prog="bert pretrain",
                       description="Train a WordPiece vocabulary and a small BERT with "
                       "masked language modelling.")  # fmt: skip
    texts = load_corpus(cfg)
    run = Run.start(STAGE, cfg, name=cfg.run_name)
    run_pretrain(cfg, run, texts)
    run.plot_metrics("mlm_loss.png", ["loss", "val_loss"], title="masked-LM loss", logy=True)
    run.finish({"model (transformers' format)": run.folder / "model"})


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
