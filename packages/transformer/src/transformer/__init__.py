"""Stage 5: the transformer from its parts, a sentiment classifier and a translator.

    from transformer import TransformerEncoderLayer, Transformer, LayerNorm, RotaryEmbedding

Blocks (each tested against its torch twin): norms.py, feedforward.py, positions.py, layers.py,
model.py. Tasks: classifier.py + sst2.py (SST-2 sentiment), translator.py + decoding.py
(Multi30k German -> English), trained by the loop in loop.py; cli.py holds the commands.
"""

from transformer.classifier import ClassifierConfig, TransformerForSequenceClassification
from transformer.decoding import beam_search, greedy_decode
from transformer.feedforward import FeedForward
from transformer.layers import TransformerDecoderLayer, TransformerEncoderLayer, residual
from transformer.model import (
    Transformer,
    TransformerDecoder,
    TransformerEncoder,
    generate_square_subsequent_mask,
    padding_mask,
)
from transformer.norms import FusedLayerNorm, LayerNorm, RMSNorm
from transformer.positions import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    plot_sinusoidal,
    rotate_half,
    sinusoidal_table,
)
from transformer.translator import TransformerTranslator, TranslatorConfig

__all__ = [
    "ClassifierConfig",
    "FeedForward",
    "FusedLayerNorm",
    "LayerNorm",
    "LearnedPositionalEmbedding",
    "RMSNorm",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "TransformerForSequenceClassification",
    "TransformerTranslator",
    "TranslatorConfig",
    "beam_search",
    "generate_square_subsequent_mask",
    "greedy_decode",
    "padding_mask",
    "plot_sinusoidal",
    "residual",
    "rotate_half",
    "sinusoidal_table",
]
