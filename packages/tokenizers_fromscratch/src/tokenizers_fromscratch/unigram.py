"""Unigram, the SentencePiece tokenizer: the most probable segmentation, found by Viterbi.

A unigram model gives every piece a log-probability (its *score*) and assumes pieces are
independent, so a segmentation's score is the sum of its pieces' scores. Among the exponentially
many ways to cut "▁unbelievable" into vocabulary pieces, `encode` returns the best one, with
dynamic programming: `best[j]` is the best score of any segmentation of the first j characters,
`best[j] = max over pieces s[i:j] of best[i] + score(s[i:j])`, and the argmax links trace the
winner back. That is O(length x longest piece) lookups.

Before the search the text is normalized the SentencePiece way (`sp_model.normalize`): rules
such as NFKC, spaces collapsed, and every space written as "▁" (with one put before the first
word), so pieces carry their word boundary and decoding is just "▁" -> " ".

A character no piece covers becomes `<unk>` (runs of them one `<unk>`), scored 10 below the
worst piece so it is used only when nothing else fits; with byte fallback it becomes its UTF-8
bytes `<0xE2><0x82><0xAC>` instead, so nothing is lost.

    tok = UnigramTokenizer.from_sentencepiece("m.model")    # ids equal to the sentencepiece
    tok.encode("Hello world")                              # library's, piece for piece
    tok = UnigramTokenizer.train(lines, vocab_size=4096)    # EM with pruning (unigram_train)

What this leaves out: sampling (subword regularization), n-best lists, BPE-type .model files
(use `SentencePieceTokenizer` for those) and `treat_whitespace_as_suffix`.
"""

from __future__ import annotations

import base64
from array import array
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers_fromscratch.base import Tokenizer, TokenizerError
from tokenizers_fromscratch.sp_model import (
    BYTE,
    CONTROL,
    NORMAL,
    SPACE,
    UNKNOWN,
    UNUSED,
    USER_DEFINED,
    CharsMap,
    normalize,
    parse_model,
)

UNK_PENALTY = 10.0  # sentencepiece's kUnkPenalty
FLT_MIN = 1.1754943508222875e-38  # sentencepiece starts its max score here
DEFAULT_NORMALIZER = {
    "name": "nfkc",  # our own models: Python's NFKC; models read from sentencepiece keep theirs
    "charsmap": None,
    "add_dummy_prefix": True,
    "remove_extra_whitespaces": True,
    "escape_whitespaces": True,
}


def byte_piece(b: int) -> str:
    return f"<0x{b:02X}>"


