"""t5's exercises: relative positions and span corruption, checked against the stage's own code.

    uv run --package t5 exercise list

1. `relative_position_bucket`: the distance j - i to a bucket, exact near, logarithmic far
   ("Relative positions: the buckets"), on the guide's table and on every distance of -300..300
   for several bucket counts and reaches, bidirectional and causal.
2. `T5Attention.position_bias`: the learned bias of every (query, key) pair from those buckets,
   with a cache's offset; values and the gradient of the bias table.
3. `random_spans_noise_mask`: where T5's noise spans go ("Span corruption").
4. `span_corruption`: the spans out of the inputs, behind sentinels, into the targets.

The span pieces draw from a seeded `torch.Generator` passed in, copied for each call, so the
learner's code and the stage's see the same numbers if they draw them in the same order.
"""

import torch
from torch import Tensor

from shared.exercises import Case, Exercise, torch_gradients
from shared.learn import exercise_command
from t5.model import T5Attention, T5Config, relative_position_bucket
from t5.span_corruption import random_spans_noise_mask, span_corruption

# The guide's table: key minus query, from far before the query to far after it.
TABLE = [0, -1, -7, -8, -11, -12, -15, -16, -64, -90, -91, -127, -128, -1000,
         1, 7, 8, 64, 128, 1000]  # fmt: skip
SENTINELS = list(range(1299, 999, -1))  # <extra_id_0>, <extra_id_1>, ... count down, as in T5


def _bucket_cases() -> list[Case]:
    table = torch.tensor(TABLE)
    cases = [
        Case("the guide's distances (20,), bidirectional, 32 buckets, max 128", (table, True)),
        Case("the guide's distances (20,), causal, 32 buckets, max 128", (table, False)),
    ]
    distances = torch.arange(-300, 301)  # (601,)
    for buckets, reach in [(8, 20), (16, 64), (64, 256)]:
        for bidirectional in (True, False):
            kind = "bidirectional" if bidirectional else "causal"
            label = f"distances -300..300 (601,), {kind}, {buckets} buckets, max {reach}"
            cases.append(Case(label, (distances, bidirectional, buckets, reach)))
    key_minus_query = torch.arange(7)[None, :] - torch.arange(5)[:, None]  # (5, 7)
    label = "key - query (5, 7) for 5 queries and 7 keys, bidirectional, 8 buckets, max 20"
    cases.append(Case(label, (key_minus_query, True, 8, 20)))
    return cases


# ----------------------------------------------------------------------------------------------


def _attention(seed: int, bidirectional: bool) -> T5Attention:
    config = T5Config(vocab_size=61, d_model=16, d_kv=4, d_ff=24, num_layers=1, num_heads=4,
                      relative_attention_num_buckets=8, relative_attention_max_distance=20,
                      dropout_rate=0.0)  # fmt: skip
    attention = T5Attention(config, has_relative_bias=True, bidirectional=bidirectional)
    table = attention.relative_attention_bias.weight  # (8 buckets, 4 heads)
    with torch.no_grad():
        table.copy_(torch.randn(table.shape, generator=torch.Generator().manual_seed(seed)))
    return attention


def _bias_cases() -> list[Case]:
    encoder, decoder = True, False  # bidirectional or causal
    return [
        Case("encoder: 5 queries, 5 keys, 8 buckets, max 20", (_attention(0, encoder), 5, 5), 0),
        Case("decoder (causal): 4 queries, 4 keys", (_attention(1, decoder), 4, 4), 1),
        Case("decoder, cache: 1 query at 5, 6 keys", (_attention(2, decoder), 1, 6, 5), 2),
        Case("decoder, cache: 3 queries at 4..6, 7 keys", (_attention(3, decoder), 3, 7, 4), 3),
        Case("encoder: 30 queries, 30 keys (past max 20)", (_attention(4, encoder), 30, 30), 4),
    ]


# ----------------------------------------------------------------------------------------------


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _noise_cases() -> list[Case]:
    cases = []
    for seed, (length, density, mean) in enumerate(
        [
            (100, 0.15, 3.0),
            (57, 0.5, 1.0),
            (30, 0.3, 8.0),
            (10, 0.15, 3.0),
            (3, 0.15, 3.0),
            (2, 0.5, 1.0),
            (1, 0.15, 3.0),
            (12, 0.9, 1.0),  # 11 noise tokens want 11 spans; 1 kept token allows 1
        ]
    ):
        label = f"length {length}, noise density {density}, mean span {mean}"
        cases.append(Case(label, (length, density, mean, _generator(seed)), seed))
    return cases


def _ids(n: int, seed: int) -> Tensor:
    return torch.randint(2, 999, (n,), generator=_generator(100 + seed))  # (n,)


def _span_cases() -> list[Case]:
    cases = []
    for seed, (ids, density, mean, eos, what) in enumerate(
        [
            (list(range(100, 111)), 0.3, 3.0, None, "the guide's 11 ids 100..110 (a list)"),
            (_ids(57, 1), 0.15, 3.0, None, "ids (57,)"),
            (_ids(40, 2), 0.5, 1.0, None, "ids (40,), many short spans"),
            (_ids(50, 3), 0.15, 3.0, 1, "ids (50,), EOS id 1 appended"),
            (_ids(3, 4), 0.15, 3.0, None, "ids (3,)"),
            (_ids(1, 5), 0.15, 3.0, None, "ids (1,): a lone token stays, no targets"),
        ]
    ):
        label = f"{what}, density {density}, mean span {mean}"
        cases.append(Case(label, (ids, SENTINELS, density, mean, _generator(seed), eos), seed))
    return cases


# ----------------------------------------------------------------------------------------------

