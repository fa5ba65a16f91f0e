"""The data half of the translation task (Multi30k German -> English), shared by every stage.

    data = load_multi30k()                        # {"train", "val", "test_2016_flickr"}: pairs
    src, tgt = build_vocabs(data["train"], min_freq=2)          # de 8,018 / en 6,278 words
    examples = encode_pairs(data["train"], src, tgt, max_len=50)  # (source ids, target ids+<eos>)
    for src_ids, tgt_ids in batches(examples, 64, rng):  ...      # (B, S), (B, T) of similar length
    collate_pairs(examples[:64])   # teacher forcing: src, tgt_in = <bos> y.., tgt_out = y.. <eos>

A pair is a `(German, English)` string tuple, from Multi30k or a `German<TAB>English` file
(`read_pairs`), so the same code trains on the real data or on a few pairs in a test. Words come
from vocab.py (case kept, words seen fewer than `min_freq` times become <unk>). The attention
stage's RNN translator (train.py) and the transformer's (`transformer.translate_task`) both read
the data through this module, so their vocabularies, and so their BLEU scores, compare; it sits
in the attention stage, the lowest that translates, so that every later stage can import it.
What each stage keeps for itself: its model, loss, decoding and loop.
"""

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attention.vocab import BOS, PAD, Vocab, tokenize
from shared.config import option
from shared.errors import ConfigError, UsageError
from shared.sources import SOURCE_HELP

Pair = tuple[str, str]  # (German, English)
Example = tuple[list[int], list[int]]  # (source ids, target ids ending in <eos>)


def load_multi30k() -> dict[str, list[Pair]]:
    """{split: [(German, English), ...]} for train, val and test_2016_flickr."""
    from shared import datasets

    splits = datasets.load("multi30k")
    return {name: list(zip(d["de"], d["en"], strict=True)) for name, d in splits.items()}


@dataclass
class PairSourceOptions:
    """Where the pairs come from: the options both translators' configs take (mixed in)."""

    dataset: str = option(
        "multi30k", "multi30k, or a source of pairs with train, validation (else the last 10%) "
        "and test splits: " + SOURCE_HELP,
    )  # fmt: skip
    src_field: str = option("de", "the field holding the source sentence, for a source")
    tgt_field: str = option("en", "the field holding the target sentence, for a source")
    train_file: Path | None = option(None, "German<TAB>English training pairs (default: Multi30k)")
    val_file: Path | None = option(None, "German<TAB>English validation pairs")
    test_file: Path | None = option(None, "German<TAB>English test pairs")


def load_pair_splits(cfg: PairSourceOptions) -> dict[str, list[Pair]]:
    """{"train", "val", "test"} pairs: the three files given, else the source, else Multi30k
    (its test split is test_2016_flickr)."""
    files = (cfg.train_file, cfg.val_file, cfg.test_file)
    if any(f is not None for f in files) and not all(f is not None for f in files):
        raise ConfigError("give all of --train_file, --val_file and --test_file, or none")
    if cfg.train_file is not None:
        return {
            name: read_pairs(f) for name, f in zip(("train", "val", "test"), files, strict=True)
        }
    if cfg.dataset != "multi30k":
        return source_pairs(cfg.dataset, cfg.src_field, cfg.tgt_field)
    raw = load_multi30k()
    return {"train": raw["train"], "val": raw["val"], "test": raw["test_2016_flickr"]}


def source_pairs(spec: str, src_field: str = "de", tgt_field: str = "en") -> dict[str, list[Pair]]:
    """{"train", "val", "test"} pairs from a source (`jsonl:DIR`, `hf:ID:CONFIG`, ...: see
    shared.sources): its validation split, else the last 10% of train; its test split, which
    BLEU is reported on, must be there."""
    from shared import sources

    rows = sources.load_source(spec, [src_field, tgt_field])
    if "test" not in rows:
        raise UsageError(f"--dataset {spec} has no test split to report BLEU on; give a folder "
                         "with train, validation and test files")  # fmt: skip
    test = rows.pop("test")
    splits, eval_name = sources.with_eval_split(rows)
    return {
        ours: list(zip(data[src_field], data[tgt_field], strict=True))
        for ours, data in (("train", splits["train"]), ("val", splits[eval_name]), ("test", test))
    }


def read_pairs(path: Path) -> list[Pair]:
    """`German<TAB>English` lines; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} does not exist; give a German<TAB>English file")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        de, tab, en = line.partition("\t")
        if not tab:
            raise UsageError(f"{path}:{number} is not `German<TAB>English`: {line[:60]!r}")
        pairs.append((de, en))
    return pairs


def build_vocabs(pairs: Sequence[Pair], min_freq: int, joint: bool = False) -> tuple[Vocab, Vocab]:
    """Source and target vocabularies; with `joint`, one vocabulary of both languages (twice),
    for a model that shares its embeddings between the two sides."""
    if joint:
        both = Vocab.build([tokenize(s) for pair in pairs for s in pair], min_freq)
        return both, both
    src = Vocab.build((tokenize(de) for de, _ in pairs), min_freq)
    tgt = Vocab.build((tokenize(en) for _, en in pairs), min_freq)
    return src, tgt


def encode_pairs(
    pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab, max_len: int | None = None
) -> list[Example]:
    """(source ids, target ids + <eos>) per pair.

    With max_len, pairs with more words than that on either side, or an empty side, are dropped;
    without it every pair is kept, and an empty source becomes one <pad> so that a batch of it
    still has a column (Multi30k has no empty side).
    """
    out = []
    for de, en in pairs:
        s, t = tokenize(de), tokenize(en)
        if max_len is not None and not (0 < len(s) <= max_len and 0 < len(t) <= max_len):
            continue
        out.append((src_vocab.encode(s, eos=False) or [PAD], tgt_vocab.encode(t)))
    return out


def pad(seqs: Sequence[list[int]], device: torch.device | str | None = None) -> Tensor:
    """Right-pad id lists with PAD: (B, longest)."""
    longest = max(len(s) for s in seqs)
    return torch.tensor([s + [PAD] * (longest - len(s)) for s in seqs], device=device)


def batches(
    examples: Sequence[Example],
    batch_size: int,
    rng: random.Random | None = None,
    device: torch.device | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """(src (B, S), tgt (B, T)) batches of similar-length pairs; shuffled if rng is given.

    The pairs are sorted by source length within chunks of 50 batches, so a batch holds
    sentences of similar length and little padding, while the chunks keep some randomness.
    """
    order = list(range(len(examples)))
    if rng is not None:
        rng.shuffle(order)
    chunk = batch_size * 50
    groups = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(examples[i][0]))
        groups += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    if rng is not None:
        rng.shuffle(groups)
    for group in groups:
        yield (
            pad([examples[i][0] for i in group], device),
            pad([examples[i][1] for i in group], device),
        )


def collate_pairs(examples: Sequence[Example]) -> dict[str, Tensor]:
    """Teacher forcing: src (B, S); tgt_in (B, T) = <bos> y1 .. y_{T-1}; tgt_out = y1 .. <eos>."""
    src = pad([s for s, _ in examples])  # (B, S)
    tgt = pad([[BOS, *t] for _, t in examples])  # (B, T + 1)
    return {"src": src, "tgt_in": tgt[:, :-1], "tgt_out": tgt[:, 1:]}
