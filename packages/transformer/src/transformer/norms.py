"""LayerNorm and RMSNorm written from tensor operations, with torch's signatures.

A residual stream is a running sum: every sublayer adds its output to it, so without a check
its scale drifts from layer to layer, and with it the size of every gradient. A normalization
layer rescales each token's vector to a fixed size before (pre-norm) or after (post-norm) a
sublayer, so each layer sees inputs of the same scale whatever the depth.

    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias      (Ba et al. 2016)
    RMSNorm(x)   = x / sqrt(mean(x^2) + eps) * weight                      (Zhang & Sennrich 2019)

Both statistics are taken over the last `len(normalized_shape)` dimensions of each token, never
across the batch (unlike BatchNorm), so a token's output does not depend on its neighbours or on
padding. RMSNorm drops the centring and the bias: cheaper, and in practice as good; Llama uses
it. The variance is the biased one (divide by n, not n - 1), as torch's.

In bfloat16/float16 the statistics are computed in float32 and the result cast back, as torch's
autocast does for layer_norm and transformers' LlamaRMSNorm does by hand: a mean of squares
over hundreds of features loses too many digits in 8 bits of mantissa.
"""

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _shape(normalized_shape: int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    if isinstance(normalized_shape, numbers.Integral):
        return (int(normalized_shape),)
    return tuple(int(n) for n in normalized_shape)


def _upcast(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class LayerNorm(nn.Module):
    """`nn.LayerNorm`: centre and scale each token to mean 0, variance 1, then an affine map."""

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        factory = {"device": device, "dtype": dtype}
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape, **factory))
            self.bias = (
                nn.Parameter(torch.zeros(self.normalized_shape, **factory)) if bias else None
            )
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-len(self.normalized_shape) :]) != self.normalized_shape:
            raise ValueError(
                f"LayerNorm{self.normalized_shape} got an input of shape {tuple(x.shape)}"
            )
        dims = tuple(range(-len(self.normalized_shape), 0))
        h = _upcast(x)
        # one pass for both statistics, (..., 1) each: one per token; biased like torch's
        var, mean = torch.var_mean(h, dim=dims, correction=0, keepdim=True)
        h = (h - mean) * torch.rsqrt(var + self.eps)  # same shape as x
        if self.weight is not None:
            h = h * self.weight
        if self.bias is not None:
            h = h + self.bias
        return h.to(x.dtype)

    @classmethod
    def from_torch(cls, module: nn.LayerNorm) -> "LayerNorm":
        ref = next(iter(module.parameters()), None)
        ours = cls(
            module.normalized_shape,
            eps=module.eps,
            elementwise_affine=module.elementwise_affine,
            bias=module.bias is not None,
            device=ref.device if ref is not None else None,
            dtype=ref.dtype if ref is not None else None,
        )
        ours.load_state_dict(module.state_dict())
        return ours

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class FusedLayerNorm(LayerNorm):
    """`LayerNorm` computed by torch's one-kernel `F.layer_norm`: the same formula, faster.

    The explicit version above runs var_mean, a subtraction, a multiplication and an addition,
    and autograd stores and replays each; the fused kernel does the forward and the backward in
    one pass each. Later stages that are not about normalization (bert) use this one, about 10%
    of a MiniLM training step on a 2-core CPU; a test holds it equal to `LayerNorm`.
    """

    def forward(self, x: Tensor) -> Tensor:
        h = _upcast(x)
        weight = self.weight.to(h.dtype) if self.weight is not None else None
        bias = self.bias.to(h.dtype) if self.bias is not None else None
        return F.layer_norm(h, self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class RMSNorm(nn.Module):
    """`nn.RMSNorm`: scale each token to root-mean-square 1, then multiply by a weight.

    `eps=None` means the machine epsilon of the input's dtype, as in torch.
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int],
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(
                torch.ones(self.normalized_shape, device=device, dtype=dtype)
            )
        else:
            self.register_parameter("weight", None)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-len(self.normalized_shape) :]) != self.normalized_shape:
            raise ValueError(
                f"RMSNorm{self.normalized_shape} got an input of shape {tuple(x.shape)}"
            )
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        h = _upcast(x)
        ms = h.pow(2).mean(dim=dims, keepdim=True)  # (..., 1): mean square per token
        h = h * torch.rsqrt(ms + eps)  # same shape as x
        if self.weight is not None:
            h = h * self.weight
        return h.to(x.dtype)

    @classmethod
    def from_torch(cls, module: nn.RMSNorm) -> "RMSNorm":
        ref = module.weight
        ours = cls(
            module.normalized_shape,
            eps=module.eps,
            elementwise_affine=module.elementwise_affine,
            device=ref.device if ref is not None else None,
            dtype=ref.dtype if ref is not None else None,
        )
        ours.load_state_dict(module.state_dict())
        return ours

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )
