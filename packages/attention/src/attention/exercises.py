"""attention's exercises: scaled dot-product attention, the heads of multi-head attention, and
Bahdanau's additive score, each checked against the code of this stage.

    uv run --package attention exercise list

The learner writes `naive_scaled_dot_product_attention` (sdpa.py) with every kind of mask the
parity tests use; then the two halves of multi-head attention around it, splitting the projected
keys and values into heads (`MultiHeadAttention.project_key_value`) and attending over heads and
merging them back (`MultiHeadAttention.attend`); and the additive score (`AdditiveAttention.score`).
Each check runs the learner's function and the stage's on the same random float64 tensors and
modules, then backpropagates a random weighting of every output through both and compares the
gradients of the inputs and of the module's weights.
"""

import torch

from attention.additive import AdditiveAttention
from attention.multihead import MultiHeadAttention
from attention.sdpa import naive_scaled_dot_product_attention
from shared.exercises import Case, Exercise, torch_gradients
from shared.learn import exercise_command


def _leaf(generator: torch.Generator, *shape: int) -> torch.Tensor:
    """A float64 leaf that requires grad: an input whose gradient the check compares."""
    return torch.randn(*shape, generator=generator, dtype=torch.float64).requires_grad_()


def _randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The module in float64 with every weight and bias drawn from `seed` (torch zeroes biases at
    initialisation; random ones make a misplaced bias show)."""
    generator = torch.Generator().manual_seed(seed)
    module = module.to(torch.float64)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator, dtype=torch.float64))
    return module


# ---------------------------------------------------------------------------- 1: SDPA


def _sdpa_cases() -> list[Case]:
    B, H, L, S, E, EV = 2, 3, 5, 6, 8, 4
    g = torch.Generator().manual_seed(0)
    keep = torch.rand(B, 1, L, S, generator=g) > 0.4  # True = attend, broadcast over heads
    keep[..., 0] = True  # every row keeps a key ...
    no_row = keep.clone()
    no_row[1, 0, 2] = False  # ... but this one, which sees nothing
    bias = torch.randn(L, S, generator=g, dtype=torch.float64)
    bias[0, 3] = float("-inf")  # a float mask: biases added, and one key removed
    settings = [  # what, attn_mask, is_causal, scale, enable_gqa
        ("no mask", None, False, None, False),
        ("boolean mask (2, 1, 5, 6)", keep, False, None, False),
        ("float mask (5, 6) with one -inf", bias, False, None, False),
        ("is_causal", None, True, None, False),
        ("a query whose keys are all masked", no_row, False, None, False),
        ("scale 0.37 and is_causal", None, True, 0.37, False),
    ]
    cases = []
    for seed, (what, mask, causal, scale, gqa) in enumerate(settings):
        g = torch.Generator().manual_seed(seed)
        q, k, v = _leaf(g, B, H, L, E), _leaf(g, B, H, S, E), _leaf(g, B, H, S, EV)
        label = f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, {what}"
        cases.append(Case(label, (q, k, v, mask, 0.0, causal, scale, gqa), seed))
    g = torch.Generator().manual_seed(6)
    q, k, v = _leaf(g, 2, 4, 3, 8), _leaf(g, 2, 2, 5, 8), _leaf(g, 2, 2, 5, 8)
    label = "q (2, 4, 3, 8), k and v (2, 2, 5, 8), enable_gqa (2 query heads per k/v head)"
    cases.append(Case(label, (q, k, v, None, 0.0, False, None, True), 6))
    q, k, v = _leaf(g, 1, 1, 1, 4), _leaf(g, 1, 1, 3, 4), _leaf(g, 1, 1, 3, 2)
    cases.append(Case("q (1, 1, 1, 4), k (1, 1, 3, 4), v (1, 1, 3, 2): one query", (q, k, v), 7))
    return cases


# ---------------------------------------------------------------------------- 2, 3: the heads


def _mha(seed: int, embed_dim: int, heads: int, kv_heads: int, kdim: int | None = None):
    module = MultiHeadAttention(embed_dim, heads, kdim=kdim, vdim=kdim, num_kv_heads=kv_heads)
    return _randomised(module, seed)


def _split_cases() -> list[Case]:
    settings = [  # B, S, E, h, h_kv, kdim
        (2, 5, 12, 3, 3, None),
        (2, 4, 12, 4, 2, None),
        (1, 3, 8, 2, 1, 6),
        (3, 1, 6, 3, 3, None),
    ]
    cases = []
    for seed, (B, S, E, h, h_kv, kdim) in enumerate(settings):
        g = torch.Generator().manual_seed(seed)
        module = _mha(seed, E, h, h_kv, kdim)
        key, value = _leaf(g, B, S, module.kdim), _leaf(g, B, S, module.vdim)
        label = f"key, value ({B}, {S}, {module.kdim}), {h} heads of {E // h}, {h_kv} k/v heads"
        cases.append(Case(label, (module, key, value), seed))
    return cases


def _attend_cases() -> list[Case]:
    settings = [  # label, B, h, h_kv, L, S, d, mask, is_causal, need_weights, average
        ("no mask", 2, 3, 3, 4, 4, 2, None, False, False, True),
        ("is_causal, weights averaged", 2, 3, 3, 4, 4, 2, None, True, True, True),
        ("is_causal after 4 cached keys", 2, 2, 2, 2, 6, 3, None, True, False, True),
        ("GQA, bool mask (2, 1, 3, 5), per head", 2, 4, 2, 3, 5, 2, "bool", False, True, False),
        ("float mask (3, 5) and is_causal", 1, 2, 1, 3, 5, 4, "float", True, False, True),
    ]
    cases = []
    for seed, (what, B, h, h_kv, L, S, d, kind, causal, weights, average) in enumerate(settings):
        g = torch.Generator().manual_seed(seed)
        module = _mha(seed, h * d, h, h_kv)
        q, k, v = _leaf(g, B, h, L, d), _leaf(g, B, h_kv, S, d), _leaf(g, B, h_kv, S, d)
        mask = None
        if kind == "bool":
            mask = torch.rand(B, 1, L, S, generator=g) > 0.4  # True = attend
            mask[..., 0] = True
        elif kind == "float":
            mask = torch.randn(L, S, generator=g, dtype=torch.float64)
        label = f"q ({B}, {h}, {L}, {d}), k and v ({B}, {h_kv}, {S}, {d}), {what}"
        cases.append(Case(label, (module, q, k, v, mask, causal, weights, average), seed))
    return cases


# ---------------------------------------------------------------------------- 4: additive score


def _score_cases() -> list[Case]:
    settings = [(2, 3, 5, 4, 6), (2, 1, 4, 3, 5), (1, 2, 1, 6, 3)]  # B, T, S, Dq, A
    cases = []
    for seed, (B, T, S, Dq, A) in enumerate(settings):
        g = torch.Generator().manual_seed(seed)
        module = _randomised(AdditiveAttention(Dq, key_dim=7, hidden_dim=A), seed)
        query, keys = _leaf(g, B, T, Dq), _leaf(g, B, S, A)
        label = f"query ({B}, {T}, {Dq}), projected keys ({B}, {S}, {A})"
        cases.append(Case(label, (module, query, keys), seed))
    return cases


EXERCISES = [
    Exercise(
        slug="sdpa",
        title="scaled dot-product attention with masks",
        reference=naive_scaled_dot_product_attention,
        cases=_sdpa_cases,
        gradients=torch_gradients,
        imports="""
