"""Tokens added to a trained tokenizer keep every old id and encode, decode and save whole."""

import pytest

from tokenizers_fromscratch import (
    AddedTokensTokenizer,
    ByteLevelBPETokenizer,
    CharTokenizer,
    TokenizerError,
    load_tokenizer,
)

TEXT = "To be, or not to be: that is the question.\n"
SPECIALS = ["<|user|>", "<|assistant|>", "<|end|>"]


def test_old_ids_stay_and_new_ones_follow_them():
    base = CharTokenizer.train([TEXT])
    tok = AddedTokensTokenizer(base, SPECIALS, chars="0123456789")
    assert tok.id_to_str[: base.vocab_size] == base.id_to_str
    assert tok.encode(TEXT) == base.encode(TEXT)
    assert tok.vocab_size == base.vocab_size + 3 + 10
    assert tok.token_to_id("<|user|>") == base.vocab_size
    assert tok.token_to_id("0") == base.vocab_size + 3


def test_specials_match_whole_and_new_characters_mix_with_old_ones():
    tok = AddedTokensTokenizer(CharTokenizer.train([TEXT]), SPECIALS, chars="0123456789+")
    text = "<|user|>to be 12 + 30<|end|><|assistant|>42<|end|>"
    ids = tok.encode(text)
    assert ids[0] == tok.token_to_id("<|user|>") and ids[-1] == tok.token_to_id("<|end|>")
    assert len(ids) == 4 + len("to be 12 + 30") + len("42")
    assert tok.decode(ids) == text


def test_characters_already_known_or_repeated_are_not_added_twice():
    base = CharTokenizer.train([TEXT])
    tok = AddedTokensTokenizer(base, ["<|end|>", "<|end|>"], chars="aa1")
    assert tok.added_special == ["<|end|>"] and tok.added_chars == ["1"]


def test_save_and_load_give_the_same_ids(tmp_path):
    tok = AddedTokensTokenizer(CharTokenizer.train([TEXT]), SPECIALS, chars="0123456789")
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    text = "<|user|>7 to 8<|end|>"
    assert isinstance(again, AddedTokensTokenizer)
    assert again.encode(text) == tok.encode(text) and again.id_to_str == tok.id_to_str


def test_specials_go_on_a_bpe_tokenizer_but_characters_do_not():
    bpe = ByteLevelBPETokenizer.train([TEXT * 20], vocab_size=300)
    tok = AddedTokensTokenizer(bpe, SPECIALS)
    assert tok.encode("<|user|>to be") == [tok.token_to_id("<|user|>"), *bpe.encode("to be")]
    with pytest.raises(TokenizerError, match="add characters to a char tokenizer only"):
        AddedTokensTokenizer(bpe, SPECIALS, chars="€")
