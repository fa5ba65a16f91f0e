"""Stage 9: T5, a text-to-text encoder-decoder with relative positions and span corruption.

from t5 import T5, T5Config, generate, span_corruption
from t5.hf import from_hf, to_hf
"""

from t5.cache import T5Cache
from t5.generate import generate
from t5.model import (
    T5,
    T5Config,
    relative_position_bucket,
    seq2seq_loss,
    shift_right,
)
from t5.span_corruption import random_spans_noise_mask, span_corruption

__all__ = [
    "T5",
    "T5Cache",
    "T5Config",
    "generate",
    "random_spans_noise_mask",
    "relative_position_bucket",
    "seq2seq_loss",
    "shift_right",
    "span_corruption",
]
