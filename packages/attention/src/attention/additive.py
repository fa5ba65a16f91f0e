"""Additive attention (Bahdanau, Cho and Bengio 2015): a small network scores each key.

    score(s, h_j) = v^T tanh(W_q s + W_k h_j)          s: decoder state, h_j: encoder output j
    a = softmax over j of score(s, h_j)                 (B, T, S)
    context = sum_j a_j h_j                             (B, T, Dv)

This was the first attention in neural translation: instead of squeezing the whole source
sentence into one vector, the decoder looks back at every encoder output and learns where to
look. Query and keys may have different sizes (each has its own projection), and the tanh makes
the score a learned, non-linear similarity; the price is a (B, T, S, A) tensor where dot-product
attention needs only (B, T, S). `W_k h_j` does not depend on the decoder, so `project_keys`
computes it once per source sentence and decoding step after step reuses it.

The softmax, the masking and the weighted average are shared with multiplicative attention in
scored.py; this file is the score. Masks use SDPA's convention: `mask` is True where a key takes
part, e.g. (B, S) marking the real (not padding) source tokens. Bahdanau's original decoder
scores the previous state s_{t-1} and feeds the context into the RNN; seq2seq.py uses Luong's
arrangement (score the current state, combine afterwards) with either this score or a
multiplicative one.
"""

import torch
from torch import Tensor, nn

from attention.scored import ScoredAttention


class AdditiveAttention(ScoredAttention):
    """Bahdanau's score; `forward` (context and weights) comes from ScoredAttention."""

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = query_dim if hidden_dim is None else hidden_dim
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)  # W_q
        self.key_proj = nn.Linear(key_dim, hidden_dim, bias=True)  # W_k (its bias serves both)
        self.v = nn.Linear(hidden_dim, 1, bias=False)  # v^T

    def project_keys(self, keys: Tensor) -> Tensor:
        """(B, S, Dk) -> (B, S, A): the decoder-independent half of the score, computed once."""
        return self.key_proj(keys)

    def score(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        """v^T tanh(W_q s + W_k h_j): query (B, T, Dq), projected keys (B, S, A) -> (B, T, S)."""
        pq = self.query_proj(query)  # (B, T, A)
        hidden = torch.tanh(pq.unsqueeze(2) + projected_keys.unsqueeze(1))  # (B, T, S, A)
        return self.v(hidden).squeeze(-1)  # (B, T, S)
