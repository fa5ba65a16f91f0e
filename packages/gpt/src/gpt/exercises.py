"""gpt's exercises: the pieces the guide walks through, checked against the stage's own code.

    uv run --package gpt exercise list

1. `CausalSelfAttention.forward`: a token's path through attention (heads, RoPE, the KV cache,
   grouped-query heads), compared on values and on the gradients of x and of every projection.
2. `GPT._mask`: the causal mask after a KV cache and with left padding ("What the causal mask
   does").
3. `top_p_filter`: nucleus sampling's cut ("How sampling choices change the text").
4. `LoRALinear.forward`: the frozen layer plus its low-rank update (SFT with LoRA).

The learner writes each as a plain function; a method's `self` comes first and is one of the
stage's own modules, built small with random weights, so the learner's code uses the module's
projections exactly as the stage does.
"""

import torch
from torch import Tensor, nn

from gpt.chat.lora import LoRALinear
from gpt.generate import top_k_filter, top_p_filter
from gpt.kv_cache import KVCache
from gpt.model import GPT, CausalSelfAttention, GPTConfig
from shared.exercises import Case, Exercise, torch_gradients
from shared.learn import exercise_command
from transformer import RotaryEmbedding

C = 16  # the width of the residual stream in every attention case: 4 heads of 4


