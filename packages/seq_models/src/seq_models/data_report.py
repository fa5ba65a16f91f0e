"""`uv run --package seq_models data-report`: the shared data report in characters.

The character LSTM reads one character a step, with a vocabulary of the characters its text
holds. A character the training text never has cannot be predicted or read, so the unknown
rate is the share of an evaluation split's characters absent from the training split.
"""

from collections.abc import Sequence

from shared.data_report import StageData, Tokens, Vocabulary, characters, data_report_command


def tokens(field: str, train_texts: Sequence[str]) -> Tokens:
    return Vocabulary("characters", characters, train_texts,
                      note="unknown: a character the training split never has")  # fmt: skip


def data_report(argv: list[str]) -> None:
    data_report_command(StageData("seq_models", "tinyshakespeare", tokens), argv)
