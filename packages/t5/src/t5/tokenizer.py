"""T5's vocabulary: a Unigram (SentencePiece) model trained from scratch, plus sentinels on top.

    tok = T5Tokenizer.train(texts, vocab_size=8000, num_sentinels=100)
    tok.encode("Zwei Hunde spielen.")          # [..., 1]: the pieces, then EOS
    tok.sentinel(0)                            # 7999: <extra_id_0>, the highest id
    tok.decode(ids)                            # "Zwei Hunde spielen." (pad, EOS dropped)
    tok.save(run.folder / "tokenizer"); T5Tokenizer.load(...)

T5's layout, kept here so that a model's ids read the same way as the real T5's:

    id 0              <pad>   also the decoder's start token
    id 1              </s>    EOS: every input and every target ends with it
    id 2              <unk>
    3 .. V-N-1        the learned pieces, best-scoring first
    V-N .. V-1        <extra_id_{N-1}> .. <extra_id_0>: sentinel i is V - 1 - i

Why sentinels at the top: the pieces' ids then do not depend on how many sentinels there are,
and the layout is T5's own, where <extra_id_0> is 32099, its tokenizer's highest id.

The pieces come from `tokenizers_fromscratch`: its SentencePiece wrapper (the library's C++
trainer and encoder: about 10 s to train on Multi30k and SST-2 together, 122k sentences, and
1.4 s to encode them, on a busy 2-core Xeon) by default, or its from-scratch
`UnigramTokenizer` trainer (`trainer="unigram"`: the same EM and pruning in pure Python over
every distinct word, and a Python Viterbi to encode; not timed on this text, expect minutes
rather than seconds). Both are Unigram models, so the choice changes speed, not the kind of
segmentation.

Sentinels written in the text (`"a <extra_id_0> c"`) are read as the sentinel ids, so a user
can ask a pretrained model to fill a gap, and `decode` writes them back the same way.
"""

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from shared.atomic import write_text_atomic
from shared.errors import UsageError
from tokenizers_fromscratch.base import Tokenizer, load_tokenizer
from tokenizers_fromscratch.sp_model import CONTROL, NORMAL, UNKNOWN
from tokenizers_fromscratch.spm import SentencePieceTokenizer
from tokenizers_fromscratch.unigram import UnigramTokenizer

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
SENTINEL_RE = re.compile(r"<extra_id_(\d+)>")
META_FILE = "t5_tokenizer.json"


