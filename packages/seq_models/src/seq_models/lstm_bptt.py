"""The fast LSTM layer: backpropagation through time written by hand, no per-step autograd graph.

Run by autograd, the step in cells.py records about a dozen graph nodes per time step, and in
the backward pass each becomes a separate small kernel plus bookkeeping; the weight gradient
dL/dW_hh is accumulated one (4H, H) matrix per step. Here the whole recurrence is one
`torch.autograd.Function`:

  forward   gx = x W_ih^T + b_ih + b_hh for all T steps at once (one large matmul, done by the
            caller), then per step one matmul h W_hh^T and a few in-place elementwise ops into
            preallocated buffers, keeping the gate activations, c_t and tanh(c_t) for backward.
  backward  per step (t = T-1 .. 0), with the activations a = [i, f, g, o] (sigmoid, sigmoid,
            tanh, sigmoid) and everything (B, H):
              dc  += dh * o * (1 - tanh(c_t)^2)                  through h_t = o * tanh(c_t)
              dz_i = dc * g * i(1 - i)      dz_f = dc * c_{t-1} * f(1 - f)
              dz_g = dc * i * (1 - g^2)     dz_o = dh * tanh(c_t) * o(1 - o)
              dc   = dc * f                                      to c_{t-1}
              dh   = dz W_hh + dL/dh_{t-1}                        to h_{t-1}, dz (B, 4H)
            and after the loop, for all steps at once:
              dW_hh = dz^T [h_0 .. h_{T-1}]   one (4H, T*B) @ (T*B, H) matmul
            (dW_ih, db and dx follow from dz = dL/dgx through the caller's matmul, by autograd).

This is what cuDNN and oneDNN do too, in C++; what remains of the gap to torch's fused kernel
is the Python loop, about ten kernel launches per step where they launch one or two.

Mixed precision: under autocast the matmuls run in the autocast dtype (bfloat16 on the CPU),
while the gates, c and the gradients of c stay in the parameters' dtype, so the long sums
along the cell state keep float32 accuracy. The returned hidden states are in the matmul
dtype, as torch's autocast LSTM returns bfloat16 outputs.
"""

import torch
from torch import Tensor


class LSTMRecurrence(torch.autograd.Function):
    """hs, cs = LSTMRecurrence.apply(gx (T, B, 4H), h0 (B, H), c0 (B, H), w_hh (4H, H)).

    gx holds both biases; h0 and w_hh are in the matmul dtype, gx and c0 in the state dtype.
    Returns every hidden state (T, B, H) and every cell state (T, B, H).
    """

    @staticmethod
    def forward(ctx, gx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor) -> tuple[Tensor, Tensor]:
        T, B, four_h = gx.shape
        H = four_h // 4
        hs = h0.new_empty(T + 1, B, H)  # (T+1, B, H) matmul dtype; hs[0] = h0
        cs = c0.new_empty(T + 1, B, H)  # (T+1, B, H) state dtype; cs[0] = c0
        tanh_c = c0.new_empty(T, B, H)  # (T, B, H)
        act = torch.empty_like(gx)  # (T, B, 4H) gate activations [i, f, g, o]
        hs[0], cs[0] = h0, c0
        w_t = w_hh.T  # (H, 4H)
        for t in range(T):
            a = act[t]  # (B, 4H)
            torch.add(gx[t], hs[t] @ w_t, out=a)  # pre-activations
            a[:, : 2 * H].sigmoid_()  # i, f
            a[:, 2 * H : 3 * H].tanh_()  # g
            a[:, 3 * H :].sigmoid_()  # o
            i, f, g, o = a.view(B, 4, H).unbind(1)  # 4 x (B, H)
            torch.mul(f, cs[t], out=cs[t + 1])
            cs[t + 1].addcmul_(i, g)  # c_t = f * c_{t-1} + i * g
            torch.tanh(cs[t + 1], out=tanh_c[t])
            torch.mul(o, tanh_c[t], out=hs[t + 1])  # h_t = o * tanh(c_t)
        ctx.save_for_backward(w_hh, act, hs, cs, tanh_c)
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None
        return hs[1:], cs[1:]

    @staticmethod
    def backward(ctx, d_hs: Tensor | None, d_cs: Tensor | None):
        w_hh, act, hs, cs, tanh_c = ctx.saved_tensors
        T, B, H = tanh_c.shape
        i, f, g, o = act.view(T, B, 4, H).unbind(2)  # 4 x (T, B, H)
        # Everything that does not depend on the incoming gradient, for all steps at once:
        # the local derivatives that multiply dc (for i, f, g), dh (for o) and dh (into dc).
        p = torch.stack([g * i * (1 - i), cs[:-1] * f * (1 - f), i * (1 - g * g)], 2)  # (T,B,3,H)
        q = tanh_c * o * (1 - o)  # (T, B, H)
        r = o * (1 - tanh_c * tanh_c)  # (T, B, H)
        dz = act.new_empty(T, B, 4 * H, dtype=w_hh.dtype)  # (T, B, 4H) dL/d pre-activations
        dh = cs.new_zeros(B, H)  # (B, H) dL/dh_t, accumulated in the state dtype
        dc = cs.new_zeros(B, H)  # (B, H) dL/dc_t
        for t in range(T - 1, -1, -1):
            if d_hs is not None:
                dh.add_(d_hs[t])
            if d_cs is not None:
                dc.add_(d_cs[t])
            dc.addcmul_(dh, r[t])
            d = dz[t]  # (B, 4H)
            torch.mul(dc.unsqueeze(1), p[t], out=d[:, : 3 * H].view(B, 3, H))  # i, f, g
            torch.mul(dh, q[t], out=d[:, 3 * H :])  # o
            dc.mul_(f[t])
            dh.copy_(d @ w_hh)  # (B, 4H) @ (4H, H) -> (B, H)
        d_gx = dz.to(act.dtype) if ctx.needs_input_grad[0] else None
        d_w_hh = None
        if ctx.needs_input_grad[3]:
            d_w_hh = dz.view(T * B, 4 * H).T @ hs[:-1].reshape(T * B, H)  # (4H, H)
        return d_gx, dh.to(hs.dtype), dc, d_w_hh


def fused_lstm(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """One LSTM layer in one direction: x (T, B, I) -> hs (T, B, H), cs (T, B, H).

    The input projection for every step is one matmul; the casts around it are ordinary
    autograd ops, so gradients reach float32 master weights under autocast.
    """
    device_type = x.device.type
    state_dtype = w_ih.dtype
    compute = state_dtype
    if torch.is_autocast_enabled(device_type):
        compute = torch.get_autocast_dtype(device_type)
    T, B, _ = x.shape
    with torch.autocast(device_type, enabled=False):
        flat = x.reshape(T * B, -1).to(compute)  # (T*B, I)
        gx = (flat @ w_ih.to(compute).T).to(state_dtype)  # (T*B, 4H)
        if b_ih is not None:
            gx = gx + (b_ih + b_hh)
        gx = gx.view(T, B, -1)  # (T, B, 4H)
        return LSTMRecurrence.apply(gx, h0.to(compute), c0.to(state_dtype), w_hh.to(compute))
