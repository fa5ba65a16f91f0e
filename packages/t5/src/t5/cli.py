"""`uv run --package t5 pretrain | finetune | eval | generate`: the stage's commands.

    uv run --package t5 pretrain                                  # tokenizer + span corruption
    uv run --package t5 finetune --tasks translate_de_en,sst2 --init RUN   # from a pretrain run
    uv run --package t5 finetune --init none                      # ... or from random weights
    uv run --package t5 finetune --resume RUN                     # after a Ctrl-C
    uv run --package t5 eval --run RUN                            # test BLEU, SST-2 dev accuracy
    uv run --package t5 generate --run RUN "translate German to English: Zwei Hunde spielen."

Options are parsed and the data loaded (and, where one is trained, the tokenizer made) before
a run folder is made, so a command that fails on any of them leaves nothing behind.
"""

from dataclasses import dataclass

from shared.config import option, parse_config
from shared.runs import Run

STAGE = "t5"


def pretrain(argv: list[str]) -> None:
    from t5.pretrain import PretrainConfig, prepare, run_pretrain

    prog, about = "t5 pretrain", "Train a Unigram vocabulary and a small T5 by span corruption."
    cfg = parse_config(PretrainConfig, argv, prog=prog, description=about)
    run = None
    if cfg.resume:  # the run's own settings, then what this command line changes
        run = Run.open(STAGE, cfg.resume)
        cfg = parse_config(PretrainConfig, argv, prog=prog, saved=run.config_dict())
    ready = prepare(cfg, run)
    run = run or Run.start(STAGE, cfg, name=cfg.run_name)
    run_pretrain(cfg, run, ready)
    run.plot_metrics("loss.png", ["loss", "val_loss"], title="span corruption loss", logy=True)
    run.finish()
    print(f"fine-tune from it: uv run --package t5 finetune --init {run.folder}")


def finetune(argv: list[str]) -> None:
    from t5.finetune import FinetuneConfig, prepare, run_finetune

    prog = "t5 finetune"
    about = "Fine-tune one T5 on several text-to-text tasks at once (Multi30k de->en, SST-2)."
    cfg = parse_config(FinetuneConfig, argv, prog=prog, description=about)
    run = None
    if cfg.resume:
        run = Run.open(STAGE, cfg.resume)
        cfg = parse_config(FinetuneConfig, argv, prog=prog, saved=run.config_dict())
    ready = prepare(cfg, run)
    run = run or Run.start(STAGE, cfg, name=cfg.run_name)
    run_finetune(cfg, run, ready)
    run.plot_metrics("loss.png", ["loss", "select_loss"], title="loss", logy=True)
    scores = sorted({k for row in run.metrics() for k in row
                     if k.startswith("select_") and k != "select_loss"})  # fmt: skip
    run.plot_metrics("select.png", scores, title="held-out training rows (chooses the best)")
    run.finish()
    print(f"score it: uv run --package t5 eval --run {run.folder}")


@dataclass
class EvalConfig:
    run: str | None = option(None, "a finetune run (folder or name; default: the latest)")
    tasks: list[str] = option([], "tasks to score (default: every task the run trained on)")
    beam_size: int = option(4, "beams (1: greedy)", ge=1)
    length_penalty: float = option(0.6, "beam score = sum log p / length ** this")
    max_new_tokens: int = option(0, "longest output (0: the task's longest training target)", ge=0)
    batch_size: int = option(64, "inputs decoded together", ge=1)
    limit: int = option(0, "score only the first N rows of each split (0: all)", ge=0)
    device: str = option("cpu", "auto, cpu, cuda, cuda:N or mps")


def evaluate(argv: list[str]) -> None:
    from t5.evaluate import evaluate_run

    cfg = parse_config(EvalConfig, argv, prog="t5 eval",
                       description="Score a fine-tuned run: BLEU on Multi30k test_2016_flickr, "
                       "accuracy on SST-2's dev set.")  # fmt: skip
    evaluate_run(Run.open(STAGE, cfg.run), cfg)


@dataclass
class GenerateConfig:
    text: str = option("translate German to English: Zwei Hunde spielen im Schnee.",
                       "the input, with its task prefix", positional=True)  # fmt: skip
    run: str | None = option(None, "a t5 run (folder or name; default: the latest)")
    beam_size: int = option(4, "beams (1: greedy)", ge=1)
    length_penalty: float = option(0.6, "beam score = sum log p / length ** this")
    max_new_tokens: int = option(0, "longest output (0: the task's longest training target)", ge=0)
    sample: bool = option(False, "sample instead of searching")
    temperature: float = option(1.0, "sampling temperature", gt=0)
    top_k: int = option(0, "sample among the k likeliest tokens (0: all)", ge=0)
    seed: int = option(0, "seeds the sampling")
    device: str = option("cpu", "auto, cpu, cuda, cuda:N or mps")


def generate(argv: list[str]) -> None:
    from t5.evaluate import generate_text

    cfg = parse_config(GenerateConfig, argv, prog="t5 generate",
                       description="Run one input text through a trained T5.")  # fmt: skip
    print(generate_text(Run.open(STAGE, cfg.run), cfg))
