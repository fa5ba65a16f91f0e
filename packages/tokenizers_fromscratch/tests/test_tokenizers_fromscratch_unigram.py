"""Unigram against `sentencepiece`: a model trained in-process by the library, read by ours
without protobuf, must give the same pieces, ids and decoded text; plus our EM trainer."""

import io
import json
import math

import pytest
import sentencepiece as spm

from shared.datasets import build_pystdlib_corpus
from tokenizers_fromscratch import (
    SentencePieceTokenizer,
    TokenizerError,
    UnigramTokenizer,
    load_tokenizer,
)
from tokenizers_fromscratch.sp_model import parse_model
from tokenizers_fromscratch.unigram_train import digamma, split_words

EDGE = [
    "",
    " ",
    "   ",
    "  lead  and   trailing  spaces  ",
    "tab\there\nnew line\r\n",
    "Café naïve résumé ÄÖÜäöüß",
    "北京欢迎你 hello世界",
    "😀🥰 emoji 👍🏽",
    "a\x00b\x07c\x7f",
    "x" * 120,
    "!!!???...,,,",
    "ﬁligature ½ ① ＡＢＣ ｶﾀｶﾅ",
    "\u200bzero\u200dwidth\ufeff",
    "</s> <s> <unk> are plain text here",
    "\u3000ideographic\u00a0nbsp",
    "Ǆ ǅ ǆ ᾈ",
]


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    text = build_pystdlib_corpus(max_chars=400_000)
    lines = [line for line in text.splitlines() if line.strip()]
    german = [
        "Zwei junge Männer spielen Fußball auf einer grünen Wiese.",
        "Eine Frau mit einem roten Hut läuft über die Straße.",
    ] * 50
    return lines[:6000] + german, lines[6000:8000] + EDGE


def _train_sentencepiece(lines: list[str], **options) -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="unigram",
        minloglevel=2,
        num_threads=1,
        **options,
    )
    return model.getvalue()


@pytest.mark.parametrize("byte_fallback", [False, True])
def test_sentencepiece_model_gives_identical_pieces_ids_and_text(corpus, tmp_path, byte_fallback):
    proto = _train_sentencepiece(corpus[0], vocab_size=1000, byte_fallback=byte_fallback)
    (tmp_path / "m.model").write_bytes(proto)
    theirs = spm.SentencePieceProcessor(model_proto=proto)
    ours = UnigramTokenizer.from_sentencepiece(tmp_path / "m.model")
    assert ours.vocab_size == theirs.get_piece_size() == 1000
    assert ours.byte_fallback is byte_fallback
    held_out = corpus[1]
    for line, expected in zip(held_out, theirs.encode(held_out), strict=True):
        ids = ours.encode(line)
        assert ids == expected, line
        assert ours.tokens(line) == theirs.id_to_piece(expected), line
        assert ours.decode(ids) == theirs.decode(expected), line
    # unknown characters: one <unk> per run, or their bytes with byte fallback
    ids = ours.encode("ok 雪☃ ok")
    assert ids == theirs.encode("ok 雪☃ ok")
    assert (ours.unk_id in ids) is not byte_fallback


def test_save_load_keeps_the_sentencepiece_normalizer(corpus, tmp_path):
    proto = _train_sentencepiece(corpus[0][:3000], vocab_size=500)
    (tmp_path / "m.model").write_bytes(proto)
    ours = UnigramTokenizer.from_sentencepiece(tmp_path / "m.model")
    ours.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, UnigramTokenizer)
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert data["normalizer"]["name"] == "nmt_nfkc" and data["pieces"][0][0] == "<unk>"
    theirs = spm.SentencePieceProcessor(model_proto=proto)
    for line in corpus[1][:300]:
        assert again.encode(line) == theirs.encode(line)
    assert again.encode("hi", add_special_tokens=True)[-1] == again.token_to_id("</s>")


def test_the_library_wrapper_agrees_with_ours(corpus, tmp_path):
    wrapper = SentencePieceTokenizer.train(corpus[0][:3000], vocab_size=500)
    (tmp_path / "m.model").write_bytes(wrapper.model_proto)
    ours = UnigramTokenizer.from_sentencepiece(tmp_path / "m.model")
    lines = corpus[1][:300]
    assert wrapper.encode_batch(lines) == ours.encode_batch(lines)
    assert wrapper.id_to_str == ours.id_to_str
    wrapper.save(tmp_path / "saved")
    again = load_tokenizer(tmp_path / "saved")
    assert isinstance(again, SentencePieceTokenizer)
    assert again.encode(lines[0]) == wrapper.encode(lines[0])
    assert again.decode(again.encode("def f(x): return x")) == "def f(x): return x"


def test_a_bpe_model_is_refused_with_a_pointer_to_the_wrapper(corpus, tmp_path):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus[0][:2000]),
        model_writer=model,
        vocab_size=300,
        model_type="bpe",
        minloglevel=2,
    )
    (tmp_path / "bpe.model").write_bytes(model.getvalue())
    with pytest.raises(TokenizerError, match="SentencePieceTokenizer"):
        UnigramTokenizer.from_sentencepiece(tmp_path / "bpe.model")
    assert SentencePieceTokenizer.from_file(tmp_path / "bpe.model").vocab_size == 300
    (tmp_path / "junk.model").write_bytes(b"\x0a\xff\xff\xff")
    with pytest.raises(TokenizerError, match="sentencepiece model"):
        UnigramTokenizer.from_sentencepiece(tmp_path / "junk.model")
    assert parse_model(model.getvalue()).model_type == 2


@pytest.mark.parametrize("byte_fallback", [False, True])
def test_em_trainer_learns_a_usable_vocabulary(byte_fallback):
    lines = [
        "the cat sat on the mat",
        "the dog sat on the log",
        "a cat and a dog",
        "the mat and the log are on the floor",
        "cats and dogs",
    ] * 30
    size = 60 + (256 if byte_fallback else 0)
    tok = UnigramTokenizer.train(lines, vocab_size=size, byte_fallback=byte_fallback)
    assert tok.vocab_size <= size
    assert tok.id_to_str[:3] == ["<unk>", "<s>", "</s>"]
    assert "▁the" in tok.str_to_id and "▁cat" in tok.str_to_id
    assert tok.tokens("the cat") == ["▁the", "▁cat"]
    for line in lines[:5]:
        assert tok.decode(tok.encode(line)) == line
    scores = [s for _, s, t in tok.pieces if t == 1]
    assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)
    unseen = tok.encode("the €")
    if byte_fallback:
        assert tok.decode(unseen) == "the €" and tok.unk_id not in unseen
    else:
        assert tok.unk_id in unseen


def test_em_helpers():
    assert split_words("▁the▁cat") == ["▁the", "▁cat"]
    assert split_words("no▁prefix") == ["no", "▁prefix"]
    # digamma(1) = -Euler-Mascheroni; digamma(x + 1) = digamma(x) + 1/x
    assert digamma(1.0) == pytest.approx(-0.5772156649015329, abs=1e-12)
    assert digamma(3.5) == pytest.approx(digamma(2.5) + 1 / 2.5, abs=1e-12)
    assert digamma(1000.0) == pytest.approx(math.log(1000.0) - 1 / 2000, abs=1e-6)
