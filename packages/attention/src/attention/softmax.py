"""Softmax that never overflows and never turns a fully masked row into NaN.

    softmax(x)_i = exp(x_i) / sum_j exp(x_j)

Written literally, `exp(1000.0)` is `inf` and the row becomes `inf / inf = NaN`. Softmax does not
change when a constant is subtracted from every entry (the constant cancels between numerator and
denominator), so we subtract the row maximum first: every exponent is then <= 0 and every `exp`
lies in (0, 1].

Attention masks a position out by setting its score to `-inf`, so that `exp(-inf) = 0`. When a
whole row is masked (a padded query, or a causal mask that leaves nothing to look at), the
maximum is itself `-inf`, `x - max` is `-inf - (-inf) = NaN`, and torch's own `torch.softmax`
returns NaN. Here such a row comes out as zeros: it attends to nothing, so its output is the zero
vector, which is what `torch.nn.functional.scaled_dot_product_attention` returns too.

The maximum is detached: subtracting it changes nothing mathematically, so it carries no gradient,
and autograd need not differentiate through `amax`.
"""

import torch
from torch import Tensor


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) normalised along `dim`; rows that are entirely -inf give zeros instead of NaN."""
    row_max = x.detach().amax(dim=dim, keepdim=True)  # same shape as x, size 1 along dim
    # an all -inf row has max -inf; shift it by 0 instead so that exp(-inf) = 0, not NaN
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exp = torch.exp(x - row_max)  # every entry in [0, 1]
    total = exp.sum(dim=dim, keepdim=True)  # >= 1 unless the row was fully masked
    return exp / torch.where(total == 0, torch.ones_like(total), total)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """log(softmax(x)), computed as x - max - log(sum(exp(x - max))) so it stays finite.

    A fully masked row gives -inf everywhere (log 0); decoders never produce one.
    """
    row_max = x.detach().amax(dim=dim, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    shifted = x - row_max
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def masked_softmax(scores: Tensor, mask: Tensor | None, dim: int = -1) -> Tensor:
    """softmax over `dim` with the positions where `mask` is False removed (SDPA's convention:
    True = take part). `mask` broadcasts against `scores`, e.g. (B, 1, S) for (B, T, S)."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores, dim=dim)
