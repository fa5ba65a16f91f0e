"""Where a token is: sinusoidal, learned and rotary (RoPE) position information.

Attention is blind to order: permute the keys and values together and every output is the same.
So a transformer tells each token where it stands, in one of three ways:

- Sinusoidal (Vaswani et al. 2017), added to the embeddings. Dimension pair i oscillates with
  wavelength 2*pi * 10000^(2i/d): the first pairs tick fast like a clock's second hand, the last
  ones barely move over thousands of positions. PE[p + k] is a fixed rotation of PE[p] in each
  pair, so "k tokens to the left" is a linear function the model can learn. No parameters, and
  defined for any length.

      PE[p, 2i]   = sin(p / 10000^(2i/d))
      PE[p, 2i+1] = cos(p / 10000^(2i/d))

- Learned (BERT, GPT-2): one trainable vector per position, an `nn.Embedding(max_len, d)`.
  Flexible, but says nothing about positions never seen in training.

- Rotary (Su et al. 2021; Llama): nothing is added to the embeddings. Instead, inside each
  attention layer, the query and key of a token at position m are rotated, pair by pair, by the
  angle m * theta_i. A dot product of two rotated vectors depends only on the angle between them,
  so q_m . k_n depends on m - n alone: relative positions for free (tested).

RoPE pairs dimension i with i + d/2 (the "rotate half" layout of GPT-NeoX and transformers'
Llama), not with i + 1 as the paper writes it; the two differ by a fixed permutation of the
weights, and this one lets Llama checkpoints load unchanged:

      rotate_half([x1, x2]) = [-x2, x1]           (x1, x2: the two halves of the last dim)
      RoPE(x, m) = x * cos(m * theta) + rotate_half(x) * sin(m * theta)
      theta = base^(-2i/d) for i < d/2, repeated for both halves

`RotaryEmbedding.forward(q, k, offset=...)` rotates q and k of shape (B, h, T, d); with a KV
cache, `offset` is the number of tokens already cached, so new tokens get the right angles.
"""

import math
from pathlib import Path

import torch
from torch import Tensor, nn


