"""bert's exercises: the input embeddings and the masked-LM recipe, checked against the stage.

    uv run --package bert exercise list

1. `BertEmbeddings.forward`: word + position + segment, normalised ("The model, with shapes").
2. `choose_positions`: which 15% the model must guess, never a special token, whole words
   together ("Pretraining: the masking recipe").
3. `mask_tokens`: of the chosen, 80% [MASK], 10% a random ordinary token, 10% unchanged; labels
   -100 everywhere else.
4. `mlm_loss`: cross entropy over the chosen positions only, on values and gradients.

The masking pieces draw from a seeded `torch.Generator` passed in; the check copies it for each
call, so the learner's code and the stage's see the same numbers if they draw them in the same
order (the docstrings say which).
"""

from typing import Any

import torch
from torch import Tensor

from bert.masking import IGNORE_INDEX, choose_positions, mask_tokens, mlm_loss, select_masked
from bert.model import BertConfig, BertEmbeddings
from shared.exercises import Case, Exercise, torch_gradients
from shared.learn import exercise_command

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = [PAD, UNK, CLS, SEP, MASK]
V = 30
CONTINUES = torch.arange(V) >= 20  # ids 20..29 stand for "##" pieces


def _batch(B: int, T: int, seed: int) -> Tensor:
    """[CLS] words [SEP] [PAD]...: rows of random lengths, ordinary ids 5..29 (a third "##")."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(SPECIAL), V, (B, T), generator=g)  # (B, T)
    lengths = torch.randint(max(T // 2, 2), T + 1, (B,), generator=g)  # (B,)
    positions = torch.arange(T).expand(B, T)  # (B, T)
    ids[:, 0] = CLS
    ids[positions == (lengths - 1)[:, None]] = SEP
    ids[positions >= lengths[:, None]] = PAD
    return ids


def _with_keywords(function, args: tuple) -> Any:
    """Call a function whose options are keyword-only: args = (positional tuple, keywords)."""
    positional, keywords = args
    return function(*positional, **keywords)


def _masking_cases() -> list[Case]:
    """The same batches for choosing and for masking: args ((input_ids,), keywords)."""

    def case(label, ids, seed, **options):
        keywords = dict(generator=torch.Generator().manual_seed(seed), **options)
        return Case(label, ((ids,), keywords), seed)

    padded = torch.full((2, 9), 7)  # padding written as an ordinary id: only the mask knows
    padded[:, 0] = CLS
    attention_mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4])
    return [
        case("ids (4, 16), specials [PAD, UNK, CLS, SEP, MASK], p=0.15", _batch(4, 16, 0), 0,
             special_ids=SPECIAL),
        case("ids (4, 16), p=0.6", _batch(4, 16, 1), 1, special_ids=SPECIAL, mlm_probability=0.6),
        case("ids (1, 8), batch of 1, p=0.9", _batch(1, 8, 2), 2, special_ids=SPECIAL,
             mlm_probability=0.9),
        case("ids (3, 12), whole words (ids 20..29 are ## pieces), p=0.5", _batch(3, 12, 3), 3,
             special_ids=SPECIAL, mlm_probability=0.5, whole_word=True, continues_word=CONTINUES),
        case("ids (2, 9), padding given by special_mask (2, 9) only, p=0.7", padded, 4,
             special_ids=[CLS], special_mask=attention_mask == 0, mlm_probability=0.7),
    ]  # fmt: skip


def _mask_tokens_cases() -> list[Case]:
    cases = []
    for case in _masking_cases():
        (ids,), keywords = case.args
        keywords = dict(keywords, vocab_size=V, mask_id=MASK)
        cases.append(Case(case.label, ((ids,), keywords), case.seed))
    g = torch.Generator().manual_seed(5)
    keywords = dict(vocab_size=V, mask_id=MASK, generator=g, special_ids=SPECIAL,
                    mlm_probability=0.8, mask_fraction=0.5, random_fraction=0.3)  # fmt: skip
    label = "ids (4, 16), p=0.8, 50% [MASK], 30% random, 20% kept"
    cases.append(Case(label, ((_batch(4, 16, 5),), keywords), 5))
    return cases


def _mask_tokens_outputs(function, args: tuple) -> dict[str, Tensor]:
    """What mask_tokens returns, and its input after the call: it must not change it."""
    inputs, labels = _with_keywords(function, args)
    return {"inputs": inputs, "labels": labels, "input_ids (unchanged)": args[0][0]}


# ----------------------------------------------------------------------------------------------


def _embeddings(seed: int, dropout: float = 0.0) -> BertEmbeddings:
    config = BertConfig(vocab_size=V, hidden_size=8, num_attention_heads=2,
                        max_position_embeddings=16, hidden_dropout_prob=dropout)  # fmt: skip
    layer = BertEmbeddings(config)  # a new module is in training mode: dropout on
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():  # LayerNorm's scale and shift too
            p.copy_(torch.randn(p.shape, generator=g))
    return layer


def _embedding_cases() -> list[Case]:
    pair = _batch(2, 7, 12)
    segments = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]])
    one = torch.tensor([[CLS]])
    return [
        Case(
            "input_ids (2, 6), one segment: token_type_ids None",
            (_embeddings(0), _batch(2, 6, 10)),
            0,
        ),
        Case(
            "input_ids (2, 7), two segments: token_type_ids (2, 7)",
            (_embeddings(1), pair, segments),
            1,
        ),
        Case("input_ids (1, 1): batch of 1, length 1", (_embeddings(2), one), 2),
        Case(
            "input_ids (2, 5), dropout 0.1, training mode",
            (_embeddings(3, 0.1), _batch(2, 5, 11)),
            3,
        ),
    ]


# ----------------------------------------------------------------------------------------------


def _labels(seed: int, B: int, T: int, chosen: float) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, V, (B, T), generator=g)
    return labels.masked_fill(torch.rand(B, T, generator=g) >= chosen, IGNORE_INDEX)


def _logits(seed: int, *shape: int) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).requires_grad_()


def _loss_cases() -> list[Case]:
    hidden = torch.randn(2, 6, V, generator=torch.Generator().manual_seed(3))
    rows, row_labels = select_masked(hidden, _labels(3, 2, 6, 0.5))  # (N, V), (N,)
    N = len(row_labels)
    return [
        Case(
            "logits (2, 5, 30), labels (2, 5), 40% chosen",
            (_logits(0, 2, 5, V), _labels(0, 2, 5, 0.4)),
            0,
        ),
        Case(
            "logits (3, 8, 30), labels (3, 8), 15% chosen",
            (_logits(1, 3, 8, V), _labels(1, 3, 8, 0.15)),
            1,
        ),
        Case(
            f"logits ({N}, 30), labels ({N},): the chosen rows only",
            (rows.requires_grad_(), row_labels),
            3,
        ),
        Case(
            "logits (2, 4, 30), no position chosen: every label -100",
            (_logits(4, 2, 4, V), torch.full((2, 4), IGNORE_INDEX)),
            4,
        ),
        Case(
            "logits (1, 1, 30): batch of 1, length 1, chosen",
            (_logits(5, 1, 1, V), torch.tensor([[7]])),
            5,
        ),
    ]


# ----------------------------------------------------------------------------------------------

MASKING_IMPORTS = """
from collections.abc import Sequence

