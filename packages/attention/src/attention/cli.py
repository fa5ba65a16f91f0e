"""Commands: train a German->English translator with attention, use it, score it.

    uv run --package attention train                      # Multi30k, then BLEU on the test set
    uv run --package attention train --resume=RUN         # continue an interrupted run exactly
    uv run --package attention translate "Ein Mann fährt Fahrrad."
    uv run --package attention eval --beam-size=5         # BLEU of the latest run

`train` writes runs/attention/<name>/: config.json, metrics.jsonl, vocab_de.json, vocab_en.json,
checkpoints/final/, loss.png, val_bleu.png, attention.png (a heatmap of the example sentence)
and test_translations.en. `translate` prints the translation and writes its heatmap.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from attention.train import (
    STAGE,
    TrainConfig,
    bleu_on,
    heatmap_for,
    load_translator,
    prepare,
    translate_sentences,
)
from attention.translation_data import load_multi30k
from shared.config import option, parse_config
from shared.device import autocast, pick_device, resolve_precision
from shared.errors import ConfigError
from shared.runs import Run
from shared.trainer import train_command


def train(argv: list[str]) -> None:
    """Train: `attention.train.prepare` declares the task, `shared.trainer` runs it."""
    description = __doc__.split("\n\n")[0]
    train_command(STAGE, TrainConfig, argv, prepare, description=description)


@dataclass
class TranslateConfig:
    text: str = option("Ein Mann fährt Fahrrad.", "the German sentence", positional=True)
    run: str | None = option(None, "run name or folder (default: the latest attention run)")
    beam_size: int = option(5, "beam width (1: greedy decoding)", ge=1)
    alpha: float = option(0.6, "length penalty exponent for beam search")
    heatmap: Path | None = option(None, "where to write the heatmap PNG (default: in the run)")
    device: str = option("cpu", "auto, cpu, cuda or mps")

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("nothing to translate: give a German sentence")


def _slug(text: str) -> str:
    return re.sub(r"[^\w]+", "_", text.lower(), flags=re.UNICODE).strip("_")[:40] or "sentence"


def translate(argv: list[str]) -> None:
    cfg = parse_config(TranslateConfig, argv, prog="attention translate")
    run = Run.open("attention", cfg.run)
    device = pick_device(cfg.device)
    model, src_vocab, tgt_vocab, _ = load_translator(run, device)
    (result,) = translate_sentences(
        model, [cfg.text], src_vocab, tgt_vocab, cfg.beam_size, cfg.alpha, device
    )
    unknown = [w for w in result.source if w not in src_vocab.index]
    path = cfg.heatmap or run.folder / "translations" / f"{_slug(cfg.text)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    heatmap_for(result, path, title=f"{cfg.text} -> {result.text}")
    print(result.text)
    if unknown:
        print(f"note: words the model has never seen (read as <unk>): {', '.join(unknown)}")
    print(f"attention heatmap: {path}")


@dataclass
class EvalConfig:
    run: str | None = option(None, "run name or folder (default: the latest attention run)")
    split: str = option("test_2016_flickr", "multi30k split: test_2016_flickr, val or train")
    beam_size: int = option(5, "beam width (1: greedy decoding)", ge=1)
    alpha: float = option(0.6, "length penalty exponent for beam search")
    limit: int = option(0, "translate only the first N sentences (0: all)", ge=0)
    device: str = option("cpu", "auto, cpu, cuda or mps")
    precision: Literal["fp32", "bf16"] = option("fp32", "arithmetic for decoding")


def evaluate(argv: list[str]) -> None:
    cfg = parse_config(EvalConfig, argv, prog="attention eval")
    run = Run.open("attention", cfg.run)
    data = load_multi30k()
    if cfg.split not in data:
        raise ConfigError(f"--split expects one of {', '.join(data)}, got {cfg.split!r}")
    pairs = data[cfg.split][: cfg.limit or None]
    device = pick_device(cfg.device)
    ctx = autocast(device, resolve_precision(cfg.precision, device))
    model, src_vocab, tgt_vocab, _ = load_translator(run, device)
    score, _ = bleu_on(model, pairs, src_vocab, tgt_vocab, cfg.beam_size, cfg.alpha, device, ctx)
    print(
        f"BLEU {score:.2f} on multi30k {cfg.split} ({len(pairs)} sentences, beam {cfg.beam_size}, "
        f"sacrebleu 13a, cased) for {run.folder}"
    )
