"""`uv run --package attention data-report`: the shared data report in the translator's words.

The RNN translator reads Multi30k's captions as `attention.vocab.tokenize`'s words (case kept,
punctuation apart) and keeps the words seen at least twice in training (`--min_freq 2`), so the
unknown rate is the share of an evaluation split's words that become <unk>: about 1-2% of
running words on Multi30k, the price of a word vocabulary that subwords (stage 6) remove.
"""

from collections.abc import Sequence

from attention.vocab import tokenize
from shared.data_report import StageData, Tokens, Vocabulary, data_report_command


def tokens(field: str, train_texts: Sequence[str]) -> Tokens:
    return Vocabulary("words (attention.vocab.tokenize)", tokenize, train_texts, min_freq=2)


def data_report(argv: list[str]) -> None:
    data_report_command(StageData("attention", "multi30k", tokens), argv)
