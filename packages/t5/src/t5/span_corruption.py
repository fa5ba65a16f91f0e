"""T5's pretraining objective: drop random spans of the text, ask for them back.

    ids        Thank  you  for  inviting  me  to  your  party  last  week  .
    noise       .      .    X     X       .   .    .     .      X    .    .
    inputs     Thank  you  <0>  me  to  your  party  <1>  week  .
    targets    <0>  for  inviting  <1>  last

Each span of noise becomes one sentinel in the inputs (<0>, <1>, ... are `sentinels[0]`,
`sentinels[1]`, ...; in T5's vocabulary <extra_id_0> = 32099 counting down), and the targets
spell out each span after its sentinel. The decoder's targets are short (about 15% of the
text plus one sentinel per span), so a pretraining step is cheap, and unlike BERT's masking the
model learns to produce text of any length, which is what every text-to-text task asks for.

Where the spans go (`random_spans_noise_mask`, as in T5's code, `random_spans_noise_mask`
in t5.data.preprocessors, without the random roll):

    noise tokens   n = round(length * noise_density), at least 1 and at most length - 1
    spans          k = round(n / mean_noise_span_length), at least 1
    lengths        n noise tokens cut into k non-empty spans at random, and the length - n other
                   tokens into k non-empty runs, also at random; then they alternate:
                   run 0, span 0, run 1, span 1, ..., run k-1, span k-1

so the text always starts with kept tokens and ends with a noise span; a single token stays
as it is (T5 draws for length 2 and keeps the first token). (T5 does not clamp k; we
cap it at length - n so that every run can be non-empty, which only matters for noise
densities far above 0.5.)

The end of the sequence: because the last span always reaches the end, T5's targets end with
that span's tokens, not with a further sentinel. (The paper's Figure 2 shows a final <Z> because
its example ends in kept text.) With `eos_token_id`, EOS is appended to both inputs and targets,
as T5's pipeline does after the corruption; `merge_spans` accepts either.
"""

from collections.abc import Sequence

import torch
from torch import Tensor


def _random_segmentation(num_items: int, num_segments: int, generator: torch.Generator | None):
    """`num_items` in `num_segments` non-empty runs of random lengths, summing to num_items."""
    # choose num_segments - 1 distinct cut points among the num_items - 1 gaps between items
    cuts = torch.randperm(num_items - 1, generator=generator)[: num_segments - 1] + 1
    edges = torch.cat([torch.tensor([0]), cuts.sort().values, torch.tensor([num_items])])
    return edges.diff()  # (num_segments,)


def random_spans_noise_mask(
    length: int,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A boolean (length,) mask, True on noise: kept run, noise span, kept run, ... (see above)."""
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
    if mean_noise_span_length < 1.0:
        raise ValueError(f"mean_noise_span_length must be >= 1, got {mean_noise_span_length}")
    original_length = length
    length = max(length, 2)  # one kept token and one noise token at least
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    num_spans = min(num_spans, length - num_noise)  # every kept run non-empty
    noise_lengths = _random_segmentation(num_noise, num_spans, generator)  # (k,)
    kept_lengths = _random_segmentation(length - num_noise, num_spans, generator)  # (k,)
    interleaved = torch.stack([kept_lengths, noise_lengths], dim=1).reshape(-1)  # (2k,)
    span_index = torch.repeat_interleave(torch.arange(2 * num_spans), interleaved)  # (length,)
    return (span_index % 2 == 1)[:original_length]  # odd runs are noise


def span_corruption(
    ids: Sequence[int] | Tensor,
    sentinels: Sequence[int],
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    generator: torch.Generator | None = None,
    eos_token_id: int | None = None,
) -> tuple[Tensor, Tensor]:
    """One sequence of ids (without EOS) -> (inputs, targets), 1-D LongTensors.

    `sentinels[i]` replaces the i-th noise span; there must be enough of them for the spans
    (T5 has 100). `generator` makes the draw reproducible.
    """
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)  # (T,)
    if ids.numel() == 0:
        raise ValueError("span_corruption needs at least one token")
    noise = random_spans_noise_mask(ids.numel(), noise_density, mean_noise_span_length, generator)
    starts = noise & ~torch.cat([torch.tensor([False]), noise[:-1]])  # first token of each span
    num_spans = int(starts.sum())
    if num_spans > len(sentinels):
        raise ValueError(f"{num_spans} noise spans but only {len(sentinels)} sentinels")
    sentinel_of = torch.as_tensor(list(sentinels[:num_spans]), dtype=torch.long)  # (k,)
    span_number = starts.long().cumsum(0) - 1  # (T,) which span a noise token belongs to

    # inputs: kept tokens, and each span's first token replaced by its sentinel, the rest gone
    inputs = ids.clone()
    inputs[starts] = sentinel_of
    inputs = inputs[~noise | starts]
    # targets: each span's sentinel, then its tokens
    pieces = []
    for s in range(num_spans):
        pieces += [sentinel_of[s : s + 1], ids[noise & (span_number == s)]]
    targets = torch.cat(pieces) if pieces else ids[:0]
    if eos_token_id is not None:
        eos = torch.tensor([eos_token_id])
        inputs, targets = torch.cat([inputs, eos]), torch.cat([targets, eos])
    return inputs, targets


def merge_spans(
    inputs: Sequence[int] | Tensor,
    targets: Sequence[int] | Tensor,
    sentinels: Sequence[int],
    eos_token_id: int | None = None,
) -> list[int]:
    """Undo `span_corruption`: each sentinel in `inputs` becomes what follows it in `targets`.

    Also how to read a model's answer: give it `inputs`, merge its output back in.
    """
    inputs, targets = [int(t) for t in inputs], [int(t) for t in targets]
    if eos_token_id is not None:
        inputs = inputs[:-1] if inputs and inputs[-1] == eos_token_id else inputs
        targets = targets[:-1] if targets and targets[-1] == eos_token_id else targets
    sentinel_set = set(sentinels)
    spans: dict[int, list[int]] = {}
    current = None
    for token in targets:
        if token in sentinel_set:
            current = token
            spans[current] = []
        elif current is not None:
            spans[current].append(token)
    out: list[int] = []
    for token in inputs:
        out += spans.get(token, []) if token in sentinel_set else [token]
    return out
