"""Stage 4: attention, from softmax to multi-head attention, and an RNN translator that uses it.

from attention import scaled_dot_product_attention, MultiHeadAttention
"""

from attention.additive import AdditiveAttention
from attention.multihead import MultiHeadAttention
from attention.multiplicative import MultiplicativeAttention
from attention.scored import ScoredAttention
from attention.sdpa import (
    causal_mask,
    naive_scaled_dot_product_attention,
    scaled_dot_product_attention,
)
from attention.softmax import log_softmax, masked_softmax, softmax

__all__ = [
    "AdditiveAttention",
    "MultiHeadAttention",
    "MultiplicativeAttention",
    "ScoredAttention",
    "causal_mask",
    "log_softmax",
    "masked_softmax",
    "naive_scaled_dot_product_attention",
    "scaled_dot_product_attention",
    "softmax",
]
