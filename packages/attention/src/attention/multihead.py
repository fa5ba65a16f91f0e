"""Multi-head attention, with grouped-query attention (GQA/MQA) through `num_kv_heads`.

One attention head compares queries and keys in a single E-dimensional space, so each query
forms one weighted average. Multi-head attention projects the inputs into h smaller spaces of
size d = E / h, attends in each independently (one head can follow syntax, another position),
concatenates the h results and mixes them with an output projection:

    Q = query @ Wq^T      (B, L, E)     -> split -> (B, h, L, d)
    K = key   @ Wk^T      (B, S, kdim)  -> split -> (B, h_kv, S, d)
    V = value @ Wv^T      (B, S, vdim)  -> split -> (B, h_kv, S, d)
    head_i = softmax(Q_i K_i^T / sqrt(d) + mask) V_i                 (B, h, L, d)
    out = concat(head_1..head_h) @ Wo^T                             (B, L, E)

Grouped-query attention (Ainslie et al. 2023) gives the keys and values fewer heads, h_kv, each
shared by h / h_kv query heads; multi-query attention is h_kv = 1. The output has the same shape
and the KV cache of a decoder shrinks by h / h_kv. With h_kv = h it is the usual attention.

The constructor and `forward` take torch's `nn.MultiheadAttention` arguments, including its mask
conventions, which are the opposite of SDPA's for booleans: in `key_padding_mask` and a boolean
`attn_mask`, True means "do NOT attend" (a padding position). `from_torch` copies a torch module's
weights, which is how the tests check us. Not supported: `add_bias_kv`, `add_zero_attn`.

For later stages (a transformer, a GPT with a KV cache) the steps are exposed on their own:
`project_query`, `project_key_value` and `attend`, which takes already projected
(B, heads, T, head_dim) tensors. A KV cache keeps the projected keys and values of earlier
tokens, concatenates the new ones along dim 2, and calls `attend(..., is_causal=True)`, whose
causal mask is aligned to the last key so that L new queries see all S - L cached keys.
"""

import torch
from torch import Tensor, nn

from attention.sdpa import causal_mask, naive_scaled_dot_product_attention
from attention.sdpa import scaled_dot_product_attention as sdpa