class T5Tokenizer:
    """A Unigram model with T5's special ids (pad 0, EOS 1, unk 2) and N sentinels on top."""

    pad_id, eos_id, unk_id = PAD_ID, EOS_ID, UNK_ID

    def __init__(self, base: Tokenizer, num_sentinels: int) -> None:
        ids = {"pad": _id(base, "<pad>"), "eos": _id(base, "</s>"), "unk": _id(base, "<unk>")}
        if ids != {"pad": PAD_ID, "eos": EOS_ID, "unk": UNK_ID}:
            raise UsageError(
                f"a T5 tokenizer needs <pad>=0, </s>=1, <unk>=2; this one has {ids}: train it "
                "with T5Tokenizer.train"
            )
        if num_sentinels < 0:
            raise UsageError(f"num_sentinels must be >= 0, got {num_sentinels}")
        self.base, self.num_sentinels = base, num_sentinels
        self.pieces = base.vocab_size  # ids below this are the base model's

    @property
    def vocab_size(self) -> int:
        return self.pieces + self.num_sentinels

    def sentinel(self, i: int) -> int:
        """The id of <extra_id_i>: counting down from the top, as in T5."""
        if not 0 <= i < self.num_sentinels:
            raise UsageError(f"<extra_id_{i}> does not exist: this tokenizer has "
                             f"{self.num_sentinels} sentinels")  # fmt: skip
        return self.vocab_size - 1 - i

    @property
    def sentinel_ids(self) -> list[int]:
        return [self.vocab_size - 1 - i for i in range(self.num_sentinels)]

    def require_sentinels(self, spans: int) -> list[int]:
        """The sentinel ids span corruption will use; a clear error when there are too few."""
        require_sentinels(self.num_sentinels, spans)
        return self.sentinel_ids

    # ------------------------------------------------------------------------------------------
    # Text <-> ids

    def encode(self, text: str, eos: bool = True) -> list[int]:
        """Ids of `text`, sentinels written as <extra_id_i> included, EOS last (with `eos`)."""
        ids: list[int] = []
        start = 0
        for match in SENTINEL_RE.finditer(text):
            i = int(match.group(1))
            if i < self.num_sentinels:
                ids += (
                    self.base.encode(text[start : match.start()]) if match.start() > start else []
                )
                ids.append(self.sentinel(i))
                start = match.end()
        ids += self.base.encode(text[start:]) if start < len(text) else []
        return [*ids, EOS_ID] if eos else ids

    def encode_batch(self, texts: Sequence[str], eos: bool = True) -> list[list[int]]:
        """Many texts; the library's batch encoder where no sentinel is written in them."""
        if any("<extra_id_" in t for t in texts):
            return [self.encode(t, eos) for t in texts]
        rows = self.base.encode_batch(list(texts))
        return [[*r, EOS_ID] for r in rows] if eos else [list(r) for r in rows]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`: padding and EOS dropped, sentinels written <extra_id_i>."""
        out, run = [], []
        for i in ids:
            i = int(i)
            if i >= self.pieces:
                if run:
                    out.append(self.base.decode(run))
                    run = []
                out.append(f"<extra_id_{self.vocab_size - 1 - i}>")
            elif i not in (PAD_ID, EOS_ID):
                run.append(i)
        if run:
            out.append(self.base.decode(run))
        return " ".join(s.strip() for s in out if s.strip())

    # ------------------------------------------------------------------------------------------
    # Training and files

    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        vocab_size: int,
        num_sentinels: int = 100,
        trainer: str = "sentencepiece",
    ) -> "T5Tokenizer":
        """Learn `vocab_size - num_sentinels` Unigram pieces (pad, EOS, unk included)."""
        pieces = vocab_size - num_sentinels
        if pieces < 16:
            raise UsageError(f"--vocab_size {vocab_size} leaves {pieces} pieces after "
                             f"{num_sentinels} sentinels; raise it")  # fmt: skip
        if not texts:
            raise UsageError("no text to train the tokenizer on")
        if trainer == "sentencepiece":
            base: Tokenizer = SentencePieceTokenizer.train(
                texts, pieces, model_type="unigram", pad_id=PAD_ID, eos_id=EOS_ID,
                unk_id=UNK_ID, bos_id=-1, hard_vocab_limit=False, character_coverage=1.0,
                input_sentence_size=200_000, shuffle_input_sentence=True,
            )  # fmt: skip
        elif trainer == "unigram":
            base = _train_unigram(texts, pieces)
        else:
            raise UsageError(f"unknown tokenizer trainer {trainer!r}: sentencepiece or unigram")
        return cls(base, num_sentinels)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        self.base.save(folder)
        write_text_atomic(folder / META_FILE, json.dumps({"num_sentinels": self.num_sentinels}))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "T5Tokenizer":
        folder = Path(folder)
        if not (folder / META_FILE).is_file():
            raise UsageError(f"{folder} holds no T5 tokenizer ({META_FILE} is missing)")
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        return cls(load_tokenizer(folder), int(meta["num_sentinels"]))

    def __repr__(self) -> str:
        return f"T5Tokenizer(pieces={self.pieces}, sentinels={self.num_sentinels})"


def require_sentinels(num_sentinels: int, spans: int) -> None:
    """Span corruption replaces each span by a sentinel: refuse a vocabulary with too few."""
    if num_sentinels == 0:
        raise UsageError(
            "span corruption needs sentinel tokens (<extra_id_0>, ...) but this tokenizer has "
            "none; train one with --num_sentinels 100 (T5's number)"
        )
    if num_sentinels < spans:
        raise UsageError(
            f"span corruption may need {spans} sentinels per row but this tokenizer has "
            f"{num_sentinels}; raise --num_sentinels or shorten --chunk_length"
        )


def _id(base: Tokenizer, token: str) -> int | None:
    return base.str_to_id.get(token)


def _train_unigram(texts: Sequence[str], pieces: int) -> UnigramTokenizer:
    """The from-scratch trainer, with T5's three special pieces in front instead of its own."""
    from tokenizers_fromscratch.sp_model import CharsMap, normalize
    from tokenizers_fromscratch.unigram_train import train_unigram

    charsmap = CharsMap(nfkc=True)
    learned = train_unigram((normalize(t, charsmap) for t in texts), pieces - 3)
    meta = [("<pad>", 0.0, CONTROL), ("</s>", 0.0, CONTROL), ("<unk>", 0.0, UNKNOWN)]
    return UnigramTokenizer(
        meta + [(p, s, NORMAL) for p, s in learned], unk_id=UNK_ID, suffix_tokens=[]
    )
