"""A decoder-only transformer language model, GPT-2 style or Llama style by configuration.

    idx (B, T) token ids
      -> tok_emb                            (B, T, C)   one learned vector per token id
      -> + pos_emb        (GPT-2 only)      (B, T, C)   one learned vector per position
      -> n_layer x Block:                   (B, T, C)
            x = x + attn(norm1(x))              causal self-attention (RoPE inside, Llama)
            x = x + mlp(norm2(x))               GELU MLP (GPT-2) or SwiGLU (Llama)
      -> norm_f                             (B, T, C)
      -> lm_head                            (B, T, vocab)  scores for the next token

The two families differ only in parts, each switched by a field of `GPTConfig`:

    field        GPT-2                          modern (Llama)
    pos          "learned" absolute positions   "rope": q and k rotated inside attention
    norm         "layernorm" (mean and scale)   "rmsnorm" (scale only)
    activation   "gelu_tanh" MLP, 4x wide       "swiglu", about 8/3 x wide, three matrices
    bias         True                           False
    n_kv_head    = n_head                       < n_head: grouped-query attention
    tie_embeddings  True (lm_head = tok_emb)    either

Every part comes from an earlier stage: the norms, FeedForward and the positional embeddings
from `transformer`, attention from `attention.scaled_dot_product_attention` (the fused kernel by
default; `GPT(cfg, fused_attention=False)` runs the naive equations, tested equal: a choice of
kernel made at run time, not part of the config saved with the weights). Parameter names follow
transformers' Llama (`q_proj`, `k_proj`, `v_proj`, `o_proj`) so that `gpt.hf` maps weights one to
one. What this leaves out: dropout on the attention weights during generation, sliding-window
attention, mixture-of-experts, and RoPE scaling (long-context Llama 3 variants).
"""

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attention import scaled_dot_product_attention
from gpt.kv_cache import KVCache
from shared.config import option
from transformer import FeedForward, LayerNorm, LearnedPositionalEmbedding, RMSNorm, RotaryEmbedding

# The two families' parts; a config's `variant` fills in those it does not set itself.
VARIANTS: dict[str, dict[str, Any]] = {
    "gpt2": dict(pos="learned", norm="layernorm", activation="gelu_tanh", bias=True),
    "modern": dict(pos="rope", norm="rmsnorm", activation="swiglu", bias=False),
}


@dataclass
class GPTConfig:
    """The network, described once: the model reads it, checkpoints save it, and `gpt train`
    takes it as its `--model.*` options (the help lines below are those options' help)."""

    variant: Literal["gpt2", "modern"] = option(
        "gpt2",
        "the preset for the parts left unset: gpt2 (learned positions, LayerNorm, GELU, biases) "
        "or modern (RoPE, RMSNorm, SwiGLU, no biases)",
    )
    vocab_size: int = option(65, "token ids (gpt train sets it from the tokenizer)", ge=1)
    block_size: int = option(256, "context length in tokens (and GPT-2's position rows)", ge=1)
    n_layer: int = option(4, "transformer blocks", ge=1)
    n_head: int = option(4, "query heads per attention layer", ge=1)
    n_kv_head: int | None = option(
        None, "key/value heads (default: n_head; fewer: grouped-query attention)", ge=1
    )
    n_embd: int = option(128, "C, the width of the residual stream", ge=1)
    head_dim: int | None = option(None, "width of a head (default: n_embd / n_head)", ge=1)
    mlp_hidden: int | None = option(
        None, "MLP width (default: 4x, or about 8/3x rounded up to 32 for swiglu)", ge=1
    )
    pos: Literal["learned", "rope"] | None = option(
        None, "positions: learned and added, or rotary inside attention (default: the variant's)"
    )
    norm: Literal["layernorm", "rmsnorm"] | None = option(None, "default: the variant's")
    norm_eps: float = option(1e-5, "the norms' epsilon (GPT-2: 1e-5; Llama: 1e-6 or 1e-5)", gt=0)
    activation: Literal["gelu_tanh", "gelu", "relu", "swiglu"] | None = option(
        None, "the MLP's activation (default: the variant's)"
    )
    bias: bool | None = option(None, "biases in linear layers and norms (default: the variant's)")
    tie_embeddings: bool = option(
        True,
        "share the input embedding with the output layer (with BPE and weight decay 0.3 it "
        "trains better tied; with --tokenizer=char untied)",
    )
    rope_theta: float = option(10000.0, "RoPE base: larger turns slower, reaches further", gt=0)
    dropout: float = option(
        0.0, "on embeddings, attention weights and residual branches (0 suits short runs)",
        ge=0, lt=1,
    )  # fmt: skip

    def __post_init__(self) -> None:
        for name, value in VARIANTS[self.variant].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.head_dim is None:
            if self.n_embd % self.n_head:
                raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
            self.head_dim = self.n_embd // self.n_head
        if self.n_head % self.n_kv_head:
            raise ValueError(
                f"n_head {self.n_head} must be a multiple of n_kv_head {self.n_kv_head}"
            )
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {self.head_dim}")
        if self.mlp_hidden is None:
            if self.activation == "swiglu":  # Llama: 2/3 of 4x keeps the parameter count
                self.mlp_hidden = 32 * math.ceil(8 * self.n_embd / 3 / 32)
            else:
                self.mlp_hidden = 4 * self.n_embd
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def gpt2(cls, **overrides: Any) -> "GPTConfig":
        """GPT-2's block: learned positions, LayerNorm, GELU, biases, tied embeddings."""
        return cls(**{"variant": "gpt2", **overrides})

    @classmethod
    def modern(cls, **overrides: Any) -> "GPTConfig":
        """Llama's block: RoPE, RMSNorm, SwiGLU, no biases (grouped-query via n_kv_head)."""
        return cls(**{"variant": "modern", **overrides})