import torch
from torch import Tensor

from bert.masking import IGNORE_INDEX, _uniform, candidate_mask, choose_positions, word_index
"""

EXERCISES = [
    Exercise(
        slug="embeddings",
        title="BERT's input: word + position + segment embeddings, normalised",
        reference=BertEmbeddings.forward,
        cases=_embedding_cases,
        gradients=torch_gradients,
        imports="""
import torch
from torch import Tensor
""",
        docstring="""
input_ids (B, T) -> (B, T, H): word + position + segment embeddings, normalised, dropped out.

self is a BertEmbeddings: self.word_embeddings (vocab, H); self.position_embeddings
(max_positions, H), row t for the token at position t = 0..T-1; self.token_type_embeddings
(2, H), row 0 for sentence A and row 1 for sentence B, chosen by token_type_ids (B, T);
token_type_ids None means one segment: every token gets row 0. Then self.norm (LayerNorm over
H), then self.dropout.""",
        hint="""Add three lookups: word[input_ids], position[0..T-1], segment[token_type_ids].
The positions are torch.arange(T) (on input_ids' device), the same for every row: (T, H)
broadcasts over the batch. Without token_type_ids add self.token_type_embeddings.weight[0].
Normalise the sum once, then dropout.""",
    ),
    Exercise(
        slug="choose_positions",
        title="choose 15% of the tokens to predict, never a special one",
        reference=choose_positions,
        cases=_masking_cases,
        call=_with_keywords,
        imports=MASKING_IMPORTS,
        docstring="""
Which positions the model must predict: a bool tensor (B, T), about mlm_probability of the
candidates. input_ids (B, T); the options after `*` are keyword-only.

1. candidates (B, T): `candidate_mask(input_ids, special_ids, special_mask)`, False at any id
   in special_ids and wherever special_mask (B, T) is True (padding, say).
2. coin (B, T): `_uniform(input_ids.shape, generator, input_ids.device) < mlm_probability`,
   one draw from the generator for every position.
3. whole_word: continues_word (vocab,) bool says which ids are "##" pieces;
   `word_index(input_ids, candidates, continues_word)` (B, T) numbers the words of each row
   0, 1, 2, ...; every piece of word w takes its row's coin number w (coin.gather), so a word's
   pieces are chosen together.
4. Chosen: the coin, and a candidate.
mlm_probability outside [0, 1], or whole_word without continues_word: ValueError.""",
        hint="""A position is chosen when its coin says so AND it is a candidate (not special).
Draw the coin for every position, candidates or not, with one call to _uniform: the check's
generator then gives your code and the stage's the same numbers. For whole words, gather each
position's coin from its word's index: coin.gather(1, word_index(...)).""",
    ),
    Exercise(
        slug="mask_tokens",
        title="the 80/10/10 recipe: [MASK], a random token, or unchanged",
        reference=mask_tokens,
        cases=_mask_tokens_cases,
        call=_mask_tokens_outputs,
        imports=MASKING_IMPORTS,
        docstring="""
BERT's dynamic masking of a batch: (inputs, labels), both (B, T) long, input_ids unchanged.

1. chosen (B, T) bool: `choose_positions(input_ids, generator=generator, ...)`, passing on the
   choosing options (it draws from the generator first).
2. labels: the original id at the chosen positions, IGNORE_INDEX (-100) everywhere else.
3. fate (B, T) = `_uniform(input_ids.shape, generator, input_ids.device)`, one draw per
   position. A chosen position becomes mask_id if fate < mask_fraction; a random ordinary
   token if mask_fraction <= fate < mask_fraction + random_fraction; otherwise it stays.
4. The random tokens: pool = the ids 0..vocab_size-1 not in special_ids, ascending (V',);
   picks = torch.randint(len(pool), input_ids.shape, generator=generator,
   device=generator.device) (B, T); position (b, t) would get pool[picks[b, t]].
Draw in exactly this order (chosen, fate, picks) so that the same generator gives the same
masks as the stage's code.""",
        hint="""One uniform number per position decides its fate: [0, .8) mask, [.8, .9) random.
labels = input_ids.masked_fill(~chosen, IGNORE_INDEX). Work on inputs = input_ids.clone(), never
on input_ids itself. The random tokens come from the ordinary ids only: a [PAD] or [CLS] in the
middle of a sentence would teach the model something false.""",
    ),
    Exercise(
        slug="mlm_loss",
        title="the masked-LM loss over the chosen positions only",
        reference=mlm_loss,
        cases=_loss_cases,
        gradients=torch_gradients,
        imports="""
import torch.nn.functional as F
from torch import Tensor

from bert.masking import IGNORE_INDEX
""",
        docstring="""
Mean cross entropy over the chosen positions: a scalar tensor.

logits (B, T, V) with labels (B, T), or logits (N, V) with labels (N,). A label of
IGNORE_INDEX (-100) marks a position that was not chosen: it adds nothing to the loss nor to
its gradient. With no chosen position at all, return 0 that still has a gradient graph (zero
gradients), not cross entropy's 0/0 = nan. Compute the cross entropy in float32.""",
        hint="""Flatten to (rows, V) and (rows,), then F.cross_entropy(..., ignore_index=-100).
It averages over the positions that count, not over all B * T. When every label is -100 return
logits.sum() * 0.0: a zero that backpropagates zeros.""",
    ),
]


def exercise(argv: list[str]) -> int:
    """`uv run --package bert exercise ...` (see shared/learn.py)."""
    return exercise_command("bert", EXERCISES, argv)
