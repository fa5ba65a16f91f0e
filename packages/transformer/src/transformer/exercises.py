"""The transformer's exercises: the blocks the guide builds, checked against the stage's own code.

    uv run --package transformer exercise list

The learner writes LayerNorm's and RMSNorm's `forward`, the sinusoidal position table and the
encoder layer's `forward`. A method is written as a plain function whose first argument plays
`self`: the check hands it a real module of the stage (weights randomized away from their
ones and zeros, float64), so the learner's code uses that module's parameters and submodules.
Outputs are compared, then a fixed random weighting of the output is backpropagated through
both and the gradients of the input and of every parameter are compared too
(`torch_gradients`).
"""

import torch
from torch import nn

from shared.exercises import Case, Exercise, torch_gradients
from shared.learn import exercise_command
from transformer.layers import TransformerEncoderLayer
from transformer.model import generate_square_subsequent_mask, padding_mask
from transformer.norms import LayerNorm, RMSNorm
from transformer.positions import sinusoidal_table

f64 = torch.float64

NORM_IMPORTS = """
import torch
from torch import Tensor

from transformer.norms import _upcast
"""

POSITION_IMPORTS = """
import math

import torch
from torch import Tensor
"""

LAYER_IMPORTS = """
from torch import Tensor

from transformer.layers import _from_batch_first, _to_batch_first, _unbatched_padding, residual
"""


def _input(seed: int, *shape: int, scale: float = 3.0) -> torch.Tensor:
    """A float64 input (scale * N(0, 1) + scale / 3) that requires its gradient."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, dtype=f64, generator=g) * scale + scale / 3
    return x.requires_grad_()


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Norm weights near 1 and biases near 0, but not equal: a swapped or missing one shows."""
    g = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name or name in ("weight", "bias"):
                centre = 1.0 if name.endswith("weight") else 0.0
                p.copy_(torch.randn(p.shape, dtype=p.dtype, generator=g) * 0.3 + centre)
    return module


def _layernorm_cases() -> list[Case]:
    settings = [
        ("x (4, 5, 8), LayerNorm(8)", (4, 5, 8), 8, {}, 3.0),
        ("x (2, 3, 8), LayerNorm((3, 8)): statistics over the last two axes", (2, 3, 8), (3, 8),
         {}, 3.0),
        ("x (3, 8), LayerNorm(8, bias=False)", (3, 8), 8, {"bias": False}, 3.0),
        ("x (3, 8), LayerNorm(8, elementwise_affine=False): no weight, no bias", (3, 8), 8,
         {"elementwise_affine": False}, 3.0),
        ("x (1, 1, 8): batch of 1, length 1", (1, 1, 8), 8, {}, 3.0),
        ("x (2, 4, 8) of scale 1e-3, eps 1e-5: where eps matters", (2, 4, 8), 8, {}, 1e-3),
        ("x (4, 8), LayerNorm(8, eps=1e-2)", (4, 8), 8, {"eps": 1e-2}, 0.1),
    ]  # fmt: skip
    cases = []
    for seed, (label, shape, normalized, kwargs, scale) in enumerate(settings):
        norm = _randomize(LayerNorm(normalized, dtype=f64, **kwargs), seed)
        cases.append(Case(label, (norm, _input(seed, *shape, scale=scale)), seed))
    return cases


def _rmsnorm_cases() -> list[Case]:
    settings = [
        ("x (4, 5, 8), RMSNorm(8), eps None: float64's machine epsilon", (4, 5, 8), 8, {}, 3.0),
        ("x (4, 5, 8), RMSNorm(8, eps=1e-6)", (4, 5, 8), 8, {"eps": 1e-6}, 3.0),
        ("x (2, 3, 8), RMSNorm((3, 8), eps=1e-5): over the last two axes", (2, 3, 8), (3, 8),
         {"eps": 1e-5}, 3.0),
        ("x (3, 8), RMSNorm(8, elementwise_affine=False): no weight", (3, 8), 8,
         {"elementwise_affine": False}, 3.0),
        ("x (1, 1, 8): batch of 1, length 1", (1, 1, 8), 8, {"eps": 1e-6}, 3.0),
        ("x (2, 4, 8) of scale 1e-3, eps 1e-5: where eps matters", (2, 4, 8), 8, {"eps": 1e-5},
         1e-3),
    ]  # fmt: skip
    cases = []
    for seed, (label, shape, normalized, kwargs, scale) in enumerate(settings):
        norm = _randomize(RMSNorm(normalized, dtype=f64, **kwargs), seed)
        cases.append(Case(label, (norm, _input(seed, *shape, scale=scale)), seed))
    return cases


