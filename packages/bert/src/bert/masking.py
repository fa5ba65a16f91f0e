"""BERT's dynamic masking: which tokens the masked-language model must guess, and its loss.

Pretraining hides some tokens of each sentence and asks the model to recover them from both
sides of context. The recipe (Devlin et al. 2018, section 3.1 and appendix C.2):

1. Choose 15% of the tokens, never [CLS], [SEP], [PAD] or another special token: they carry no
   meaning to recover, and a padded position is not even part of the sentence. Each token is
   chosen independently with probability 0.15 (as transformers' data collator does; the
   original script picked exactly round(15%) of each sequence, a difference of no consequence).
2. Of the chosen tokens, replace 80% by [MASK], 10% by a random token, and leave 10% unchanged.
3. The labels are the original ids at the chosen positions and -100 everywhere else, so the
   loss (cross entropy with `ignore_index=-100`) counts only the chosen positions.

Why not replace every chosen token by [MASK]? Fine-tuning and inference never see [MASK], so a
model that only ever predicted at [MASK] positions would learn representations tuned to an input
it will never get again. Keeping some chosen tokens unchanged makes the model build a good
representation of every position, since any token might be one it is asked about.

Why random tokens? If the unchanged 10% were the only alternative, the model could learn "a
token that is not [MASK] is correct" and copy it. A random token in 10% of the cases means no
visible token can be trusted blindly: the model has to check every token against its context.
At 1.5% of all tokens the noise is small enough not to hurt language understanding.

Why dynamic? BERT's original data had the masks drawn once, when the data was prepared (copied
ten times with different masks). RoBERTa (Liu et al. 2019) draws a fresh mask every time a
batch is built, so every epoch asks different questions about the same sentence; it matched or
beat static masking and needs no copies. Here `mask_tokens` runs on each batch as it is drawn.

Whole-word masking (Google's later release of BERT): WordPiece splits a rare word into pieces,
"embedding" -> "em ##bed ##ding". Masking "##bed" alone is an easy question: "em" and "##ding"
all but spell it out. Whole-word masking chooses *words* with probability 0.15 and masks all of
their pieces together (each piece still gets its own 80/10/10 draw, as in Google's script).

A model only needs the vocabulary projection (hidden -> vocab logits, the largest matrix
multiply of a small BERT) at the chosen 15%: `masked_positions` and `select_masked` pick those
rows out before the projection, and `mlm_loss` works on either form.

All the randomness comes from a `torch.Generator` passed in, so a batch's mask is a function of
the generator's seed and state alone, and a resumed run can redraw exactly the same masks.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100  # the label of a position that is not chosen; cross_entropy skips it


def _uniform(shape: torch.Size | tuple[int, ...], generator: torch.Generator, device) -> Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, then moved to `device`.

    Drawing on the generator's own device lets a CPU generator mask a CUDA batch.
    """
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def candidate_mask(
    input_ids: Tensor,
    special_ids: Sequence[int] = (),
    special_mask: Tensor | None = None,
) -> Tensor:
    """True where a token may be chosen: not a special id and not marked in `special_mask`.

    `special_ids` should include the padding id; `special_mask` (B, T) marks any other position
    never to choose, e.g. `attention_mask == 0`. Returns a bool tensor (B, T).
    """
    if not special_ids and special_mask is None:
        raise ValueError(
            "give special_ids or special_mask: [CLS], [SEP] and [PAD] must not be chosen"
        )
    special = torch.tensor(list(special_ids), dtype=input_ids.dtype, device=input_ids.device)
    never = torch.isin(input_ids, special)  # (B, T)
    if special_mask is not None:
        if special_mask.shape != input_ids.shape:
            raise ValueError(
                f"special_mask has shape {tuple(special_mask.shape)}, "
                f"input_ids {tuple(input_ids.shape)}"
            )
        never = never | special_mask.bool()
    return ~never  # (B, T)


def word_index(input_ids: Tensor, candidates: Tensor, continues_word: Tensor) -> Tensor:
    """For each position, the index (within its row) of the word it belongs to; (B, T) long.

    A word starts at every token that is not a "##" piece, and also at a "##" piece whose left
    neighbour is not a candidate (a piece right after [CLS] has no word to continue). Every
    following "##" piece gets the same index as the token that starts its word.
    """
    continues = continues_word.to(input_ids.device)[input_ids]  # (B, T) True for "##" pieces
    starts = ~continues
    starts[:, 0] = True
    starts[:, 1:] |= ~candidates[:, :-1]  # after a special token or padding: a new word
    return starts.long().cumsum(dim=1) - 1  # (B, T) in [0, T)


def word_index_naive(input_ids: Tensor, candidates: Tensor, continues_word: Tensor) -> Tensor:
    """The same as `word_index`, one token at a time: the loop a reader can check by eye."""
    out = torch.empty_like(input_ids)
    for b in range(input_ids.shape[0]):
        word = -1
        for t in range(input_ids.shape[1]):
            follows_candidate = t > 0 and bool(candidates[b, t - 1])
            if not (bool(continues_word[input_ids[b, t]]) and follows_candidate):
                word += 1  # a new word begins here
            out[b, t] = word
    return out


