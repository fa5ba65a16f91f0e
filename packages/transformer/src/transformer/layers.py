"""One encoder layer and one decoder layer, with torch's constructor and forward arguments.

An encoder layer is two sublayers, each wrapped in a residual connection and a normalization:

    x: (B, T, d_model)
    x = x + dropout(SelfAttention(norm1(x)))          pre-norm (norm_first=True)
    x = x + dropout(FeedForward(norm2(x)))

    x = norm1(x + dropout(SelfAttention(x)))          post-norm (norm_first=False, the paper's)
    x = norm2(x + dropout(FeedForward(x)))

A decoder layer has three: masked self-attention over the target so far, cross-attention whose
queries come from the target and keys/values from the encoder's output ("memory"), then the FFN.

Why residuals: the output is x plus a correction, so the gradient reaches early layers through
the identity path undiminished, and a freshly initialised layer starts close to doing nothing
instead of scrambling its input. Why normalize: the sum keeps growing with depth; normalizing
keeps every sublayer's input at unit scale. Post-norm (the original) normalizes the stream
itself and needs a learning-rate warmup to train deep stacks; pre-norm leaves the stream alone
and normalizes only what each sublayer reads, which trains stably without one (Xiong et al.
2020), at the cost of a final norm after the last layer.

Masks follow torch's `nn.Transformer*Layer`: `src_mask`/`tgt_mask`/`memory_mask` are (L, S) or
(B * nhead, L, S), boolean True = do NOT attend, or float added to the scores; the
`*_key_padding_mask`s are (B, S), True at padding. `is_causal=True` without a mask builds the
causal mask (torch requires the mask as well; here it is optional).

Beyond torch: `activation` may also be "gelu_tanh" or "swiglu", `norm` may be "rmsnorm", and
`num_kv_heads` gives grouped-query attention. `from_torch` copies a torch layer's weights.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attention import MultiHeadAttention
from transformer.feedforward import FeedForward
from transformer.norms import LayerNorm, RMSNorm


def residual(
    x: Tensor,
    sublayer: Callable[[Tensor], Tensor],
    norm: nn.Module,
    dropout: nn.Module,
    norm_first: bool,
) -> Tensor:
    """One residual connection: pre-norm x + drop(f(norm(x))), or post-norm norm(x + drop(f(x)))."""
    if norm_first:
        return x + dropout(sublayer(norm(x)))  # (B, T, d_model)
    return norm(x + dropout(sublayer(x)))  # (B, T, d_model)


def _activation_name(activation: str | Callable[[Tensor], Tensor]) -> str:
    """torch accepts "relu", "gelu" or the functions themselves; we take the names."""
    if activation is F.relu or isinstance(activation, nn.ReLU):
        return "relu"
    if activation is F.gelu or (
        isinstance(activation, nn.GELU) and activation.approximate == "none"
    ):
        return "gelu"
    if isinstance(activation, str):
        return activation
    raise ValueError(f"activation must be relu, gelu, gelu_tanh or swiglu, got {activation!r}")


def make_norm(kind: str, d_model: int, eps: float, bias: bool, factory: dict) -> nn.Module:
    if kind == "layernorm":
        return LayerNorm(d_model, eps=eps, bias=bias, **factory)
    if kind == "rmsnorm":
        return RMSNorm(d_model, eps=eps, **factory)
    raise ValueError(f"norm must be 'layernorm' or 'rmsnorm', got {kind!r}")


def _to_batch_first(x: Tensor, batch_first: bool) -> Tensor:
    """(T, B, C) -> (B, T, C) when not batch_first; (T, C) -> (1, T, C) when unbatched."""
    if x.dim() == 2:
        return x.unsqueeze(0)  # (1, T, C)
    return x if batch_first else x.transpose(0, 1)  # (B, T, C)


def _from_batch_first(x: Tensor, like: Tensor, batch_first: bool) -> Tensor:
    if like.dim() == 2:
        return x.squeeze(0)  # (T, C)
    return x if batch_first else x.transpose(0, 1)  # (T, B, C) as the input was


def _unbatched_padding(mask: Tensor | None, x: Tensor) -> Tensor | None:
    return mask.unsqueeze(0) if mask is not None and x.dim() == 2 else mask  # (1, S)


class TransformerEncoderLayer(nn.Module):
    """Self-attention then feed-forward, each with a residual and a norm (torch's arguments)."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        norm: str = "layernorm",
        num_kv_heads: int | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.d_model, self.nhead = d_model, nhead
        self.batch_first, self.norm_first = batch_first, norm_first
        self.self_attn = MultiHeadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=True,
            num_kv_heads=num_kv_heads, **factory,
        )  # fmt: skip
        act = _activation_name(activation)
        self.ff = FeedForward(d_model, dim_feedforward, act, dropout, bias, **factory)
        self.norm1 = make_norm(norm, d_model, layer_norm_eps, bias, factory)
        self.norm2 = make_norm(norm, d_model, layer_norm_eps, bias, factory)
        self.dropout1 = nn.Dropout(dropout)  # on the attention's output, before the residual add
        self.dropout2 = nn.Dropout(dropout)  # on the FFN's output

    def _self_attention(
        self, x: Tensor, mask: Tensor | None, padding: Tensor | None, is_causal: bool
    ) -> Tensor:
        out, _ = self.self_attn(
            x, x, x, key_padding_mask=padding, need_weights=False, attn_mask=mask,
            is_causal=is_causal,
        )  # fmt: skip
        return out  # (B, T, d_model)

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        """src (B, T, d_model) (or (T, B, d_model) if not batch_first) -> same shape."""
        x = _to_batch_first(src, self.batch_first)  # (B, T, d_model)
        padding = _unbatched_padding(src_key_padding_mask, src)  # (B, T) True at padding
        x = residual(
            x, lambda h: self._self_attention(h, src_mask, padding, is_causal),
            self.norm1, self.dropout1, self.norm_first,
        )  # fmt: skip
        x = residual(x, self.ff, self.norm2, self.dropout2, self.norm_first)  # (B, T, d_model)
        return _from_batch_first(x, src, self.batch_first)

    @classmethod
    def from_torch(cls, module: nn.TransformerEncoderLayer) -> "TransformerEncoderLayer":
        """Ours with the torch layer's weights, settings and train/eval mode."""
        ref = module.linear1.weight
        ours = cls(
            module.linear1.in_features,
            module.self_attn.num_heads,
            dim_feedforward=module.linear1.out_features,
            dropout=module.dropout.p,
            activation=_torch_activation(module),
            layer_norm_eps=module.norm1.eps,
            batch_first=module.self_attn.batch_first,
            norm_first=module.norm_first,
            bias=module.linear1.bias is not None,
            device=ref.device,
            dtype=ref.dtype,
        )
        ours.self_attn = _copy_attention(module.self_attn)
        _copy_feedforward(ours.ff, module.linear1, module.linear2)
        ours.norm1 = LayerNorm.from_torch(module.norm1)
        ours.norm2 = LayerNorm.from_torch(module.norm2)
        return ours.train(module.training)


class TransformerDecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the memory, feed-forward (torch's arguments)."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        norm: str = "layernorm",
        num_kv_heads: int | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.d_model, self.nhead = d_model, nhead
        self.batch_first, self.norm_first = batch_first, norm_first
        attn = {"dropout": dropout, "bias": bias, "batch_first": True, "num_kv_heads": num_kv_heads}
        self.self_attn = MultiHeadAttention(d_model, nhead, **attn, **factory)
        self.cross_attn = MultiHeadAttention(
            d_model, nhead, **attn, **factory
        )  # torch: multihead_attn
        act = _activation_name(activation)
        self.ff = FeedForward(d_model, dim_feedforward, act, dropout, bias, **factory)
        self.norm1 = make_norm(norm, d_model, layer_norm_eps, bias, factory)
        self.norm2 = make_norm(norm, d_model, layer_norm_eps, bias, factory)
        self.norm3 = make_norm(norm, d_model, layer_norm_eps, bias, factory)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """tgt (B, T, d_model), memory (B, S, d_model) -> (B, T, d_model)."""
        x = _to_batch_first(tgt, self.batch_first)  # (B, T, d_model)
        mem = _to_batch_first(memory, self.batch_first)  # (B, S, d_model)
        tgt_pad = _unbatched_padding(tgt_key_padding_mask, tgt)  # (B, T)
        mem_pad = _unbatched_padding(memory_key_padding_mask, memory)  # (B, S)

        def self_attention(h: Tensor) -> Tensor:
            out, _ = self.self_attn(
                h, h, h, key_padding_mask=tgt_pad, need_weights=False, attn_mask=tgt_mask,
                is_causal=tgt_is_causal,
            )  # fmt: skip
            return out  # (B, T, d_model)

        def cross_attention(h: Tensor) -> Tensor:
            out, _ = self.cross_attn(
                h, mem, mem, key_padding_mask=mem_pad, need_weights=False, attn_mask=memory_mask,
                is_causal=memory_is_causal,
            )  # fmt: skip
            return out  # (B, T, d_model): queries from the target, keys and values from memory

        x = residual(x, self_attention, self.norm1, self.dropout1, self.norm_first)
        x = residual(x, cross_attention, self.norm2, self.dropout2, self.norm_first)
        x = residual(x, self.ff, self.norm3, self.dropout3, self.norm_first)  # (B, T, d_model)
        return _from_batch_first(x, tgt, self.batch_first)

    def forward_step(
        self,
        x: Tensor,
        past: tuple[Tensor, Tensor] | None,
        memory_kv: tuple[Tensor, Tensor],
        self_mask: Tensor,
        memory_mask: Tensor | None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The newest target position only, with a KV cache: what `forward` computes for it.

        x (B, 1, d_model), batch first; `past` the self-attention's projected keys and values of
        the earlier positions, two (B, h_kv, t, d) or None at the first; `memory_kv` the cross-
        attention's projected memory, two (B, h_kv, S, d), computed once per sentence. Masks in
        SDPA's convention (True = attend): self_mask (B, 1, 1, t + 1), memory_mask (B, 1, 1, S).
        No causal mask is needed: the one query may see every cached key. Returns the output
        (B, 1, d_model) and the keys and values with this position's appended, (B, h_kv, t+1, d).
        """
        cached: list[tuple[Tensor, Tensor]] = []

        def self_attention(h: Tensor) -> Tensor:
            q = self.self_attn.project_query(h)  # (B, h, 1, d)
            k, v = self.self_attn.project_key_value(h, h)  # (B, h_kv, 1, d) each
            if past is not None:
                k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)  # (B, h_kv, t+1, d)
            cached.append((k, v))
            return self.self_attn.attend(q, k, v, attn_mask=self_mask)[0]  # (B, 1, d_model)

        def cross_attention(h: Tensor) -> Tensor:
            q = self.cross_attn.project_query(h)  # (B, h, 1, d)
            return self.cross_attn.attend(q, *memory_kv, attn_mask=memory_mask)[0]  # (B, 1, d)

        x = residual(x, self_attention, self.norm1, self.dropout1, self.norm_first)
        x = residual(x, cross_attention, self.norm2, self.dropout2, self.norm_first)
        x = residual(x, self.ff, self.norm3, self.dropout3, self.norm_first)  # (B, 1, d_model)
        return x, cached[0]

    @classmethod
    def from_torch(cls, module: nn.TransformerDecoderLayer) -> "TransformerDecoderLayer":
        ref = module.linear1.weight
        ours = cls(
            module.linear1.in_features,
            module.self_attn.num_heads,
            dim_feedforward=module.linear1.out_features,
            dropout=module.dropout.p,
            activation=_torch_activation(module),
            layer_norm_eps=module.norm1.eps,
            batch_first=module.self_attn.batch_first,
            norm_first=module.norm_first,
            bias=module.linear1.bias is not None,
            device=ref.device,
            dtype=ref.dtype,
        )
        ours.self_attn = _copy_attention(module.self_attn)
        ours.cross_attn = _copy_attention(module.multihead_attn)
        _copy_feedforward(ours.ff, module.linear1, module.linear2)
        ours.norm1 = LayerNorm.from_torch(module.norm1)
        ours.norm2 = LayerNorm.from_torch(module.norm2)
        ours.norm3 = LayerNorm.from_torch(module.norm3)
        return ours.train(module.training)


# ----------------------------------------------------------------------------------------------
# Copying torch's weights


def _torch_activation(module: nn.Module) -> str:
    """torch layers record relu as 1 and gelu as 2 in `activation_relu_or_gelu`."""
    code = getattr(module, "activation_relu_or_gelu", 0)
    if code == 1:
        return "relu"
    if code == 2:
        return "gelu"
    return _activation_name(module.activation)


def _copy_attention(module: nn.MultiheadAttention) -> MultiHeadAttention:
    attn = MultiHeadAttention.from_torch(module)
    attn.batch_first = True  # our layers hand it (B, T, C) whatever the layer's batch_first
    return attn


@torch.no_grad()
def _copy_feedforward(ff: FeedForward, linear1: nn.Linear, linear2: nn.Linear) -> None:
    ff.fc_in.load_state_dict(linear1.state_dict())
    ff.fc_out.load_state_dict(linear2.state_dict())
