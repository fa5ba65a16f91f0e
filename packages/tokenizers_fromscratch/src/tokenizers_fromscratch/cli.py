"""`uv run --package tokenizers_fromscratch train` and `encode`: train a tokenizer, look at it.

train --kind bpe --vocab-size 4096 --dataset tinyshakespeare
    trains on the dataset's train split, saves runs/tokenizers_fromscratch/<run>/
    tokenizer.json, and prints the training time and the compression on the other split.
encode "some text" [--run NAME | --kind bpe]
    prints the tokens with their boundaries (|First| Citizen|:|), the ids, and the
    compression ratio (UTF-8 bytes per token). Default: the latest trained tokenizer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from shared import datasets, sources
from shared.config import option, parse_config
from shared.errors import UsageError
from shared.paths import runs_dir
from shared.runs import Run
from shared.sources import SOURCE_HELP
from tokenizers_fromscratch.base import FILENAME, Tokenizer, load_tokenizer

STAGE = "tokenizers_fromscratch"
Kind = Literal["char", "bpe", "wordpiece", "unigram"]


@dataclass
class TrainConfig:
    kind: Kind = option("bpe", "which algorithm to train")
    vocab_size: int = option(4096, "vocabulary size, special tokens included (char: 0 = all seen)")
    dataset: str = option(
        "tinyshakespeare", "a shared.datasets name or a source; trains on its train split: "
        + SOURCE_HELP,
    )  # fmt: skip
    text_field: str = option("text", "the field holding the text, for jsonl/csv/parquet/hf")
    max_lines: int = option(0, "train on the first N lines only (0: all of them)")
    min_frequency: int = option(2, "bpe, wordpiece: stop when the best pair is rarer than this")
    byte_fallback: bool = option(False, "unigram: unknown characters become UTF-8 byte pieces")
    run_name: str | None = option(None, "name of the run folder (default: the start time)")

    def __post_init__(self) -> None:
        if self.vocab_size < 0 or self.max_lines < 0:
            raise ValueError("--vocab-size and --max-lines must not be negative")
        if self.kind != "char" and self.vocab_size == 0:
            raise ValueError(f"--vocab-size must be positive for --kind {self.kind}")


@dataclass
class EncodeConfig:
    text: str = option(
        "First Citizen: Before we proceed any further, hear me speak.",
        "the text to encode",
        positional=True,
    )
    run: str | None = option(None, "a run folder or run name (default: the latest run)")
    kind: Kind | None = option(None, "use the latest run of this kind instead")
    special_tokens: bool = option(False, "add the tokenizer's special tokens ([CLS] ... [SEP])")


def dataset_lines(
    name: str, split_names: tuple[str, ...] = ("train",), text_field: str = "text"
) -> list[str]:
    """A dataset's text as lines (newlines kept): text datasets split, table columns joined."""
    if sources.is_source(name):
        text = sources.text_corpus(name, text_field)["train" if "train" in split_names else "val"]
        return text.splitlines(keepends=True)
    splits = datasets.load(name)
    split = next((splits[s] for s in split_names if s in splits), None)
    if split is None:
        raise UsageError(f"dataset {name!r} has none of the splits {split_names}")
    if isinstance(split, str):
        return split.splitlines(keepends=True)
    columns = [c for c, f in split.features.items() if getattr(f, "dtype", "") == "string"]
    if not columns:
        raise UsageError(f"dataset {name!r} has no text columns to train a tokenizer on")
    return [text + "\n" for c in columns for text in split[c]]


def build(cfg: TrainConfig, lines: list[str], say: Any = print) -> Tokenizer:
    from tokenizers_fromscratch import (
        ByteLevelBPETokenizer,
        CharTokenizer,
        UnigramTokenizer,
        WordPieceTokenizer,
    )

    if cfg.kind == "char":
        return CharTokenizer.train(lines, vocab_size=cfg.vocab_size or None, unk_token="<unk>")
    if cfg.kind == "bpe":
        return ByteLevelBPETokenizer.train(
            lines, cfg.vocab_size, special_tokens=["<|endoftext|>"], min_frequency=cfg.min_frequency
        )
    if cfg.kind == "wordpiece":
        return WordPieceTokenizer.train(lines, cfg.vocab_size, min_frequency=cfg.min_frequency)
    return UnigramTokenizer.train(
        lines, cfg.vocab_size, byte_fallback=cfg.byte_fallback, progress=lambda m: say("  " + m)
    )


