"""`uv run --package t5 pretrain | finetune | eval | generate`: the stage's commands.

    uv run --package t5 pretrain                                  # tokenizer + span corruption
    uv run --package t5 finetune --tasks translate_de_en,sst2 --init RUN   # from a pretrain run
    uv run --package t5 finetune --init none                      # ... or from random weights
    uv run --package t5 finetune --resume RUN                     # after a Ctrl-C (pretrain too)
    uv run --package t5 eval --run RUN                            # test BLEU, SST-2 dev accuracy
    uv run --package t5 generate --run RUN "translate German to English: Zwei Hunde spielen."

`pretrain` and `finetune` run through `shared.trainer` (`train_command`): each module declares
its task with `prepare(cfg, env, resume)`. Options are parsed and the data loaded (and, where
one is trained, the tokenizer made) before a run folder is made, so a command that fails on any
of them leaves nothing behind.
"""

from dataclasses import dataclass

from shared.config import option, parse_config
from shared.runs import Run
from shared.trainer import train_command

STAGE = "t5"


def pretrain(argv: list[str]) -> None:
    """Pretrain: `t5.pretrain.prepare` declares the task, `shared.trainer` runs it."""
    from t5.pretrain import PretrainConfig, prepare

    about = "Train a Unigram vocabulary and a small T5 by span corruption."
    train_command(STAGE, PretrainConfig, argv, prepare, prog="t5 pretrain", description=about)


def finetune(argv: list[str]) -> None:
    """Fine-tune: `t5.finetune.prepare` declares the task, `shared.trainer` runs it."""
    from t5.finetune import FinetuneConfig, prepare

    about = "Fine-tune one T5 on several text-to-text tasks at once (Multi30k de->en, SST-2)."
    train_command(STAGE, FinetuneConfig, argv, prepare, prog="t5 finetune", description=about)


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
