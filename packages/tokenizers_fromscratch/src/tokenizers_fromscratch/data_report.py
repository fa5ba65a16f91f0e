"""`uv run --package tokenizers_fromscratch data-report`: the shared data report in characters.

The units every tokenizer of this stage starts from: a character tokenizer trained on the
training split knows exactly its characters, so the unknown rate is the share of an evaluation
split's characters it has never seen (BPE and WordPiece start from these too; byte-level BPE
alone has none unknown).
"""

from collections.abc import Sequence

from shared.data_report import StageData, Tokens, Vocabulary, characters, data_report_command


def tokens(field: str, train_texts: Sequence[str]) -> Tokens:
    return Vocabulary("characters", characters, train_texts,
                      note="unknown: a character the training split never has")  # fmt: skip


def data_report(argv: list[str]) -> None:
    data_report_command(StageData("tokenizers_fromscratch", "tinyshakespeare", tokens), argv)