class UnigramTokenizer(Tokenizer):
    kind = "unigram"
    match_special_in_text = False  # like sentencepiece: "</s>" in the text is just text

    def __init__(
        self,
        pieces: Sequence[tuple[str, float, int]],
        unk_id: int = 0,
        byte_fallback: bool = False,
        normalizer: dict[str, Any] | None = None,
        suffix_tokens: Sequence[str] | None = None,
        prefix_tokens: Sequence[str] = (),
    ):
        """`pieces[i] = (piece, score, type)` with sentencepiece's types (sp_model.NORMAL, ...).

        `encode(..., add_special_tokens=True)` appends "</s>" by default when it is a control
        piece (the T5 convention).
        """
        self.pieces = [(p, float(s), int(t)) for p, s, t in pieces]
        names = [p for p, _, _ in self.pieces]
        if not 0 <= unk_id < len(names) or self.pieces[unk_id][2] != UNKNOWN:
            raise TokenizerError(f"unk_id {unk_id} is not an unknown-type piece of this model")
        specials = [p for p, _, t in self.pieces if t in (CONTROL, UNKNOWN)]
        if suffix_tokens is None:
            suffix_tokens = ["</s>"] if "</s>" in specials else []
        self._init_vocab(names, specials, prefix_tokens, suffix_tokens)
        self.unk_id = unk_id
        self.byte_fallback = byte_fallback
        self.normalizer = {**DEFAULT_NORMALIZER, **(normalizer or {})}
        charsmap = self.normalizer["charsmap"]
        self._charsmap = CharsMap(
            base64.b64decode(charsmap) if charsmap else b"",
            nfkc=self.normalizer["name"] in ("nfkc", "nmt_nfkc"),
        )

        normal_scores = [s for _, s, t in self.pieces if t == NORMAL]
        self.min_score = min(normal_scores, default=0.0)
        max_score = max([FLT_MIN, *normal_scores])
        self._unk_score = self.min_score - UNK_PENALTY
        # pieces the lattice may use: normal ones and user-defined ones (with a bonus that makes
        # them always win); control, unknown, byte and unused pieces never match text
        self._match: dict[str, tuple[int, float]] = {}
        for i, (piece, score, kind) in enumerate(self.pieces):
            if kind == NORMAL:
                self._match[piece] = (i, score)
            elif kind == USER_DEFINED:
                self._match[piece] = (i, len(piece.encode("utf-8")) * max_score - 0.1)
        self._max_len = max((len(p) for p in self._match), default=1)
        self._byte_ids: list[int] = []
        if byte_fallback:
            try:
                self._byte_ids = [self.str_to_id[byte_piece(b)] for b in range(256)]
            except KeyError:
                raise TokenizerError(
                    "byte_fallback needs the 256 pieces <0x00>..<0xFF> in the vocabulary"
                ) from None
        self._byte_value = {i: b for b, i in enumerate(self._byte_ids)}

    # ------------------------------------------------------------------------------------------
    # Encoding

    def normalize(self, text: str) -> str:
        spec = self.normalizer
        return normalize(
            text,
            self._charsmap,
            spec["add_dummy_prefix"],
            spec["remove_extra_whitespaces"],
            spec["escape_whitespaces"],
        )

    def viterbi(self, text: str) -> list[tuple[int, int, int]]:
        """The best segmentation of normalized `text` as (piece id, start, end) triples.

        Ties go to the candidate found first (starts in order, then shorter pieces first), and
        only a strictly better score replaces it: sentencepiece's EncodeOptimized order. Path
        scores are kept in single precision (an `array("f")`), as sentencepiece's floats are,
        so that near-ties break the same way.
        """
        n = len(text)
        best = array("f", bytes(4 * (n + 1)))  # best[j]: score of the best path to position j
        start_of = [-1] * (n + 1)  # where the last piece of that path starts
        id_of = [0] * (n + 1)
        match, unk_score, max_len = self._match, self._unk_score, self._max_len
        candidate = array("f", [0.0])  # rounds each sum to float32
        for i in range(n):
            base = best[i]
            single = False
            for j in range(i + 1, min(n, i + max_len) + 1):
                found = match.get(text[i:j])
                if found is None:
                    continue
                candidate[0] = base + found[1]
                if start_of[j] == -1 or candidate[0] > best[j]:
                    best[j], start_of[j], id_of[j] = candidate[0], i, found[0]
                single = single or j == i + 1
            if not single:  # nothing covers this character: an <unk> node
                candidate[0] = base + unk_score
                if start_of[i + 1] == -1 or candidate[0] > best[i + 1]:
                    best[i + 1], start_of[i + 1], id_of[i + 1] = candidate[0], i, self.unk_id
        path = []
        j = n
        while j > 0:
            path.append((id_of[j], start_of[j], j))
            j = start_of[j]
        return path[::-1]

    def _encode_ordinary(self, text: str) -> list[int]:
        normalized = self.normalize(text)
        ids: list[int] = []
        previous_unk = False
        for piece_id, start, end in self.viterbi(normalized):
            is_unk = piece_id == self.unk_id
            if is_unk and self.byte_fallback:
                ids.extend(self._byte_ids[b] for b in normalized[start:end].encode("utf-8"))
            elif not (is_unk and previous_unk):  # a run of unknown characters is one <unk>
                ids.append(piece_id)
            previous_unk = is_unk
        return ids

    # ------------------------------------------------------------------------------------------
    # Decoding

    def decode(self, ids: Sequence[int]) -> str:
        """Pieces joined, "▁" -> " ", the dummy-prefix space dropped; control pieces vanish,
        <unk> reads " ⁇ ", runs of byte pieces become their UTF-8 text."""
        self._check_ids(ids)
        strip_first = (
            self.normalizer["add_dummy_prefix"] or self.normalizer["remove_extra_whitespaces"]
        )
        out: list[str] = []
        pending = bytearray()
        for i in ids:
            if i in self._byte_value:
                pending.append(self._byte_value[i])
                continue
            if pending:
                out.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
            piece, _, kind = self.pieces[i]
            if kind in (CONTROL, UNUSED):
                continue
            if kind == UNKNOWN:
                out.append(" \u2047 ")
                continue
            if strip_first and not out and piece.startswith(SPACE):
                piece = piece[1:]
            out.append(piece.replace(SPACE, " "))
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)

    def token_text(self, id: int) -> str:
        piece, _, kind = self.pieces[id] if 0 <= id < len(self.pieces) else ("", 0, 0)
        if kind in (NORMAL, USER_DEFINED):
            return piece.replace(SPACE, " ")
        return self.id_to_token(id)

    # ------------------------------------------------------------------------------------------
    # Training and files

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        byte_fallback: bool = False,
        max_piece_length: int = 16,
        progress: Callable[[str], None] | None = None,
    ) -> UnigramTokenizer:
        """EM with pruning, as sentencepiece trains; see `unigram_train` for the algorithm.

        The vocabulary starts with <unk>, <s>, </s> (ids 0, 1, 2), then the 256 byte pieces
        when `byte_fallback`, then the learned pieces by descending score.
        """
        from tokenizers_fromscratch.unigram_train import train_unigram

        meta: list[tuple[str, float, int]] = [
            ("<unk>", 0.0, UNKNOWN),
            ("<s>", 0.0, CONTROL),
            ("</s>", 0.0, CONTROL),
        ]
        if byte_fallback:
            meta += [(byte_piece(b), 0.0, BYTE) for b in range(256)]
        charsmap = CharsMap(nfkc=True)
        learned = train_unigram(
            (normalize(t, charsmap) for t in texts),
            vocab_size - len(meta),
            max_piece_length=max_piece_length,
            progress=progress,
        )
        pieces = meta + [(p, s, NORMAL) for p, s in learned]
        return cls(pieces, unk_id=0, byte_fallback=byte_fallback)

    @classmethod
    def from_sentencepiece(cls, model_file: str | Path) -> UnigramTokenizer:
        """Read a unigram .model file written by the `sentencepiece` library."""
        try:
            data = Path(model_file).read_bytes()
        except OSError as error:
            raise TokenizerError(f"cannot read sentencepiece model {model_file}: {error}") from None
        model = parse_model(data)
        if model.model_type != 1:
            kind = {2: "BPE", 3: "word", 4: "char"}.get(model.model_type, str(model.model_type))
            raise TokenizerError(
                f"{model_file} is a {kind} sentencepiece model, not unigram; load it with "
                f"SentencePieceTokenizer(model_file)"
            )
        normalizer = {
            "name": model.normalizer_name,
            "charsmap": base64.b64encode(model.charsmap).decode("ascii") or None,
            "add_dummy_prefix": model.add_dummy_prefix,
            "remove_extra_whitespaces": model.remove_extra_whitespaces,
            "escape_whitespaces": model.escape_whitespaces,
        }
        eos = model.pieces[model.eos_id][0] if 0 <= model.eos_id < len(model.pieces) else None
        return cls(
            model.pieces,
            unk_id=model.unk_id,
            byte_fallback=model.byte_fallback,
            normalizer=normalizer,
            suffix_tokens=[eos] if eos is not None else [],
        )

    def _to_json(self) -> dict[str, Any]:
        return {
            "unk_id": self.unk_id,
            "byte_fallback": self.byte_fallback,
            "normalizer": self.normalizer,
            "pieces": [[p, s, t] for p, s, t in self.pieces],
        }

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> UnigramTokenizer:
        return cls(
            [(p, s, t) for p, s, t in data["pieces"]],
            unk_id=data["unk_id"],
            byte_fallback=data["byte_fallback"],
            normalizer=data["normalizer"],
            suffix_tokens=data["suffix_tokens"],
            prefix_tokens=data["prefix_tokens"],
        )