def _sinusoidal_cases() -> list[Case]:
    settings = [
        (50, 16, 10000.0, ""),
        (1, 8, 10000.0, ": one position"),
        (4, 7, 10000.0, ": odd width, one more sin column than cos"),
        (12, 6, 100.0, ""),
        (3, 2, 10000.0, ": one pair of columns"),
        (64, 128, 10000.0, ""),
    ]
    return [
        Case(f"max_len {n}, d_model {d}, base {base:g}{note}", (n, d, base), seed)
        for seed, (n, d, base, note) in enumerate(settings)
    ]


D, H, FF = 16, 4, 32  # the parity tests' sizes


def _encoder_layer(seed: int, norm_first: bool, activation: str, **kwargs) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = TransformerEncoderLayer(
            D, H, FF, dropout=kwargs.pop("dropout", 0.0), activation=activation,
            norm_first=norm_first, dtype=f64, **kwargs,
        )  # fmt: skip
    return _randomize(layer, seed)


def _encoder_layer_cases() -> list[Case]:
    lengths = torch.tensor([6, 4, 2])
    pad = padding_mask(lengths, 6)  # (3, 6) True at padding
    causal = generate_square_subsequent_mask(6, dtype=f64)  # (6, 6) -inf above the diagonal
    settings = [
        ("src (3, 6, 16), pre-norm, gelu, no mask", True, "gelu", (3, 6, D), {}, {}),
        ("src (3, 6, 16), pre-norm, relu, padding mask (lengths 6, 4, 2)", True, "relu",
         (3, 6, D), {"src_key_padding_mask": pad}, {}),
        ("src (3, 6, 16), pre-norm, is_causal=True", True, "gelu", (3, 6, D),
         {"is_causal": True}, {}),
        ("src (3, 6, 16), post-norm, relu, padding + causal", False, "relu", (3, 6, D),
         {"src_key_padding_mask": pad, "is_causal": True}, {}),
        ("src (3, 6, 16), pre-norm, src_mask (6, 6) float, -inf above the diagonal", True,
         "gelu", (3, 6, D), {"src_mask": causal}, {}),
        ("src (6, 3, 16), batch_first=False, post-norm, padding mask", False, "relu", (6, 3, D),
         {"src_key_padding_mask": pad}, {"batch_first": False}),
        ("src (1, 1, 16): batch of 1, length 1, pre-norm", True, "gelu", (1, 1, D), {}, {}),
        ("src (5, 16) unbatched, post-norm", False, "gelu", (5, D), {}, {}),
        ("src (2, 5, 16), pre-norm, dropout 0.1 in training mode (same seed, same masks)", True,
         "gelu", (2, 5, D), {}, {"dropout": 0.1}),
    ]  # fmt: skip
    cases = []
    for seed, (label, norm_first, activation, shape, masks, kwargs) in enumerate(settings):
        layer = _encoder_layer(seed, norm_first, activation, **kwargs)
        src = _input(seed, *shape, scale=1.0)
        args = (layer, src, masks.get("src_mask"), masks.get("src_key_padding_mask"),
                masks.get("is_causal", False))  # fmt: skip
        cases.append(Case(label, args, seed))
    return cases