def _randomize(module: nn.Module, generator: torch.Generator, std: float = 0.5) -> nn.Module:
    """Every parameter (biases too, so a forgotten one shows) drawn from N(0, std)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * std)
    return module


def _x(generator: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(shape, generator=generator).requires_grad_()


# ----------------------------------------------------------------------------------------------
# 1. Causal self-attention


def _attention(generator: torch.Generator, variant: str, **overrides) -> CausalSelfAttention:
    make = GPTConfig.gpt2 if variant == "gpt2" else GPTConfig.modern
    cfg = make(vocab_size=11, block_size=16, n_layer=1, n_head=4, n_embd=C, **overrides)
    return _randomize(CausalSelfAttention(cfg), generator)


def _rope(positions: Tensor) -> tuple[Tensor, Tensor]:
    """The (cos, sin) angles GPT.forward hands every layer: (T, 4) or (B, T, 4) each."""
    return RotaryEmbedding(C // 4, 16).cos_sin(positions)


def _cached(attn: CausalSelfAttention, g: torch.Generator, B: int, past: int, rope) -> KVCache:
    """A cache holding `past` tokens' keys and values, written by the stage's own forward."""
    cache = KVCache(1, 16)
    with torch.no_grad():
        attn(torch.randn(B, past, C, generator=g), rope, cache, 0)
    cache.advance(past)
    return cache


def _attention_cases() -> list[Case]:
    cases = []
    g = torch.Generator().manual_seed(0)
    attn = _attention(g, "gpt2")
    cases.append(Case("GPT-2 attention, x (2, 5, 16), causal", (attn, _x(g, 2, 5, C)), 0))

    g = torch.Generator().manual_seed(1)
    attn = _attention(g, "modern", n_kv_head=2)
    args = (attn, _x(g, 2, 6, C), _rope(torch.arange(6)))
    cases.append(Case("Llama attention, 4 query heads and 2 kv heads, x (2, 6, 16), RoPE", args, 1))

    g = torch.Generator().manual_seed(2)
    attn = _attention(g, "modern", n_kv_head=1)
    padding = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])  # row 0 left-padded by 2
    mask = GPT._mask(5, 0, padding, "cpu")  # (2, 1, 5, 5)
    positions = (padding.cumsum(-1) - 1).clamp(min=0)  # (2, 5): row 0 starts at its 3rd column
    args = (attn, _x(g, 2, 5, C), _rope(positions), None, 0, mask)
    label = "one kv head, x (2, 5, 16), row 0 left-padded: mask (2, 1, 5, 5), RoPE per row"
    cases.append(Case(label, args, 2))

    g = torch.Generator().manual_seed(3)
    attn = _attention(g, "modern", n_kv_head=2)
    cache = _cached(attn, g, 2, 5, _rope(torch.arange(5)))
    args = (attn, _x(g, 2, 1, C), _rope(torch.arange(5, 6)), cache, 0, None)
    label = "KV cache: one new token x (2, 1, 16) after 5 cached, RoPE at position 5, no mask"
    cases.append(Case(label, args, 3))

    g = torch.Generator().manual_seed(4)
    attn = _attention(g, "gpt2")
    cache = _cached(attn, g, 2, 4, None)
    args = (attn, _x(g, 2, 3, C), None, cache, 0, GPT._mask(3, 4, None, "cpu"))
    label = "KV cache: a chunk x (2, 3, 16) after 4 cached, mask (1, 1, 3, 7)"
    cases.append(Case(label, args, 4))

    g = torch.Generator().manual_seed(5)
    attn = _attention(g, "gpt2")
    cases.append(Case("GPT-2 attention, one token: x (1, 1, 16)", (attn, _x(g, 1, 1, C)), 5))
    return cases


# ----------------------------------------------------------------------------------------------
# 2. The causal mask with a cache and padding


def _mask_cases() -> list[Case]:
    padding = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])  # (2, 5), row 0 left-padded
    ready = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 1]]).view(1, 1, 3, 3).repeat(2, 1, 1, 1)
    return [
        Case("T=5 new tokens, nothing cached, no padding", (5, 0, None, "cpu")),
        Case("T=1 new token after 7 cached, no padding", (1, 7, None, "cpu")),
        Case("T=3 new tokens after 4 cached, no padding", (3, 4, None, "cpu")),
        Case(
            "T=5, nothing cached, padding (2, 5): row 0 starts at column 2", (5, 0, padding, "cpu")
        ),
        Case("T=2 after 3 cached, padding (2, 5)", (2, 3, padding, "cpu")),
        Case("T=1 after 4 cached, padding (2, 5)", (1, 4, padding, "cpu")),
        Case("T=3, a ready mask (2, 1, 3, 3) of 0s and 1s", (3, 0, ready, "cpu")),
        Case("T=1, nothing cached, padding (1, 1)", (1, 0, torch.ones(1, 1), "cpu")),
    ]


# ----------------------------------------------------------------------------------------------
# 3. Top-p


def _top_p_cases() -> list[Case]:
    known = torch.tensor([[0.5, 0.2, 0.3]]).log()  # probabilities 0.5, 0.2, 0.3
    cases = [
        Case("probabilities [0.5, 0.2, 0.3], p=0.6", (known, 0.6)),
        Case("probabilities [0.5, 0.2, 0.3], p=0.5", (known, 0.5)),
        Case("probabilities [0.5, 0.2, 0.3], p=1.0 (keep all)", (known, 1.0)),
        Case("probabilities [0.5, 0.2, 0.3], p=None (keep all)", (known, None)),
    ]
    for seed, (shape, scale, p) in enumerate([((4, 10), 1.0, 0.9), ((1, 50), 3.0, 0.3),
                                              ((3, 12), 2.0, 1e-4)], start=1):  # fmt: skip
        logits = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale
        cases.append(Case(f"logits {shape}, p={p}", (logits, p), seed))
    logits = torch.randn(2, 8, generator=torch.Generator().manual_seed(4))
    after_top_k = top_k_filter(logits, 3)  # -inf already in 5 places per row
    cases.append(
        Case("logits (2, 8) after top-k 3 (five -inf a row), p=0.8", (after_top_k, 0.8), 4)
    )
    return cases


# ----------------------------------------------------------------------------------------------
# 4. LoRA


def _lora(generator, d_in, d_out, rank, alpha, bias=True, dropout=0.0) -> LoRALinear:
    layer = LoRALinear(
        _randomize(nn.Linear(d_in, d_out, bias=bias), generator), rank, alpha, dropout
    )
    with torch.no_grad():  # B starts at zero, which would hide every mistake in the update
        layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=generator))
        layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator))
    return layer


def _lora_cases() -> list[Case]:
    cases = []
    g = torch.Generator().manual_seed(0)
    layer = _lora(g, 8, 6, rank=2, alpha=4.0)
    cases.append(Case("in 8, out 6, rank 2, alpha 4: x (2, 5, 8)", (layer, _x(g, 2, 5, 8)), 0))
    g = torch.Generator().manual_seed(1)
    layer = _lora(g, 8, 6, rank=4, alpha=16.0, bias=False)
    cases.append(Case("no bias, rank 4, alpha 16: x (3, 8)", (layer, _x(g, 3, 8)), 1))
    g = torch.Generator().manual_seed(2)
    layer = _lora(g, 8, 6, rank=2, alpha=8.0, dropout=0.25)  # a new module is in training mode
    label = "rank 2, dropout 0.25 in training mode: x (2, 4, 8)"
    cases.append(Case(label, (layer, _x(g, 2, 4, 8)), 2))
    g = torch.Generator().manual_seed(3)
    layer = _lora(g, 8, 6, rank=2, alpha=4.0)
    layer.merge()
    cases.append(Case("merged (the update is in base's weight): x (2, 8)", (layer, _x(g, 2, 8)), 3))
    return cases


# ----------------------------------------------------------------------------------------------

EXERCISES = [
    Exercise(
        slug="causal_self_attention",
        title="causal self-attention's forward, with RoPE and a KV cache",
        reference=CausalSelfAttention.forward,
        cases=_attention_cases,
        gradients=torch_gradients,
        imports="""
from torch import Tensor

from attention import scaled_dot_product_attention
from gpt.kv_cache import KVCache
from transformer import RotaryEmbedding
""",
        docstring="""
x (B, T, C) -> (B, T, C): multi-head (or grouped-query) attention; token t sees 0..t.

