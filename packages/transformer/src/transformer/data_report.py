"""`uv run --package transformer data-report`: the shared data report in the stage's word tokens.

The classifier reads SST-2 as lower-cased words between spaces (`transformer.sst2.words`) with a
vocabulary of every word in the training split; the translator reads Multi30k's captions as
`attention.vocab.tokenize`'s words, case kept, with the words seen at least twice. So the
unknown rate is the share of an evaluation split's words that become <unk>: words the model
never saw. `--select_rows` draws the selection rows as `transformer train` does (its seed + 7919).
"""

from collections.abc import Sequence

from shared.data_report import StageData, Tokens, Vocabulary, data_report_command

TRANSLATION_FIELDS = ("de", "en")  # Multi30k's; any other field is read as the classifier does


def tokens(field: str, train_texts: Sequence[str]) -> Tokens:
    if field in TRANSLATION_FIELDS:  # the translator reads them as attention's does
        from attention.data_report import tokens as translation_tokens

        return translation_tokens(field, train_texts)
    from transformer.sst2 import words

    return Vocabulary("lower-cased words (transformer.sst2.words)", words, train_texts)


def data_report(argv: list[str]) -> None:
    data_report_command(StageData("transformer", "sst2", tokens, select_seed_offset=7919), argv)
