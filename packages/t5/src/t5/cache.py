"""The decoder's KV cache: self-attention keys and values that grow, cross-attention ones fixed.

An encoder-decoder caches two different things per decoder layer:

    self-attention    K, V of the decoder tokens so far: (N, h, max_len, d_kv) buffers filled
                      left to right, one token per step (as gpt's KVCache)
    cross-attention   K, V of the encoder's output: (B_src, h, S, d_kv), computed on the first
                      step and only read afterwards; the source does not change while decoding

so a decoding step projects one token per layer instead of t, and never re-projects the source.

Beam search keeps N = B_src * num_beams rows and, after each step, continues some beams and
drops others: `reorder(index)` makes row i the old row index[i] in every self-attention buffer.
The cross-attention entries need no reordering and no copies per beam: every beam of one source
reads the same keys, and the attention folds a source's beams into its query axis (model.py).

# Adapted from gpt.kv_cache.KVCache (same buffers, same update), plus the cross-attention
# entries and `reorder`; t5 may not import gpt (the stage order), hence the copy.
"""

import torch
from torch import Tensor


class T5Cache:
    """Per-layer self-attention buffers (N, h, max_len, d_kv) and cross-attention K, V."""

    def __init__(self, n_layer: int, max_len: int) -> None:
        self.n_layer = n_layer
        self.max_len = max_len
        self.length = 0  # decoder tokens already cached (the same for every layer)
        self.k: list[Tensor | None] = [None] * n_layer
        self.v: list[Tensor | None] = [None] * n_layer
        self.cross_k: list[Tensor | None] = [None] * n_layer
        self.cross_v: list[Tensor | None] = [None] * n_layer

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new tokens' k, v (N, h, L, d); return all cached ones (N, h, S, d)."""
        N, h, L, d = k.shape
        end = self.length + L
        if end > self.max_len:
            raise ValueError(
                f"the cache holds {self.max_len} decoder tokens; cannot add {L} after {self.length}"
            )
        if self.k[layer] is None:
            shape = (N, h, self.max_len, d)
            self.k[layer] = torch.empty(shape, dtype=k.dtype, device=k.device)
            self.v[layer] = torch.empty(shape, dtype=v.dtype, device=v.device)
        k_buf, v_buf = self.k[layer], self.v[layer]
        k_buf[:, :, self.length : end] = k
        v_buf[:, :, self.length : end] = v
        return k_buf[:, :, :end], v_buf[:, :, :end]  # (N, h, S, d), S = length + L

    def has_cross(self, layer: int) -> bool:
        return self.cross_k[layer] is not None

    def cross(self, layer: int) -> tuple[Tensor, Tensor]:
        return self.cross_k[layer], self.cross_v[layer]  # (B_src, h, S, d) each

    def set_cross(self, layer: int, k: Tensor, v: Tensor) -> None:
        self.cross_k[layer], self.cross_v[layer] = k, v

    def advance(self, n: int) -> None:
        """Mark `n` more tokens as cached (called once per forward, after every layer)."""
        self.length += n

    def reorder(self, index: Tensor) -> None:
        """Row i of every self-attention buffer becomes old row index[i] (beam search)."""
        for layer in range(self.n_layer):
            if self.k[layer] is not None:
                self.k[layer] = self.k[layer].index_select(0, index)
                self.v[layer] = self.v[layer].index_select(0, index)

    def __repr__(self) -> str:
        return f"T5Cache(n_layer={self.n_layer}, length={self.length}, max_len={self.max_len})"
