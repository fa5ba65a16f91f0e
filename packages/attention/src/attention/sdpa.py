"""Scaled dot-product attention: each query takes a weighted average of the values.

    scores  = q @ k^T * scale            (..., L, E) @ (..., E, S) -> (..., L, S)
    weights = softmax(scores + mask)     each row sums to 1 over the S keys
    out     = weights @ v                (..., L, S) @ (..., S, Ev) -> (..., L, Ev)

Why `scale = 1/sqrt(E)`: if the entries of q and k are independent with mean 0 and variance 1, a
dot product of length E has variance E. Without the scale, scores grow like sqrt(E), the softmax
saturates to nearly one-hot, and its gradient (which is p * (1 - p)) all but vanishes. Dividing by
sqrt(E) keeps the scores at unit variance whatever the head size.

Masks follow `torch.nn.functional.scaled_dot_product_attention`:
  - a boolean mask says which keys take part: True = attend, False = masked out;
  - a float mask is added to the scores (0 to keep, -inf to remove, anything else to bias);
  - `is_causal=True` lets query i see keys 0..i only (the mask is aligned to the top left, like
    torch's; `causal_mask(L, S, offset=S - L)` gives the bottom-right one a KV cache needs).
A query whose keys are all masked gets the zero vector (see softmax.py), as torch's does.

Two versions, tested equal: `naive_scaled_dot_product_attention` spells the equations out and
returns the weights; `scaled_dot_product_attention` is what the models call: it uses torch's fused
kernel (one pass, no L x S matrix kept for backward) when the weights are not wanted, else the
naive one.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from attention.softmax import softmax


def causal_mask(L: int, S: int, device: torch.device | None = None, offset: int = 0) -> Tensor:
    """Boolean (L, S) mask, True where query i may see key j: j <= i + offset.

    offset 0 is torch's `is_causal`; offset S - L suits L new queries after S - L cached keys.
    """
    rows = torch.arange(L, device=device).unsqueeze(1)  # (L, 1)
    cols = torch.arange(S, device=device).unsqueeze(0)  # (1, S)
    return cols <= rows + offset  # (L, S)


def dropout_weights(weights: Tensor, p: float) -> Tensor:
    """Zero each weight with probability p and scale the rest by 1/(1-p) (inverted dropout)."""
    if p <= 0.0:
        return weights
    if p >= 1.0:
        return torch.zeros_like(weights)
    keep = torch.rand_like(weights) >= p  # same shape as weights
    return weights * keep / (1.0 - p)


def _check(q: Tensor, k: Tensor, v: Tensor, enable_gqa: bool) -> None:
    if q.size(-1) != k.size(-1):
        raise ValueError(
            f"query and key need the same last dimension, got q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}"
        )
    if k.size(-2) != v.size(-2):
        raise ValueError(
            f"key and value need the same length (dim -2), got k {tuple(k.shape)}, "
            f"v {tuple(v.shape)}"
        )
    if enable_gqa and q.dim() >= 3 and q.size(-3) % k.size(-3) != 0:
        raise ValueError(
            f"enable_gqa needs the query heads ({q.size(-3)}) to be a multiple of the key/value "
            f"heads ({k.size(-3)})"
        )


def naive_scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> tuple[Tensor, Tensor]:
    """The equations above, one line each. Returns (output, attention weights).

    q (..., L, E), k (..., S, E), v (..., S, Ev) -> output (..., L, Ev), weights (..., L, S).
    With `enable_gqa`, q has H heads at dim -3 and k, v have H / g: each k/v head serves g
    query heads (grouped-query attention).
    """
    _check(q, k, v, enable_gqa)
    L, S = q.size(-2), k.size(-2)
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    if enable_gqa and k.size(-3) != q.size(-3):
        groups = q.size(-3) // k.size(-3)
        k = k.repeat_interleave(groups, dim=-3)  # (..., H, S, E)
        v = v.repeat_interleave(groups, dim=-3)  # (..., H, S, Ev)
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., L, S)
    if is_causal:
        if attn_mask is not None:
            raise ValueError("pass either attn_mask or is_causal=True, not both (as in torch)")
        attn_mask = causal_mask(L, S, device=q.device)  # (L, S)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))  # (..., L, S)
        else:
            scores = scores + attn_mask  # (..., L, S)
    weights = softmax(scores, dim=-1)  # (..., L, S), rows sum to 1 (or 0 if fully masked)
    weights = dropout_weights(weights, dropout_p)
    return weights @ v, weights  # (..., L, Ev), (..., L, S)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    return_weights: bool = False,
    fused: bool | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Attention with torch's signature and mask semantics; `(out, weights)` if return_weights.

    `fused=None` picks torch's fused kernel unless the weights are wanted; `fused=False` forces
    the naive version (the one to read), `fused=True` with `return_weights` is an error.
    """
    if fused is None:
        fused = not return_weights
    if fused and return_weights:
        raise ValueError("the fused kernel does not expose the weights; use fused=False")
    if not fused:
        out, weights = naive_scaled_dot_product_attention(
            q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa
        )
        return (out, weights) if return_weights else out
    _check(q, k, v, enable_gqa)
    if is_causal and attn_mask is not None:
        raise ValueError("pass either attn_mask or is_causal=True, not both (as in torch)")
    if attn_mask is not None and attn_mask.dtype != torch.bool and attn_mask.dtype != q.dtype:
        attn_mask = attn_mask.to(q.dtype)  # e.g. a float32 mask with bf16 activations
    return F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=attn_mask,
        dropout_p=dropout_p,
        is_causal=is_causal,
        scale=scale,
        enable_gqa=enable_gqa,
    )