def make_norm(cfg: GPTConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.n_embd, eps=cfg.norm_eps)
    return LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)


class CausalSelfAttention(nn.Module):
    """Multi-head (or grouped-query) self-attention in which token t sees tokens 0..t only."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        q_dim, kv_dim = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
        self.q_proj = nn.Linear(cfg.n_embd, q_dim, bias=cfg.bias)
        self.k_proj = nn.Linear(cfg.n_embd, kv_dim, bias=cfg.bias)
        self.v_proj = nn.Linear(cfg.n_embd, kv_dim, bias=cfg.bias)
        self.o_proj = nn.Linear(q_dim, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.fused = True  # torch's fused kernel; False: the naive equations (GPT sets it)

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor] | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
        mask: Tensor | None = None,
    ) -> Tensor:
        """x (B, T, C) -> (B, T, C). `rope`: the (cos, sin) angles of this forward's positions
        (RoPE models only; computed once per forward, not per layer). `mask` (B or 1, 1, T, S)
        bool, True = may attend; None means plain causal (or, for a single new token after a
        cache, everything)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, h, T, d)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B,hkv,T,d)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B,hkv,T,d)
        if rope is not None:  # q and k rotated by each token's position
            q, k = RotaryEmbedding.rotate_by(q, *rope), RotaryEmbedding.rotate_by(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, h_kv, S, d): the cached tokens, then these
        y = scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=mask is None and T > 1,  # T == 1: the one new token sees every key
            enable_gqa=self.n_kv_head != self.n_head,
            fused=self.fused,
        )  # (B, h, T, d)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)  # (B, T, h * d)
        return self.o_proj(y)  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm1 = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = make_norm(cfg)
        self.mlp = FeedForward(cfg.n_embd, cfg.mlp_hidden, cfg.activation, 0.0, cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, rope=None, cache=None, layer=0, mask=None) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), rope, cache, layer, mask))
        return x + self.drop(self.mlp(self.norm2(x)))  # (B, T, C)