def _as_additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """torch MHA convention -> float mask: a boolean True (do not attend) becomes -inf."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            mask, float("-inf")
        )
    return mask.to(dtype)


def merge_masks(
    attn_mask: Tensor | None,
    key_padding_mask: Tensor | None,
    batch: int,
    num_heads: int,
    dtype: torch.dtype,
) -> Tensor | None:
    """Combine torch-MHA-style masks into one SDPA-style mask broadcastable to (B, h, L, S).

    attn_mask (L, S) or (B * h, L, S) and key_padding_mask (B, S) use torch MHA's convention
    (bool True = masked out, float = added). The result uses SDPA's: bool True = attend, float
    added. Two boolean masks stay boolean (cheaper); otherwise both become additive.
    """
    masks = []
    if attn_mask is not None:
        if attn_mask.dim() == 3:  # (B * h, L, S) -> (B, h, L, S)
            attn_mask = attn_mask.view(batch, num_heads, *attn_mask.shape[1:])
        masks.append(attn_mask)
    if key_padding_mask is not None:
        masks.append(key_padding_mask.view(batch, 1, 1, key_padding_mask.size(-1)))  # (B,1,1,S)
    if not masks:
        return None
    if all(m.dtype == torch.bool for m in masks):
        masked = masks[0] if len(masks) == 1 else masks[0] | masks[1]
        return ~masked  # True = attend
    total = _as_additive(masks[0], dtype)
    return total if len(masks) == 1 else total + _as_additive(masks[1], dtype)


class MultiHeadAttention(nn.Module):
    """`nn.MultiheadAttention` rebuilt from tensor operations, plus `num_kv_heads` for GQA."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        num_kv_heads: int | None = None,
    ) -> None:
        super().__init__()
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError(
                "add_bias_kv and add_zero_attn are not implemented; use torch.nn.MultiheadAttention"
            )
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_kv_heads < 1 or num_heads % num_kv_heads != 0:
            raise ValueError(
                f"num_heads {num_heads} must be a multiple of num_kv_heads {num_kv_heads}"
            )
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        kv_dim = num_kv_heads * self.head_dim  # smaller than embed_dim under GQA
        factory = {"device": device, "dtype": dtype}
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(self.kdim, kv_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(self.vdim, kv_dim, bias=bias, **factory)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's init: Xavier-uniform projections, zero biases."""
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(proj.weight)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)
        if self.out_proj.bias is not None:
            nn.init.zeros_(self.out_proj.bias)

    # ------------------------------------------------------------------------------------------
    # The lower-level path: project, then attend

    def project_query(self, query: Tensor) -> Tensor:
        """(B, L, E) -> (B, h, L, d)."""
        B, L, _ = query.shape
        q = self.q_proj(query)  # (B, L, E)
        return q.view(B, L, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, L, d)

    def project_key_value(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S, kdim), (B, S, vdim) -> two (B, h_kv, S, d) tensors (what a KV cache stores)."""
        B, S, _ = key.shape
        k = self.k_proj(key).view(B, S, self.num_kv_heads, self.head_dim)  # (B, S, h_kv, d)
        v = self.v_proj(value).view(B, S, self.num_kv_heads, self.head_dim)  # (B, S, h_kv, d)
        return k.transpose(1, 2), v.transpose(1, 2)  # (B, h_kv, S, d) each

    def attend(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        attn_mask: Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
        average_attn_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Attention over projected heads, then the output projection.

        q (B, h, L, d), k and v (B, h_kv, S, d); `attn_mask` in SDPA's convention (bool True =
        attend, float added), broadcastable to (B, h, L, S). `is_causal` masks key j for query i
        when j > i + (S - L): the newest L keys line up with the L queries, so this is torch's
        causal mask when L == S and the right one after a KV cache. Returns the output
        (B, L, E) and the weights ((B, L, S) averaged over heads, or (B, h, L, S)) or None.
        """
        B, _, L, _ = q.shape
        S = k.size(2)
        if is_causal and (attn_mask is not None or L != S or need_weights):
            causal = causal_mask(L, S, device=q.device, offset=S - L)  # (L, S)
            if attn_mask is None:
                attn_mask = causal
            elif attn_mask.dtype == torch.bool:
                attn_mask = attn_mask & causal
            else:
                attn_mask = attn_mask.masked_fill(~causal, float("-inf"))
            is_causal = False
        dropout_p = self.dropout if self.training else 0.0
        gqa = self.num_kv_heads != self.num_heads
        weights = None
        if need_weights:
            out, weights = naive_scaled_dot_product_attention(
                q, k, v, attn_mask, dropout_p, is_causal, enable_gqa=gqa
            )  # (B, h, L, d), (B, h, L, S)
            if average_attn_weights:
                weights = weights.mean(dim=1)  # (B, L, S)
        else:
            out = sdpa(q, k, v, attn_mask, dropout_p, is_causal, enable_gqa=gqa)  # (B, h, L, d)
        out = out.transpose(1, 2).reshape(B, L, self.embed_dim)  # (B, L, E)
        return self.out_proj(out), weights

    # ------------------------------------------------------------------------------------------
    # torch's interface

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """torch's conventions: (L, B, E) inputs unless batch_first, (L, E) unbatched.

        key_padding_mask (B, S) and attn_mask (L, S) or (B * h, L, S): bool True = do not attend,
        float = added. `is_causal` with an attn_mask is a hint that the mask is causal (it is
        used as given, as torch does); without one, the causal mask is built here (torch would
        raise). Returns (output like query, weights or None).
        """
        unbatched = query.dim() == 2
        if unbatched:  # (L, E) -> (1, L, E)
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)  # (1, S)
        elif not self.batch_first:  # (L, B, E) -> (B, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        if query.size(-1) != self.embed_dim:
            raise ValueError(
                f"query has {query.size(-1)} features, this attention expects {self.embed_dim}"
            )
        if key.size(-1) != self.kdim or value.size(-1) != self.vdim:
            raise ValueError(
                f"key/value have {key.size(-1)}/{value.size(-1)} features, "
                f"expected kdim {self.kdim} and vdim {self.vdim}"
            )
        B = query.size(0)
        mask = merge_masks(attn_mask, key_padding_mask, B, self.num_heads, query.dtype)
        q = self.project_query(query)  # (B, h, L, d)
        k, v = self.project_key_value(key, value)  # (B, h_kv, S, d) each
        causal = is_causal and attn_mask is None
        out, weights = self.attend(q, k, v, mask, causal, need_weights, average_attn_weights)
        if unbatched:
            out = out.squeeze(0)  # (L, E)
            weights = weights.squeeze(0) if weights is not None else None
        elif not self.batch_first:
            out = out.transpose(0, 1)  # (L, B, E)
        return out, weights

    # ------------------------------------------------------------------------------------------
    # Conversions

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> "MultiHeadAttention":
        """A copy of torch's module with the same weights (and dropout, batch_first, dims)."""
        if module.bias_k is not None or module.add_zero_attn:
            raise NotImplementedError("add_bias_kv and add_zero_attn are not implemented")
        ref = module.out_proj.weight
        ours = cls(
            module.embed_dim,
            module.num_heads,
            dropout=module.dropout,
            bias=module.in_proj_bias is not None,
            kdim=module.kdim,
            vdim=module.vdim,
            batch_first=module.batch_first,
            device=ref.device,
            dtype=ref.dtype,
        )
        with torch.no_grad():
            if module.in_proj_weight is not None:  # q, k, v stacked: (3E, E)
                wq, wk, wv = module.in_proj_weight.chunk(3)
            else:  # kdim or vdim differ from embed_dim: three separate matrices
                wq, wk, wv = module.q_proj_weight, module.k_proj_weight, module.v_proj_weight
            for proj, w in zip((ours.q_proj, ours.k_proj, ours.v_proj), (wq, wk, wv), strict=True):
                proj.weight.copy_(w)
            ours.out_proj.weight.copy_(module.out_proj.weight)
            if module.in_proj_bias is not None:
                for proj, b in zip(
                    (ours.q_proj, ours.k_proj, ours.v_proj),
                    module.in_proj_bias.chunk(3),
                    strict=True,
                ):
                    proj.bias.copy_(b)
                ours.out_proj.bias.copy_(module.out_proj.bias)
        return ours.train(module.training)

    def to_multi_head(self) -> "MultiHeadAttention":
        """The equivalent standard attention (num_kv_heads = num_heads): each k/v head repeated
        for the query heads that share it. What GQA computes, spelled out (used in tests)."""
        groups = self.num_heads // self.num_kv_heads
        ref = self.q_proj.weight
        full = MultiHeadAttention(
            self.embed_dim,
            self.num_heads,
            dropout=self.dropout,
            bias=self.q_proj.bias is not None,
            kdim=self.kdim,
            vdim=self.vdim,
            batch_first=self.batch_first,
            device=ref.device,
            dtype=ref.dtype,
        )
        with torch.no_grad():
            full.q_proj.load_state_dict(self.q_proj.state_dict())
            full.out_proj.load_state_dict(self.out_proj.state_dict())
            for src, dst in ((self.k_proj, full.k_proj), (self.v_proj, full.v_proj)):
                w = src.weight.view(self.num_kv_heads, self.head_dim, -1)  # (h_kv, d, in)
                dst.weight.copy_(w.repeat_interleave(groups, dim=0).reshape(self.embed_dim, -1))
                if src.bias is not None:
                    b = src.bias.view(self.num_kv_heads, self.head_dim)  # (h_kv, d)
                    dst.bias.copy_(b.repeat_interleave(groups, dim=0).reshape(-1))  # (E,)
        return full.train(self.training)

    def extra_repr(self) -> str:
        kv = f", num_kv_heads={self.num_kv_heads}" if self.num_kv_heads != self.num_heads else ""
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}{kv}, kdim={self.kdim}, "
            f"vdim={self.vdim}, dropout={self.dropout}, batch_first={self.batch_first}"
        )
