"""int8 linear layers: the weights as 8-bit integers, a quarter of their float size.

    uv run --package gpt quantize --run RUN --method int8-weight-only   # -> runs/gpt/RUN-int8w
    uv run --package gpt quantize --run RUN --method dynamic-int8       # -> runs/gpt/RUN-int8d

Per-channel absmax (the from-scratch method): every output row w of a weight matrix W (out, in)
gets its own scale, so a row of small weights is not crushed by another row's large one:

    scale_r = max_j |W_rj| / 127                   (out,)   float
    q_rj    = round(W_rj / scale_r)  in [-127, 127] (out, in) int8
    W_rj   ~= q_rj * scale_r                        error at most scale_r / 2 per weight

Both methods store exactly that (int8 rows and float scales; biases, norms and the embedding
stay float) and differ in how they multiply:

- `int8-weight-only` (`Int8Linear`): turns q back into floats, scale included, and multiplies in
  float. Only memory and the file shrink; the matmul is the float one. Decoding one token at a
  time reads every weight once per token, so where memory bandwidth is the limit this can help;
  on a small model that fits in cache it is extra work.
- `dynamic-int8`: also quantizes each batch of activations (one scale per tensor, chosen at run
  time, hence "dynamic") and multiplies int8 by int8 into int32 with fbgemm's kernels. This is
  PyTorch's `torch.ao.nn.quantized.dynamic.Linear`, built from the same q and scales. torch.ao's
  quantization is deprecated in favour of torchao; see docs/deploy.md for why this still uses it.

The embedding and the output layer stay float: tied, they are one matrix; tied or not, the
output layer's logits are what sampling reads, where errors show most.
"""

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gpt.model import GPT

METHODS = ("int8-weight-only", "dynamic-int8")


def absmax_int8(weight: Tensor) -> tuple[Tensor, Tensor]:
    """W (out, in) float -> (q (out, in) int8, scale (out,) float32), per output row."""
    scale = weight.detach().abs().amax(dim=1).float().clamp(min=1e-12) / 127  # (out,)
    q = torch.round(weight.detach().float() / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


class Int8Linear(nn.Module):
    """A linear layer whose weight is int8 rows times a float scale per row (weight-only)."""

    def __init__(self, q: Tensor, scale: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.in_features, self.out_features = q.shape[1], q.shape[0]
        self.register_buffer("weight_int8", q)  # (out, in) int8
        self.register_buffer("scale", scale)  # (out,) float32
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), False)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        return cls(*absmax_int8(linear.weight), linear.bias)

    def dequantized_weight(self) -> Tensor:
        return self.weight_int8.float() * self.scale[:, None]  # (out, in)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)  # (..., out)


def dynamic_linear(q: Tensor, scale: Tensor, bias: Tensor | None) -> nn.Module:
    """torch.ao's dynamically quantized linear layer holding our int8 rows and scales."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    with warnings.catch_warnings():  # torch.ao's deprecation notices; see the module docstring
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        layer = DynamicLinear(q.shape[1], q.shape[0], bias_=bias is not None, dtype=torch.qint8)
        zeros = torch.zeros(q.shape[0], dtype=torch.long)
        weight = torch._make_per_channel_quantized_tensor(q, scale.double(), zeros, 0)
        layer.set_weight_bias(weight, None if bias is None else bias.detach().float())
    return layer


def quantizable(model: GPT) -> list[str]:
    """Names of the linear layers to quantize: every one in the blocks (not the output layer)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"]


def int8_state(model: GPT) -> dict[str, Tensor]:
    """What a quantized run saves: the int8 rows and scales (and bias) of every layer
    `quantizable` names, every other tensor as it is. Both methods store exactly this."""
    layers = quantizable(model)
    state: dict[str, Tensor] = {}
    for name in layers:
        linear = model.get_submodule(name)
        state[f"{name}.weight_int8"], state[f"{name}.scale"] = absmax_int8(linear.weight)
        if linear.bias is not None:
            state[f"{name}.bias"] = linear.bias.detach()
    for name, tensor in model.state_dict().items():
        if name.rsplit(".", 1)[0] not in layers:
            state[name] = tensor
    return {k: v.contiguous() for k, v in state.items()}


def quantize_model(model: GPT, method: str, stored: dict[str, Tensor] | None = None) -> GPT:
    """Replace the blocks' linear layers in place. `stored`: the q/scale/bias tensors of a saved
    quantized run (by layer name); without it they are computed from the float weights."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    stored = int8_state(model) if stored is None else stored
    for name in quantizable(model):
        parent_name, _, child = name.rpartition(".")
        q, scale = stored[f"{name}.weight_int8"], stored[f"{name}.scale"]
        bias = stored.get(f"{name}.bias")
        layer = Int8Linear(q, scale, bias) if method == "int8-weight-only" else (
            dynamic_linear(q, scale, bias))  # fmt: skip
        setattr(model.get_submodule(parent_name), child, layer)
    return model


def load_quantized(model: GPT, method: str, stored: dict[str, Tensor]) -> GPT:
    """A float `model` filled from a saved quantized state: the float tensors first, then its
    linear layers replaced by quantized ones holding the stored int8 rows and scales."""
    layers = {k.rsplit(".", 1)[0] for k in stored if k.endswith(".weight_int8")}
    rest = {k: v for k, v in stored.items() if k.rsplit(".", 1)[0] not in layers}
    missing, unexpected = model.load_state_dict(rest, strict=False)
    missing = [k for k in missing if k.rsplit(".", 1)[0] not in layers and k != "lm_head.weight"]
    if missing or unexpected:
        raise ValueError(f"quantized checkpoint does not fit: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")  # fmt: skip
    return quantize_model(model, method, stored).eval()
