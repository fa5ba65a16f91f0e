"""`uv run --package gpt data-report`: the shared data report in gpt's tokens.

`gpt train` trains a byte-level BPE tokenizer for the run (`gpt.data.make_tokenizer`, 2,048
tokens, on the first megabyte of the text); this report trains the same one on the training
split, so the token lengths are those a run would see. Byte-level BPE spells any text with its
256 byte tokens, so nothing is ever unknown: the unknown rate is 0 by construction, and the
report says why rather than leaving a reader to wonder.
"""

from collections.abc import Sequence

from shared.data_report import StageData, data_report_command


class ByteBPETokens:
    """The pieces of gpt's byte-level BPE, trained on the training texts."""

    def __init__(self, train_texts: Sequence[str]) -> None:
        from gpt.data import make_tokenizer
        from gpt.train import TrainConfig

        vocab_size = TrainConfig().bpe_vocab_size  # gpt train's default
        self.tok = make_tokenizer("bpe", "\n".join(train_texts), vocab_size)
        self.name = f"byte-level BPE trained on train ({self.tok.vocab_size:,})"
        self.note = "unknown: none can be; byte-level BPE spells any text with its 256 bytes"

    def tokenize(self, text: str) -> list[str]:
        return [self.tok.id_to_str[i] for i in self.tok.encode(text)]

    def is_unknown(self, token: str) -> bool:
        return False


def tokens(field: str, train_texts: Sequence[str]) -> ByteBPETokens:
    return ByteBPETokens(train_texts)


def data_report(argv: list[str]) -> None:
    data_report_command(StageData("gpt", "tinyshakespeare", tokens), argv)