import math

import torch
from torch import Tensor

from attention.sdpa import _check, causal_mask, dropout_weights
from attention.softmax import softmax
""",
        docstring="""
softmax(q k^T * scale + mask) v. Returns (output, attention weights).

q (..., L, E), k (..., S, E), v (..., S, Ev) -> output (..., L, Ev), weights (..., L, S).
scale: 1/sqrt(E) when None. attn_mask broadcasts to (..., L, S): boolean True = attend,
False = masked out; a float mask is added to the scores. is_causal: query i sees keys 0..i
(`causal_mask(L, S)`). `softmax` (attention.softmax) gives a fully masked row zeros, not NaN.
enable_gqa: q has H heads at dim -3, k and v have H / g; each k/v head serves g query heads.
dropout_p: pass the weights through `dropout_weights(weights, dropout_p)` (the check uses 0).
`_check(q, k, v, enable_gqa)` raises on mismatched shapes.""",
        hint="""scores = q @ k.transpose(-2, -1) * scale, masked, softmaxed over the S keys, @ v.
A boolean mask removes a key by setting its score to -inf (scores.masked_fill(~mask, -inf));
a float mask is added. For GQA repeat each k/v head g times along dim -3
(repeat_interleave). torch.softmax turns a row of -inf into NaN: use attention.softmax.""",
    ),
    Exercise(
        slug="split_heads",
        title="multi-head attention: project keys and values, split into heads",
        reference=MultiHeadAttention.project_key_value,
        cases=_split_cases,
        gradients=torch_gradients,
        imports="""