class GPT(nn.Module):
    """`GPT(cfg)(idx) -> logits (B, T, vocab)`; see the module docstring for the path."""

    def __init__(self, cfg: GPTConfig, fused_attention: bool = True) -> None:
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = (
            LearnedPositionalEmbedding(cfg.block_size, cfg.n_embd) if cfg.pos == "learned" else None
        )
        self.rotary = (
            RotaryEmbedding(cfg.head_dim, cfg.block_size, cfg.rope_theta)
            if cfg.pos == "rope"
            else None
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight  # one (vocab, C) matrix, two uses
        self.reset_parameters()
        self.use_fused_attention(fused_attention)

    def use_fused_attention(self, fused: bool) -> "GPT":
        """Attend with torch's fused kernel (True) or the naive equations (False): the same
        math, at different speeds (on a CPU in bf16 the naive one trains faster at this size)."""
        for block in self.blocks:
            block.attn.fused = fused
        return self

    def reset_parameters(self) -> None:
        """GPT-2's initialisation: N(0, 0.02) everywhere, zero biases, and the projections that
        write into the residual stream scaled by 1/sqrt(2 * n_layer), so that the stream's
        variance does not grow with depth (each block adds two such terms)."""
        for name, p in self.named_parameters():
            if p.dim() < 2:
                nn.init.ones_(p) if "norm" in name else nn.init.zeros_(p)
            elif name.endswith(("o_proj.weight", "fc_out.weight", "down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * self.config.n_layer))
            else:
                nn.init.normal_(p, std=0.02)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Parameters, each shared tensor counted once; `non_embedding` leaves out the
        embedding tables (what scaling laws count, and what the FLOPs estimate uses)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() already skips the tie
        if non_embedding:
            n -= self.tok_emb.weight.numel()
            if self.pos_emb is not None:
                n -= self.pos_emb.weight.numel()
        return n

    def forward(
        self,
        idx: Tensor,
        cache: KVCache | None = None,
        positions: Tensor | None = None,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        """idx (B, T) -> logits (B, T, vocab).

        cache: a KVCache; the new tokens are appended to it and attend to everything in it.
        positions: (T,) or (B, T) position of each token (default: cache.length + 0..T-1);
            left-padded batches pass their own so each row starts at 0.
        attention_mask: (B, S) with S = cached + T tokens, 1 for real tokens, 0 for padding;
            or a ready boolean mask (B, 1, T, S), True = may attend (`SlotCache`'s rows, padded
            on the right, need one: the rule below would let a short row see the last column).
        """
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if positions is None:
            positions = torch.arange(past, past + T, device=idx.device)  # (T,)
            last = past + T - 1
        else:
            last = int(positions.max())
        x = self.tok_emb(idx)  # (B, T, C)
        if self.pos_emb is not None:  # RoPE computes angles for any position; a table cannot
            if last >= self.config.block_size:
                raise ValueError(
                    f"Cannot forward sequence of length {last + 1}, block size is only "
                    f"{self.config.block_size}"
                )
            x = x + self.pos_emb.weight[positions]  # (B, T, C) + (T, C) or (B, T, C)
        x = self.drop(x)
        mask = self._mask(T, past, attention_mask, idx.device)  # (B or 1, 1, T, S) or None
        rope = self.rotary.cos_sin(positions, last) if self.rotary is not None else None
        for i, block in enumerate(self.blocks):
            x = block(x, rope, cache, i, mask)  # (B, T, C)
        if cache is not None:
            cache.advance(T)
        return self.lm_head(self.norm_f(x))  # (B, T, vocab)

    @staticmethod
    def _mask(T: int, past: int, attention_mask: Tensor | None, device) -> Tensor | None:
        """The boolean attention mask, or None when plain causal attention will do.

        Query i (at overall index past + i) may see key j when j <= past + i (causal) and key j
        is not padding. A padding query would then see no key at all; it may see itself, which
        keeps its (unused) output finite.
        """
        if attention_mask is None and (past == 0 or T == 1):
            return None  # is_causal=True (T > 1) or no mask at all (one new token)
        if attention_mask is not None and attention_mask.dim() == 4:
            return attention_mask.bool()  # (B, 1, T, S) given whole
        S = past + T
        rows = torch.arange(past, S, device=device).unsqueeze(1)  # (T, 1)
        cols = torch.arange(S, device=device).unsqueeze(0)  # (1, S)
        mask = (cols <= rows).view(1, 1, T, S)  # (1, 1, T, S) causal, aligned to the last key
        if attention_mask is not None:
            if attention_mask.shape[-1] != S:
                raise ValueError(
                    f"attention_mask covers {attention_mask.shape[-1]} tokens, expected {S} "
                    f"({past} cached + {T} new)"
                )
            keys = attention_mask.bool().view(-1, 1, 1, S)  # (B, 1, 1, S)
            mask = mask & (keys | (cols == rows).view(1, 1, T, S))  # (B, 1, T, S)
        return mask

    def new_cache(self, max_len: int | None = None) -> KVCache:
        """An empty KVCache for up to `max_len` tokens (default: the block size)."""
        return KVCache(self.config.n_layer, max_len or self.config.block_size)


def lm_loss(logits: Tensor, targets: Tensor, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy of next-token prediction: logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=ignore_index
    )
