"""What every RNN-era attention shares: score the keys, softmax, average the values.

    scores  = score(query, W_k keys)                    (B, T, S)   the one line that differs
    a       = softmax over the unmasked keys            (B, T, S)
    context = a @ values                                (B, T, Dv)

`ScoredAttention.forward` is that recipe; a subclass writes `score` (and `project_keys`, the
part of the score that depends on the keys alone, so decoding computes it once per source
sentence). additive.py (Bahdanau) and multiplicative.py (Luong) are the two subclasses here;
the transformer's scaled dot-product attention is the same recipe again, with projections on
both sides and many heads (sdpa.py, multihead.py).

Masks use SDPA's convention: `mask` is True where a key takes part, e.g. (B, S) marking the
real (not padding) source tokens, or (B, T, S).
"""

from torch import Tensor, nn

from attention.softmax import masked_softmax


class ScoredAttention(nn.Module):
    """Attention defined by its score function; subclasses implement `score`."""

    def project_keys(self, keys: Tensor) -> Tensor:
        """(B, S, Dk) -> (B, S, K): the decoder-independent half of the score, computed once."""
        return keys

    def score(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        """query (B, T, Dq), projected keys (B, S, K) -> scores (B, T, S), before the softmax."""
        raise NotImplementedError

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor | None = None,
        mask: Tensor | None = None,
        projected_keys: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """query (B, Dq) or (B, T, Dq); keys (B, S, Dk); values (B, S, Dv), default the keys.

        Returns the context (B, [T,] Dv) and the weights (B, [T,] S).
        """
        single = query.dim() == 2
        if single:
            query = query.unsqueeze(1)  # (B, 1, Dq)
        values = keys if values is None else values
        pk = self.project_keys(keys) if projected_keys is None else projected_keys  # (B, S, K)
        scores = self.score(query, pk)  # (B, T, S)
        if mask is not None and mask.dim() == 2:
            mask = mask.unsqueeze(1)  # (B, 1, S)
        weights = masked_softmax(scores, mask)  # (B, T, S)
        context = weights @ values  # (B, T, Dv)
        if single:
            return context.squeeze(1), weights.squeeze(1)  # (B, Dv), (B, S)
        return context, weights
