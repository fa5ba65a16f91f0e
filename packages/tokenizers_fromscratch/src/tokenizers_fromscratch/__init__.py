"""Stage 6: tokenizers from scratch, exact against the `tokenizers` and `sentencepiece` libraries.

    from tokenizers_fromscratch import ByteLevelBPETokenizer, WordPieceTokenizer, load_tokenizer

    bpe = ByteLevelBPETokenizer.from_files("vocab.json", "merges.txt")     # GPT-2 style
    bert = WordPieceTokenizer.from_vocab_file("vocab.txt", lowercase=True)  # BERT uncased
    t5 = UnigramTokenizer.from_sentencepiece("spiece.model")              # T5 style
    ids = bpe.encode("Hello world"); bpe.decode(ids)

Every tokenizer shares the interface of `base.Tokenizer`; see the README for the guide.
"""

from tokenizers_fromscratch.added import AddedTokensTokenizer
from tokenizers_fromscratch.base import Tokenizer, TokenizerError, load_tokenizer
from tokenizers_fromscratch.bpe import GPT2_PATTERN, ByteLevelBPETokenizer, bytes_to_unicode
from tokenizers_fromscratch.char import CharTokenizer
from tokenizers_fromscratch.spm import SentencePieceTokenizer
from tokenizers_fromscratch.unigram import UnigramTokenizer
from tokenizers_fromscratch.wordpiece import WordPieceTokenizer

__all__ = [
    "GPT2_PATTERN",
    "AddedTokensTokenizer",
    "ByteLevelBPETokenizer",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "TokenizerError",
    "UnigramTokenizer",
    "WordPieceTokenizer",
    "bytes_to_unicode",
    "load_tokenizer",
]
