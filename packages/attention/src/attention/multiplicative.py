"""Multiplicative attention (Luong, Pham and Manning 2015): the score is a (bilinear) product.

    dot:      score(s, h_j) = s . h_j                   needs Dq == Dk
    general:  score(s, h_j) = s^T W h_j                 W: (Dq, Dk), learned
    a = softmax over j of score(s, h_j)                 (B, T, S)
    context = sum_j a_j h_j                             (B, T, Dv)

Cheaper than additive attention: all the scores of a batch are one matrix product
(B, T, Dq) @ (B, Dq, S), no (B, T, S, A) tensor. `general` lets queries and keys live in
different spaces (e.g. a decoder state of size H against bidirectional encoder outputs of
size 2H); W h_j is computed once per sentence by `project_keys`. The transformer's scaled
dot-product attention (sdpa.py) is `dot` with learned projections on both sides and a
1/sqrt(d) scale; `scale=True` adds that scale here too (Luong's paper has none).

The softmax, the masking and the weighted average are shared with additive attention in
scored.py; this file is the score. Masks use SDPA's convention: True where a key takes part.
"""

import math
from typing import Literal

from torch import Tensor, nn

from attention.scored import ScoredAttention

Score = Literal["dot", "general"]


class MultiplicativeAttention(ScoredAttention):
    """Luong's scores; `forward` (context and weights) comes from ScoredAttention."""

    def __init__(
        self, query_dim: int, key_dim: int, score: Score = "general", scale: bool = False
    ) -> None:
        super().__init__()
        if score not in ("dot", "general"):
            raise ValueError(f"score must be 'dot' or 'general', got {score!r}")
        if score == "dot" and query_dim != key_dim:
            raise ValueError(
                f"dot attention needs query_dim == key_dim, got {query_dim} and {key_dim}; "
                "use score='general'"
            )
        self.kind = score  # "dot" or "general"
        self.scale = 1.0 / math.sqrt(query_dim) if scale else 1.0
        # W maps keys into the query space: s^T W h = s . (W h)
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False) if score == "general" else None

    def project_keys(self, keys: Tensor) -> Tensor:
        """(B, S, Dk) -> (B, S, Dq): W h_j for `general`, the keys themselves for `dot`."""
        return keys if self.key_proj is None else self.key_proj(keys)

    def score(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        """s . (W h_j): query (B, T, Dq), projected keys (B, S, Dq) -> (B, T, S)."""
        return (query @ projected_keys.transpose(1, 2)) * self.scale  # (B, T, S)
