"""From text to BERT's three input tensors, with the WordPiece tokenizer of stage 6.

    one sentence:   [CLS] a b c [SEP]               token_type_ids 0 0 0 0 0
    a pair:         [CLS] a b [SEP] x y z [SEP]     token_type_ids 0 0 0 0 1 1 1 1

A batch is padded to its longest row with [PAD] (id 0 in BERT's vocabularies), and
`attention_mask` says which positions are real (1) or padding (0). Over-long inputs are cut to
`max_length` the way transformers' "longest_first" does: one token at a time from the longer
sentence of a pair, so both keep as much as they can.

The folder layout is transformers': `vocab.txt` (one token a line; the line number is the id)
and `tokenizer_config.json` (whether to lower-case). A pretraining run saves the same two
files, so any of our runs or a downloaded checkpoint loads the same way.
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from shared.atomic import write_text_atomic
from shared.errors import UsageError
from tokenizers_fromscratch.wordpiece import WordPieceTokenizer


class BertTokenizer:
    """WordPiece plus BERT's framing: [CLS]/[SEP], segments, padding, truncation."""

    def __init__(self, wordpiece: WordPieceTokenizer) -> None:
        self.wordpiece = wordpiece
        missing = [t for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]") if t not in wordpiece.str_to_id]
        if missing:
            raise UsageError(f"the vocabulary lacks BERT's special tokens {', '.join(missing)}")
        ids = wordpiece.str_to_id
        self.pad_id, self.cls_id = ids["[PAD]"], ids["[CLS]"]
        self.sep_id, self.mask_id = ids["[SEP]"], ids["[MASK]"]
        self.special_ids = sorted(wordpiece.special_tokens.values())
        # True for "##" pieces: they continue the word before them (whole-word masking uses it)
        self.continues_word = torch.tensor(
            [t.startswith(wordpiece.continuing_prefix) for t in wordpiece.id_to_str]
        )

    @property
    def vocab_size(self) -> int:
        return self.wordpiece.vocab_size

    def encode(
        self, text: str, pair: str | None = None, max_length: int = 512
    ) -> tuple[list[int], list[int]]:
        """(input ids, token type ids) for one sentence or a pair, framed and cut to max_length."""
        first = self.wordpiece.encode(text)
        second = self.wordpiece.encode(pair) if pair is not None else None
        room = max_length - (3 if second is not None else 2)  # [CLS], [SEP] (and a second [SEP])
        if room < 1:
            raise UsageError(f"max_length {max_length} leaves no room for any token")
        if second is None:
            first = first[:room]
        else:
            while len(first) + len(second) > room:  # longest first, one token at a time
                (first if len(first) >= len(second) else second).pop()
        ids = [self.cls_id, *first, self.sep_id]
        segments = [0] * len(ids)
        if second is not None:
            ids += [*second, self.sep_id]
            segments += [1] * (len(second) + 1)
        return ids, segments

    def batch(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        max_length: int = 512,
    ) -> dict[str, Tensor]:
        """input_ids, token_type_ids and attention_mask, each (B, T), padded to the longest row."""
        rows = [
            self.encode(t, pairs[i] if pairs is not None else None, max_length)
            for i, t in enumerate(texts)
        ]
        return pad_rows(rows, self.pad_id)

    def decode(self, ids: Sequence[int]) -> str:
        return self.wordpiece.decode([i for i in ids if i != self.pad_id])

    # ------------------------------------------------------------------------------------------
    # Files

    @classmethod
    def from_folder(cls, folder: Path | str) -> "BertTokenizer":
        folder = Path(folder)
        vocab = folder / "vocab.txt"
        if not vocab.is_file():
            raise UsageError(f"{folder} has no vocab.txt (BERT's WordPiece vocabulary)")
        settings: dict[str, Any] = {}
        config = folder / "tokenizer_config.json"
        if config.is_file():
            settings = json.loads(config.read_text(encoding="utf-8"))
        lowercase = bool(settings.get("do_lower_case", True))
        strip_accents = settings.get("strip_accents")
        return cls(WordPieceTokenizer.from_vocab_file(vocab, lowercase, strip_accents))

    def save(self, folder: Path | str) -> Path:
        """vocab.txt and tokenizer_config.json, as transformers writes them (atomically)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.wordpiece.save_vocab_file(folder / "vocab.txt")
        settings = {"do_lower_case": self.wordpiece.lowercase,
                    "strip_accents": self.wordpiece.strip_accents,
                    "tokenizer_class": "BertTokenizer"}  # fmt: skip
        write_text_atomic(folder / "tokenizer_config.json", json.dumps(settings, indent=2) + "\n")
        return folder


def pad_rows(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Tensor]:
    """(ids, segments) rows of any lengths -> three (B, T) tensors, T the longest row."""
    longest = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)  # (B, T)
    token_type_ids = torch.zeros((len(rows), longest), dtype=torch.long)  # (B, T)
    for r, (ids, segments) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        token_type_ids[r, : len(segments)] = torch.tensor(segments)
    lengths = torch.tensor([len(ids) for ids, _ in rows])  # (B,)
    attention_mask = (torch.arange(longest) < lengths[:, None]).long()  # (B, T)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids,
            "attention_mask": attention_mask}  # fmt: skip