def choose_positions(
    input_ids: Tensor,
    *,
    generator: torch.Generator,
    special_ids: Sequence[int] = (),
    special_mask: Tensor | None = None,
    mlm_probability: float = 0.15,
    whole_word: bool = False,
    continues_word: Tensor | None = None,
) -> Tensor:
    """Which positions the model must predict: a bool tensor (B, T), about 15% of candidates.

    With `whole_word`, `continues_word` (vocab,) bool says which ids are "##" pieces; a word is
    chosen with probability `mlm_probability` and all of its pieces with it.
    """
    if not 0.0 <= mlm_probability <= 1.0:
        raise ValueError(f"mlm_probability must be in [0, 1], got {mlm_probability}")
    candidates = candidate_mask(input_ids, special_ids, special_mask)  # (B, T)
    coin = _uniform(input_ids.shape, generator, input_ids.device) < mlm_probability  # (B, T)
    if whole_word:
        if continues_word is None:
            raise ValueError("whole_word masking needs continues_word (the tokenizer's)")
        words = word_index(input_ids, candidates, continues_word)  # (B, T)
        coin = coin.gather(1, words)  # (B, T): every piece takes its word's coin (one per word)
    return coin & candidates  # (B, T)


def mask_tokens(
    input_ids: Tensor,
    *,
    vocab_size: int,
    mask_id: int,
    generator: torch.Generator,
    special_ids: Sequence[int] = (),
    special_mask: Tensor | None = None,
    mlm_probability: float = 0.15,
    whole_word: bool = False,
    continues_word: Tensor | None = None,
    mask_fraction: float = 0.8,
    random_fraction: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """BERT's dynamic masking of a batch: (inputs, labels), both (B, T) long.

    inputs: `input_ids` with the chosen positions replaced 80% by [MASK], 10% by a random
    non-special token, 10% left as they were. labels: the original id at chosen positions,
    -100 elsewhere. `input_ids` itself is not changed.
    """
    chosen = choose_positions(
        input_ids,
        generator=generator,
        special_ids=special_ids,
        special_mask=special_mask,
        mlm_probability=mlm_probability,
        whole_word=whole_word,
        continues_word=continues_word,
    )  # (B, T) bool
    labels = input_ids.masked_fill(~chosen, IGNORE_INDEX)  # (B, T)

    # one draw per position decides its fate: [0, 0.8) mask, [0.8, 0.9) random, [0.9, 1) keep
    fate = _uniform(input_ids.shape, generator, input_ids.device)  # (B, T)
    to_mask = chosen & (fate < mask_fraction)
    to_random = chosen & (fate >= mask_fraction) & (fate < mask_fraction + random_fraction)

    # random replacements come from the ordinary tokens only: a random [PAD] or [CLS] in the
    # middle of a sentence would teach the model something false about those tokens
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[torch.tensor([i for i in special_ids if 0 <= i < vocab_size], dtype=torch.long)] = False
    pool = allowed.nonzero().squeeze(1)  # (V',) ids a random replacement may take
    picks = torch.randint(len(pool), input_ids.shape, generator=generator, device=generator.device)
    random_ids = pool[picks.cpu()].to(input_ids.device)  # (B, T)

    inputs = input_ids.clone()
    inputs[to_mask] = mask_id
    inputs[to_random] = random_ids[to_random]
    return inputs, labels


def masked_positions(labels: Tensor) -> Tensor:
    """The (row, column) of every chosen position, row-major: a long tensor (N, 2)."""
    return (labels != IGNORE_INDEX).nonzero()  # (N, 2)


def select_masked(hidden: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The hidden states and labels at the chosen positions only: ((N, H), (N,)).

    A model projects these N rows to the vocabulary instead of all B * T, about 7x less work
    for the largest matrix multiply of a small BERT.
    """
    chosen = labels != IGNORE_INDEX  # (B, T)
    return hidden[chosen], labels[chosen]  # (N, H), (N,)


def mlm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross entropy over the chosen positions; any other position's logits are ignored.

    logits (B, T, V) with labels (B, T), or logits (N, V) with labels (N,) from `select_masked`.
    Positions labelled -100 contribute nothing, neither to the loss nor to its gradient. A
    batch with no chosen position (possible for a few short sentences) gives a zero loss
    that still has a gradient graph, rather than the 0/0 = nan of `cross_entropy`.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1])  # (B*T, V) or (N, V)
    flat_labels = labels.reshape(-1)  # (B*T,) or (N,)
    if not (flat_labels != IGNORE_INDEX).any():
        return flat_logits.sum() * 0.0
    return F.cross_entropy(flat_logits.float(), flat_labels, ignore_index=IGNORE_INDEX)


def mlm_accuracy(logits: Tensor, labels: Tensor) -> tuple[int, int]:
    """(correct, counted) top-1 guesses over the chosen positions, for the held-out report."""
    chosen = labels != IGNORE_INDEX  # (B, T) or (N,)
    guesses = logits.argmax(dim=-1)  # (B, T) or (N,)
    return int((guesses[chosen] == labels[chosen]).sum()), int(chosen.sum())
