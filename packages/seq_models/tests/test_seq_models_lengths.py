"""Padded batches: `lengths=` and `mask=` against torch's packed sequences.

torch runs a PackedSequence only over each sequence's real steps: the forward direction stops
at step len-1, the reverse direction starts there, and h_n holds those states. Ours must give
the same outputs (zeros past the end, as pad_packed_sequence pads), states and gradients.
"""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq_models import GRU, LSTM, RNN
from seq_models.recurrence import reverse_padded

T, B, I, H = 6, 4, 3, 5  # noqa: E741
LENGTHS = torch.tensor([4, 6, 1, 3])
MODELS = {"rnn": (RNN, torch.nn.RNN), "lstm": (LSTM, torch.nn.LSTM), "gru": (GRU, torch.nn.GRU)}


def _states(out):
    state = out[1]
    return list(state) if isinstance(state, tuple) else [state]


def _torch_packed(module, x, lengths, hx, batch_first):
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, state = module(packed, hx)
    padded, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    return padded, state


@pytest.mark.parametrize("impl", ["auto", "naive", "scan"])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", list(MODELS))
def test_lengths_match_packed_sequences(kind, num_layers, bidirectional, batch_first, impl):
    torch.manual_seed(0)
    ours_cls, torch_cls = MODELS[kind]
    theirs = torch_cls(
        I, H, num_layers, batch_first=batch_first, bidirectional=bidirectional,
        dtype=torch.float64,
    )  # fmt: skip
    ours = ours_cls.from_torch(theirs, impl=impl)
    shape = (B, T, I) if batch_first else (T, B, I)
    x1 = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    n = num_layers * (2 if bidirectional else 1)
    h0 = torch.randn(n, B, H, dtype=torch.float64)
    hx = (h0, torch.randn_like(h0)) if kind == "lstm" else h0
    out1 = ours(x1, hx, lengths=LENGTHS)
    out2 = _torch_packed(theirs, x2, LENGTHS, hx, batch_first)
    tensors1, tensors2 = [out1[0], *_states(out1)], [out2[0], *_states(out2)]
    for a, b in zip(tensors1, tensors2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    weights = [torch.randn_like(t) for t in tensors1]
    g1 = torch.autograd.grad(
        sum((t * w).sum() for t, w in zip(tensors1, weights, strict=True)),
        [x1, *ours.parameters()],
    )
    g2 = torch.autograd.grad(
        sum((t * w).sum() for t, w in zip(tensors2, weights, strict=True)),
        [x2, *theirs.parameters()],
    )
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_mask_is_the_same_as_lengths():
    torch.manual_seed(1)
    lstm = LSTM(I, H, 2, batch_first=True, bidirectional=True, dtype=torch.float64)
    x = torch.randn(B, T, I, dtype=torch.float64)
    mask = torch.arange(T) < LENGTHS.unsqueeze(1)  # (B, T), True at real steps
    out_mask, (h1, c1) = lstm(x, mask=mask)
    out_len, (h2, c2) = lstm(x, lengths=LENGTHS.tolist())  # a plain list works too
    for a, b in ((out_mask, out_len), (h1, h2), (c1, c2)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (out_mask[2, 1:] == 0).all()  # the sequence of length 1 emits zeros afterwards


def test_full_lengths_equal_no_lengths():
    gru = GRU(I, H, bidirectional=True, dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    out1, h1 = gru(x)
    out2, h2 = gru(x, lengths=torch.full((B,), T))
    torch.testing.assert_close(out1, out2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h1, h2, rtol=1e-12, atol=1e-12)


def test_reverse_padded_reverses_within_each_length_and_undoes_itself():
    x = torch.arange(T).view(T, 1).expand(T, B)  # (T, B): each column 0..T-1
    rev = reverse_padded(x, LENGTHS)
    assert rev[:, 2].tolist() == [0, 1, 2, 3, 4, 5]  # length 1: nothing moves
    assert rev[:, 0].tolist() == [3, 2, 1, 0, 4, 5]  # length 4: the first four reversed
    assert torch.equal(reverse_padded(rev, LENGTHS), x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lengths": [3, 3]}, "lengths of shape"),
        ({"lengths": [0, 1, 2, 3]}, "between 1 and the padded length 6"),
        ({"lengths": [1, 2, 3, 7]}, "between 1 and the padded length 6"),
        ({"mask": torch.ones(T, B, dtype=torch.bool)}, "mask of shape"),
        ({"mask": torch.tensor([[1, 0, 1, 0, 0, 0]] * B).bool()}, "prefix of each row"),
        ({"lengths": [6] * B, "mask": torch.ones(B, T).bool()}, "not both"),
    ],
)
def test_bad_lengths_and_masks_are_clear_errors(kwargs, message):
    lstm = LSTM(I, H, batch_first=True)
    with pytest.raises(ValueError, match=message):
        lstm(torch.randn(B, T, I), **kwargs)


def test_packed_sequence_input_says_what_to_do():
    gru = GRU(I, H)
    packed = pack_padded_sequence(torch.randn(T, B, I), LENGTHS, enforce_sorted=False)
    with pytest.raises(TypeError, match="lengths="):
        gru(packed)