SPAN_IMPORTS = """
from collections.abc import Sequence

import torch
from torch import Tensor

from t5.span_corruption import _random_segmentation, random_spans_noise_mask
"""

EXERCISES = [
    Exercise(
        slug="position_bucket",
        title="relative positions: the distance j - i to a bucket",
        reference=relative_position_bucket,
        cases=_bucket_cases,
        imports="""
import math

import torch
from torch import Tensor
""",
        docstring="""
j - i (key minus query; long, any shape) -> bucket in [0, num_buckets), long, same shape.

bidirectional (encoder): num_buckets is halved, n = num_buckets // 2 per direction; keys
before the query (j - i <= 0) use buckets 0..n-1 and keys after it n + the same; the
distance is |j - i|. Causal (decoder): all n = num_buckets buckets look back, the distance
is max(i - j, 0) (a future key is distance 0, which the causal mask hides anyway).
Within a direction, with e = n // 2 exact buckets:
    distance d < e      -> bucket d
    distance d >= e     -> e + floor(log(d / e) / log(max_distance / e) * (n - e)),
                           capped at n - 1 (everything that far or farther shares it)
Compute the log as T5 does, in float32 and in this order: log(d.float() / e), then divided by
math.log(max_distance / e), then times (n - e); then truncate (.long()).""",
        hint="""Bidirectional: (j - i > 0) adds num_buckets // 2; then both halves count |j - i|.
Then one rule for a distance d in a half of n buckets: exact below e = n // 2, logarithmic from
e up to max_distance, capped at n - 1. torch.where(d < e, d, large) picks per element; clamp d to
at least e inside the log so that log(0) never appears.""",
    ),
    Exercise(
        slug="position_bias",
        title="the relative position bias of every query and key",
        reference=T5Attention.position_bias,
        cases=_bias_cases,
        gradients=torch_gradients,
        imports="""
import torch
from torch import Tensor

from t5.model import relative_position_bucket
""",
        docstring="""
The learned bias of queries offset..offset+L-1 against keys 0..S-1: (1, h, L, S).

self is a T5Attention: self.relative_attention_bias, an nn.Embedding (num_buckets, h), one
learned number per bucket and head (None in every layer but a stack's first: raise a
RuntimeError then); self.bidirectional, self.num_buckets, self.max_distance.
Query i (the i-th of L, at position offset + i) and key j get the bucket of the distance
key minus query, `relative_position_bucket(j - (offset + i), self.bidirectional,
self.num_buckets, self.max_distance)`; the bias is that bucket's row of the table, one value
per head. With a cache, offset is the number of tokens already decoded.""",
        hint="""Key minus query, not query minus key: a (1, S) row of keys minus an (L, 1) column.
Build the (L, S) distances by broadcasting (query positions start at offset), bucket them, look
the buckets up in the table: (L, S, h). Then move the heads first: .permute(2, 0, 1), and add
the batch axis of 1 in front.""",
    ),
    Exercise(
        slug="noise_mask",
        title="where T5's noise spans go: kept run, noise span, kept run, ...",
        reference=random_spans_noise_mask,
        cases=_noise_cases,
        imports=SPAN_IMPORTS,
        docstring="""
A bool (length,) mask, True on noise: kept run, noise span, kept run, ..., noise span.

- noise_density outside (0, 1) or mean_noise_span_length < 1: ValueError.
- Work on max(length, 2) tokens (cut back to `length` at the end): a single token stays.
- n = round(length * noise_density) noise tokens, at least 1 and at most length - 1;
  k = round(n / mean_noise_span_length) spans, at least 1 and at most length - n.
- `_random_segmentation(num_items, num_segments, generator)` cuts num_items into that many
  non-empty runs of random lengths, (num_segments,). Cut the n noise tokens into k spans
  first, then the length - n kept tokens into k runs (this order: the generator's draws).
- Then alternate: kept run 0, noise span 0, kept run 1, noise span 1, ...; the text starts
  with kept tokens and ends with noise.""",
        hint="""Kept first: interleave the run lengths as [kept 0, noise 0, kept 1, noise 1, ...].
torch.stack([kept, noise], dim=1).reshape(-1) interleaves two (k,) tensors; then number the runs
0..2k-1 and repeat each number by its run's length (torch.repeat_interleave): the odd runs are
noise.""",
    ),
    Exercise(
        slug="span_corruption",
        title="span corruption: spans out of the inputs, behind sentinels, into the targets",
        reference=span_corruption,
        cases=_span_cases,
        imports=SPAN_IMPORTS,
        docstring="""
One sequence of ids (without EOS) -> (inputs, targets), 1-D LongTensors.

    ids        Thank  you  for  inviting  me  to  your  party  last  week
    noise        .     .    X      X       .   .    .     .     X     .
    inputs     Thank  you  <0>  me  to  your  party  <1>  week
    targets    <0>  for  inviting  <1>  last

ids: a list or a 1-D tensor, at least one token (none: ValueError). The noise comes from
`random_spans_noise_mask(len(ids), noise_density, mean_noise_span_length, generator)`.
Span s (the s-th run of noise, counted from 0) is replaced in the inputs by one token,
sentinels[s]; the targets are sentinels[0], span 0's ids, sentinels[1], span 1's ids, ...
(no sentinel after the last span; empty when there is no span). More spans than sentinels:
ValueError. With eos_token_id, append it to both inputs and targets.""",
        hint="""A span starts where the noise mask is True and the token before is not noise.
The inputs keep every token that is not noise, plus each span's first token, which becomes its
sentinel. Number the spans with a cumulative sum of the starts (minus 1) to collect each span's
ids for the targets.""",
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package t5 exercise ...` (see shared/learn.py)."""
    return exercise_command("t5", EXERCISES, argv)
