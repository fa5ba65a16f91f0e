"""The `sentencepiece` library behind the same interface as our own tokenizers.

This is the reference twin of `UnigramTokenizer`, and the way to use SentencePiece models we do
not reimplement (BPE-type .model files, sampling). It adds nothing to the library: `encode` is
`SentencePieceProcessor.encode`, `decode` its `decode`, `train` its trainer run in memory.

    tok = SentencePieceTokenizer.from_file("m.model")
    tok = SentencePieceTokenizer.train(lines, vocab_size=4096, model_type="unigram")

`save(dir)` writes tokenizer.json with the serialized model inside (base64), so one file holds
everything; `UnigramTokenizer.from_sentencepiece` turns a unigram model into readable JSON.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sentencepiece

from tokenizers_fromscratch.base import Tokenizer, TokenizerError


class SentencePieceTokenizer(Tokenizer):
    kind = "sentencepiece"
    match_special_in_text = False  # the library decides what text matches (user symbols)

    def __init__(self, model_proto: bytes):
        """From the bytes of a .model file; see `from_file` for a path."""
        self.model_proto = bytes(model_proto)
        sp = sentencepiece.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(self.model_proto)
        except (RuntimeError, OSError) as error:
            raise TokenizerError(f"not a sentencepiece model: {error}") from None
        self._sp = sp
        names = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        specials = [p for i, p in enumerate(names) if sp.is_control(i) or sp.is_unknown(i)]
        eos = sp.eos_id()
        self._init_vocab(names, specials, (), [names[eos]] if 0 <= eos < len(names) else [])

    @classmethod
    def from_file(cls, model_file: str | Path) -> SentencePieceTokenizer:
        try:
            return cls(Path(model_file).read_bytes())
        except OSError as error:
            raise TokenizerError(f"cannot read sentencepiece model {model_file}: {error}") from None

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, model_type: str = "unigram", **options: Any
    ) -> SentencePieceTokenizer:
        """Train in memory; `options` go to `SentencePieceTrainer.train` (byte_fallback=True...)."""
        model = io.BytesIO()
        options.setdefault("minloglevel", 2)  # keep the library's log quiet
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            **options,
        )
        return cls(model.getvalue())

    def _encode_ordinary(self, text: str) -> list[int]:
        return self._sp.encode(text)

    def encode_batch(
        self, texts: Iterable[str], add_special_tokens: bool = False
    ) -> list[list[int]]:
        if add_special_tokens:
            return super().encode_batch(texts, add_special_tokens)
        return self._sp.encode(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        self._check_ids(ids)
        return self._sp.decode(list(ids))

    def token_text(self, id: int) -> str:
        return self.id_to_token(id).replace("\u2581", " ")

    def _to_json(self) -> dict[str, Any]:
        return {"model_proto_base64": base64.b64encode(self.model_proto).decode("ascii")}

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> SentencePieceTokenizer:
        return cls(base64.b64decode(data["model_proto_base64"]))
