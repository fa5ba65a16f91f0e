"""`uv run --package bert data-report`: the shared data report in bert's tokens.

bert reads text through WordPiece with the packaged MiniLM's vocabulary (BERT's uncased 30,522
pieces, what `finetune --init minilm` feeds the model), so the token lengths are what the model
sees and the unknown rate is the share of [UNK]: a word that no sequence of the vocabulary's
pieces spells (an emoji, a script the vocabulary lacks). `--select_rows 872` draws the
selection rows as `bert finetune` does, to see that they look like the dev set.
"""

from collections.abc import Sequence

from shared.data_report import StageData, data_report_command


class WordPieceTokens:
    """MiniLM's WordPiece pieces of a text; [UNK] is the unknown one."""

    def __init__(self) -> None:
        from bert.pretrained import minilm_folder
        from bert.tokenize import BertTokenizer

        self.wordpiece = BertTokenizer.from_folder(minilm_folder()).wordpiece
        self.name = f"WordPiece, MiniLM's vocabulary ({self.wordpiece.vocab_size:,})"
        self.note = "unknown: [UNK], a word no run of the vocabulary's pieces spells"

    def tokenize(self, text: str) -> list[str]:
        return [self.wordpiece.id_to_str[i] for i in self.wordpiece.encode(text)]

    def is_unknown(self, token: str) -> bool:
        return token == self.wordpiece.unk_token


def tokens(field: str, train_texts: Sequence[str]) -> WordPieceTokens:
    return WordPieceTokens()  # a fixed vocabulary: the training rows do not change it


def data_report(argv: list[str]) -> None:
    data_report_command(StageData("bert", "sst2", tokens), argv)
