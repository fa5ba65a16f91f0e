"""The position-wise feed-forward network: the same two-layer MLP applied to every token.

Attention mixes information *between* tokens; the feed-forward network then transforms each
token on its own. It widens the vector (usually 4x), applies a nonlinearity, and projects back:

    relu / gelu / gelu_tanh:  FFN(x) = fc_out(dropout(act(fc_in(x))))          (Vaswani et al.)
    swiglu:                   FFN(x) = down(dropout(silu(gate(x)) * up(x)))     (Shazeer 2020)

SwiGLU multiplies two projections, one passed through SiLU, so the network can switch features
on and off per token (a gated linear unit). With three matrices instead of two, Llama shrinks the
hidden width to about 8/3 of d_model to keep the parameter count.

Parameter names, chosen so that pretrained weights map one to one:

    ours     torch nn.TransformerEncoderLayer   GPT-2 (Conv1D, transpose)   Llama
    fc_in    linear1                            mlp.c_fc                    -
    fc_out   linear2                            mlp.c_proj                  -
    gate     -                                  -                           mlp.gate_proj
    up       -                                  -                           mlp.up_proj
    down     -                                  -                           mlp.down_proj

The dropout here is the one inside the block (torch's `dropout` after the activation); the
dropout on the block's output belongs to the residual connection (see layers.py).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,  # the exact erf form, torch's "gelu"
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
}


class FeedForward(nn.Module):
    """Position-wise FFN with relu, gelu, gelu_tanh or swiglu; (..., d_model) -> (..., d_model)."""

    def __init__(
        self,
        d_model: int,
        dim_feedforward: int,
        activation: str = "relu",
        dropout: float = 0.0,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if activation not in (*ACTIVATIONS, "swiglu"):
            raise ValueError(
                f"activation must be one of {', '.join([*ACTIVATIONS, 'swiglu'])}, "
                f"got {activation!r}"
            )
        self.activation = activation
        self.dropout = nn.Dropout(dropout)
        factory = {"bias": bias, "device": device, "dtype": dtype}
        if activation == "swiglu":
            self.gate = nn.Linear(d_model, dim_feedforward, **factory)
            self.up = nn.Linear(d_model, dim_feedforward, **factory)
            self.down = nn.Linear(dim_feedforward, d_model, **factory)
        else:
            self.fc_in = nn.Linear(d_model, dim_feedforward, **factory)
            self.fc_out = nn.Linear(dim_feedforward, d_model, **factory)

    def forward(self, x: Tensor) -> Tensor:
        if self.activation == "swiglu":
            h = F.silu(self.gate(x)) * self.up(x)  # (..., dim_feedforward)
            return self.down(self.dropout(h))  # (..., d_model)
        h = ACTIVATIONS[self.activation](self.fc_in(x))  # (..., dim_feedforward)
        return self.fc_out(self.dropout(h))  # (..., d_model)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"