def bytes_per_token(tok: Tokenizer, lines: list[str]) -> float:
    n_bytes = sum(len(line.encode("utf-8")) for line in lines)
    n_tokens = sum(len(ids) for ids in tok.encode_batch(lines))
    return n_bytes / max(n_tokens, 1)


def train(argv: list[str]) -> None:
    cfg = parse_config(
        TrainConfig, argv, prog=f"{STAGE} train", description=__doc__.split("\n\n")[0]
    )
    lines = dataset_lines(cfg.dataset, text_field=cfg.text_field)
    if cfg.max_lines:
        lines = lines[: cfg.max_lines]
    run = Run.start(STAGE, cfg, name=cfg.run_name)
    print(
        f"training a {cfg.kind} tokenizer on {len(lines):,} lines of {cfg.dataset} ...", flush=True
    )
    start = time.perf_counter()
    tok = build(cfg, lines)
    seconds = time.perf_counter() - start
    path = tok.save(run.folder)
    held_out_splits = ("val", "validation", "dev", "test")
    held_out = (
        dataset_lines(cfg.dataset, held_out_splits, cfg.text_field) if not cfg.max_lines else []
    )
    ratio = bytes_per_token(tok, held_out or lines[:2000])
    where = "held-out split" if held_out else "training lines"
    print(f"trained {tok!r} in {seconds:.2f}s; {ratio:.2f} UTF-8 bytes per token on the {where}")
    run.log(0, train_seconds=round(seconds, 3), vocab_size=tok.vocab_size, bytes_per_token=ratio)
    run.finish(extra={"tokenizer": path})


def _latest_of_kind(kind: str) -> str:
    base = runs_dir() / STAGE
    found = []
    for path in base.glob(f"*/{FILENAME}"):
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("kind") == kind:
                found.append(path)
        except (OSError, json.JSONDecodeError):
            continue
    if not found:
        raise UsageError(
            f"no {kind} tokenizer in {base}/ yet; train one: "
            f"uv run --package {STAGE} train --kind {kind}"
        )
    return str(max(found, key=lambda p: p.stat().st_mtime).parent)


def show_tokens(tok: Tokenizer, ids: list[int]) -> str:
    """ "|First| Citizen|:|": each token's text between bars, newlines and tabs made visible."""
    texts = [tok.token_text(i).replace("\n", "\\n").replace("\t", "\\t") for i in ids]
    return "|" + "|".join(texts) + "|"


def encode(argv: list[str]) -> None:
    cfg = parse_config(
        EncodeConfig, argv, prog=f"{STAGE} encode", description=__doc__.split("\n\n")[0]
    )
    if cfg.run is not None and cfg.kind is not None:
        raise UsageError("give --run or --kind, not both")
    folder = Run.open(STAGE, cfg.run if cfg.kind is None else _latest_of_kind(cfg.kind)).folder
    if not (folder / FILENAME).is_file():
        raise UsageError(f"run {folder} has no {FILENAME}; it was not a finished train run")
    tok = load_tokenizer(folder)
    ids = tok.encode(cfg.text, add_special_tokens=cfg.special_tokens)
    n_bytes = len(cfg.text.encode("utf-8"))
    print(f"tokenizer: {folder} ({tok.kind}, {tok.vocab_size:,} tokens)")
    print(show_tokens(tok, ids))
    print(f"ids: {ids}")
    ratio = n_bytes / len(ids) if ids else 0.0
    print(f"{len(ids)} tokens for {n_bytes} UTF-8 bytes: {ratio:.2f} bytes per token")
