"""One time step of an RNN, an LSTM and a GRU, written with plain tensor operations.

The equations (x: input at this step, h: hidden state, c: LSTM cell state; B batch, I input
size, H hidden size; torch's gate order and parameter names):

    RNN   h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)                       W_ih (H, I)
    LSTM  i, f, g, o = split(x W_ih^T + b_ih + h W_hh^T + b_hh, 4)          W_ih (4H, I)
          c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
          h' = sigmoid(o) * tanh(c')
    GRU   r, z, n_x = split(x W_ih^T + b_ih, 3);  r_h, z_h, n_h = split(h W_hh^T + b_hh, 3)
          r = sigmoid(r + r_h);  z = sigmoid(z + z_h)                          W_ih (3H, I)
          n = tanh(n_x + r * n_h)
          h' = (1 - z) * n + z * h

The step functions take `gx = x W_ih^T + b_ih` already computed, because a layer can compute
that for every time step at once, in one large matrix product, before the recurrence starts
(see layers.py); the cells below compute it for their single step. What this file leaves out:
LSTM projections (`proj_size`), peepholes, and layer normalisation inside the cell.
"""

import math

import torch
from torch import Tensor, nn


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x W^T + b, the affine map every gate starts from."""
    out = x @ weight.T  # (B, I) @ (I, G*H) -> (B, G*H)
    return out if bias is None else out + bias


def rnn_step(
    gx: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, nonlinearity: str = "tanh"
) -> Tensor:
    """Elman RNN: h' = act(gx + h W_hh^T + b_hh). gx (B, H), h (B, H) -> (B, H)."""
    pre = gx + linear(h, w_hh, b_hh)  # (B, H)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_step(
    gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None
) -> tuple[Tensor, Tensor]:
    """LSTM: gx (B, 4H), h and c (B, H) -> h', c' (B, H).

    Why the gates: the plain RNN multiplies its state by W_hh at every step, so a gradient
    travelling back T steps is multiplied by T Jacobians and vanishes or explodes. The LSTM's
    cell state c is updated additively, c' = f * c + i * g: along c the gradient is multiplied
    only by the forget gate f, which the network can hold near 1 to remember over long spans.
    """
    gates = gx + linear(h, w_hh, b_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=1)  # 4 x (B, H)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # (B, H)
    h_next = torch.sigmoid(o) * torch.tanh(c_next)  # (B, H)
    return h_next, c_next


def gru_step(gx: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """GRU: gx (B, 3H), h (B, H) -> h' (B, H).

    The reset gate r scales the recurrent part of the candidate *after* its bias (torch's and
    cuDNN's form), so b_hn cannot be folded into the input projection as the others can.
    """
    gh = linear(h, w_hh, b_hh)  # (B, 3H)
    x_r, x_z, x_n = gx.chunk(3, dim=1)  # 3 x (B, H)
    h_r, h_z, h_n = gh.chunk(3, dim=1)  # 3 x (B, H)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h  # (B, H)


# ----------------------------------------------------------------------------------------------
# The cells as modules, with torch's constructor arguments and parameter names


class _CellBase(nn.Module):
    gates = 1  # how many H-sized blocks W_ih has: 1 (RNN), 4 (LSTM), 3 (GRU)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}"
            )
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        kw = {"device": device, "dtype": dtype}
        g = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size, **kw))  # (G*H, I)
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size, **kw))  # (G*H, H)
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g, **kw))  # (G*H,)
            self.bias_hh = nn.Parameter(torch.empty(g, **kw))  # (G*H,)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialisation: every weight and bias uniform in +-1/sqrt(H)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _check(self, x: Tensor, hx: Tensor | None, what: str = "hx") -> tuple[Tensor, bool]:
        """Validate shapes; return the input as (B, I) and whether it came unbatched."""
        name = type(self).__name__
        if x.dim() not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name} expects input of shape (batch, {self.input_size}) or "
                f"({self.input_size},), got {tuple(x.shape)}"
            )
        batched = x.dim() == 2
        if hx is not None:
            want = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
            if tuple(hx.shape) != want:
                raise ValueError(
                    f"{name} expects {what} of shape {want} for input {tuple(x.shape)}, "
                    f"got {tuple(hx.shape)}"
                )
        return (x if batched else x.unsqueeze(0)), batched

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)  # (B, H)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"

    @classmethod
    def from_torch(cls, module: nn.Module) -> "_CellBase":
        """A copy of torch's matching cell, with the same weights, dtype and device."""
        p = module.weight_ih
        kwargs = {}
        if hasattr(module, "nonlinearity"):
            kwargs["nonlinearity"] = module.nonlinearity
        cell = cls(
            module.input_size,
            module.hidden_size,
            bias=module.bias,
            device=p.device,
            dtype=p.dtype,
            **kwargs,
        )
        cell.load_state_dict(module.state_dict())
        return cell


class RNNCell(_CellBase):
    """torch.nn.RNNCell from tensor operations: forward(input (B, I), hx (B, H)) -> (B, H)."""

    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._check(input, hx)
        h = self._zeros(x) if hx is None else hx.reshape(x.shape[0], -1)  # (B, H)
        gx = linear(x, self.weight_ih, self.bias_ih)  # (B, H)
        h = rnn_step(gx, h, self.weight_hh, self.bias_hh, self.nonlinearity)  # (B, H)
        return h if batched else h.squeeze(0)


class LSTMCell(_CellBase):
    """torch.nn.LSTMCell: forward(input (B, I), (h, c) each (B, H)) -> (h', c')."""

    gates = 4

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        if hx is not None and (not isinstance(hx, tuple | list) or len(hx) != 2):
            raise ValueError("LSTMCell expects hx to be a tuple (h, c) or None")
        x, batched = self._check(input, None if hx is None else hx[0], "h")
        if hx is None:
            h, c = self._zeros(x), self._zeros(x)  # (B, H) each
        else:
            self._check(input, hx[1], "c")
            h, c = hx[0].reshape(x.shape[0], -1), hx[1].reshape(x.shape[0], -1)
        gx = linear(x, self.weight_ih, self.bias_ih)  # (B, 4H)
        h, c = lstm_step(gx, h, c, self.weight_hh, self.bias_hh)  # (B, H) each
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_CellBase):
    """torch.nn.GRUCell: forward(input (B, I), hx (B, H)) -> (B, H)."""

    gates = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._check(input, hx)
        h = self._zeros(x) if hx is None else hx.reshape(x.shape[0], -1)  # (B, H)
        gx = linear(x, self.weight_ih, self.bias_ih)  # (B, 3H)
        h = gru_step(gx, h, self.weight_hh, self.bias_hh)  # (B, H)
        return h if batched else h.squeeze(0)
