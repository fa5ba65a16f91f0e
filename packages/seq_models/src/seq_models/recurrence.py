"""Running a cell over a sequence, in one direction: the naive loop and the fast one.

`naive_direction` is the textbook loop: at each step, project that step's input and apply the
cell; for padded batches, a sequence that has ended keeps its state (`torch.where`) and emits
zeros. It teaches, and it is the reference the fast path is tested against.

`fast_direction` does the same work in another order:
  1. the input projections x W_ih^T + b for all T steps in one (T*B, I) @ (I, G*H) matmul,
     instead of T small ones (the part of the work that does not depend on h);
  2. the recurrence over the precomputed projections: `scan` (autograd records each step) or,
     for the LSTM, `fused_lstm` (backward written by hand, see lstm_bptt.py);
  3. variable lengths without masking inside the loop: run every sequence to T (a step past a
     sequence's end cannot change its earlier states), read the final state at step len-1,
     and zero the outputs past the end. The reverse direction flips each sequence within its
     own length first, so it starts at the sequence's last real element, as torch's packed
     sequences do.
"""

import torch
from torch import Tensor

from seq_models.cells import gru_step, linear, lstm_step, rnn_step
from seq_models.lstm_bptt import fused_lstm

Weights = tuple[Tensor, Tensor, Tensor | None, Tensor | None]  # w_ih, w_hh, b_ih, b_hh


def cell_step(
    mode: str, gx: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """One step of `mode` ("RNN_TANH", "RNN_RELU", "LSTM", "GRU") as (h', c' or None)."""
    if mode == "LSTM":
        return lstm_step(gx, h, c, w_hh, b_hh)
    if mode == "GRU":
        return gru_step(gx, h, w_hh, b_hh), None
    return rnn_step(gx, h, w_hh, b_hh, "tanh" if mode == "RNN_TANH" else "relu"), None


def naive_direction(
    mode: str,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weights: Weights,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """x (T, B, I) -> outputs (T, B, H), h_n (B, H), c_n (B, H) or None, one step at a time."""
    w_ih, w_hh, b_ih, b_hh = weights
    T = x.shape[0]
    h, c = h0, c0
    steps = x.unbind(0)  # T x (B, I); unbind, not x[t]: see scan
    outputs: list[Tensor] = [x] * T  # placeholders, each overwritten below
    for t in range(T - 1, -1, -1) if reverse else range(T):
        gx = linear(steps[t], w_ih, b_ih)  # (B, G*H)
        h_new, c_new = cell_step(mode, gx, h, c, w_hh, b_hh)  # (B, H)
        if lengths is None:
            h, c = h_new, c_new
            outputs[t] = h_new
        else:  # a sequence that has ended (or, in reverse, not yet begun) keeps its state
            valid = (t < lengths).unsqueeze(1)  # (B, 1)
            h = torch.where(valid, h_new, h)
            c = None if c is None else torch.where(valid, c_new, c)
            outputs[t] = torch.where(valid, h_new, torch.zeros_like(h_new))
    return torch.stack(outputs), h, c  # (T, B, H)


def scan(
    mode: str, gx: Tensor, h0: Tensor, c0: Tensor | None, w_hh: Tensor, b_hh: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """The recurrence over precomputed projections gx (T, B, G*H): every h (and c), (T, B, H)."""
    h, c = h0, c0
    hs, cs = [], []
    # unbind: one backward node that stacks the T step gradients. Indexing gx[t] instead
    # would give each step a backward that writes a full (T, B, G*H) zero tensor: O(T^2).
    for gx_t in gx.unbind(0):  # T x (B, G*H)
        h, c = cell_step(mode, gx_t, h, c, w_hh, b_hh)  # (B, H)
        hs.append(h)
        cs.append(c)
    return torch.stack(hs), (None if c0 is None else torch.stack(cs))  # (T, B, H)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of x (T, B, ...) within its own length; padding stays in place.

    Applying it twice gives x back, so the same call maps outputs back to input order.
    """
    if lengths is None:
        return x.flip(0)
    T, B = x.shape[:2]
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (T, B)
    index = index.view(T, B, *([1] * (x.dim() - 2))).expand_as(x)  # (T, B, ...)
    return x.gather(0, index)


def fast_direction(
    mode: str,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weights: Weights,
    lengths: Tensor | None = None,
    reverse: bool = False,
    fused: bool = True,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Same contract as naive_direction; `fused` picks the hand-written LSTM backward."""
    w_ih, w_hh, b_ih, b_hh = weights
    T, B, _ = x.shape
    if reverse:
        x = reverse_padded(x, lengths)  # (T, B, I) in processing order
    if mode == "LSTM" and fused:
        hs, cs = fused_lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh)  # (T, B, H) each
    else:
        gx = linear(x.reshape(T * B, -1), w_ih, b_ih).view(T, B, -1)  # (T, B, G*H)
        hs, cs = scan(mode, gx, h0, c0, w_hh, b_hh)  # (T, B, H)
    if lengths is None:
        h_n, c_n = hs[-1], (None if cs is None else cs[-1])  # (B, H)
    else:
        last = (lengths - 1).view(1, B, 1).expand(1, B, hs.shape[2])  # (1, B, H)
        h_n = hs.gather(0, last)[0]  # (B, H)
        c_n = None if cs is None else cs.gather(0, last)[0]
    if reverse:
        hs = reverse_padded(hs, lengths)  # back to input order
    if lengths is not None:
        valid = (torch.arange(T, device=x.device).unsqueeze(1) < lengths).unsqueeze(2)  # (T,B,1)
        hs = torch.where(valid, hs, torch.zeros((), dtype=hs.dtype, device=hs.device))
    return hs, h_n, c_n
