"""A KV cache with a row per request, each row as long as its own conversation.

`KVCache` keeps one length for the whole batch: every row was prefilled together and grows by
one token per step. A server does not get its requests together. One arrives while another is
half-way through its reply, so the rows of a batch are at different lengths, and a row is
handed to a new request the moment its old one finishes. `SlotCache` allows exactly that:

    buffers   k, v per layer: (slots, h_kv, max_len, d), allocated once
    lengths   (slots,) tokens cached in each slot

    fill(slot, cache)        copy a request's prefill (its own KVCache, B = 1) into a slot
    step over rows (R,)      the model writes each row's new key at that row's own length,
                             and reads keys 0..width-1 of the rows it decodes, width being the
                             longest of them; a row's shorter history is masked out

So one forward decodes every running request at once: the projections and the MLP are one
(R, C) x (C, C') matrix product instead of R thin ones, which is where a batch's speed comes
from. The model needs no change: to it this is a cache whose `length` is `width - 1` and whose
rows are padded on the right instead of the left, which a (R, 1, 1, width) boolean mask says
(the model takes such a mask as it is).
"""

import torch
from torch import Tensor

from gpt.kv_cache import KVCache


class SlotCache:
    """Per-layer key/value buffers (slots, h_kv, max_len, d) and each slot's length."""

    def __init__(self, n_layer: int, slots: int, max_len: int) -> None:
        self.n_layer, self.slots, self.max_len = n_layer, slots, max_len
        self.k: list[Tensor | None] = [None] * n_layer
        self.v: list[Tensor | None] = [None] * n_layer
        self.lengths = torch.zeros(slots, dtype=torch.long)
        self.rows = torch.zeros(0, dtype=torch.long)  # the slots of the current step
        self.length = 0  # what the model reads as "tokens already cached": width - 1

    def fill(self, slot: int, prefill: KVCache) -> None:
        """Copy one request's prefilled cache (batch of 1) into `slot`."""
        n = prefill.length
        for layer in range(self.n_layer):
            k, v = prefill.k[layer], prefill.v[layer]  # (1, h_kv, max_len', d)
            if self.k[layer] is None:
                shape = (self.slots, k.size(1), self.max_len, k.size(3))
                self.k[layer] = torch.zeros(shape, dtype=k.dtype, device=k.device)
                self.v[layer] = torch.zeros(shape, dtype=v.dtype, device=v.device)
            self.k[layer][slot, :, :n] = k[0, :, :n]
            self.v[layer][slot, :, :n] = v[0, :, :n]
        self.lengths[slot] = n

    def begin_step(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Decode one token for each slot in `rows` (R,): returns their positions (R, 1) and the
        attention mask (R, 1, 1, width), True where a key belongs to that row's history."""
        self.rows = rows
        positions = self.lengths[rows]  # (R,) where each row's new token goes
        width = int(positions.max()) + 1
        if width > self.max_len:
            raise ValueError(f"a slot is full: {self.max_len} tokens")
        self.length = width - 1
        keys = torch.arange(width).unsqueeze(0) <= positions.unsqueeze(1)  # (R, width)
        return positions.unsqueeze(1), keys.view(len(rows), 1, 1, width)

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store each row's new k, v (R, h_kv, 1, d) at its own length; return the keys and
        values of those rows up to the step's width (R, h_kv, width, d)."""
        positions = self.lengths[self.rows]  # (R,)
        k_buf, v_buf = self.k[layer], self.v[layer]
        k_buf[self.rows, :, positions] = k[:, :, 0]  # (R, h_kv, d) into (slot, :, position)
        v_buf[self.rows, :, positions] = v[:, :, 0]
        width = self.length + 1
        return k_buf[self.rows, :, :width], v_buf[self.rows, :, :width]

    def advance(self, n: int) -> None:
        """Called by the model after its forward: the step's rows are one token longer."""
        self.lengths[self.rows] += n

    def free(self, slot: int) -> None:
        self.lengths[slot] = 0
