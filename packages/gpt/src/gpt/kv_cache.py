"""The KV cache: remember every layer's keys and values so each new token costs one token's work.

Without a cache, generating token t+1 runs the whole sequence 0..t through the model again,
although the keys and values of tokens 0..t-1 are exactly what they were a step ago (a causal
model never lets a token see its future, so nothing about an old token changes). With a cache:

    prefill:  model(prompt (B, P))          writes K, V of P tokens into every layer's buffer
    decode:   model(new token (B, 1))       writes 1 more, attends over all P + 1 cached keys
              ... once per new token

so a step costs O(1) tokens of projections and MLP instead of O(t), and attention reads the
cache once. The buffers are allocated once for `max_len` tokens and filled in place, so a
decoding step copies one token's keys, not the whole history (`torch.cat` would).

Memory: 2 (K and V) x n_layer x B x n_kv_head x max_len x head_dim numbers. Grouped-query
attention (n_kv_head < n_head) shrinks exactly this; it is why Llama-class models use it.

What this leaves out: paging and sharing prefixes between requests (vLLM), and evicting old
tokens; when a sequence outgrows `max_len`, `gpt.generate` starts a fresh cache from the most
recent tokens instead.
"""

import torch
from torch import Tensor


class KVCache:
    """Per-layer key/value buffers (B, n_kv_head, max_len, head_dim), filled left to right."""

    def __init__(self, n_layer: int, max_len: int) -> None:
        self.n_layer = n_layer
        self.max_len = max_len
        self.length = 0  # tokens already cached (the same for every layer between forwards)
        self.k: list[Tensor | None] = [None] * n_layer
        self.v: list[Tensor | None] = [None] * n_layer

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new tokens' k, v (B, h_kv, L, d); return all cached ones (B, h_kv, S, d).

        The buffers are allocated on first use, with the dtype and device of `k`.
        """
        B, h, L, d = k.shape
        end = self.length + L
        if end > self.max_len:
            raise ValueError(
                f"KV cache holds {self.max_len} tokens; cannot add {L} after {self.length}"
            )
        if self.k[layer] is None:
            shape = (B, h, self.max_len, d)
            self.k[layer] = torch.empty(shape, dtype=k.dtype, device=k.device)
            self.v[layer] = torch.empty(shape, dtype=v.dtype, device=v.device)
        k_buf, v_buf = self.k[layer], self.v[layer]
        k_buf[:, :, self.length : end] = k
        v_buf[:, :, self.length : end] = v
        return k_buf[:, :, :end], v_buf[:, :, :end]  # (B, h_kv, S, d), S = length + L

    def advance(self, n: int) -> None:
        """Mark `n` more tokens as cached (called once per forward, after every layer)."""
        self.length += n

    def __repr__(self) -> str:
        return f"KVCache(n_layer={self.n_layer}, length={self.length}, max_len={self.max_len})"