EXERCISES = [
    Exercise(
        slug="layernorm",
        title="LayerNorm's forward: normalize each token, then scale and shift",
        reference=LayerNorm.forward,
        function="forward",
        cases=_layernorm_cases,
        gradients=torch_gradients,
        imports=NORM_IMPORTS,
        docstring="""
LayerNorm: normalize each token of x over its last len(self.normalized_shape) axes.

self: a LayerNorm with normalized_shape (a tuple, e.g. (d_model,)), eps, and weight and bias
of shape normalized_shape, either of which may be None (elementwise_affine=False, bias=False).
x: (..., *normalized_shape), e.g. (B, T, d_model). Returns x's shape and dtype:

    (x - mean) / sqrt(var + eps) * weight + bias

with mean and the biased variance (divide by n, not n - 1) taken per token over those axes.
An x whose last axes are not normalized_shape raises ValueError. In bfloat16 or float16,
compute in float32 (`_upcast(x)`) and cast the result back to x.dtype.""",
        hint="""Mean and biased variance (divide by n) per token, over the normalized axes only.
torch.var_mean(h, dim=dims, correction=0, keepdim=True) with dims = (-k, ..., -1) keeps them as
size-1 axes, so they broadcast back; then (h - mean) * torch.rsqrt(var + eps), and the affine
map only where weight and bias are not None.""",
    ),
    Exercise(
        slug="rmsnorm",
        title="RMSNorm's forward: scale each token to root-mean-square 1",
        reference=RMSNorm.forward,
        function="forward",
        cases=_rmsnorm_cases,
        gradients=torch_gradients,
        imports=NORM_IMPORTS,
        docstring="""
RMSNorm: scale each token of x to root-mean-square 1 over its last len(normalized_shape) axes.

self: an RMSNorm with normalized_shape (a tuple), eps and weight (normalized_shape, or None).
x: (..., *normalized_shape). Returns x's shape and dtype:

    x / sqrt(mean(x ** 2) + eps) * weight

the mean per token over those axes; no mean is subtracted and there is no bias. eps is
self.eps, or where that is None the machine epsilon of x's dtype (torch.finfo), as in torch.
A wrong width raises ValueError; bfloat16 and float16 are computed in float32 (`_upcast`).""",
        hint="""No centring: divide each token by sqrt(its mean square + eps), per token.
The mean is over the last len(normalized_shape) axes with keepdim=True, so it broadcasts back;
eps None means torch.finfo(x.dtype).eps.""",
    ),
    Exercise(
        slug="sinusoidal_table",
        title="the sinusoidal position table of the paper",
        reference=sinusoidal_table,
        cases=_sinusoidal_cases,
        imports=POSITION_IMPORTS,
        docstring="""
The (max_len, d_model) table of the paper, float32: row p encodes position p.

    PE[p, 2i]   = sin(p / base ** (2i / d_model))
    PE[p, 2i+1] = cos(p / base ** (2i / d_model))

The columns 2i and 2i + 1 share one frequency, which falls from 1 (i = 0) towards 1 / base.
An odd d_model has one more sin column than cos columns. Compute in float64, then .float().""",
        hint="""The exponent is the even column index 2i over d_model, not i over d_model.
The rates 1 / base^(2i/d) are torch.exp(torch.arange(0, d_model, 2) * (-math.log(base) /
d_model)); positions (max_len, 1) * rates gives every angle; table[:, 0::2] takes their sines
and table[:, 1::2] the cosines of the first d_model // 2 rates.""",
        atol=1e-5,  # a float32 computation of the angles is close enough
    ),
    Exercise(
        slug="encoder_layer",
        title="the encoder layer's forward, pre-norm and post-norm",
        reference=TransformerEncoderLayer.forward,
        function="forward",
        cases=_encoder_layer_cases,
        gradients=torch_gradients,
        imports=LAYER_IMPORTS,
        docstring="""
One encoder layer: self-attention, then the feed-forward network, each with a residual.

self: a TransformerEncoderLayer. src: (B, T, d_model) if self.batch_first, else
(T, B, d_model), or unbatched (T, d_model); returns src's shape. src_mask: None, or (T, T) or
(B * nhead, T, T), True (or -inf) where a query may NOT see a key. src_key_padding_mask: None
or (B, T), True at padding. is_causal: a causal mask without src_mask.

    pre-norm (self.norm_first):  x = x + dropout1(attn(norm1(x)))
                                 x = x + dropout2(ff(norm2(x)))
    post-norm (the paper's):     x = norm1(x + dropout1(attn(x)))
                                 x = norm2(x + dropout2(ff(x)))

attn(h) is self._self_attention(h, src_mask, padding, is_causal), (B, T, d_model) -> the
same; ff is self.ff. The stage's helpers in the imports: `residual(x, sublayer, norm,
dropout, norm_first)` is one residual connection (either order); `_to_batch_first(src,
batch_first)` gives (B, T, d_model), `_from_batch_first(x, src, batch_first)` turns it back
into src's layout, and `_unbatched_padding(mask, src)` makes an unbatched src's (T,) padding
mask (1, T).""",
        hint="""Pre-norm: x + dropout(sublayer(norm(x))); post-norm: norm(x + dropout(sublayer(x))).
Work in (B, T, d_model): convert src first and back at the end. The attention gets both masks
and is_causal, the feed-forward none; norm1 and dropout1 go with the attention, norm2 and
dropout2 with the feed-forward.""",
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package transformer exercise ...` (see shared/learn.py)."""
    return exercise_command("transformer", EXERCISES, argv)