from torch import Tensor
""",
        docstring="""
(B, S, kdim), (B, S, vdim) -> k, v: two (B, h_kv, S, d) tensors (what a KV cache stores).

self.k_proj and self.v_proj map the last dimension to h_kv * d (self.num_kv_heads heads of
self.head_dim each). Feature j of a projected position belongs to head j // d: head i is the
slice [i * d : (i + 1) * d] of the last dimension.""",
        hint="""view the projection as (B, S, h_kv, d), then transpose(1, 2) to (B, h_kv, S, d).
A reshape straight to (B, h_kv, S, d) has the right shape but mixes positions and heads: the
features of one position must stay together, and only the axes S and h_kv swap places.""",
    ),
    Exercise(
        slug="attend",
        title="multi-head attention: attend over the heads, merge them, project",
        reference=MultiHeadAttention.attend,
        cases=_attend_cases,
        gradients=torch_gradients,
        imports="""
import torch
from torch import Tensor

from attention.sdpa import causal_mask, naive_scaled_dot_product_attention
from attention.sdpa import scaled_dot_product_attention as sdpa
""",
        docstring="""
Attention over projected heads, merged back, then the output projection.

q (B, h, L, d), k and v (B, h_kv, S, d); `attn_mask` in SDPA's convention (bool True =
attend, float added), broadcastable to (B, h, L, S). `is_causal` masks key j for query i
when j > i + (S - L): the newest L keys line up with the L queries (torch's causal mask when
L == S, and the right one after a KV cache). Returns the output (B, L, E) and the weights:
(B, L, S) averaged over heads if average_attn_weights, else (B, h, L, S); None unless
need_weights. From self: num_heads (h), num_kv_heads (h_kv), embed_dim (E = h * d),
out_proj (E -> E), and dropout, applied to the weights only while self.training.""",
        hint="""Attend per head, then merge: out.transpose(1, 2).reshape(B, L, E), then out_proj.
sdpa(..., enable_gqa=...) attends over all heads at once, (B, h, L, d); with need_weights use
naive_scaled_dot_product_attention, which returns the weights too. For is_causal with L != S
(cached keys), build causal_mask(L, S, offset=S - L) and combine it with attn_mask.""",
    ),
    Exercise(
        slug="additive_score",
        title="Bahdanau's additive score v^T tanh(W_q s + W_k h)",
        reference=AdditiveAttention.score,
        cases=_score_cases,
        gradients=torch_gradients,
        imports="""
import torch
from torch import Tensor
""",
        docstring="""
v^T tanh(W_q s + W_k h_j): query (B, T, Dq), projected keys (B, S, A) -> scores (B, T, S).

projected_keys is W_k h already (self.project_keys). self.query_proj is W_q, Dq -> A;
self.v is v^T, A -> 1. Every query t meets every key j: the tanh is of a (B, T, S, A) tensor.""",
        hint="""Broadcast: (B, T, 1, A) + (B, 1, S, A) is (B, T, S, A), every query with every key.
query_proj(query).unsqueeze(2) and projected_keys.unsqueeze(1); tanh; self.v maps A to 1;
squeeze(-1) drops that last axis.""",
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package attention exercise ...` (see shared/learn.py)."""
    return exercise_command("attention", EXERCISES, argv)