def sinusoidal_table(max_len: int, d_model: int, base: float = 10000.0) -> Tensor:
    """The (max_len, d_model) table of the paper: sin on even dimensions, cos on odd ones."""
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (max_len, 1)
    rates = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(base) / d_model)
    )  # (ceil(d/2),) = 1 / base^(2i/d)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * rates)  # (max_len, ceil(d/2))
    table[:, 1::2] = torch.cos(position * rates[: d_model // 2])  # (max_len, floor(d/2))
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table to (B, T, d_model) embeddings; no parameters."""

    def __init__(self, d_model: int, max_len: int = 5000, base: float = 10000.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        # a buffer moves with .to(device) but is not trained, and (non-persistent) not saved
        self.register_buffer("pe", sinusoidal_table(max_len, d_model, base), persistent=False)

    def table(self, length: int, offset: int = 0) -> Tensor:
        """Encodings of positions offset .. offset + length - 1: (length, d_model)."""
        if offset + length > self.max_len:
            raise ValueError(
                f"cannot encode positions up to {offset + length - 1}: max_len is {self.max_len}"
            )
        return self.pe[offset : offset + length]  # (T, d_model)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x (B, T, d_model) -> x + PE[offset : offset + T], broadcast over the batch."""
        return x + self.table(x.size(-2), offset).to(x.dtype)  # (B, T, d_model)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositionalEmbedding(nn.Module):
    """One trainable vector per position (GPT-2's `wpe`, BERT's `position_embeddings`)."""

    def __init__(
        self,
        max_len: int,
        d_model: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.d_model = d_model
        self.weight = nn.Parameter(torch.empty(max_len, d_model, device=device, dtype=dtype))
        nn.init.normal_(self.weight, std=0.02)  # GPT-2's and BERT's initialisation

    def table(self, length: int, offset: int = 0) -> Tensor:
        """Vectors of positions offset .. offset + length - 1: (length, d_model)."""
        if offset + length > self.max_len:
            raise ValueError(
                f"cannot embed positions up to {offset + length - 1}: max_len is {self.max_len}"
            )
        return self.weight[offset : offset + length]  # (T, d_model)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x (B, T, d_model) -> x + P[offset : offset + T]."""
        return x + self.table(x.size(-2), offset)  # (B, T, d_model)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"


def rotate_half(x: Tensor) -> Tensor:
    """[x1, x2] -> [-x2, x1] on the last dimension (a 90 degree turn of every (i, i + d/2) pair)."""
    x1, x2 = x.chunk(2, dim=-1)  # (..., d/2) each
    return torch.cat((-x2, x1), dim=-1)  # (..., d)


class RotaryEmbedding(nn.Module):
    """RoPE for heads of size `head_dim`, in transformers' Llama layout (rotate half)."""

    def __init__(self, head_dim: int, max_seq_len: int = 2048, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head_dim, got {head_dim}")
        self.head_dim = head_dim
        self.max_seq_len = max_seq_len
        self.base = base
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (d/2,) the thetas
        cos, sin = self._angles(torch.arange(max_seq_len))
        self.register_buffer("cos_cached", cos, persistent=False)  # (max_seq_len, d)
        self.register_buffer("sin_cached", sin, persistent=False)  # (max_seq_len, d)

    def _angles(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos and sin of m * theta for positions (...,) -> (..., d), both halves repeated."""
        inv_freq = self.inv_freq.to(positions.device)
        freqs = positions.float().unsqueeze(-1) * inv_freq  # (..., d/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (..., d)
        return emb.cos(), emb.sin()

    def cos_sin(self, positions: Tensor, last: int | None = None) -> tuple[Tensor, Tensor]:
        """cos and sin for integer positions (T,) or (B, T): (..., d) each, from the cache.

        `last` is the largest position, when the caller knows it: finding it here means
        reading a value back from the device, which stalls a GPU (and breaks torch.compile's
        graph) once per call.
        """
        if last is None:
            last = int(positions.max()) if positions.numel() else -1
        if last >= self.max_seq_len:
            return self._angles(positions)  # beyond the cache: compute them (rare, slower)
        return self.cos_cached[positions], self.sin_cached[positions]

    @staticmethod
    def rotate_by(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Rotate x (B, h, T, d) by angles from `cos_sin`: (T, d) or (B, T, d) each.

        (Not called `apply`: that is `nn.Module.apply(fn)`, which init code and DeepSpeed call
        on every submodule.)"""
        if cos.dim() == 3:  # per-sequence positions: broadcast over the heads
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, d)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        return x * cos + rotate_half(x) * sin  # (B, h, T, d)

    def rotate(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate x (B, h, T, d) at positions (T,) or (B, T)."""
        cos, sin = self.cos_sin(positions.to(x.device))  # (T, d) or (B, T, d)
        return self.rotate_by(x, cos, sin)

    def forward(
        self, q: Tensor, k: Tensor, offset: int = 0, positions: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Rotate q and k (B, h, T, d) for positions offset .. offset + T - 1 (or `positions`).

        With a KV cache, pass the number of cached tokens as `offset` and rotate only the new
        tokens' q and k; the cached keys were rotated when they were new.
        """
        if q.size(-1) != self.head_dim or k.size(-1) != self.head_dim:
            raise ValueError(
                f"rotary embedding for head_dim {self.head_dim} got q {tuple(q.shape)}, "
                f"k {tuple(k.shape)}"
            )
        if positions is None:
            positions = torch.arange(offset, offset + q.size(-2), device=q.device)  # (T,)
        return self.rotate(q, positions), self.rotate(k, positions)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_seq_len={self.max_seq_len}, base={self.base}"


def plot_sinusoidal(path: Path, n_positions: int = 50, d_model: int = 128) -> Path:
    """A heatmap of the first `n_positions` sinusoidal encodings across all dimensions (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shared.runs import save_figure

    table = sinusoidal_table(n_positions, d_model).numpy()  # (n_positions, d_model)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    image = ax.imshow(table, aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xlabel("dimension (even: sin, odd: cos; wavelength grows to the right)")
    ax.set_ylabel("position")
    ax.set_title(
        f"sinusoidal positional encoding: first {n_positions} positions, d_model={d_model}"
    )
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)  # PNG written atomically, figure closed
    return path
