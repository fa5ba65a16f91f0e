"""`uv run --package t5 data-report`: the shared data report in t5's Unigram pieces.

`t5 finetune` trains a Unigram (SentencePiece) vocabulary of 8,000 pieces on its tasks' training
text (`t5.tokenizer.T5Tokenizer.train`); this report trains the same kind on up to 20,000 rows
of each text field's training split (about 2 s), so the token lengths are close to a run's. The
unknown rate is the share of <unk> pieces: characters the training text never showed the
vocabulary (character coverage is 1.0, so only characters absent from train).
"""

from collections.abc import Sequence

from shared.data_report import StageData, data_report_command

TRAIN_ROWS = 20_000  # rows to train the report's tokenizer on: enough for its pieces


class UnigramTokens:
    """The pieces of a T5 Unigram tokenizer trained on (up to 20,000) training texts."""

    def __init__(self, train_texts: Sequence[str]) -> None:
        from t5.finetune import FinetuneConfig
        from t5.tokenizer import T5Tokenizer

        step = max(1, len(train_texts) // TRAIN_ROWS)
        sample = [t for t in train_texts[::step] if t.strip()]
        vocab_size = FinetuneConfig().vocab_size  # t5 finetune's default
        self.base = T5Tokenizer.train(sample, vocab_size).base
        self.name = f"Unigram trained on train ({self.base.vocab_size:,} pieces)"
        self.note = "unknown: <unk>, a character the training rows never had"

    def tokenize(self, text: str) -> list[str]:
        return [self.base.id_to_str[i] for i in self.base.encode(text)]

    def is_unknown(self, token: str) -> bool:
        return token == "<unk>"


def tokens(field: str, train_texts: Sequence[str]) -> UnigramTokens:
    return UnigramTokens(train_texts)


def data_report(argv: list[str]) -> None:
    data_report_command(StageData("t5", "multi30k", tokens), argv)