self is a CausalSelfAttention: self.q_proj (C -> h * d), self.k_proj and self.v_proj
(C -> h_kv * d), self.o_proj (h * d -> C); self.n_head = h, self.n_kv_head = h_kv (h_kv < h:
grouped-query), self.head_dim = d, self.dropout, self.fused (pass it on as `fused=`).
1. q (B, h, T, d), k and v (B, h_kv, T, d): project, then split the last axis into heads.
2. rope: (cos, sin), (T, d) or (B, T, d) each; if given, rotate q and k
   (`RotaryEmbedding.rotate_by(q, cos, sin)`).
3. cache: a KVCache holding S - T earlier tokens; `cache.update(layer, k, v)` stores the new
   k, v and returns every token's: (B, h_kv, S, d) each.
4. scaled_dot_product_attention(q, k, v, ...) -> (B, h, T, d). mask: (B or 1, 1, T, S) bool,
   True = may attend; without one, attention is causal, except that a single new token
   (T == 1) sees every cached key. Dropout only in training; enable_gqa when h_kv < h.
5. Merge the heads back to (B, T, h * d) and project with o_proj.""",
        hint="""No mask: causal only if T > 1; a single new token after a cache sees every key.
(torch's causal mask is aligned top-left: with T=1 and S keys it would show key 0 only.)
Split heads with .view(B, T, heads, d).transpose(1, 2); merge them with the inverse,
.transpose(1, 2).reshape(B, T, h * d). Rotate q and k before the cache update: cached keys were
rotated when they were new.""",
        atol=1e-5,
        rtol=1e-4,
    ),
    Exercise(
        slug="causal_mask",
        title="the causal mask after a KV cache, with left padding",
        reference=GPT._mask,
        function="build_mask",
        cases=_mask_cases,
        imports="""
import torch
from torch import Tensor
""",
        docstring="""
The boolean attention mask (B or 1, 1, T, S), True = may attend; or None when the attention's
own causal mode will do. T new tokens come after `past` cached ones: S = past + T keys.

attention_mask: None; or (B, S), 1 for a real token and 0 for padding; or a ready
(B, 1, T, S) mask, returned as bool. device: where to build the mask.
- None when there is no attention_mask and nothing is cached (past == 0: the attention is
  causal by itself) or there is one new token (T == 1: it may see every key).
- Otherwise new token i sits at overall position past + i and may see key j when
  j <= past + i (causal), and, with padding, when key j is not padding. A padding query then
  sees no key at all: let it see itself (j == past + i), which keeps its unused output finite.
- A (B, S) attention_mask whose S is not past + T: raise ValueError.""",
        hint="""New token i is at overall position past + i: it may see key j when j <= past + i.
With rows = arange(past, S) as a column (T, 1) and cols = arange(S) as a row (1, S), the causal
mask is cols <= rows, the bottom-right T x S corner of the full S x S triangle. Padding: and
(key is real or cols == rows). Return None first in the two cases that need no mask.""",
    ),
    Exercise(
        slug="top_p",
        title="top-p (nucleus) filtering of the next-token scores",
        reference=top_p_filter,
        cases=_top_p_cases,
        imports="""
import torch
from torch import Tensor
""",
        docstring="""
Nucleus sampling (Holtzman et al. 2020): logits (B, V) -> (B, V), the dropped scores set to
-inf (so that softmax gives them probability 0), the kept ones unchanged.

In each row keep the smallest set of most likely tokens whose probabilities add up to at least
p: a token stays when the tokens more likely than it add up to less than p, so the top token
always stays. p None or >= 1 keeps everything (return the logits as they are).""",
        hint="""Drop a token when the more likely tokens already sum to p: cumsum - probs >= p.
Sort each row descending (torch.sort gives the order too) and softmax; the mass before a
token is the cumulative sum minus its own probability. Then put the drop flags back in
vocabulary order (scatter along the order) and masked_fill with -inf.""",
    ),
    Exercise(
        slug="lora_forward",
        title="LoRA's forward: a frozen layer plus a low-rank update",
        reference=LoRALinear.forward,
        cases=_lora_cases,
        gradients=torch_gradients,
        imports="""
from torch import Tensor
""",
        docstring="""
x (..., in) -> (..., out): the frozen layer plus the adapter's low-rank update.

self is a LoRALinear: self.base (the frozen nn.Linear, W (out, in)), self.lora_A (r, in),
self.lora_B (out, r), self.scaling = alpha / r, self.dropout (the adapter's, on x only),
self.merged (True after merge(): s B A is inside base's weight already).
    y = base(x) + scaling * dropout(x) A^T B^T          (..., out)
Never form B A (out, in): two thin products through r are cheaper. Cast A and B to x's dtype.""",
        hint="""y = base(x) + scaling * dropout(x) A^T B^T, unless merged (then base(x) alone).
In torch: self.base(x), plus (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling;
after merge() the base weight already holds the update, and adding it again counts it twice.""",
        rtol=1e-4,  # float32: forming B A first (slower, not wrong) rounds differently
        atol=1e-5,
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package gpt exercise ...` (see shared/learn.py)."""
    return exercise_command("gpt", EXERCISES, argv)
